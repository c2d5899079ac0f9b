import ArgumentParser
import AutoGLMEngine
import AutoGLMEvaluation
import AutoGLMSpecs
import AutoGLMSignoff
import Foundation

/// `autoglm-run [run]`: loads a checkpoint under a plan, generates, evaluates accuracy against an F32 reference
/// and reports every measurement next to the plan's prediction.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Load a checkpoint under a plan, generate, evaluate, and report measured against predicted figures.")

    @Option(help: "Plan file (JSON). Without one the checkpoint runs in its own formats.")
    var plan: String?

    @Option(help: "GGUF checkpoint.")
    var checkpoint: String

    @Option(help: "Raw prompt text (encoded as is).")
    var prompt: String?

    @Option(help: "User message, wrapped in the checkpoint's chat template.")
    var chat: String?

    @Option(help: "System message for --chat (default: none).")
    var system: String?

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate (default: 64).")
    var maxTokens: Int?

    @Flag(name: .customLong("plan-workload"), help: ArgumentHelp(
        "Run the plan's workload: a prompt of its prompt tokens (the start of the evaluation text) and exactly its "
            + "output tokens, so its TTFT, decode, KV-cache and peak predictions apply to what is measured.",
        discussion: "Without it, those predictions are shown only when the run's prompt and output lengths are the "
            + "plan's."))
    var planWorkload = false

    @Option(name: .customLong("eval-text"), help: "Evaluation text file (default: GPL-3 + Apache-2.0 licence texts).")
    var evalText: String?

    @Option(name: .customLong("eval-tokens"), help: "Text tokens used for the accuracy evaluation (0 skips it).")
    var evalTokens: Int = 2048

    @Option(name: .customLong("eval-context"), help: "Evaluation window in tokens; the second half is scored.")
    var evalContext: Int = 512

    @Option(help: "Timed generations.")
    var repeats: Int = 3

    @Option(help: "Untimed generations before the timed ones.")
    var warmup: Int = 1

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Prefill activations: f32 (exact), int8 (rounded to 8 bits per block of 32 in every prefill batch, as llama.cpp's quantised kernels; quantised formats on AVX-512 only, f32 elsewhere) or plan (int8 where the plan priced the decoder at an integer rate). The accuracy block measures its cost against the F32 reference.")
    var activations: String = "f32"

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0

    @Option(name: .customLong("top-p"), help: "Nucleus sampling probability mass.")
    var topP: Float = 1

    @Option(help: "Sampling seed.")
    var seed: UInt64 = 0

    @Flag(help: "Print the run report as JSON.")
    var json = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write the run report (JSON) to this file.")
    var output: String?

    func validate() throws {
        if prompt != nil && chat != nil { throw ValidationError("give --prompt or --chat, not both") }
        if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1, got \(maxTokens)") }
        if planWorkload {
            if plan == nil { throw ValidationError("--plan-workload needs --plan") }
            if prompt != nil || chat != nil || maxTokens != nil {
                throw ValidationError("--plan-workload takes its prompt and output lengths from the plan: drop "
                                      + "--prompt, --chat and --max-tokens")
            }
        }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0, got \(warmup)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if evalTokens < 0 { throw ValidationError("--eval-tokens must be ≥ 0, got \(evalTokens)") }
        if evalContext < 4 { throw ValidationError("--eval-context must be at least 4, got \(evalContext)") }
        if activations == "plan" {
            if plan == nil { throw ValidationError("--activations plan needs --plan") }
        } else {
            _ = try activationPrecision(named: activations)
        }
    }

    func run() throws {
        do {
            let (report, memoryNote) = try RunSession(options: self).execute()
            if let output {
                try RunReportPrinter.json(report).write(toFile: output, atomically: true, encoding: .utf8)
            }
            print(json ? try RunReportPrinter.json(report) : RunReportPrinter.table(report, memoryNote: memoryNote))
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// One execution of the run command.
struct RunSession {
    let options: RunCommand

    /// Why the measured profile a plan was made for (`DeviceProfiles/<id>.json` with `measured_with`: a host
    /// profile) does not describe this run; nil for a published device profile, a matching one or a missing file.
    static func measuredProfileMismatch(deviceID: String, directory: String = "DeviceProfiles") -> String? {
        let path = (directory as NSString).appendingPathComponent("\(deviceID).json")
        guard FileManager.default.fileExists(atPath: path), let profile = try? DeviceProfile.load(path) else {
            return nil
        }
        return profile.mismatch(kernels: KernelISA.active.rawValue, cpu: (try? HostInfo.current())?.cpuModel)
    }

    func execute() throws -> (RunReport, String) {
        let o = options
        let beforeLoad = ProcessMemory.residentBytes
        var report = RunReport()
        report.createdAt = UTCTimestamp.string()
        report.build = currentBuild()
        let plan = try o.plan.map { try Plan.load($0) }
        let pool = ComputePool(threadCount: o.threads)
        report.host = reportHost(threads: pool.threadCount)

        // Load: the plan's formats, or the checkpoint's own.
        let policy: WeightFormatPolicy = plan.map { .plan($0) } ?? .checkpoint
        let precision = try activationPrecision(named: o.activations, plan: plan)
        let loaded = try LoadedCheckpoint(path: o.checkpoint, policy: policy, activations: precision)
        for (planned, executed) in loaded.model.formatSubstitutions.sorted(by: { $0.key < $1.key }) {
            FileHandle.standardError.write(Data("note: plan format \(planned) is not executed by the engine; running \(executed.rawValue) in its place\n".utf8))
        }
        let attention = plan.map { AttentionSettings(plan: $0.attention) } ?? AttentionSettings(kvCacheFormat: .f16)
        report.checkpoint.path = o.checkpoint
        report.checkpoint.bytes = FileInfo.size(o.checkpoint) ?? 0
        report.checkpoint.sha256 = try FileIO.sha256(file: o.checkpoint).hex
        if let plan, let path = o.plan {
            report.plan.path = path
            report.plan.sha256 = try FileIO.sha256(file: path).hex
            report.plan.modelId = plan.model.id
            report.plan.deviceId = plan.device.id
            report.plan.appBudgetBytes = plan.device.appBudgetBytes
            report.plan.constraints = plan.constraints
            report.predicted = plan.predicted
            if let why = Self.measuredProfileMismatch(deviceID: plan.device.id) {
                FileHandle.standardError.write(Data(("warning: \(why): the plan's latency predictions describe that "
                    + "machine, not this one (make profile-host and make plans measure and plan for this one)\n")
                    .utf8))
            }
        }

        // Prompt: the plan's workload (its prompt length from the evaluation text, all its output tokens), or the
        // one given.
        let tokens: [Int32]
        let outputs: Int
        if o.planWorkload, let plan, let path = o.plan {
            guard plan.workload.image == nil else {
                throw ValidationError("\(path): workload '\(plan.workload.id)' has an image; `run` executes text "
                                      + "decoders only (the full model runs under --emulate)")
            }
            tokens = try workloadPrompt(loaded, tokens: plan.workload.promptTokens)
            outputs = max(1, plan.workload.outputTokens)
        } else {
            tokens = try promptTokens(loaded)
            outputs = o.maxTokens ?? 64
        }
        report.workload.id = o.planWorkload ? plan?.workload.id ?? "" : (o.chat != nil ? "chat" : "prompt")
        report.workload.promptTokens = tokens.count
        report.workload.outputTokens = outputs
        var workloadNote: String?
        let p = plan?.predicted
        let workloadPredictions = p.map { $0.ttftSeconds > 0 || $0.decodeTokensPerSecond > 0 || $0.kvCacheBytes > 0
                                          || $0.peakMemoryBytes > 0 } ?? false
        if let plan, !o.planWorkload, workloadPredictions,
           tokens.count != plan.workload.promptTokens || outputs != plan.workload.outputTokens {
            // Latency, KV-cache and peak predictions hold for the plan's workload only: not set beside this run's.
            let kept = report.predicted
            report.predicted = Plan.Prediction()
            report.predicted.weightBytes = kept.weightBytes
            report.predicted.accuracyLoss = kept.accuracyLoss
            workloadNote = "the plan's TTFT, decode, KV-cache and peak predictions are for its workload "
                + "'\(plan.workload.id)' (\(plan.workload.promptTokens) prompt + \(plan.workload.outputTokens) output "
                + "tokens), not this run's \(tokens.count) + \(outputs): not compared (--plan-workload runs that "
                + "workload)"
        }

        // Generate: warm-ups, then timed repeats. The plan's workload generates all its output tokens.
        let session = try InferenceSession(model: loaded.model, capacity: tokens.count + outputs,
                                           batch: min(512, max(tokens.count, 1)), attention: attention, pool: pool)
        let sampling = SamplingSettings(temperature: o.temperature, topP: o.topP, seed: o.seed)
        let stops: Set<Int32> = o.planWorkload ? [] : loaded.stopTokens
        var results: [GenerationResult] = []
        for i in 0..<(o.warmup + o.repeats) {
            let r = try session.generate(prompt: tokens, maxTokens: outputs, stopTokens: stops, sampling: sampling)
            if i >= o.warmup { results.append(r) }
        }
        let peak = ProcessMemory.peakResidentBytes ?? 0
        let last = results[results.count - 1]
        report.generatedText = try loaded.tokenizer.decode(last.tokens.filter { !loaded.stopTokens.contains($0) })

        var m = RunReport.Measured()
        m.loadSeconds = loaded.loadSeconds
        m.ttftSeconds = Statistic(results.map(\.ttftSeconds))
        m.prefillTokensPerSecond = Statistic(results.map(\.prefillTokensPerSecond))
        let decodes = results.filter { $0.tokens.count > 1 }.map(\.decodeTokensPerSecond)
        m.decodeTokensPerSecond = decodes.isEmpty ? nil : Statistic(decodes)
        m.peakMemoryBytes = peak
        m.peakMemorySource = "rss"
        m.weightBytes = loaded.model.weightBytes
        m.kvCacheBytes = session.cache.residentBytes
        m.residentBytesByModule = loaded.model.residentBytesByModule
        m.stages = [
            .init(stage: "prefill", seconds: Statistic(results.map(\.prefillSeconds)), tokens: tokens.count),
            .init(stage: "decode", seconds: Statistic(results.map(\.decodeSeconds)),
                  tokens: max(last.tokens.count - 1, 0)),
        ]
        m.repeats = o.repeats
        m.warmups = o.warmup
        m.prefillActivations = loaded.model.prefillActivations.rawValue
        m.residentBeforeLoadBytes = beforeLoad
        report.measured = m
        let expected = MemoryExpectation(tensorBytes: loaded.tensorBytes, weightBytes: loaded.model.weightBytes,
                                         kvBytes: session.cache.residentBytes, scratchBytes: session.scratchBytes,
                                         beforeLoadBytes: beforeLoad)

        // Accuracy against the same checkpoint dequantised to F32 (after the memory peak was read).
        report.accuracy = try evaluate(loaded, attention: attention, pool: pool)
        return (report, ([workloadNote].compactMap { $0 } + [expected.note(peak: peak)]).joined(separator: "\n"))
    }

    /// The first `count` tokens of the evaluation text (BOS first where the tokenizer adds one), the text repeated
    /// where it is shorter: a latency workload needs the length, not new words.
    func workloadPrompt(_ loaded: LoadedCheckpoint, tokens count: Int) throws -> [Int32] {
        let files = options.evalText.map { [$0] } ?? EvaluationText.defaultFiles
        let text = try EvaluationText.load(files)
        let bos: [Int32] = loaded.tokenizer.addsBOS ? [loaded.tokenizer.bosTokenID].compactMap { $0 } : []
        let ids = loaded.tokenizer.encode(text, addBOS: false, parseSpecial: false)
        guard !ids.isEmpty else {
            throw EvaluationError.textTooShort(file: files.joined(separator: " + "), tokens: 0, needed: count)
        }
        var prompt = bos
        while prompt.count < count { prompt += ids.prefix(count - prompt.count) }
        return Array(prompt.prefix(count))
    }

    func promptTokens(_ loaded: LoadedCheckpoint) throws -> [Int32] {
        let o = options
        if let prompt = o.prompt {
            let ids = loaded.tokenizer.encode(prompt, addBOS: loaded.tokenizer.addsBOS, parseSpecial: false)
            guard !ids.isEmpty else { throw ValidationError("--prompt encodes to no tokens") }
            return ids
        }
        let question = o.chat ?? "What is the capital of France?"
        let template = ChatTemplate(format: .chatML, defaultSystemPrompt: nil)
        var messages: [ChatMessage] = []
        if let system = o.system { messages.append(.system(system)) }
        messages.append(.user(question))
        return try template.promptTokens(messages, tokenizer: loaded.tokenizer)
    }

    func evaluate(_ loaded: LoadedCheckpoint, attention: AttentionSettings,
                  pool: ComputePool) throws -> RunReport.Accuracy {
        let o = options
        var a = RunReport.Accuracy()
        guard o.evalTokens > 0 else {
            a.reason = "not requested (--eval-tokens 0)"
            return a
        }
        let files = o.evalText.map { [$0] } ?? EvaluationText.defaultFiles
        a.textFile = files.joined(separator: " + ")
        let text = try EvaluationText.load(files)
        let reference = try DecoderModel.load(gguf: loaded.file, policy: .uniform(.f32))
        let settings = EvaluationSettings(context: o.evalContext, maxTokens: o.evalTokens)
        do {
            let (summary, _) = try PlanEvaluation.evaluate(plan: loaded, reference: reference, text: text,
                                                           textName: a.textFile ?? "text", settings: settings,
                                                           attention: attention, pool: pool)
            return summary.reportBlock(textFile: a.textFile)
        } catch let error as EvaluationError {
            a.reason = error.description
            return a
        }
    }
}

/// What resident memory a run should need: the weights the engine reads plus KV cache and scratch, on top of what
/// the process held before loading (code, libraries, runtime; nil where it could not be read).
struct MemoryExpectation {
    var tensorBytes: Int
    var weightBytes: Int
    var kvBytes: Int
    var scratchBytes: Int
    var beforeLoadBytes: Int?

    var expected: Int { weightBytes + kvBytes + scratchBytes }

    func note(peak: Int) -> String {
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        let parts = "weights \(mib(weightBytes)) (file tensors \(mib(tensorBytes))) + KV \(mib(kvBytes)) + scratch "
            + "\(mib(scratchBytes))"
        guard let before = beforeLoadBytes else {
            return "peak RSS \(mib(peak)) vs \(parts) = \(mib(expected)); the rest is runtime and code"
        }
        return "peak RSS \(mib(peak)) vs \(mib(before)) before loading (code, libraries, runtime) + \(parts) = "
            + "\(mib(before + expected)); the other \(mib(peak - before - expected)) was touched since (code paged "
            + "in by the run, the tokenizer's tables, buffers)"
    }
}

/// The engine build for run reports: the sign-off module's commit resolution (env, git, unknown) plus the
/// configuration this binary was compiled in.
func currentBuild() -> RunReport.Build {
    let info = BuildInfo.current()
    var b = RunReport.Build()
    b.commit = info.commit
    b.dirty = info.dirty ?? false
    #if DEBUG
    b.configuration = "debug"
    #else
    b.configuration = "release"
    #endif
    return b
}

/// The host block of a run report, from the engine's /proc reader.
func reportHost(threads: Int) -> RunReport.Host {
    var h = RunReport.Host()
    h.threads = threads
    h.cores = ProcessInfo.processInfo.activeProcessorCount
    h.memoryBytes = Int(ProcessInfo.processInfo.physicalMemory)
    if let info = try? HostInfo.current() {
        h.cpu = info.cpuModel
        h.cores = info.cores
        h.memoryBytes = info.memTotalBytes
    }
    return h
}

enum FileInfo {
    static func size(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
    }
}
