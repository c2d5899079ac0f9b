import ArgumentParser
import AutoGLMEngine
import AutoGLMEvaluation
import AutoGLMSpecs
import Foundation

/// One attention setting whose accuracy cost is measured, named as the planner's setting tables name it.
struct MeasuredAttentionSetting: MeasurementRecord, Equatable {
    static let listKey = "settings"
    var setting: String
    var figures: AccuracyFigures

    enum CodingKeys: String, CodingKey { case setting }

    init(setting: String, figures: AccuracyFigures) { self.setting = setting; self.figures = figures }

    /// The figures sit beside `setting` in one JSON object.
    init(from decoder: Decoder) throws {
        setting = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .setting)
        figures = try AccuracyFigures(from: decoder)
    }

    func encode(to encoder: Encoder) throws {
        try figures.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(setting, forKey: .setting)
    }

    /// The planner's loss figure: relative perplexity increase, never below zero.
    var loss: Double { max(0, figures.pplRatio - 1) }
}

/// What `measure-attention -o` writes.
typealias AttentionAccuracyFile = MeasurementFile<MeasuredAttentionSetting>

/// `autoglm-run measure-attention`: the accuracy cost of each attention setting on the real model.
///
/// For each setting the checkpoint runs over windows of real text with that setting and with full F32 attention
/// (same weights); the KL divergence of the next-token distributions and the perplexity ratio are recorded, and
/// the manifest's `setting_sensitivity` entries for those settings are replaced by the measured ones.
struct MeasureAttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure-attention",
        abstract: "Measure KL divergence and perplexity change of attention settings against full F32 attention.",
        discussion: """
            Settings: kv:f16, kv:int8, kv:int4 (KV cache precision), window:W+G (sliding window of W tokens plus G \
            global tokens), block-sparse:C/K (MoBA: blocks of C tokens, top K), kernel:materialised (scores \
            materialised instead of tiled). Each is compared with the same weights under F32 KV, tiled, full \
            attention. Exit status: 0 on success, 1 when loading or measuring fails, 64 for bad options.
            """
    )

    @OptionGroup var common: MeasurementOptions

    @Option(help: "Tokens per evaluation window; the second half of each window is scored.")
    var context: Int = 1024

    @Option(name: .customLong("max-tokens"), help: "Tokens of text to use (default: one window).")
    var maxTokens: Int?

    @Option(help: "Comma-separated settings to measure.")
    var settings: String = "kv:f16,kv:int8,kv:int4,window:512+4,window:256+4,block-sparse:256/2,block-sparse:128/4,kernel:materialised"

    func validate() throws {
        if context < 16 { throw ValidationError("--context must be at least 16, got \(context)") }
        if let maxTokens, maxTokens < context {
            throw ValidationError("--max-tokens must be at least --context (\(context)), got \(maxTokens)")
        }
        for name in settingNames { _ = try Self.parse(setting: name) }
    }

    var settingNames: [String] {
        settings.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The engine settings a setting name stands for.
    static func parse(setting: String) throws -> AttentionSettings {
        let parts = setting.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("setting '\(setting)' is not kind:value") }
        switch parts[0] {
        case "kv":
            guard let f = KVCacheFormat(rawValue: parts[1]) else {
                throw ValidationError("setting '\(setting)': KV format must be f32, f16, int8 or int4")
            }
            return AttentionSettings(kvCacheFormat: f)
        case "window":
            let wg = parts[1].split(separator: "+").compactMap { Int($0) }
            guard wg.count == 2, wg[0] > 0, wg[1] >= 0 else {
                throw ValidationError("setting '\(setting)': expected window:W+G with W > 0, G ≥ 0")
            }
            return AttentionSettings(window: wg[0], globalTokens: wg[1])
        case "block-sparse":
            let ck = parts[1].split(separator: "/").compactMap { Int($0) }
            guard ck.count == 2, ck[0] > 0, ck[1] > 0 else {
                throw ValidationError("setting '\(setting)': expected block-sparse:C/K with C, K > 0")
            }
            return AttentionSettings(blockSparse: Plan.BlockSparse(chunk: ck[0], topK: ck[1]))
        case "kernel":
            guard let k = AttentionKernel(rawValue: parts[1]) else {
                throw ValidationError("setting '\(setting)': kernel must be tiled or materialised")
            }
            return AttentionSettings(kernel: k)
        default:
            throw ValidationError("setting '\(setting)': unknown kind '\(parts[0])' (kv, window, block-sparse, kernel)")
        }
    }

    func run() throws { try MeasurementOptions.reportingFailures("measure-attention", measure) }

    private func measure() throws {
        let loaded = try LoadedCheckpoint(path: common.checkpoint)
        let pool = ComputePool(threadCount: common.threads)
        let batch = MeasurementOptions.batch(context: context)

        // Reference logits once per window: same weights, F32 KV, tiled, full attention.
        let referenceLogits = try common.referenceLogits("measure-attention", model: loaded.model,
                                                         tokenizer: loaded.tokenizer, context: context,
                                                         maxTokens: maxTokens ?? context, pool: pool)

        var results: [MeasuredAttentionSetting] = []
        for name in settingNames {
            let attention = try Self.parse(setting: name)
            let session = try InferenceSession(model: loaded.model, capacity: context, batch: batch,
                                               attention: attention, pool: pool)
            let start = Date()
            let s = try AccuracySummary(try referenceLogits.compare(session, run: name))
            let m = MeasuredAttentionSetting(setting: name, figures: AccuracyFigures(
                s, context: context, seconds: Date().timeIntervalSince(start)))
            results.append(m)
            print(m.figures.line(name))
        }

        let date = UTCTimestamp.string()
        try common.writeResults(results, date: date, threads: pool.threadCount)
        if !common.noManifest {
            let day = String(date.prefix(10))
            let entries = results.filter { !$0.setting.hasPrefix("kernel:") }.map { m in
                SettingSensitivity(
                    setting: m.setting, loss: m.loss,
                    source: "measured: autoglm-run measure-attention on \(common.checkpointName), \(day), "
                        + "\(m.figures.scoredTokens) scored tokens of \(common.textName) at context "
                        + "\(m.figures.context) against full F32 attention with the same weights: \(m.figures.summary)",
                    measured: true)
            }
            try ManifestUpdate.replace(entries, inManifest: common.manifest)
            log("updated \(entries.count) setting_sensitivity entries in \(common.manifest)")
        }
    }

    private func log(_ line: String) { MeasurementOptions.log("measure-attention", line) }
}

