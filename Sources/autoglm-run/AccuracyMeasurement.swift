import ArgumentParser
import AutoGLMEngine
import AutoGLMEvaluation
import AutoGLMSpecs
import Foundation

/// The figures of one accuracy measurement against a reference run, as `measure-attention` and `measure-formats`
/// record them (flat in each record's JSON).
struct AccuracyFigures: Codable, Sendable, Equatable {
    var context: Int
    var scoredTokens: Int
    var klMean: Double
    var klStandardError: Double
    var klP99: Double
    var pplRatio: Double
    var pplRatioStandardError: Double
    var top1Agreement: Double
    var seconds: Double

    enum CodingKeys: String, CodingKey {
        case context, scoredTokens = "scored_tokens", klMean = "kl_mean", klStandardError = "kl_standard_error"
        case klP99 = "kl_p99", pplRatio = "ppl_ratio", pplRatioStandardError = "ppl_ratio_standard_error"
        case top1Agreement = "top1_agreement", seconds
    }

    init(_ s: AccuracySummary, context: Int, seconds: Double) {
        self.context = context
        scoredTokens = s.scoredTokens
        klMean = s.klMean.value
        klStandardError = s.klMean.uncertainty
        klP99 = s.klP99
        pplRatio = s.pplRatio.value
        pplRatioStandardError = s.pplRatio.uncertainty
        top1Agreement = s.top1Agreement.value
        self.seconds = seconds
    }

    /// The figures for a manifest entry's source text.
    var summary: String {
        String(format: "PPL ratio %.5f ± %.5f, KL %.6f ± %.6f, top-1 agreement %.4f", pplRatio, pplRatioStandardError,
               klMean, klStandardError, top1Agreement)
    }

    /// One progress line: `name` and the figures.
    func line(_ name: String) -> String {
        String(format: "%-22@ PPL ratio %.5f ± %.5f  KL %.6f ± %.6f  top-1 %.4f  (%.0f s)", name as NSString, pplRatio,
               pplRatioStandardError, klMean, klStandardError, top1Agreement, seconds)
    }
}

/// One record of a measurement command's results file, listed under `listKey`.
protocol MeasurementRecord: Codable, Sendable {
    static var listKey: String { get }
}

/// What `measure-attention -o` and `measure-formats -o` write: where and how the figures were measured, then the
/// records (under "settings" or "measurements").
struct MeasurementFile<Record: MeasurementRecord>: Codable, Sendable {
    var checkpoint: String
    var text: [String]
    var date: String
    var threads: Int
    var records: [Record]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(checkpoint: String, text: [String], date: String, threads: Int, records: [Record]) {
        self.checkpoint = checkpoint; self.text = text; self.date = date; self.threads = threads
        self.records = records
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        checkpoint = try c.decode(String.self, forKey: Key(stringValue: "checkpoint"))
        text = try c.decode([String].self, forKey: Key(stringValue: "text"))
        date = try c.decode(String.self, forKey: Key(stringValue: "date"))
        threads = try c.decode(Int.self, forKey: Key(stringValue: "threads"))
        records = try c.decode([Record].self, forKey: Key(stringValue: Record.listKey))
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(checkpoint, forKey: Key(stringValue: "checkpoint"))
        try c.encode(text, forKey: Key(stringValue: "text"))
        try c.encode(date, forKey: Key(stringValue: "date"))
        try c.encode(threads, forKey: Key(stringValue: "threads"))
        try c.encode(records, forKey: Key(stringValue: Record.listKey))
    }
}

/// Options every accuracy measurement command takes: checkpoint, text, results file, manifest, threads.
struct MeasurementOptions: ParsableArguments {
    @Option(help: "GGUF checkpoint (SmolLM2-135M-Instruct).")
    var checkpoint: String

    @Option(name: .customLong("text"), help: "Text files (comma-separated).")
    var textFiles: String = EvaluationText.defaultFiles.joined(separator: ",")

    @Option(name: .shortAndLong, help: "Write every measurement as JSON to this file.")
    var output: String?

    @Option(help: "Model manifest whose sensitivity entries are replaced by the measured ones.")
    var manifest: String = "Models/smollm2-135m.json"

    @Flag(name: .customLong("no-manifest"), help: "Do not update the manifest.")
    var noManifest = false

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be positive, got \(threads)") }
    }

    var files: [String] { textFiles.split(separator: ",").map(String.init) }
    /// The text files' names joined with "+", for source texts.
    var textName: String { files.map { ($0 as NSString).lastPathComponent }.joined(separator: "+") }
    var checkpointName: String { (checkpoint as NSString).lastPathComponent }

    /// The reference run's logits over the evaluation text, windows of `context` tokens (BOS first where the
    /// tokenizer adds one): `model` with an F32 KV cache and full tiled attention. Logs the windows and scored tokens.
    func referenceLogits(_ command: String, model: DecoderModel, tokenizer: Tokenizer, context: Int, maxTokens: Int,
                         pool: ComputePool) throws -> ReferenceLogits {
        let settings = EvaluationSettings(context: context, maxTokens: maxTokens,
                                          bosToken: tokenizer.addsBOS ? tokenizer.bosTokenID : nil)
        let session = try InferenceSession(model: model, capacity: context, batch: Self.batch(context: context),
                                           attention: AttentionSettings(kvCacheFormat: .f32), pool: pool)
        let reference = try ReferenceLogits(tokens: tokenizer.encode(try EvaluationText.load(files)),
                                            settings: settings, reference: session,
                                            textName: files.joined(separator: ","))
        Self.log(command, "\(reference.windows.count) window(s) of \(context) tokens, "
                 + "\(reference.windows.count * settings.scoredPerWindow) scored tokens per measurement")
        return reference
    }

    /// Prefill batch of the measurement sessions.
    static func batch(context: Int) -> Int { min(context, 512) }

    /// Writes the results file where `-o` was given.
    func writeResults<Record: MeasurementRecord>(_ records: [Record], date: String, threads: Int) throws {
        guard let output else { return }
        let file = MeasurementFile(checkpoint: checkpointName, text: files, date: date, threads: threads,
                                   records: records)
        try SpecLoader.encode(file).write(to: URL(fileURLWithPath: output), options: .atomic)
    }

    /// Runs `body`; a failure is printed after `command`'s name and exits 1.
    static func reportingFailures(_ command: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            log(command, "\(error)")
            throw ExitCode.failure
        }
    }

    static func log(_ command: String, _ line: String) {
        FileHandle.standardError.write(Data("\(command): \(line)\n".utf8))
    }
}
