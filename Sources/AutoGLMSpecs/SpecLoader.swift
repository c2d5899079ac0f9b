import Foundation

/// Reads typed specification files and turns every decoding failure into a `SpecError` that names the file and field.
public enum SpecLoader {
    /// Decodes `T` from the JSON file at `path`.
    public static func load<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SpecError.unreadable(file: path, reason: (error as NSError).localizedDescription)
        }
        return try decode(T.self, from: data, file: path)
    }

    /// Decodes `T` from JSON bytes; `file` names the source in errors.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
            throw SpecError.invalidJSON(file: file, reason: reason)
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as FieldValidationError {
            throw SpecError.invalidField(file: file, field: error.field, expected: error.expected, found: error.found)
        } catch let error as UnknownFieldError {
            throw SpecError.unknownField(file: file, field: error.field, allowed: error.allowed)
        } catch let error as DecodingError {
            throw translate(error, file: file)
        }
    }

    /// Encodes a value as deterministic, human-readable JSON (sorted keys, two-space indent, trailing newline).
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(0x0A)
        return data
    }

    static func translate(_ error: DecodingError, file: String) -> SpecError {
        switch error {
        case let .keyNotFound(key, context):
            return .invalidField(
                file: file, field: FieldPath.render(context.codingPath + [key]), expected: "a value (field is required)",
                found: "nothing")
        case let .typeMismatch(type, context):
            return .invalidField(
                file: file, field: FieldPath.render(context.codingPath), expected: typeName(type),
                found: context.debugDescription)
        case let .valueNotFound(type, context):
            return .invalidField(
                file: file, field: FieldPath.render(context.codingPath), expected: typeName(type), found: "null")
        case let .dataCorrupted(context):
            return .invalidField(
                file: file, field: FieldPath.render(context.codingPath), expected: "a valid value",
                found: context.debugDescription)
        @unknown default:
            return .invalidJSON(file: file, reason: "\(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int64.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        default: return "\(type)"
        }
    }
}
