import Foundation

/// Errors raised while evaluating a plan's accuracy against a reference run.
public enum EvaluationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Summary statistics need at least `minimum` scored tokens.
    case tooFewScoredTokens(scored: Int, minimum: Int)
    /// The evaluation text does not yield enough tokens for one window.
    case textTooShort(file: String, tokens: Int, needed: Int)
    /// The evaluation text could not be read.
    case unreadableText(file: String, reason: String)
    /// A window size or token budget that cannot be evaluated.
    case invalidSetting(name: String, expected: String, got: String)
    /// Reference and planned logits disagree in shape.
    case shapeMismatch(what: String, expected: Int, got: Int)
    /// A logit was NaN or infinite.
    case nonFiniteLogit(run: String, position: Int)

    public var description: String {
        switch self {
        case let .tooFewScoredTokens(scored, minimum):
            return "accuracy summary needs at least \(minimum) scored tokens, got \(scored)"
        case let .textTooShort(file, tokens, needed):
            return "\(file): evaluation text has \(tokens) tokens, a window needs \(needed)"
        case let .unreadableText(file, reason):
            return "\(file): cannot read evaluation text: \(reason)"
        case let .invalidSetting(name, expected, got):
            return "evaluation setting '\(name)': expected \(expected), got \(got)"
        case let .shapeMismatch(what, expected, got):
            return "\(what): expected \(expected), got \(got)"
        case let .nonFiniteLogit(run, position):
            return "\(run) run produced a non-finite logit at scored position \(position)"
        }
    }
}
