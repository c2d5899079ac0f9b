import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and writes cgroup knob files with plain syscalls, so the kernel's errno reaches the error message.
///
/// `kernel` is false for a tree of ordinary files standing in for cgroupfs (tests): then writes create missing files and
/// removing a group deletes the files in it first; on the real cgroupfs neither is needed or possible.
struct KnobIO: Sendable {
    let kernel: Bool

    /// True when `path` is on a cgroup v1 or v2 filesystem, judged by the longest matching mount in `mountinfo`.
    static func isCgroupFS(_ path: String, mountinfo: String = "/proc/self/mountinfo") -> Bool {
        guard let resolved = realpath(path, nil) else { return false }
        let target = String(cString: resolved)
        free(resolved)
        guard let text = try? KnobIO(kernel: false).read(mountinfo) else { return false }
        var best: (length: Int, type: String)?
        for line in text.split(whereSeparator: \.isNewline) {
            let halves = line.components(separatedBy: " - ")
            let fields = halves[0].split(separator: " ")
            guard halves.count == 2, fields.count >= 5, let type = halves[1].split(separator: " ").first else { continue }
            // Mount points escape space, tab, newline and backslash as octal (\040 …).
            let mountPoint = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
            let matches = mountPoint == "/" || target == mountPoint || target.hasPrefix(mountPoint + "/")
            if matches, mountPoint.count >= (best?.length ?? -1) { best = (mountPoint.count, String(type)) }
        }
        return best?.type == "cgroup" || best?.type == "cgroup2"
    }

    func read(_ path: String) throws(EmulatorError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .knobReadFailed(path: path, reason: errnoText()) }
        defer { close(fd) }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .knobReadFailed(path: path, reason: errnoText())
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }

    func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    func write(_ path: String, _ value: String) throws(EmulatorError) {
        let flags = O_WRONLY | O_CLOEXEC | (kernel ? 0 : O_CREAT | O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            let code = errno
            if code == EACCES || code == EPERM || code == EROFS {
                throw .permissionDenied(path: path, operation: "write", reason: errnoText(code))
            }
            throw .knobWriteFailed(path: path, value: value, reason: errnoText(code))
        }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else {
            let code = n < 0 ? errno : EIO
            throw .knobWriteFailed(path: path, value: value, reason: errnoText(code))
        }
    }

    /// A knob holding one unsigned integer, or `max` (returned as nil) when `allowMax`.
    func readUInt(_ path: String, allowMax: Bool = false) throws(EmulatorError) -> UInt64? {
        let text = try read(path).trimmingCharacters(in: .whitespacesAndNewlines)
        if allowMax, text == "max" { return nil }
        guard let value = UInt64(text) else {
            throw .malformedKnob(path: path, content: text, expected: allowMax ? "an integer or 'max'" : "an integer")
        }
        return value
    }

    /// A flat-keyed knob (`key value` per line, e.g. memory.stat, memory.events, memory.oom_control).
    func readKeyed(_ path: String) throws(EmulatorError) -> [String: UInt64] {
        let text = try read(path)
        var values: [String: UInt64] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard fields.count == 2, let value = UInt64(fields[1]) else {
                throw .malformedKnob(path: path, content: String(line), expected: "lines of '<key> <integer>'")
            }
            values[String(fields[0])] = value
        }
        return values
    }

    func value(_ key: String, in values: [String: UInt64], path: String) throws(EmulatorError) -> UInt64 {
        guard let value = values[key] else {
            throw .malformedKnob(
                path: path, content: values.keys.sorted().joined(separator: " "), expected: "a '\(key)' line")
        }
        return value
    }

    func makeDirectory(_ path: String) throws(EmulatorError) {
        guard mkdir(path, 0o755) == 0 else {
            let code = errno
            if code == EACCES || code == EPERM || code == EROFS {
                throw .permissionDenied(path: path, operation: "create cgroup", reason: errnoText(code))
            }
            throw .groupCreateFailed(path: path, reason: errnoText(code))
        }
    }

    /// Removes a group directory. A live group that still holds tasks answers EBUSY for a moment after the last one is
    /// reaped, so this retries for up to `patience` seconds.
    func removeDirectory(_ path: String, patience: Double = 2.0) throws(EmulatorError) {
        guard exists(path) else { return }
        if !kernel, let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
            for name in names { unlink(path + "/" + name) }
        }
        let deadline = Date().addingTimeInterval(patience)
        while true {
            if rmdir(path) == 0 || errno == ENOENT { return }
            let code = errno
            guard code == EBUSY, Date() < deadline else {
                throw .groupRemoveFailed(path: path, reason: errnoText(code))
            }
            usleep(10_000)
        }
    }
}

/// Joins path components the way cgroup paths are written (`/` separated, no doubled slashes).
func joinPath(_ parts: String...) -> String {
    var result = ""
    for part in parts where !part.isEmpty {
        let piece = part.hasPrefix("/") && !result.isEmpty ? String(part.dropFirst()) : part
        if result.isEmpty || result.hasSuffix("/") { result += piece } else { result += "/" + piece }
    }
    while result.count > 1, result.hasSuffix("/") { result.removeLast() }
    return result
}
