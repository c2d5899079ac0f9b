import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a finished child process left: its exit status and everything it wrote.
public struct ProcessOutput: Sendable, Equatable {
    /// The exit status, or the signal number when ``uncaughtSignal`` is true (Foundation's convention).
    public var status: Int32
    /// True when the child was ended by a signal it did not handle.
    public var uncaughtSignal: Bool
    public var stdout: Data
    public var stderr: Data

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Launching a child or collecting its output failed.
public enum ProcessCaptureError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The executable could not be started.
    case launchFailed(executable: String, reason: String)
    /// Reading one of the child's output pipes failed with an error other than an interruption.
    case readFailed(executable: String, stream: String, errno: Int32)

    public var description: String {
        switch self {
        case let .launchFailed(executable, reason):
            return "could not start \(executable): \(reason)"
        case let .readFailed(executable, stream, code):
            return "reading the \(stream) of \(executable) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}

/// Runs a child process to completion and collects its standard output and standard error.
///
/// Both pipes are drained at the same time (a child that fills one pipe while the parent waits on the other would
/// otherwise block forever), and every `read` that a signal interrupts is retried: any signal with a handler can land
/// on the reading thread (the runtime's crash reporter stops every thread with one while it writes a backtrace, and
/// the emulator watches SIGINT and SIGTERM), and Foundation's `readDataToEndOfFile()` traps on EINTR.
public enum CapturedProcess {
    /// Runs `executable` with `arguments` and waits for it to end.
    /// - Parameters:
    ///   - currentDirectory: the child's working directory (this process's when nil).
    ///   - environment: the child's whole environment (this process's when nil).
    ///   - captureStandardError: when false the child's standard error goes to /dev/null and `stderr` is empty.
    public static func run(_ executable: String, _ arguments: [String], currentDirectory: String? = nil,
                           environment: [String: String]? = nil,
                           captureStandardError: Bool = true) throws(ProcessCaptureError) -> ProcessOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = captureStandardError ? Pipe() : nil
        process.standardOutput = out
        process.standardError = err ?? FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw .launchFailed(executable: executable, reason: "\(error)")
        }
        // `run()` has closed this process's copies of the write ends, so the reads below end when the child's do.
        let stderrResult = Collected()
        let stderrDone = DispatchSemaphore(value: 0)
        if let err {
            let fd = err.fileHandleForReading.fileDescriptor
            Thread.detachNewThread {
                stderrResult.set(Result { () throws(ReadError) -> Data in try readToEnd(fd) })
                stderrDone.signal()
            }
        }
        let stdoutResult = Result { () throws(ReadError) -> Data in try readToEnd(out.fileHandleForReading.fileDescriptor) }
        if err != nil { stderrDone.wait() }
        process.waitUntilExit()
        try? out.fileHandleForReading.close()
        try? err?.fileHandleForReading.close()

        let stdout: Data, stderr: Data
        switch stdoutResult {
        case let .success(data): stdout = data
        case let .failure(e): throw .readFailed(executable: executable, stream: "standard output", errno: e.code)
        }
        switch stderrResult.get() ?? .success(Data()) {
        case let .success(data): stderr = data
        case let .failure(e): throw .readFailed(executable: executable, stream: "standard error", errno: e.code)
        }
        return ProcessOutput(status: process.terminationStatus,
                             uncaughtSignal: process.terminationReason == .uncaughtSignal,
                             stdout: stdout, stderr: stderr)
    }

    /// A failed `read(2)`: its errno.
    public struct ReadError: Error, Sendable, Equatable {
        public var code: Int32
    }

    /// Reads `fd` until end of file. Reads interrupted by a signal (EINTR) are retried; a descriptor in
    /// non-blocking mode that has nothing yet (EAGAIN) is waited on with `poll`.
    public static func readToEnd(_ fd: Int32) throws(ReadError) -> Data {
        var data = Data()
        let capacity = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer, capacity)
            if n > 0 {
                data.append(buffer.assumingMemoryBound(to: UInt8.self), count: n)
            } else if n == 0 {
                return data
            } else {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&request, 1, -1)
                    continue
                }
                throw ReadError(code: code)
            }
        }
    }
}

/// A result handed from the reading thread to the waiting one.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<Data, CapturedProcess.ReadError>?

    func set(_ result: Result<Data, CapturedProcess.ReadError>) {
        lock.lock()
        value = result
        lock.unlock()
    }

    func get() -> Result<Data, CapturedProcess.ReadError>? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
