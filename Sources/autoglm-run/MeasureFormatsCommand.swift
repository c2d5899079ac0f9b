import ArgumentParser
import AutoGLMEngine
import AutoGLMEvaluation
import AutoGLMSpecs
import Foundation

/// One module stored in one format, its accuracy cost measured against the whole checkpoint in F32.
struct MeasuredFormat: MeasurementRecord, Equatable {
    static let listKey = "measurements"
    var module: String
    var format: WeightFormat
    /// The module's share of the model's parameters (a tied head: the table it reads).
    var parameterShare: Double
    var figures: AccuracyFigures

    enum CodingKeys: String, CodingKey { case module, format, parameterShare = "parameter_share" }

    init(module: String, format: WeightFormat, parameterShare: Double, figures: AccuracyFigures) {
        self.module = module; self.format = format; self.parameterShare = parameterShare; self.figures = figures
    }

    /// The figures sit beside the module and format in one JSON object.
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        module = try c.decode(String.self, forKey: .module)
        format = try c.decode(WeightFormat.self, forKey: .format)
        parameterShare = try c.decode(Double.self, forKey: .parameterShare)
        figures = try AccuracyFigures(from: decoder)
    }

    func encode(to encoder: Encoder) throws {
        try figures.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(module, forKey: .module)
        try c.encode(format, forKey: .format)
        try c.encode(parameterShare, forKey: .parameterShare)
    }

    /// Whether the perplexity ratio differs from 1 by more than two standard errors.
    var pplResolved: Bool { abs(figures.pplRatio - 1) > 2 * figures.pplRatioStandardError }

    /// The relative perplexity increase of the model with only this module in the format: the measured ratio − 1
    /// where it is resolved; else exp(KL) − 1, KL being the far less noisy estimate of the same log-likelihood loss
    /// (a ratio of 0.9974 ± 0.0013 for a change that costs KL 0.0014 is noise, not a gain).
    var moduleLoss: Double { pplResolved ? max(0, figures.pplRatio - 1) : expm1(figures.klMean) }

    /// The manifest's figure: the planner prices an item as share · L, so L = measured loss / share makes the module
    /// in this format cost exactly what was measured.
    var tableLoss: Double { parameterShare > 0 ? moduleLoss / parameterShare : moduleLoss }
}

