import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A spawned child: posix_spawn with default SIGINT/SIGTERM dispositions and an empty signal mask.
final class ChildProcess {
    let pid: pid_t
    private var gate: Int32?
    private var waiter: Waiter?

    private init(pid: pid_t, gate: Int32?) {
        self.pid = pid
        self.gate = gate
    }

    deinit {
        if let gate { close(gate) }
    }

    static let trampoline = #"read -r go <&3 || exit 125; exec 3<&-; exec "$@""#

    /// Spawns `/bin/sh` waiting on a pipe at fd 3 before it execs the command (see ``Supervisor``).
    static func spawnGated(executable: String, arguments: [String], environment: [String]) throws(EmulatorError) -> ChildProcess {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw .spawnFailed(command: executable, reason: "pipe: " + errnoText()) }
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // Keep the read end off fd 3 itself so the dup2 below always clears close-on-exec.
        let readEnd = fcntl(fds[0], F_DUPFD_CLOEXEC, 10)
        close(fds[0])
        guard readEnd >= 0 else {
            close(fds[1])
            throw .spawnFailed(command: executable, reason: "fcntl: " + errnoText())
        }
        defer { close(readEnd) }
        do throws(EmulatorError) {
            let pid = try spawn(
                path: "/bin/sh", argv: ["/bin/sh", "-c", trampoline, "autoglm-exec", executable] + arguments,
                environment: environment, gateReadEnd: readEnd, label: executable)
            return ChildProcess(pid: pid, gate: fds[1])
        } catch {
            close(fds[1])
            throw error
        }
    }

    static func spawn(executable: String, arguments: [String], environment: [String]) throws(EmulatorError) -> ChildProcess {
        let pid = try spawn(path: executable, argv: [executable] + arguments, environment: environment, gateReadEnd: nil, label: executable)
        return ChildProcess(pid: pid, gate: nil)
    }

    private static func spawn(
        path: String, argv: [String], environment: [String], gateReadEnd: Int32?, label: String
    ) throws(EmulatorError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let gateReadEnd { posix_spawn_file_actions_adddup2(&actions, gateReadEnd, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cArgs = argv.map { strdup($0) }
        let cEnv = environment.map { strdup($0) }
        defer {
            for pointer in cArgs { free(pointer) }
            for pointer in cEnv { free(pointer) }
        }
        var pid: pid_t = 0
        let code = (cArgs + [nil]).withUnsafeBufferPointer { argvBuffer in
            (cEnv + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawn(
                    &pid, path, &actions, &attributes,
                    UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                    UnsafeMutablePointer(mutating: envBuffer.baseAddress!))
            }
        }
        guard code == 0 else { throw .spawnFailed(command: label, reason: errnoText(code)) }
        return pid
    }

    /// Lets a gated child exec its command.
    func releaseGate() throws(EmulatorError) {
        guard let gate else { return }
        let bytes: [UInt8] = Array("go\n".utf8)
        let written = bytes.withUnsafeBytes { write(gate, $0.baseAddress, $0.count) }
        close(gate)
        self.gate = nil
        guard written == bytes.count else { throw .spawnFailed(command: "gate", reason: errnoText()) }
    }

    /// Waits up to `timeout` seconds for the child to end; its wait status, or nil while it still runs.
    /// A waiter thread sits in `waitpid` so the end is seen (and the child reaped) at once, not at the next sample.
    func wait(timeout: Double) -> Int32? {
        if waiter == nil { startWaiter() }
        guard let waiter else { return nil }
        return waiter.wait(timeout: timeout)
    }

    private func startWaiter() {
        let box = Waiter()
        waiter = box
        let pid = self.pid
        Thread.detachNewThread {
            var status: Int32 = 0
            while true {
                let result = waitpid(pid, &status, 0)
                if result == pid { break }
                if result < 0, errno == EINTR { continue }
                status = -1
                break
            }
            box.finish(status)
        }
    }

    /// Kills the child and waits until it has been reaped.
    func killAndReap() {
        if let gate {
            close(gate)
            self.gate = nil
        }
        if waiter == nil { startWaiter() }
        guard let waiter, !waiter.isFinished else { return }
        kill(pid, SIGKILL)
        _ = waiter.wait(timeout: nil)
    }

    /// (exit status, signal) from a wait status.
    /// A negative status (the child was reaped elsewhere, e.g. SIGCHLD ignored) decodes to neither.
    static func decode(_ status: Int32) -> (Int32?, Int32?) {
        if status < 0 { return (nil, nil) }
        let low = status & 0x7f
        if low == 0 { return ((status >> 8) & 0xff, nil) }
        return (nil, low)
    }

    /// The process's resident set from `/proc/<pid>/status` (VmRSS, RssAnon, RssFile + RssShmem).
    static func residentSet(of pid: pid_t) -> MemoryReading? {
        guard let text = try? KnobIO(kernel: false).read("/proc/\(pid)/status") else { return nil }
        var kb: [String: UInt64] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
            if fields.count >= 2, let value = UInt64(fields[1]) { kb[String(fields[0])] = value }
        }
        guard let rss = kb["VmRSS"] else { return nil }
        return MemoryReading(
            bytes: rss * 1024, anonBytes: (kb["RssAnon"] ?? 0) * 1024,
            fileBytes: ((kb["RssFile"] ?? 0) + (kb["RssShmem"] ?? 0)) * 1024)
    }
}

/// Hands a wait status from the waiter thread to the supervising one.
final class Waiter: @unchecked Sendable {
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var status: Int32?

    func finish(_ status: Int32) {
        lock.lock()
        self.status = status
        lock.unlock()
        done.signal()
    }

    var isFinished: Bool {
        lock.lock()
        defer { lock.unlock() }
        return status != nil
    }

    /// The status once finished; waits up to `timeout` seconds (forever for nil).
    func wait(timeout: Double?) -> Int32? {
        if let status = current() { return status }
        let signalled: Bool
        if let timeout {
            signalled = done.wait(timeout: .now() + max(0, timeout)) == .success
        } else {
            done.wait()
            signalled = true
        }
        if signalled { done.signal() }  // keep it signalled for later callers
        return current()
    }

    private func current() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        return status
    }
}
