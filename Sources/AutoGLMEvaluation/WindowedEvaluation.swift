import AutoGLMEngine
import Foundation

/// Settings of a windowed perplexity / KL evaluation.
public struct EvaluationSettings: Sendable, Equatable {
    /// Tokens per window (llama.cpp's n_ctx).
    public var context: Int
    /// Upper bound on text tokens used (whole windows only); nil uses the whole text.
    public var maxTokens: Int?
    /// Token that replaces the first token of every window (llama.cpp puts BOS there), nil keeps the text's.
    public var bosToken: Int32?

    public init(context: Int = 512, maxTokens: Int? = nil, bosToken: Int32? = nil) {
        self.context = context
        self.maxTokens = maxTokens
        self.bosToken = bosToken
    }

    /// Positions scored per window: the second half, each predicting the next token.
    public var scoredPerWindow: Int { context - context / 2 - 1 }

    public func validate() throws {
        guard context >= 4 else {
            throw EvaluationError.invalidSetting(name: "context", expected: "at least 4 tokens", got: "\(context)")
        }
        if let maxTokens, maxTokens < context {
            throw EvaluationError.invalidSetting(name: "eval tokens", expected: "at least one window of \(context)",
                                                 got: "\(maxTokens)")
        }
    }
}

/// The default evaluation text: licence texts shipped with the system.
public enum EvaluationText {
    public static let defaultFiles = ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"]

    /// Concatenates the files (separated by a blank line).
    public static func load(_ paths: [String]) throws -> String {
        var parts: [String] = []
        for path in paths {
            do {
                parts.append(try String(contentsOfFile: path, encoding: .utf8))
            } catch {
                throw EvaluationError.unreadableText(file: path, reason: error.localizedDescription)
            }
        }
        return parts.joined(separator: "\n\n")
    }
}

/// llama.cpp's perplexity / KL-divergence methodology over a token stream: the text is cut into windows of
/// `context` tokens; both runs see each window from an empty cache and the second half of each window is scored
/// (logits at position j predict token j + 1), so every scored token has at least context/2 tokens of history.
public enum WindowedEvaluation {
    /// Runs reference and plan over the same windows and returns one comparison per scored token.
    public static func compare(tokens: [Int32], settings: EvaluationSettings, reference: InferenceSession,
                               plan: InferenceSession, textName: String = "text") throws -> [TokenComparison] {
        try settings.validate()
        let c = settings.context
        let usable = min(tokens.count, settings.maxTokens ?? tokens.count)
        let windows = usable / c
        guard windows >= 1 else { throw EvaluationError.textTooShort(file: textName, tokens: tokens.count, needed: c) }
        let vocab = reference.model.config.vocab
        guard plan.model.config.vocab == vocab else {
            throw EvaluationError.shapeMismatch(what: "plan vocabulary", expected: vocab, got: plan.model.config.vocab)
        }
        for session in [reference, plan] where session.capacity < c {
            throw EvaluationError.invalidSetting(name: "context",
                                                 expected: "≤ the session capacity \(session.capacity)", got: "\(c)")
        }
        let first = c / 2
        var out: [TokenComparison] = []
        out.reserveCapacity(windows * settings.scoredPerWindow)
        var window = [Int32](repeating: 0, count: c)
        for w in 0..<windows {
            for i in 0..<c { window[i] = tokens[w * c + i] }
            if let bos = settings.bosToken { window[0] = bos }
            reference.reset()
            plan.reset()
            let refLogits = try window.withUnsafeBufferPointer { try reference.forward($0, logitsFrom: first) }
            let planLogits = try window.withUnsafeBufferPointer { try plan.forward($0, logitsFrom: first) }
            out += try scoreWindow(window, index: w, reference: refLogits,
                                   plan: planLogits, vocab: vocab, run: "reference or plan")
        }
        return out
    }

    /// Compares one window's logits from position context/2 on: row j of each predicts token context/2 + j + 1.
    static func scoreWindow(_ window: [Int32], index w: Int, reference: UnsafeBufferPointer<Float>,
                            plan: UnsafeBufferPointer<Float>, vocab: Int, run: String) throws -> [TokenComparison] {
        let c = window.count
        let first = c / 2
        var out: [TokenComparison] = []
        out.reserveCapacity(c - first - 1)
        for j in 0..<(c - first - 1) {
            let target = Int(window[first + j + 1])
            guard let r = reference.baseAddress, let p = plan.baseAddress,
                  let cmp = TokenComparison.compare(reference: r + j * vocab, plan: p + j * vocab, vocab: vocab,
                                                    target: target)
            else { throw EvaluationError.nonFiniteLogit(run: run, position: w * c + first + j) }
            out.append(cmp)
        }
        return out
    }
}

/// The reference run's scored logits over every window, computed once and compared with many runs (one per
/// attention setting or weight format measured), by the same windows and scoring as `WindowedEvaluation`.
public struct ReferenceLogits {
    public let settings: EvaluationSettings
    /// The windows' tokens (the first replaced by `settings.bosToken` where set).
    public let windows: [[Int32]]
    public let vocab: Int
    private let logits: [[Float]]

    public init(tokens: [Int32], settings: EvaluationSettings, reference: InferenceSession,
                textName: String = "text") throws {
        try settings.validate()
        let c = settings.context
        let usable = min(tokens.count, settings.maxTokens ?? tokens.count)
        let count = usable / c
        guard count >= 1 else { throw EvaluationError.textTooShort(file: textName, tokens: tokens.count, needed: c) }
        guard reference.capacity >= c else {
            throw EvaluationError.invalidSetting(name: "context",
                                                 expected: "≤ the session capacity \(reference.capacity)", got: "\(c)")
        }
        self.settings = settings
        vocab = reference.model.config.vocab
        let rows = c - c / 2
        var windows: [[Int32]] = [], logits: [[Float]] = []
        for w in 0..<count {
            var window = Array(tokens[(w * c)..<((w + 1) * c)])
            if let bos = settings.bosToken { window[0] = bos }
            reference.reset()
            let out = try window.withUnsafeBufferPointer { try reference.forward($0, logitsFrom: c / 2) }
            windows.append(window)
            logits.append(Array(out.prefix(rows * vocab)))
        }
        self.windows = windows
        self.logits = logits
    }

    /// One comparison per scored token of every window, `session` run from an empty cache on each.
    public func compare(_ session: InferenceSession, run: String) throws -> [TokenComparison] {
        guard session.model.config.vocab == vocab else {
            throw EvaluationError.shapeMismatch(what: "\(run) vocabulary", expected: vocab,
                                                got: session.model.config.vocab)
        }
        let c = settings.context
        guard session.capacity >= c else {
            throw EvaluationError.invalidSetting(name: "context", expected: "≤ the session capacity \(session.capacity)",
                                                 got: "\(c)")
        }
        var out: [TokenComparison] = []
        for (w, window) in windows.enumerated() {
            session.reset()
            let planLogits = try window.withUnsafeBufferPointer { try session.forward($0, logitsFrom: c / 2) }
            out += try logits[w].withUnsafeBufferPointer { ref in
                try WindowedEvaluation.scoreWindow(window, index: w, reference: ref,
                                                   plan: planLogits, vocab: vocab, run: run)
            }
        }
        return out
    }
}