/// `autoglm-run measure-formats`: the accuracy cost of each weight format per module on the real model.
///
/// The reference is the checkpoint with every weight dequantised to F32. For each module and format the same
/// checkpoint runs with that one module converted to the format and every other module in F32, over windows of real
/// text; the perplexity ratio, KL divergence and top-1 agreement against the reference are recorded, and the
/// manifest's `sensitivity` entries for those modules and formats are replaced by the measured ones. For a tied
/// head, "embedding" is the table as the input lookup only and "head" the output projection only (a converted copy of
/// the table); the planner prices a tied table in one format as both.
struct MeasureFormatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure-formats",
        abstract: "Measure each weight format's accuracy cost per module against the checkpoint in F32.",
        discussion: """
            Modules: embedding, decoder, head (the manifest's names). Formats: the ones the engine executes. Each \
            measurement converts one module and keeps the rest in F32. Exit status: 0 on success, 1 when loading or \
            measuring fails, 64 for bad options.
            """
    )

    static let defaultFormats: [WeightFormat] = [.f16, .bf16, .q8_0, .int8, .q4_1, .int4g32, .q4_0, .int4g64, .int4g128]

    @OptionGroup var common: MeasurementOptions

    @Option(help: "Comma-separated modules to measure.")
    var modules: String = "embedding,decoder,head"

    @Option(help: "Comma-separated weight formats to measure.")
    var formats: String = defaultFormats.map(\.rawValue).joined(separator: ",")

    @Option(help: "Tokens per evaluation window; the second half of each window is scored.")
    var context: Int = 512

    @Option(name: .customLong("max-tokens"), help: "Tokens of text to use (whole windows).")
    var maxTokens: Int = 4096

    func validate() throws {
        if context < 16 { throw ValidationError("--context must be at least 16, got \(context)") }
        if maxTokens < context {
            throw ValidationError("--max-tokens must be at least --context (\(context)), got \(maxTokens)")
        }
        if moduleNames.isEmpty { throw ValidationError("--modules names no module") }
        for m in moduleNames where !Self.moduleKinds.keys.contains(m) {
            throw ValidationError("--modules: unknown module '\(m)' (embedding, decoder, head)")
        }
        _ = try weightFormats()
    }

    static let moduleKinds: [String: ModuleKind] = ["embedding": .embedding, "decoder": .textDecoder, "head": .head]

    var moduleNames: [String] {
        modules.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func weightFormats() throws -> [WeightFormat] {
        let names = formats.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if names.isEmpty { throw ValidationError("--formats names no format") }
        return try names.map { name in
            guard let f = WeightFormat(rawValue: name) else {
                throw ValidationError("--formats: unknown format '\(name)'")
            }
            guard f.engineExecutes else {
                let executed = WeightFormat.allCases.filter(\.engineExecutes).map(\.rawValue)
                throw ValidationError("--formats: \(name) is planned but not executed by the engine "
                                      + "(executed: \(executed.joined(separator: ", ")))")
            }
            return f
        }
    }

    func run() throws { try MeasurementOptions.reportingFailures("measure-formats", measure) }

    /// A plan that keeps every module in F32 except `module`, stored in `format`.
    static func plan(module: String, format: WeightFormat) -> Plan {
        var plan = Plan()
        for (name, kind) in moduleKinds.sorted(by: { $0.key < $1.key }) {
            var m = Plan.Module()
            m.name = name
            m.kind = kind
            m.format = name == module ? format : .f32
            plan.modules.append(m)
        }
        return plan
    }

    /// The module's share of the model's parameters; a tied head counts the table it reads.
    static func parameterShare(module: String, in manifest: ModelManifest) -> Double {
        let total = Double(max(1, manifest.parameters))
        guard let kind = moduleKinds[module], let spec = manifest.modules.first(where: { $0.kind == kind }) else {
            return 0
        }
        if case let .head(h) = spec.body, h.tied {
            return Double(manifest.modules.first { $0.kind == .embedding }?.parameters ?? 0) / total
        }
        return Double(spec.parameters) / total
    }

    private func measure() throws {
        let target = try ModelManifest.load(common.manifest)
        let wanted = try weightFormats()
        for m in moduleNames where Self.parameterShare(module: m, in: target) == 0 {
            throw ManifestUpdate.Failure(file: common.manifest, reason: "no parameters for module '\(m)'")
        }
        let file = try GGUFFile(path: common.checkpoint)
        let tokenizer = try Tokenizer(file: file)
        let pool = ComputePool(threadCount: common.threads)
        let batch = MeasurementOptions.batch(context: context)

        // Reference: every weight dequantised to F32.
        let reference = try common.referenceLogits(
            "measure-formats", model: try DecoderModel.load(gguf: file, policy: .uniform(.f32)), tokenizer: tokenizer,
            context: context, maxTokens: maxTokens, pool: pool)

        var results: [MeasuredFormat] = []
        for module in moduleNames {
            for format in wanted {
                let start = Date()
                let model = try DecoderModel.load(gguf: file, policy: .plan(Self.plan(module: module, format: format)))
                let session = try InferenceSession(model: model, capacity: context, batch: batch,
                                                   attention: AttentionSettings(kvCacheFormat: .f32), pool: pool)
                let s = try AccuracySummary(try reference.compare(session, run: "\(module) in \(format.rawValue)"))
                let m = MeasuredFormat(module: module, format: format,
                                       parameterShare: Self.parameterShare(module: module, in: target),
                                       figures: AccuracyFigures(s, context: context,
                                                                seconds: Date().timeIntervalSince(start)))
                results.append(m)
                print(m.figures.line("\(module) \(format.rawValue)"))
            }
        }

        let date = UTCTimestamp.string()
        try common.writeResults(results, date: date, threads: pool.threadCount)
        if !common.noManifest {
            let day = String(date.prefix(10))
            let entries = results.map { m in
                FormatSensitivity(
                    module: m.module, format: m.format, loss: m.tableLoss,
                    source: "measured: autoglm-run measure-formats on \(common.checkpointName), \(day), "
                        + "\(m.figures.scoredTokens) scored tokens of \(common.textName) at context "
                        + "\(m.figures.context), only \(m.module) in \(m.format.rawValue) and the rest in F32, against "
                        + "the checkpoint in F32: \(m.figures.summary); loss = "
                        + (m.pplResolved ? "(ratio − 1)"
                            : "(exp(KL) − 1), the ratio being within two standard errors of 1")
                        + String(format: " / parameter share %.4f", m.parameterShare),
                    measured: true)
            }
            try ManifestUpdate.replace(entries, inManifest: common.manifest)
            log("updated \(entries.count) sensitivity entries in \(common.manifest)")
        }
    }

    private func log(_ line: String) { MeasurementOptions.log("measure-formats", line) }
}
