// What the host says about itself: CPU model, core count, clock, memory (Linux /proc files).

import Foundation

/// Static facts about the machine being calibrated.
public struct HostInfo: Sendable, Codable, Equatable {
    /// CPU model name (`model name` in /proc/cpuinfo), or the architecture when that is missing.
    public var cpuModel: String
    /// Processors available to this process.
    public var cores: Int
    /// Clock of the first processor in GHz (`cpu MHz`), nil when not reported.
    public var clockGHz: Double?
    /// MemTotal and MemAvailable from /proc/meminfo, in bytes.
    public var memTotalBytes: Int
    public var memAvailableBytes: Int
    /// Resident set of this process when the info was read (VmRSS), in bytes.
    public var processResidentBytes: Int
    /// The file-backed part of it (RssFile: program and libraries paged in so far); nil where the kernel does not
    /// report it, and in files written before it was recorded.
    public var processFileResidentBytes: Int?
    /// One-minute load average (/proc/loadavg) when the info was read: above the core count, other work competed
    /// with the measurements. Nil when not available.
    public var loadAverage: Double?

    enum CodingKeys: String, CodingKey {
        case cpuModel = "cpu_model", cores, clockGHz = "clock_ghz", memTotalBytes = "mem_total_bytes"
        case memAvailableBytes = "mem_available_bytes", processResidentBytes = "process_resident_bytes"
        case processFileResidentBytes = "process_file_resident_bytes", loadAverage = "load_average"
    }

    public init(cpuModel: String, cores: Int, clockGHz: Double?, memTotalBytes: Int, memAvailableBytes: Int,
                processResidentBytes: Int, processFileResidentBytes: Int? = nil, loadAverage: Double? = nil) {
        self.cpuModel = cpuModel; self.cores = cores; self.clockGHz = clockGHz
        self.memTotalBytes = memTotalBytes; self.memAvailableBytes = memAvailableBytes
        self.processResidentBytes = processResidentBytes; self.processFileResidentBytes = processFileResidentBytes
        self.loadAverage = loadAverage
    }

    /// Reads the running machine's facts from /proc.
    public static func current() throws -> HostInfo {
        let cpuinfo = try readText("/proc/cpuinfo")
        let meminfo = try readText("/proc/meminfo")
        let status = try readText("/proc/self/status")
        let loadavg = try? readText("/proc/loadavg")
        return try parse(cpuinfo: cpuinfo, meminfo: meminfo, status: status, loadavg: loadavg,
                         cores: ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Builds the facts from the texts of /proc/cpuinfo, /proc/meminfo and /proc/self/status.
    public static func parse(cpuinfo: String, meminfo: String, status: String, loadavg: String? = nil,
                             cores: Int) throws -> HostInfo {
        let model = firstValue(cpuinfo, "model name") ?? firstValue(cpuinfo, "Hardware")
        let mhz = firstValue(cpuinfo, "cpu MHz").flatMap(Double.init)
        let total = try kilobytes(meminfo, "MemTotal", file: "/proc/meminfo")
        let available = try kilobytes(meminfo, "MemAvailable", file: "/proc/meminfo")
        let rss = try kilobytes(status, "VmRSS", file: "/proc/self/status")
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "arm64"
        #else
        let arch = "unknown architecture"
        #endif
        return HostInfo(cpuModel: model.map { $0.isEmpty ? arch : $0 } ?? arch, cores: max(1, cores),
                        clockGHz: mhz.flatMap { $0 > 0 ? $0 / 1000 : nil }, memTotalBytes: total,
                        memAvailableBytes: min(available, total), processResidentBytes: rss,
                        processFileResidentBytes: try? kilobytes(status, "RssFile", file: "/proc/self/status"),
                        loadAverage: loadavg.flatMap(parseLoadAverage))
    }

    /// The one-minute load average now (/proc/loadavg), nil where it cannot be read.
    public static func loadAverage() -> Double? {
        (try? readText("/proc/loadavg")).flatMap(parseLoadAverage)
    }

    /// The first field of /proc/loadavg's text.
    static func parseLoadAverage(_ text: String) -> Double? {
        text.split(separator: " ").first.flatMap { Double($0) }
    }

    /// The file-backed resident set of this process now (RssFile of /proc/self/status), nil where unavailable.
    public static func fileResidentBytes() -> Int? {
        (try? readText("/proc/self/status")).flatMap { try? kilobytes($0, "RssFile", file: "/proc/self/status") }
    }

    static func readText(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CalibrationError.unreadableSystemFile(path: path, reason: (error as NSError).localizedDescription)
        }
    }

    /// The value after "key:" on the first line whose key matches, trimmed.
    static func firstValue(_ text: String, _ key: String) -> String? {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].trimmingCharacters(in: .whitespaces) == key {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// A "Key:   1234 kB" line as bytes.
    static func kilobytes(_ text: String, _ key: String, file: String) throws -> Int {
        guard let value = firstValue(text, key) else {
            throw CalibrationError.missingSystemField(path: file, field: key)
        }
        let parts = value.split(separator: " ")
        guard let number = parts.first.flatMap({ Int($0) }), number >= 0 else {
            throw CalibrationError.missingSystemField(path: file, field: key + " (a number of kB)")
        }
        return number * 1024
    }
}

extension HostInfo {
    /// Bytes of the highest-level cache of processor 0 as sysfs describes it (`index*/level` and `index*/size`
    /// under `root`), nil when none is described.
    public static func lastLevelCacheBytes(root: String = "/sys/devices/system/cpu/cpu0/cache") -> Int? {
        dataCaches(root: root).max { $0.level < $1.level }?.bytes
    }

    /// Bytes of processor 0's data (or unified) cache of `level` (2: the core's private L2 on current x86 and Arm
    /// server cores), nil when sysfs describes none.
    public static func cacheBytes(level: Int, root: String = "/sys/devices/system/cpu/cpu0/cache") -> Int? {
        dataCaches(root: root).first { $0.level == level }?.bytes
    }

    /// The data and unified caches under `root` (`index*/level`, `index*/size`, `index*/type`).
    static func dataCaches(root: String) -> [(level: Int, bytes: Int)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        var caches: [(level: Int, bytes: Int)] = []
        for entry in entries.sorted() where entry.hasPrefix("index") {
            let dir = root + "/" + entry
            guard let levelText = try? String(contentsOfFile: dir + "/level", encoding: .utf8),
                  let level = Int(levelText.trimmingCharacters(in: .whitespacesAndNewlines)),
                  let sizeText = try? String(contentsOfFile: dir + "/size", encoding: .utf8),
                  let bytes = cacheSizeBytes(sizeText) else { continue }
            let type = (try? String(contentsOfFile: dir + "/type", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if type == "Instruction" { continue }
            caches.append((level, bytes))
        }
        return caches
    }

    /// A sysfs cache size ("32768K", "1M", "512"), in bytes; nil when it is not one.
    public static func cacheSizeBytes(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let last = t.last else { return nil }
        let multiplier: Int
        var digits = t
        switch last {
        case "K", "k": multiplier = 1 << 10; digits.removeLast()
        case "M", "m": multiplier = 1 << 20; digits.removeLast()
        case "G", "g": multiplier = 1 << 30; digits.removeLast()
        default: multiplier = 1
        }
        guard let value = Int(digits), value > 0 else { return nil }
        return value * multiplier
    }
}
