import Foundation

/// Errors raised while reading or validating specification files (device profiles, model manifests, workloads, plans,
/// run reports). Every case names the file, the field and what was expected.
public enum SpecError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not valid JSON.
    case invalidJSON(file: String, reason: String)
    /// A field is missing, has the wrong type, or fails validation.
    case invalidField(file: String, field: String, expected: String, found: String?)
    /// A field that the schema does not know.
    case unknownField(file: String, field: String, allowed: [String])
    /// A reference to something that does not exist (a workload name, a module glob, ...).
    case unknownReference(file: String, field: String, name: String, known: [String])

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read file: \(reason)"
        case let .invalidJSON(file, reason):
            return "\(file): invalid JSON: \(reason)"
        case let .invalidField(file, field, expected, found):
            let got = found.map { ", found \($0)" } ?? ""
            return "\(file): field '\(field)': expected \(expected)\(got)"
        case let .unknownField(file, field, allowed):
            return "\(file): unknown field '\(field)' (allowed here: \(allowed.joined(separator: ", ")))"
        case let .unknownReference(file, field, name, known):
            return "\(file): field '\(field)': unknown name '\(name)' (known: \(known.joined(separator: ", ")))"
        }
    }
}

/// A validation failure raised inside `init(from:)`; the loader adds the file name.
public struct FieldValidationError: Error, CustomStringConvertible, Sendable {
    public var field: String
    public var expected: String
    public var found: String?

    public init(field: String, expected: String, found: String? = nil) {
        self.field = field
        self.expected = expected
        self.found = found
    }

    public init(_ path: [CodingKey], _ key: CodingKey? = nil, expected: String, found: String? = nil) {
        self.init(field: FieldPath.render(path + (key.map { [$0] } ?? [])), expected: expected, found: found)
    }

    public var description: String {
        "field '\(field)': expected \(expected)" + (found.map { ", found \($0)" } ?? "")
    }
}

/// Raised by `rejectUnknownKeys` for a key the schema does not define.
public struct UnknownFieldError: Error, Sendable {
    public var field: String
    public var allowed: [String]
}

enum FieldPath {
    static func render(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out.isEmpty ? "(root)" : out
    }
}

/// A coding key for any string, used to see every key of a JSON object.
public struct AnyCodingKey: CodingKey, Hashable, Sendable {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue; self.intValue = nil }
    public init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}

extension Decoder {
    /// Throws `UnknownFieldError` when the object holds a key that `Keys` does not list.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let raw = try container(keyedBy: AnyCodingKey.self)
        let allowed = Keys.allCases.map(\.stringValue)
        for key in raw.allKeys where !allowed.contains(key.stringValue) {
            throw UnknownFieldError(field: FieldPath.render(codingPath + [key]), allowed: allowed)
        }
    }
}

extension KeyedDecodingContainer {
    /// Decodes a value and checks it with `check`; a failing check throws a `FieldValidationError` naming the field.
    public func decode<T: Decodable>(
        _ type: T.Type, forKey key: Key, expected: String, where check: (T) -> Bool
    ) throws -> T {
        let value = try decode(T.self, forKey: key)
        guard check(value) else {
            throw FieldValidationError(codingPath, key, expected: expected, found: "\(value)")
        }
        return value
    }

    /// Decodes an optional value with a default, and checks it.
    public func decode<T: Decodable>(
        _ type: T.Type, forKey key: Key, default value: T, expected: String? = nil, where check: ((T) -> Bool)? = nil
    ) throws -> T {
        let decoded = try decodeIfPresent(T.self, forKey: key) ?? value
        if let check, !check(decoded) {
            throw FieldValidationError(codingPath, key, expected: expected ?? "a valid value", found: "\(decoded)")
        }
        return decoded
    }
}
