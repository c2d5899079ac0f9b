import Foundation

/// Errors raised while building, loading or running a model.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The checkpoint's architecture has no constructor in the registry.
    case unsupportedArchitecture(name: String, known: [String])
    /// A tensor the architecture needs is absent.
    case missingTensor(name: String)
    /// A tensor's shape differs from what the hyperparameters imply.
    case tensorShape(name: String, expected: [Int], got: [Int])
    /// A tensor is stored in a type the engine cannot execute.
    case unsupportedTensorType(name: String, type: String)
    /// A plan assigns a format the engine cannot execute or store for this tensor.
    case unsupportedPlanFormat(tensor: String, format: String, reason: String)
    /// A hyperparameter is missing or inconsistent.
    case invalidHyperparameter(name: String, expected: String, got: String)
    /// A token id outside the vocabulary.
    case tokenOutOfRange(token: Int, vocab: Int)
    /// The context would exceed the KV cache capacity.
    case contextFull(needed: Int, capacity: Int)
    /// A generation or session setting is out of range.
    case invalidSetting(name: String, expected: String, got: String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(name, known):
            return "architecture '\(name)' is not supported (supported: \(known.joined(separator: ", ")))"
        case let .missingTensor(name):
            return "checkpoint has no tensor '\(name)'"
        case let .tensorShape(name, expected, got):
            return "tensor '\(name)': expected shape \(expected) (ne0 first), got \(got)"
        case let .unsupportedTensorType(name, type):
            return "tensor '\(name)': type \(type) is not executed by the engine"
        case let .unsupportedPlanFormat(tensor, format, reason):
            return "tensor '\(tensor)': plan format \(format) cannot be used: \(reason)"
        case let .invalidHyperparameter(name, expected, got):
            return "hyperparameter '\(name)': expected \(expected), got \(got)"
        case let .tokenOutOfRange(token, vocab):
            return "token id \(token) is outside the vocabulary of \(vocab)"
        case let .contextFull(needed, capacity):
            return "context of \(needed) tokens exceeds the KV cache capacity of \(capacity)"
        case let .invalidSetting(name, expected, got):
            return "setting '\(name)': expected \(expected), got \(got)"
        }
    }
}
