import AutoGLMEmulator
import AutoGLMEngine
import AutoGLMSignoff
import AutoGLMSpecs
import ArgumentParser
import Foundation

/// `autoglm-run emulate` (also reached as `autoglm-run --emulate phone …`): runs a plan's checkpoint as a child
/// process inside a cgroup capped at the phone's app budget, with the phone's CPU mapped onto this host, and reports
/// predicted, host-measured and device-projected figures side by side.
struct EmulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulate",
        abstract: "Run a plan under a phone's memory cap and CPU share; report peak, phases and projections.",
        discussion: """
            Memory: the cap is the device profile's app budget (memory.app_budget_bytes) unless --memory-cap is \
            given; swap is capped at 0. Weights are copied into anonymous memory (--load-mode copy), so a model that \
            does not fit is OOM-killed as on a phone instead of thrashing the page cache.

            CPU mapping: the child gets a CFS quota of min(host cores, E) cores, where E = the device CPU's FP32 \
            peak / this host's FP32 peak per core (how many host cores the phone's CPU is worth; override with \
            --host-equivalent-cores), and is pinned to CPUs 0..min(device cores, host cores)-1. The host's per-core \
            peak comes from the measured host profile (DeviceProfiles/host.json, host-*.json) measured with this \
            run's kernels on this CPU (its measured_with), else clock (from /proc/cpuinfo) x 32 FLOP/cycle (AVX2, \
            two FMA pipes).

            The engine runs as a child (`autoglm-run engine-run`), marking the phases load, vision-encode, prefill \
            and decode; memory is sampled every 20 ms.

            Latency projection: per stage, host efficiency e = work / (host time x host peak), with work in FLOPs \
            (vision-encode, prefill) against peak FLOP/s or in bytes (decode) against memory bandwidth; device time \
            = work / (device peak x e). The host's peak and bandwidth come from that host profile, \
            where one matches, else the nominal FP32 peak above and a bandwidth probe run after the child.

            Exit status: 0 when the run completed; 3 when it was OOM-killed (the report still has its peak and \
            phase); 4 when the engine failed otherwise; 2 for bad input (including an infeasible plan without \
            --force); 1 when the cgroup cannot be set up.
            """
    )

    @Option(name: .long, help: "Emulation target; only 'phone'.")
    var emulate: String = "phone"

    @Option(name: .long, help: "Device profile JSON (the phone).")
    var device: String

    @Option(name: .long, help: "Plan JSON.")
    var plan: String

    @Option(name: .long, help: "Model manifest JSON.")
    var model: String = "Models/autoglm-phone-9b.json"

    @Option(name: .long, help: "Checkpoint GGUF (default: .cache/synthetic/<model>.<plan sha256 prefix>.gguf).")
    var checkpoint: String?

    @Option(name: .long, help: "Workload id from --workloads.")
    var workload: String = "emulation-small"

    @Option(name: .long, help: "Workloads file.")
    var workloads: String = "Models/workloads.json"

    @Option(name: .long, help: "Override the cap: 6.5GB, 7GiB, plain bytes.")
    var memoryCap: String?

    @Option(name: .long, help: "How many of this host's cores the phone's CPU is worth (overrides the estimate).")
    var hostEquivalentCores: Double?

    @Option(name: .long, help: "copy (default) or mmap.")
    var loadMode: String = LoadMode.copy.rawValue

    @Flag(name: .long, help: "Run without a cap when no cgroup can be created (reported as uncapped).")
    var allowUncapped = false

    @Flag(name: .long, help: "Run a plan marked infeasible.")
    var force = false

    @Option(name: .long, help: "Decoder prefill activations: f32 (exact), int8 (rounded to 8 bits per block of 32, the integer arithmetic the planner prices 4- and 8-bit formats at; AVX-512 hosts, f32 elsewhere) or plan (int8 where the plan priced the decoder at an integer rate). An int8 prefill is projected against 4x the host's FP32 peak.")
    var activations: String = "f32"

    @Option(name: [.short, .customLong("output")], help: "Write the RunReport JSON here.")
    var output: String?

    @Flag(name: .long, help: "Print the RunReport JSON instead of the table.")
    var json = false

    static let oomExit: Int32 = 3
    static let engineFailedExit: Int32 = 4
    static let badInput: Int32 = 2

    func run() throws {
        let prepared: Prepared
        do {
            prepared = try prepare()
        } catch let e as ExitCode {
            throw e
        } catch {
            fail("\(error)")
            throw ExitCode(Self.badInput)
        }
        let reportPath = NSTemporaryDirectory() + "autoglm-engine-\(getpid()).json"
        defer { unlink(reportPath) }
        let childThreads = max(1, min(Int(prepared.mapping.quotaCores.rounded(.up)),
                                      (try? CPUList.parse(prepared.mapping.cpus).count) ?? 1))
        let command = [Self.selfExecutable(), "engine-run", "--checkpoint", prepared.checkpoint, "--plan", plan,
                       "--model", model, "--workload", workload, "--workloads", workloads,
                       "--load-mode", loadMode, "--threads", "\(childThreads)", "--activations", prepared.activations.rawValue,
                       "--report", reportPath]
        let supervisor = Supervisor(options: SupervisorOptions(sampleInterval: 0.020, allowUncapped: allowUncapped,
                                                               signalHandling: .exitProcess))
        let result: EmulationResult
        do {
            result = try supervisor.run(command, limits: prepared.limits)
        } catch {
            fail("\(error)")
            throw ExitCode(1)
        }
        var report = (try? RunReport.load(reportPath)) ?? RunReport()
        let completed = result.exitStatus == 0 && !result.oomKilled && FileManager.default.fileExists(atPath: reportPath)
        report.kind = .emulation
        report.createdAt = UTCTimestamp.string()
        report.plan.path = plan
        report.plan.sha256 = prepared.planHash
        report.plan.modelId = prepared.plan.model.id
        report.plan.deviceId = prepared.plan.device.id
        report.plan.appBudgetBytes = prepared.plan.device.appBudgetBytes
        report.plan.constraints = prepared.plan.constraints
        report.predicted = prepared.plan.predicted
        if report.checkpoint.path.isEmpty {
            report.checkpoint.path = prepared.checkpoint
            report.checkpoint.bytes = FileInfo.size(prepared.checkpoint) ?? 0
            report.checkpoint.synthetic = (try? CheckpointSource(path: prepared.checkpoint, mode: .mmap))?.isSynthetic
                ?? false
        }
        if report.workload.id.isEmpty {
            report.workload.id = prepared.workload.id
            report.workload.promptTokens = prepared.workload.promptTokens
            report.workload.outputTokens = prepared.workload.outputTokens
            report.workload.imageTokens = prepared.workload.imageTokens(prepared.manifest.vision,
                                                                        maxPixels: prepared.plan.attention.maxPixels)
        }
        if report.host.cores == 0 { report.host = reportHost(threads: childThreads) }
        if report.build.commit == "unknown" { report.build = currentBuild() }
        report.measured.peakMemoryBytes = Int(result.peakBytes)
        report.measured.peakMemorySource = result.capped ? "cgroup" : "rss"
        report.emulation = Self.emulation(result)
        if report.checkpoint.synthetic && report.accuracy == nil {
            var a = RunReport.Accuracy()
            a.reason = "not measured (synthetic weights)"
            report.accuracy = a
        }
        var roofline: (host: Roofline, device: Roofline)?
        if completed {
            if let why = Self.hostProfileMismatch {
                FileHandle.standardError.write(Data(("autoglm-run emulate: warning: no measured host profile "
                    + "describes this run (\(why)): the projection uses this host's nominal peak and a bandwidth "
                    + "probe instead (make profile-host measures this machine)\n").utf8))
            }
            let host = hostRoofline(cores: childThreads)
            let device = deviceRoofline(prepared)
            roofline = (host, device)
            report.projected = projection(report, prepared: prepared, host: host, device: device)
        }
        if let output { try FullScale.write(report, to: output) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(EmulationTable.render(report, result: result, roofline: roofline, mapping: prepared.mapping,
                                        planWorkload: prepared.plan.workload.id))
        }
        if result.oomKilled { throw ExitCode(Self.oomExit) }
        if !completed { throw ExitCode(Self.engineFailedExit) }
    }

    struct Prepared {
        var profile: DeviceProfile
        var plan: Plan
        var planHash: String
        var manifest: ModelManifest
        var workload: Workload
        var checkpoint: String
        var limits: EmulationLimits
        var mapping: CPUMapping
        /// The decoder's prefill activations (`--activations`, `plan` resolved).
        var activations: ActivationPrecision
    }

    func prepare() throws -> Prepared {
        guard emulate == "phone" else {
            throw ValidationError("--emulate must be 'phone', got '\(emulate)'")
        }
        guard LoadMode(rawValue: loadMode) != nil else {
            throw ValidationError("--load-mode must be copy or mmap, got '\(loadMode)'")
        }
        let profile = try DeviceProfile.load(device)
        let thePlan = try Plan.load(plan)
        let precision = try activationPrecision(named: activations, plan: thePlan)
        let manifest = try ModelManifest.load(model)
        let work = try WorkloadCatalog.load(workloads).workload(named: workload, file: workloads)
        if !thePlan.feasible && !force {
            throw ValidationError("plan \(plan) is marked infeasible (\(thePlan.shortfall ?? "no shortfall given")); "
                                  + "pass --force to run it anyway")
        }
        if thePlan.model.id != manifest.id {
            throw ValidationError("plan is for model '\(thePlan.model.id)' but --model is '\(manifest.id)'")
        }
        let hash = try FullScale.sha256(file: plan)
        let path = checkpoint ?? ".cache/synthetic/\(manifest.id).\(hash.prefix(12)).gguf"
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("checkpoint \(path) does not exist; write it with: autoglm-run synth --model \(model) "
                                  + "--plan \(plan) -o \(path)")
        }
        let cap: UInt64 = try memoryCap.map { text throws(EmulatorError) in try ByteSize.parse(text) }
            ?? UInt64(profile.memory.appBudgetBytes.value)
        guard let cpu = profile.computeUnits.first(where: { $0.kind == .cpu }) else {
            throw ValidationError("device profile \(profile.id) has no CPU compute unit to map")
        }
        let hostCores = ProcessInfo.processInfo.activeProcessorCount
        let equivalent = try hostEquivalentCores ?? estimateEquivalentCores(cpu: cpu)
        let mapping = try CPUMapping(deviceCores: max(1, cpu.cores), hostEquivalentCores: equivalent,
                                     hostCores: hostCores)
        let limits = try mapping.limits(memoryMaxBytes: cap)
        return Prepared(profile: profile, plan: thePlan, planHash: hash, manifest: manifest, workload: work,
                        checkpoint: path, limits: limits, mapping: mapping, activations: precision)
    }

    /// Device CPU FP32 peak / this host's FP32 peak per core.
    func estimateEquivalentCores(cpu: DeviceProfile.ComputeUnit) throws -> Double {
        guard let devicePeak = cpu.peakOps(for: .f32) else {
            throw ValidationError("the device CPU has no FP32 peak; pass --host-equivalent-cores")
        }
        let measured = Self.hostProfileRoofline()
        let host = measured ?? Self.nominalHost(cores: 1, bandwidth: 0)
        let cores = measured != nil ? max(ProcessInfo.processInfo.activeProcessorCount, 1) : 1
        let perCore = host.peakFLOPs / Double(cores)
        guard perCore > 0 else { throw ValidationError("cannot estimate this host's FP32 peak; pass --host-equivalent-cores") }
        return devicePeak / perCore
    }

    /// The measured host profile for this run: the first `DeviceProfiles/host*.json` measured with this run's
    /// kernels on this CPU (`HostProfiles`), read once per process.
    static let hostSelection = HostProfiles.select(directory: "DeviceProfiles", kernels: KernelISA.active.rawValue,
                                                   cpu: (try? HostInfo.current())?.cpuModel)

    /// Why no measured host profile describes this run (each measured with other kernels or on another CPU, or
    /// not loading); nil when one does or there is none.
    static var hostProfileMismatch: String? { hostSelection.mismatch }

    /// Peak and bandwidth from the matching host profile (all host cores): another machine's figures would project
    /// another machine.
    static func hostProfileRoofline() -> Roofline? {
        guard let p = hostSelection.profile, let path = hostSelection.path,
              let cpu = p.computeUnits.first(where: { $0.kind == .cpu }), let peak = cpu.peakOps(for: .f32) else {
            return nil
        }
        return Roofline(peakFLOPs: peak, bandwidth: p.memory.bandwidthBytesPerSecond.value,
                        source: "\(path) (\(p.id))")
    }

    /// Nominal FP32 peak: cores × clock × 32 FLOP/cycle (two 8-lane FMA pipes).
    static func nominalHost(cores: Int, bandwidth: Double) -> Roofline {
        let mhz = ((try? HostInfo.current())?.clockGHz ?? 0) * 1000
        return Roofline(peakFLOPs: Double(cores) * mhz * 1e6 * 32, bandwidth: bandwidth,
                        source: String(format: "nominal %d core(s) x %.0f MHz x 32 FLOP/cycle; ", cores, mhz)
                            + "bandwidth probed (median of 3 streaming reads of 512 MiB)")
    }

    func hostRoofline(cores: Int) -> Roofline {
        if let r = Self.hostProfileRoofline() { return r }
        let pool = ComputePool(threadCount: cores)
        let bandwidth = (try? MemoryBandwidthProbe.measure(bytes: 512 << 20, passes: 3, pool: pool))?.medianBytesPerSecond ?? 0
        var r = Self.nominalHost(cores: cores, bandwidth: bandwidth)
        if let why = Self.hostProfileMismatch { r.source += " (no measured host profile used: \(why))" }
        return r
    }

    func deviceRoofline(_ p: Prepared) -> Roofline {
        let decoderEntry = p.plan.modules.first { $0.kind == .textDecoder }
        let unitID = decoderEntry?.unit ?? "cpu"
        let unit = p.profile.computeUnits.first { $0.id == unitID } ?? p.profile.computeUnits[0]
        let format = decoderEntry?.format ?? .f16
        let peak = unit.peakOps(for: format) ?? unit.peakOps(for: .f32) ?? 0
        return Roofline(peakFLOPs: peak, bandwidth: p.profile.memory.bandwidthBytesPerSecond.value,
                        source: "\(p.profile.id) \(unit.id) peak for \(format.rawValue), memory bandwidth")
    }

    func projection(_ r: RunReport, prepared p: Prepared, host: Roofline, device: Roofline) -> RunReport.Projection {
        var seconds: [String: Double] = [:]
        var tokens: [String: Int] = [:]
        for s in r.measured.stages { seconds[s.stage] = s.seconds.median; tokens[s.stage] = s.tokens }
        let vc = try? FullScale.visionConfig(p.manifest)
        let patches = r.workload.imageTokens * ((vc?.merge ?? 1) * (vc?.merge ?? 1))
        let kvPerToken = p.manifest.textDecoder.map {
            $0.kvBytesPerToken(bytesPerElement: p.plan.attention.kvCacheFormat.bytesPerElement)
        } ?? 0
        let work = LatencyProjection.stageWork(
            manifest: p.manifest, weightBytesByModule: r.measured.residentBytesByModule, patches: patches,
            imageTokens: r.workload.imageTokens, promptTokens: r.workload.promptTokens,
            decodedTokens: tokens["decode"] ?? 0, kvBytesPerToken: kvPerToken, seconds: seconds)
        var out = RunReport.Projection()
        // A prefill that multiplied 8-bit activations ran integer dot products: its efficiency is taken against the
        // host's integer peak, 4x the FP32 figure (VNNI: 64 int8 multiply-adds per instruction against 16 FP32 ones).
        let int8Prefill = r.measured.prefillActivations == ActivationPrecision.int8.rawValue
        let prefillHost = int8Prefill ? Roofline(peakFLOPs: 4 * host.peakFLOPs, bandwidth: host.bandwidth,
                                                 source: host.source) : host
        out.method = "calibrated roofline: per stage, host efficiency e = work / (host seconds x host peak) with "
            + "work in FLOPs (vision-encode, prefill; peak FP32 FLOP/s) or bytes (decode; memory bandwidth); device "
            + "seconds = work / (device peak x e). Host: \(host.source), "
            + String(format: "%.1f GFLOP/s, %.1f GB/s", host.peakFLOPs / 1e9, host.bandwidth / 1e9)
            + (int8Prefill ? String(format: "; prefill ran 8-bit activations: its host peak is 4x the FP32 figure "
                                    + "(VNNI int8 dot products), %.1f GOP/s", prefillHost.peakFLOPs / 1e9) : "")
            + ". Device: \(device.source), "
            + String(format: "%.1f GFLOP/s, %.1f GB/s", device.peakFLOPs / 1e9, device.bandwidth / 1e9) + "."
        out.deviceId = p.profile.id
        var ttft = 0.0
        for s in work {
            let t = LatencyProjection.deviceSeconds(s, host: s.stage == "prefill" ? prefillHost : host, device: device)
            out.stages.append(Plan.StagePrediction(stage: s.stage, seconds: t, activationBytes: 0,
                                                   unit: device.source.components(separatedBy: " ").dropFirst().first ?? "",
                                                   bound: s.bound.rawValue))
            if s.stage != "decode" { ttft += t }
            if s.stage == "decode", t > 0 { out.decodeTokensPerSecond = Double(tokens["decode"] ?? 0) / t }
        }
        out.ttftSeconds = ttft
        return out
    }

    static func emulation(_ r: EmulationResult) -> RunReport.Emulation {
        var e = RunReport.Emulation()
        e.capped = r.capped
        e.cgroupVersion = r.cgroupVersion?.rawValue ?? "none"
        e.memoryCapBytes = Int(r.requestedLimits.memoryMaxBytes)
        e.cpuQuotaCores = r.requestedLimits.cpuQuotaCores
        e.cpus = r.appliedLimits?.cpus ?? r.requestedLimits.cpus
        e.oomKilled = r.oomKilled
        e.phaseAtExit = r.oomPhase ?? r.phaseAtExit
        e.exitStatus = r.exitStatus
        e.signal = r.signal
        e.peakBytes = Int(r.peakBytes)
        e.peakSource = r.peakSource.rawValue
        e.anonBytesAtPeak = r.anonAtPeakBytes.map(Int.init)
        e.fileBytesAtPeak = r.fileAtPeakBytes.map(Int.init)
        e.timeline = r.timeline.map { sample in
            RunReport.TimelinePoint(seconds: sample.t, bytes: Int(sample.bytes),
                                    phase: r.phases.last { $0.t <= sample.t }?.phase)
        }
        e.wallSeconds = r.wallSeconds
        return e
    }

    static func selfExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func fail(_ message: String) {
        FileHandle.standardError.write(Data("autoglm-run emulate: error: \(message)\n".utf8))
    }
}

