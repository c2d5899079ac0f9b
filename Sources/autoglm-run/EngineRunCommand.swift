import AutoGLMEmulator
import AutoGLMEngine
import AutoGLMSignoff
import AutoGLMSpecs
import ArgumentParser
import Foundation

/// `autoglm-run engine-run` (internal): the process `emulate` starts inside the capped group. Loads a full
/// GLM-4.1V checkpoint, encodes the workload's image, prefills and decodes, marking each phase, and writes a
/// RunReport (kind engine, host-measured figures only) to `--report`.
struct EngineRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-run",
        abstract: "Internal: one load / vision-encode / prefill / decode run of a checkpoint, for `emulate`.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "GGUF checkpoint (GLM-4 decoder, optionally a GLM-4.1V vision tower).")
    var checkpoint: String

    @Option(name: .long, help: "Plan JSON (attention settings and pixel budget).")
    var plan: String

    @Option(name: .long, help: "Model manifest JSON.")
    var model: String = "Models/autoglm-phone-9b.json"

    @Option(name: .long, help: "Workload id.")
    var workload: String = "emulation-small"

    @Option(name: .long, help: "Workloads file.")
    var workloads: String = "Models/workloads.json"

    @Option(name: .long, help: "How weights reach memory: copy (anonymous memory) or mmap (page cache).")
    var loadMode: String = LoadMode.copy.rawValue

    @Option(name: .long, help: "Worker threads (default: the CPUs this process may run on).")
    var threads: Int?

    @Option(name: .long, help: "Decoder prefill activations: f32 or int8.")
    var activations: String = "f32"

    @Option(name: .long, help: "Seed for the synthetic image and prompt token ids.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Where to write the RunReport JSON.")
    var report: String

    func run() throws {
        do {
            try execute()
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("autoglm-run engine-run: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func execute() throws {
        let phases = PhaseReporter()
        guard let mode = LoadMode(rawValue: loadMode) else {
            throw ValidationError("--load-mode must be copy or mmap, got '\(loadMode)'")
        }
        let manifest = try ModelManifest.load(model)
        let thePlan = try Plan.load(plan)
        let work = try WorkloadCatalog.load(workloads).workload(named: workload, file: workloads)
        let visionConfig = try FullScale.visionConfig(manifest)
        try phases.mark("load")
        let source = try CheckpointSource(path: checkpoint, mode: mode)
        let loaded = try MultimodalModel.load(source: source, vision: visionConfig,
                                              activations: try activationPrecision(named: activations))
        let size = FullScale.imageSize(work, manifest: manifest, plan: thePlan)
        let pool = ComputePool(threadCount: threads ?? ComputePool.availableCores)
        let result = try loaded.run(
            imageHeight: size?.height, imageWidth: size?.width, promptTokens: work.promptTokens,
            outputTokens: max(1, work.outputTokens), attention: AttentionSettings(plan: thePlan.attention),
            visionKernel: thePlan.attention.visionKernel, seed: seed, pool: pool,
            phase: { try? phases.mark($0) })
        var r = RunReport()
        r.kind = .engine
        r.createdAt = UTCTimestamp.string()
        r.checkpoint.path = checkpoint
        r.checkpoint.bytes = FileInfo.size(checkpoint) ?? 0
        r.checkpoint.synthetic = source.isSynthetic
        r.host = reportHost(threads: pool.threadCount)
        r.workload.id = work.id
        r.workload.promptTokens = work.promptTokens
        r.workload.imageTokens = result.imageTokens
        r.workload.outputTokens = result.generated.count
        r.predicted = thePlan.predicted
        r.measured = FullScale.measured(result)
        r.measured.peakMemoryBytes = ProcessMemory.peakResidentBytes ?? 0
        r.measured.peakMemorySource = "rss"
        r.measured.prefillActivations = loaded.decoder.prefillActivations.rawValue
        if source.isSynthetic {
            var a = RunReport.Accuracy()
            a.measured = false
            a.reason = "not measured (synthetic weights)"
            r.accuracy = a
        }
        try FullScale.write(r, to: report)
    }
}

/// Helpers shared by `engine-run`, `emulate` and `synth`.
enum FullScale {
    static func visionConfig(_ manifest: ModelManifest) throws -> VisionConfig? {
        guard let v = manifest.visionEncoder else { return nil }
        guard let p = manifest.modules.compactMap({ if case let .projector(s) = $0.body { s } else { nil } }).first
        else { return nil }
        return try VisionConfig(vision: v, projector: p)
    }

    /// The workload's image after the model's resize rule and the plan's pixel budget.
    static func imageSize(_ w: Workload, manifest: ModelManifest, plan: Plan) -> (height: Int, width: Int)? {
        guard let image = w.image, let pre = manifest.vision else { return nil }
        return pre.resized(height: image.height, width: image.width, maxPixels: plan.attention.maxPixels)
    }

    static func measured(_ r: MultimodalRunResult) -> RunReport.Measured {
        var m = RunReport.Measured()
        m.loadSeconds = r.loadSeconds
        m.ttftSeconds = Statistic([r.ttftSeconds])
        let prefillTokens = r.imageTokens + r.promptTokens
        m.prefillTokensPerSecond = Statistic([r.prefillSeconds > 0 ? Double(prefillTokens) / r.prefillSeconds : 0])
        m.decodeTokensPerSecond = Statistic([r.decodeTokensPerSecond])
        m.weightBytes = r.weightBytesByModule.values.reduce(0, +)
        m.kvCacheBytes = r.kvCacheBytes
        m.residentBytesByModule = r.weightBytesByModule
        m.stages = [
            RunReport.StageMeasurement(stage: "load", seconds: Statistic([r.loadSeconds]), tokens: 0),
            RunReport.StageMeasurement(stage: "vision-encode", seconds: Statistic([r.visionSeconds]),
                                       tokens: r.imageTokens),
            RunReport.StageMeasurement(stage: "prefill", seconds: Statistic([r.prefillSeconds]),
                                       tokens: prefillTokens),
            RunReport.StageMeasurement(stage: "decode", seconds: Statistic([r.decodeSeconds]),
                                       tokens: max(r.generated.count - 1, 0)),
        ]
        m.repeats = 1
        m.warmups = 0
        return m
    }

    static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func sha256(file path: String) throws -> String {
        try FileIO.sha256(file: path).hex
    }
}
