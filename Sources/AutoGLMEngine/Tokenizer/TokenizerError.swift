// Errors of the tokenizer and chat-template layer.

/// Everything that can go wrong building or using a tokenizer. Cases carry the offending value and what was expected.
public enum TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Reading the tokenizer's metadata failed.
    case metadata(GGUFError)
    /// `tokenizer.ggml.model` names a tokenizer family this implementation does not handle.
    case unsupportedModel(found: String, supported: [String])
    /// `tokenizer.ggml.pre` names a pre-tokenizer this implementation does not handle.
    case unsupportedPreTokenizer(found: String, supported: [String])
    /// The vocabulary arrays disagree or are empty.
    case inconsistentVocabulary(reason: String)
    /// A merge rule is malformed or refers to tokens outside the vocabulary.
    case invalidMerge(index: Int, rule: String, reason: String)
    /// A special-token id in the metadata is outside the vocabulary.
    case invalidSpecialTokenID(key: String, id: Int, vocabularySize: Int)
    /// A token id passed to the tokenizer is outside the vocabulary.
    case invalidTokenID(id: Int32, vocabularySize: Int)
    /// A token the caller needs (e.g. "<|im_start|>") is not in the vocabulary.
    case missingToken(String)
    /// A chat template is not in a recognised format.
    case unrecognisedChatTemplate(reason: String)

    public var description: String {
        switch self {
        case let .metadata(error):
            return "tokenizer: \(error.description)"
        case let .unsupportedModel(found, supported):
            return "tokenizer: unsupported tokenizer.ggml.model '\(found)', expected one of \(supported.joined(separator: ", "))"
        case let .unsupportedPreTokenizer(found, supported):
            return "tokenizer: unsupported tokenizer.ggml.pre '\(found)', expected one of \(supported.joined(separator: ", "))"
        case let .inconsistentVocabulary(reason):
            return "tokenizer: inconsistent vocabulary: \(reason)"
        case let .invalidMerge(index, rule, reason):
            return "tokenizer: merge \(index) '\(rule)' is invalid: \(reason)"
        case let .invalidSpecialTokenID(key, id, vocabularySize):
            return "tokenizer: \(key) is \(id), outside the vocabulary of \(vocabularySize) tokens"
        case let .invalidTokenID(id, vocabularySize):
            return "tokenizer: token id \(id) is outside the vocabulary of \(vocabularySize) tokens"
        case let .missingToken(token):
            return "tokenizer: vocabulary has no token '\(token)'"
        case let .unrecognisedChatTemplate(reason):
            return "tokenizer: unrecognised chat template: \(reason)"
        }
    }
}