/// The people-facing table: predicted (the plan), measured on this host, projected to the device.
enum EmulationTable {
    static func gb(_ b: Int) -> String { String(format: "%.3f GB", Double(b) / 1e9) }

    static func render(_ r: RunReport, result: EmulationResult, roofline: (host: Roofline, device: Roofline)?,
                       mapping: CPUMapping, planWorkload: String) -> String {
        var lines: [String] = []
        let e = r.emulation
        lines.append("emulation: \(r.plan.deviceId), plan \(r.plan.path) (sha256 \(r.plan.sha256.prefix(12)))")
        lines.append("checkpoint: \(r.checkpoint.path)" + (r.checkpoint.synthetic ? " [synthetic weights]" : ""))
        lines.append("workload: \(r.workload.id): \(r.workload.imageTokens) image + \(r.workload.promptTokens) prompt "
                     + "tokens, \(r.workload.outputTokens) output" + (planWorkload == r.workload.id ? ""
                        : " (the plan predicted workload '\(planWorkload)': its figures are not for this run)"))
        if r.measured.prefillActivations == ActivationPrecision.int8.rawValue {
            lines.append("prefill activations: int8 (rounded to 8 bits per block of 32; decode and vision encoder f32)")
        }
        lines.append("limits: cap \(gb(e?.memoryCapBytes ?? 0)) [\(e?.capped == true ? "cgroup \(e?.cgroupVersion ?? "")" : "UNCAPPED")], "
                     + String(format: "CPU quota %.2f cores on CPUs %@", mapping.quotaCores, mapping.cpus))
        let status: String
        if e?.oomKilled == true {
            status = "OOM-KILLED in phase '\(e?.phaseAtExit ?? "?")'"
        } else if result.exitStatus == 0 {
            status = "completed"
        } else {
            status = "FAILED (exit \(result.exitStatus.map(String.init) ?? "signal \(result.signal ?? 0)"), phase '\(e?.phaseAtExit ?? "?")')"
        }
        lines.append("result: \(status), wall \(String(format: "%.1f s", e?.wallSeconds ?? 0))")
        lines.append("")
        func row(_ a: String, _ b: String, _ c: String, _ d: String) {
            lines.append(a.padding(toLength: 26, withPad: " ", startingAt: 0)
                         + b.padding(toLength: 18, withPad: " ", startingAt: 0)
                         + c.padding(toLength: 22, withPad: " ", startingAt: 0) + d)
        }
        row("", "predicted (plan)", "measured (this host)", "projected (device)")
        let peakNote = r.measured.peakMemorySource == "cgroup" ? "" : " [\(r.measured.peakMemorySource)]"
        var peakDelta = ""
        if r.predicted.peakMemoryBytes > 0 {
            peakDelta = String(format: " (%+.1f%%)", 100 * (Double(r.measured.peakMemoryBytes)
                                                            / Double(r.predicted.peakMemoryBytes) - 1))
        }
        row("peak memory", gb(r.predicted.peakMemoryBytes), gb(r.measured.peakMemoryBytes) + peakNote + peakDelta, "-")
        row("weights", gb(r.predicted.weightBytes), r.measured.weightBytes > 0 ? gb(r.measured.weightBytes) : "-", "-")
        row("KV cache", gb(r.predicted.kvCacheBytes), r.measured.kvCacheBytes > 0 ? gb(r.measured.kvCacheBytes) : "-", "-")
        let ttft = r.measured.ttftSeconds.map { String(format: "%.2f s", $0.median) } ?? "-"
        row("TTFT", String(format: "%.2f s", r.predicted.ttftSeconds), ttft,
            r.projected.map { String(format: "%.2f s", $0.ttftSeconds) } ?? "-")
        let dec = r.measured.decodeTokensPerSecond.map { String(format: "%.3f tok/s", $0.median) } ?? "-"
        row("decode", String(format: "%.2f tok/s", r.predicted.decodeTokensPerSecond), dec,
            r.projected.map { String(format: "%.2f tok/s", $0.decodeTokensPerSecond) } ?? "-")
        for s in r.measured.stages {
            let predicted = r.predicted.stages.first { $0.stage == s.stage }.map { String(format: "%.2f s", $0.seconds) } ?? "-"
            let projected = r.projected?.stages.first { $0.stage == s.stage }.map { String(format: "%.2f s", $0.seconds) } ?? "-"
            row("  \(s.stage) (\(s.tokens) tok)", predicted, String(format: "%.2f s", s.seconds.median), projected)
        }
        if let roofline, let decode = r.measured.stages.first(where: { $0.stage == "decode" }), decode.tokens > 0 {
            let perToken = Double((r.measured.residentBytesByModule["decoder"] ?? 0) + (r.measured.residentBytesByModule["head"] ?? 0))
            let bound = roofline.host.bandwidth > 0 ? roofline.host.bandwidth / perToken : 0
            lines.append("")
            lines.append(String(format: "decode roofline on this host: %.2f GB of weights per token / %.1f GB/s = %.2f tok/s bound; measured %.3f tok/s (%.0f%% of the bound)",
                                perToken / 1e9, roofline.host.bandwidth / 1e9, bound,
                                r.measured.decodeTokensPerSecond?.median ?? 0,
                                bound > 0 ? 100 * (r.measured.decodeTokensPerSecond?.median ?? 0) / bound : 0))
        }
        if let p = r.projected { lines.append("projection method: \(p.method)") }
        if let a = r.accuracy, !a.measured { lines.append("accuracy: \(a.reason ?? "not measured")") }
        if let e, !e.timeline.isEmpty {
            var byPhase: [(String, Int)] = []
            for point in e.timeline {
                let phase = point.phase ?? "start"
                if let i = byPhase.firstIndex(where: { $0.0 == phase }) { byPhase[i].1 = max(byPhase[i].1, point.bytes) }
                else { byPhase.append((phase, point.bytes)) }
            }
            lines.append("sampled peak by phase: " + byPhase.map { "\($0.0) \(gb($0.1))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }
}
