import AutoGLMEmulator
import ArgumentParser
import Foundation

/// `autoglm-run exec`: run any command under a phone-like memory cap and CPU quota and report what the kernel saw.
///
/// Exit status: the child's own exit code when it ended normally; 3 when the OOM killer ended it; 128 + signal when
/// another signal did; 2 for invalid option values or a command that cannot be started; 1 when the cgroup cannot be set
/// up. Argument-syntax errors (unknown options) use ArgumentParser's usage status, 64. SIGINT/SIGTERM to this process
/// kill the child, remove the group and exit with 128 + signal.
struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command under a cgroup memory cap and CPU quota, like a phone's per-app budget.",
        discussion: """
            Exit status: the command's own; 3 if it was OOM-killed; 128+N if signal N ended it; 2 for bad input; \
            1 if the cgroup could not be set up.
            """
    )

    @Option(name: .long, help: "Hard memory cap: 64MiB, 7GB, 7.5GiB or plain bytes.")
    var memoryCap: String?

    @Option(name: .long, help: "Soft memory cap (cgroup v2 memory.high; not available on v1).")
    var memoryHigh: String?

    @Option(name: .long, help: "CPU quota in cores, e.g. 1.5.")
    var cpuQuota: String?

    @Option(name: .long, help: "CPUs to run on, kernel list syntax: 0, 0-1, 0,2-3.")
    var cpus: String?

    @Option(name: .long, help: "Memory sampling interval in milliseconds (1...10000).")
    var sampleIntervalMs: String = "20"

    @Option(name: .long, help: "cgroup filesystem root.")
    var cgroupRoot: String = "/sys/fs/cgroup"

    @Option(name: .long, help: "Group to create the run's group under (hierarchy path); default: this process's own.")
    var cgroupParent: String?

    @Flag(name: .long, help: "Run without a cap when no cgroup can be created (the report says 'uncapped').")
    var allowUncapped = false

    @Flag(name: .long, help: "Print the full result as JSON (snake_case keys) instead of a summary.")
    var json = false

    @Argument(parsing: .postTerminator, help: "The command to run, after --.")
    var command: [String] = []

    static let badInput: Int32 = 2
    static let setupFailed: Int32 = 1

    func run() throws {
        let limits: EmulationLimits
        let interval: Double
        do {
            (limits, interval) = try parseInputs()
        } catch {
            Self.fail(error.description)
            throw ExitCode(Self.badInput)
        }
        let supervisor = Supervisor(
            options: SupervisorOptions(
                sampleInterval: interval, allowUncapped: allowUncapped, signalHandling: .exitProcess),
            detector: CgroupDetector(root: cgroupRoot, parent: cgroupParent))
        let result: EmulationResult
        do {
            result = try supervisor.run(command, limits: limits)
        } catch {
            Self.fail(error.description)
            switch error {
            case .emptyCommand, .commandNotFound, .invalidLimit, .invalidSize, .invalidCPUList:
                throw ExitCode(Self.badInput)
            default:
                throw ExitCode(Self.setupFailed)
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(result)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(Self.summary(result))
        }
        let code = result.wrapperExitCode
        if code != 0 { throw ExitCode(code) }
    }

    func parseInputs() throws(EmulatorError) -> (EmulationLimits, Double) {
        guard let memoryCap else {
            throw .invalidLimit(field: "--memory-cap", value: "missing", reason: "give the cap, e.g. --memory-cap 64MiB")
        }
        guard !command.isEmpty else { throw .emptyCommand }
        let cap = try ByteSize.parse(memoryCap)
        let high = try memoryHigh.map { text throws(EmulatorError) in try ByteSize.parse(text) }
        var cores: Double?
        if let cpuQuota {
            guard let value = Double(cpuQuota) else {
                throw .invalidLimit(field: "--cpu-quota", value: cpuQuota, reason: "not a number of cores")
            }
            cores = value
        }
        guard let ms = Double(sampleIntervalMs), ms >= 1, ms <= 10_000 else {
            throw .invalidLimit(field: "--sample-interval-ms", value: sampleIntervalMs, reason: "must be 1...10000")
        }
        let limits = try EmulationLimits(memoryMaxBytes: cap, memoryHighBytes: high, cpuQuotaCores: cores, cpus: cpus)
        return (limits, ms / 1000)
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data("autoglm-run exec: error: \(message)\n".utf8))
    }

    static func summary(_ r: EmulationResult) -> String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append(label.padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        row("command", r.command.joined(separator: " "))
        if r.capped {
            row("cgroup", "\(r.cgroupVersion?.rawValue ?? "?") \(r.groupPath ?? "?") (removed)")
        } else {
            row("cgroup", "none: UNCAPPED run" + (r.uncappedReason.map { " (\($0))" } ?? ""))
        }
        let applied = r.appliedLimits
        var cap = "\(ByteSize.format(r.requestedLimits.memoryMaxBytes))"
        if let applied {
            cap += " (kernel: \(applied.memoryMaxBytes) bytes), swap "
                + (applied.swapMaxBytes.map { ByteSize.format($0) } ?? "not capped")
            if let high = applied.memoryHighBytes { cap += ", soft cap \(ByteSize.format(high))" }
        } else {
            cap += " requested, not applied"
        }
        row("memory cap", cap)
        if let cores = r.requestedLimits.cpuQuotaCores {
            var text = String(format: "%.2f cores", cores)
            if let quota = applied?.cpuQuotaMicros, let period = applied?.cpuPeriodMicros { text += " (\(quota)/\(period) us)" }
            row("cpu quota", text)
        }
        if let cpus = applied?.cpus ?? r.requestedLimits.cpus { row("cpus", cpus) }
        var peak = "\(ByteSize.format(r.peakBytes)) [\(r.peakSource.rawValue)]"
        if let anon = r.anonAtPeakBytes, let file = r.fileAtPeakBytes {
            peak += "; at highest sample: anon \(ByteSize.format(anon)), file \(ByteSize.format(file))"
        }
        row("peak", peak)
        row("samples", "\(r.timeline.count) every \(Int((r.sampleIntervalSeconds * 1000).rounded())) ms")
        if r.oomKilled {
            row("oom killed", "YES" + (r.oomPhase.map { " during phase '\($0)'" } ?? " (no phase marked)"))
        } else {
            row("oom killed", r.oomKillCount > 0 ? "no (but \(r.oomKillCount) OOM kill(s) in the group)" : "no")
        }
        if let phase = r.phaseAtExit { row("last phase", phase) }
        if let status = r.exitStatus {
            row("exit", "status \(status)")
        } else if let signal = r.signal {
            row("exit", "killed by signal \(signal)" + (signal == SIGKILL ? " (SIGKILL)" : ""))
        }
        row("wall", String(format: "%.3f s (of which %.3f s moving the child into the group)", r.wallSeconds, r.joinSeconds))
        return lines.joined(separator: "\n")
    }
}
