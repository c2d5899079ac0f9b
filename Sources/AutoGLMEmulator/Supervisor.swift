import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the supervisor does when its own process gets SIGINT or SIGTERM while a child runs.
public enum SignalHandling: Sendable {
    /// Kill the child, remove the group, then exit the process with status 128 + signal.
    case exitProcess
    /// Kill the child, remove the group, then throw ``EmulatorError/interrupted(signal:)``.
    case throwInterrupted
    /// Install nothing; the caller owns signal handling.
    case none
}

public struct SupervisorOptions: Sendable {
    /// Seconds between memory samples.
    public var sampleInterval: Double
    /// Run the child without a group (result marked uncapped) when no group can be created.
    public var allowUncapped: Bool
    /// Signal handling while a child runs. Handlers are process-wide: run one supervisor per process with them on.
    public var signalHandling: SignalHandling
    /// Extra environment variables for the child (on top of this process's environment).
    public var environment: [String: String]
    /// Phase file to pass to the child; nil for a temporary file that is removed afterwards.
    public var phaseFile: String?

    public init(
        sampleInterval: Double = 0.020, allowUncapped: Bool = false, signalHandling: SignalHandling = .exitProcess,
        environment: [String: String] = [:], phaseFile: String? = nil
    ) {
        self.sampleInterval = sampleInterval
        self.allowUncapped = allowUncapped
        self.signalHandling = signalHandling
        self.environment = environment
        self.phaseFile = phaseFile
    }
}

/// Runs a command inside a fresh capped group and reports what the kernel saw.
///
/// The child joins the group before it runs a single instruction of the command: it is spawned as
/// `/bin/sh -c 'read -r go <&3 || exit 125; exec 3<&-; exec "$@"'` with a pipe on fd 3; the supervisor writes the
/// child's pid into the group's `cgroup.procs` files, checks `/proc/<pid>/cgroup`, and only then writes to the pipe,
/// letting the shell `exec` the command. Everything the command allocates is therefore charged to the group. (The few
/// pages the shell touched before joining stay charged to the old group.)
public struct Supervisor: Sendable {
    public var options: SupervisorOptions
    public var detector: CgroupDetector
    /// Backend to use; nil to detect one with ``detector``.
    public var backend: (any CgroupBackend)?

    public init(options: SupervisorOptions = SupervisorOptions(), detector: CgroupDetector = CgroupDetector(), backend: (any CgroupBackend)? = nil) {
        self.options = options
        self.detector = detector
        self.backend = backend
    }

    public func run(_ command: [String], limits: EmulationLimits) throws(EmulatorError) -> EmulationResult {
        guard let first = command.first, !first.isEmpty else { throw .emptyCommand }
        guard options.sampleInterval.isFinite, options.sampleInterval >= 0.001, options.sampleInterval <= 10 else {
            throw .invalidLimit(
                field: "sample interval", value: "\(options.sampleInterval) s", reason: "must be 0.001...10 seconds")
        }
        try limits.validate()
        let environment = ProcessInfo.processInfo.environment.merging(options.environment) { $1 }
        let executable = try resolveExecutable(first, path: environment["PATH"])

        let watcher = options.signalHandling == .none ? nil : SignalWatcher(signals: [SIGINT, SIGTERM])
        defer { watcher?.stop() }

        var session: CgroupSession?
        var uncappedReason: String?
        do throws(EmulatorError) {
            let backend: any CgroupBackend
            if let chosen = self.backend { backend = chosen } else { backend = try detector.detect() }
            session = try CgroupSession(backend: backend, limits: limits)
        } catch {
            guard options.allowUncapped else { throw error }
            uncappedReason = error.description
        }
        // From here on every exit path removes the group.
        let phasePath = options.phaseFile ?? joinPath(
            NSTemporaryDirectory(), "\(session?.group.name ?? CgroupSession.uniqueName())-phases.txt")
        let ownsPhaseFile = options.phaseFile == nil
        defer {
            if ownsPhaseFile { unlink(phasePath) }
        }
        do throws(EmulatorError) {
            if let signal = watcher?.caught { throw EmulatorError.interrupted(signal: signal) }
            let fd = open(phasePath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw EmulatorError.phaseFileFailed(path: phasePath, reason: errnoText()) }
            close(fd)
            let result = try supervise(
                command: command, executable: executable, environment: environment, limits: limits,
                session: session, phasePath: phasePath, watcher: watcher)
            var final = result
            final.uncappedReason = uncappedReason
            try session?.remove()
            return final
        } catch let error {
            try? session?.remove()
            if case .interrupted(let signal) = error, options.signalHandling == .exitProcess {
                if ownsPhaseFile { unlink(phasePath) }
                watcher?.stop()
                exit(128 + signal)
            }
            throw error
        }
    }

    // MARK: - Running

