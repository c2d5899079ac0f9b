import Foundation

/// A figure together with where it comes from: a URL, a document, or "derived: <arithmetic>".
/// `estimate` marks figures that are not published values but informed estimates.
public struct Sourced<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var value: Value
    public var source: String
    public var estimate: Bool

    public init(_ value: Value, source: String, estimate: Bool = false) {
        self.value = value
        self.source = source
        self.estimate = estimate
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case value, source, estimate
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        value = try c.decode(Value.self, forKey: .value)
        source = try c.decode(String.self, forKey: .source, expected: "a non-empty source (URL or 'derived: ...')") {
            !$0.trimmingCharacters(in: .whitespaces).isEmpty
        }
        estimate = try c.decodeIfPresent(Bool.self, forKey: .estimate) ?? false
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(value, forKey: .value)
        try c.encode(source, forKey: .source)
        if estimate { try c.encode(estimate, forKey: .estimate) }
    }
}

extension Sourced where Value: Comparable & Numeric {
    /// Throws unless the value is strictly positive.
    func requirePositive(_ path: [CodingKey], _ key: CodingKey) throws {
        if value <= 0 { throw FieldValidationError(path, key, expected: "a positive number", found: "\(value)") }
    }
}
