import ArgumentParser
import AutoGLMEvaluation
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