    private func supervise(
        command: [String], executable: String, environment: [String: String], limits: EmulationLimits,
        session: CgroupSession?, phasePath: String, watcher: SignalWatcher?
    ) throws(EmulatorError) -> EmulationResult {
        let start = Date()
        var env = environment
        env[PhaseReporter.fileVariable] = phasePath
        env[PhaseReporter.epochVariable] = String(format: "%.6f", start.timeIntervalSince1970)
        let envList = env.map { "\($0.key)=\($0.value)" }

        let child: ChildProcess
        var joinSeconds = 0.0
        if let session {
            child = try ChildProcess.spawnGated(executable: executable, arguments: Array(command.dropFirst()), environment: envList)
            do throws(EmulatorError) {
                try join(pid: child.pid, session: session)
                try child.releaseGate()
                joinSeconds = Date().timeIntervalSince(start)
            } catch {
                child.killAndReap()
                throw error
            }
        } else {
            child = try ChildProcess.spawn(executable: executable, arguments: Array(command.dropFirst()), environment: envList)
        }

        var timeline: [TimelineSample] = []
        var status: Int32 = 0
        var next = Date()
        var end = Date()
        do throws(EmulatorError) {
            while true {
                if let signal = watcher?.caught { throw EmulatorError.interrupted(signal: signal) }
                let now = Date()
                let t = now.timeIntervalSince(start)
                if let session {
                    let reading = try session.backend.memoryReading(of: session.group)
                    timeline.append(TimelineSample(t: t, bytes: reading.bytes, anonBytes: reading.anonBytes, fileBytes: reading.fileBytes))
                } else if let reading = ChildProcess.residentSet(of: child.pid) {
                    timeline.append(TimelineSample(t: t, bytes: reading.bytes, anonBytes: reading.anonBytes, fileBytes: reading.fileBytes))
                }
                next = next.addingTimeInterval(options.sampleInterval)
                if next < now { next = now.addingTimeInterval(options.sampleInterval) }
                if let ended = child.wait(timeout: next.timeIntervalSinceNow) {
                    end = Date()
                    status = ended
                    break
                }
            }
        } catch {
            child.killAndReap()
            throw error
        }
        let wall = end.timeIntervalSince(start)

        let (exitStatus, signal) = ChildProcess.decode(status)
        var oomCount: UInt64 = 0
        var peak = timeline.map(\.bytes).max() ?? 0
        var peakSource = session == nil ? PeakSource.sampledProcessRSS : .sampled
        if let session {
            // The group was created for this run, so its counter started at 0.
            oomCount = try session.backend.oomKillCount(of: session.group)
            if let (kernelPeak, source) = try session.backend.kernelPeak(of: session.group) {
                peak = kernelPeak
                peakSource = source
            }
        }
        let peakSample = timeline.max { $0.bytes < $1.bytes }
        let phaseText = (try? KnobIO(kernel: false).read(phasePath)) ?? ""
        let (phases, skipped) = PhaseReporter.parse(phaseText)
        let oomKilled = signal == SIGKILL && oomCount > 0
        return EmulationResult(
            command: command, capped: session != nil, uncappedReason: nil,
            cgroupVersion: session?.backend.version, groupPath: session?.group.memoryDirectory,
            requestedLimits: limits, appliedLimits: session?.applied, exitStatus: exitStatus, signal: signal,
            oomKilled: oomKilled, oomKillCount: oomCount, phaseAtExit: phases.last?.phase,
            oomPhase: oomKilled ? phases.last?.phase : nil, phases: phases, phaseLinesSkipped: skipped,
            peakBytes: peak, peakSource: peakSource, anonAtPeakBytes: peakSample?.anonBytes,
            fileAtPeakBytes: peakSample?.fileBytes, sampleIntervalSeconds: options.sampleInterval,
            timeline: timeline, wallSeconds: wall, joinSeconds: joinSeconds)
    }

    /// Moves `pid` into every directory of the group and, on the kernel's cgroupfs, checks `/proc/<pid>/cgroup`.
    private func join(pid: Int32, session: CgroupSession) throws(EmulatorError) {
        let io = KnobIO(kernel: session.backend.isKernel)
        for file in session.backend.procsFiles(of: session.group) {
            do throws(EmulatorError) { try io.write(file, "\(pid)\n") } catch {
                throw .joinFailed(pid: pid, path: file, reason: error.description)
            }
        }
        guard session.backend.isKernel else { return }
        let path = "/proc/\(pid)/cgroup"
        let text = try KnobIO(kernel: false).read(path)
        let wanted = session.group.hierarchyPath
        let joined = text.split(whereSeparator: \.isNewline).contains { line in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, fields[2] == wanted else { return false }
            return session.backend.version == .v2
                ? fields[1].isEmpty : fields[1].split(separator: ",").contains("memory")
        }
        guard joined else {
            throw .joinFailed(pid: pid, path: session.group.memoryDirectory, reason: "\(path) does not list \(wanted)")
        }
    }

    private func resolveExecutable(_ name: String, path: String?) throws(EmulatorError) -> String {
        if name.contains("/") {
            guard access(name, X_OK) == 0 else { throw .commandNotFound(command: name) }
            return name
        }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !dir.isEmpty {
            let candidate = joinPath(String(dir), name)
            var info = stat()
            if access(candidate, X_OK) == 0, stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                return candidate
            }
        }
        throw .commandNotFound(command: name)
    }
}

/// Catches SIGINT/SIGTERM while installed and restores the previous dispositions on ``stop()``.
final class SignalWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var caughtSignal: Int32?
    private var sources: [DispatchSourceSignal] = []
    private var saved: [(Int32, sigaction)] = []

    init(signals: [Int32]) {
        for number in signals {
            var old = sigaction()
            sigaction(number, nil, &old)
            saved.append((number, old))
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.record(number) }
            source.resume()
            sources.append(source)
        }
    }

    private func record(_ number: Int32) {
        lock.lock()
        if caughtSignal == nil { caughtSignal = number }
        lock.unlock()
    }

    var caught: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return caughtSignal
    }

    func stop() {
        lock.lock()
        let sources = self.sources
        let saved = self.saved
        self.sources = []
        self.saved = []
        lock.unlock()
        for source in sources { source.cancel() }
        for (number, old) in saved {
            var previous = old
            sigaction(number, &previous, nil)
        }
    }
}