/// Replaces sensitivity entries of a manifest file in place (`setting_sensitivity` from `measure-attention`,
/// `sensitivity` from `measure-formats`), leaving the rest of the file's text as it is.
enum ManifestUpdate {
    struct Failure: Error, CustomStringConvertible {
        let file: String
        let reason: String
        var description: String { "\(file): \(reason)" }
    }

    /// Entries with the same `setting` name are replaced, new ones appended; the result must load as a manifest.
    static func replace(_ entries: [SettingSensitivity], inManifest path: String) throws {
        var merged = try ModelManifest.load(path).settingSensitivity
        for e in entries {
            if let i = merged.firstIndex(where: { $0.setting == e.setting }) { merged[i] = e } else { merged.append(e) }
        }
        try replaceArray("setting_sensitivity", with: try merged.map { e in
            "{\"setting\": \(try quoted(e.setting)), \"loss\": \(number(e.loss)), \"source\": \(try quoted(e.source)), "
                + "\"measured\": \(e.measured)}"
        }, inManifest: path)
    }

    /// Entries with the same module and format are replaced, new ones appended; the result must load as a manifest.
    static func replace(_ entries: [FormatSensitivity], inManifest path: String) throws {
        var merged = try ModelManifest.load(path).sensitivity
        for e in entries {
            if let i = merged.firstIndex(where: { $0.module == e.module && $0.format == e.format }) {
                merged[i] = e
            } else {
                merged.append(e)
            }
        }
        try replaceArray("sensitivity", with: try merged.map { e in
            "{\"module\": \(try quoted(e.module)), \"format\": \(try quoted(e.format.rawValue)), "
                + "\"loss\": \(number(e.loss)), \"source\": \(try quoted(e.source)), \"measured\": \(e.measured)}"
        }, inManifest: path)
    }

    /// Writes `lines` (one JSON object each) as the array value of the top-level `key`, appended when the key is
    /// absent; the result must still load as a manifest.
    private static func replaceArray(_ key: String, with lines: [String], inManifest path: String) throws {
        guard let original = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Failure(file: path, reason: "cannot read")
        }
        let array = "[\n" + lines.map { "    " + $0 }.joined(separator: ",\n") + "\n  ]"
        let updated: String
        if let range = arrayRange(of: key, in: original) {
            updated = original.replacingCharacters(in: range, with: array)
        } else {
            guard let close = original.lastIndex(of: "}") else { throw Failure(file: path, reason: "not a JSON object") }
            updated = original[..<close].trimmingCharacters(in: .whitespacesAndNewlines)
                + ",\n  \"\(key)\": " + array + "\n}\n"
        }
        _ = try SpecLoader.decode(ModelManifest.self, from: Data(updated.utf8), file: path)
        do {
            try updated.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw Failure(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    private static func quoted(_ s: String) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(s), as: UTF8.self)
    }

    private static func number(_ x: Double) -> String { String(format: "%.6g", x) }

    /// The range of the array value of a top-level key: from its `[` to the matching `]`, strings skipped.
    static func arrayRange(of key: String, in text: String) -> Range<String.Index>? {
        guard let keyRange = text.range(of: "\"\(key)\"") else { return nil }
        guard let open = text[keyRange.upperBound...].firstIndex(of: "[") else { return nil }
        var depth = 0, inString = false, escaped = false
        var i = open
        while i < text.endIndex {
            let ch = text[i]
            if inString {
                if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false }
            } else if ch == "\"" {
                inString = true
            } else if ch == "[" {
                depth += 1
            } else if ch == "]" {
                depth -= 1
                if depth == 0 { return open..<text.index(after: i) }
            }
            i = text.index(after: i)
        }
        return nil
    }
}
