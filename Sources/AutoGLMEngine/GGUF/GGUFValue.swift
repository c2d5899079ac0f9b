// Typed metadata values of a GGUF file.

/// The value type ids of GGUF metadata.
public enum GGUFValueType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case uint8 = 0
    case int8 = 1
    case uint16 = 2
    case int16 = 3
    case uint32 = 4
    case int32 = 5
    case float32 = 6
    case bool = 7
    case string = 8
    case array = 9
    case uint64 = 10
    case int64 = 11
    case float64 = 12

    public var description: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }

    /// Encoded size of a scalar of this type; nil for strings and arrays, whose size depends on the content.
    public var fixedByteCount: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }

    /// The fewest bytes one value of this type can take in a file (used to bound counts before allocating).
    var minimumByteCount: Int {
        switch self {
        case .string: 8            // length prefix of an empty string
        case .array: 12            // element type + count of an empty array
        default: fixedByteCount ?? 1
        }
    }
}

/// One metadata value. Arrays keep their declared element type so that empty arrays round-trip exactly.
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    public static func strings(_ values: [String]) -> GGUFValue { .array(.string, values.map { .string($0) }) }
    /// An array of int32 (e.g. `tokenizer.ggml.token_type`).
    public static func int32s(_ values: [Int32]) -> GGUFValue { .array(.int32, values.map { .int32($0) }) }
    /// An array of float32.
    public static func float32s(_ values: [Float]) -> GGUFValue { .array(.float32, values.map { .float32($0) }) }

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// The type as a readable word, with the element type for arrays ("array of string").
    public var typeName: String {
        if case let .array(elementType, _) = self { return "array of \(elementType)" }
        return type.description
    }

    /// Any integer value that fits in `Int` (bool is not an integer here).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    /// Float values, and integers (converted).
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: intValue.map(Double.init)
        }
    }

    public var boolValue: Bool? {
        if case let .bool(v) = self { return v }
        return nil
    }

    public var stringValue: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(_, values) = self { return values }
        return nil
    }

    /// An array whose every element is a string.
    public var stringArray: [String]? {
        guard case let .array(_, values) = self else { return nil }
        var result: [String] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard case let .string(s) = value else { return nil }
            result.append(s)
        }
        return result
    }

    /// An array whose every element is an integer that fits in `Int`.
    public var intArray: [Int]? {
        guard case let .array(_, values) = self else { return nil }
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard let v = value.intValue else { return nil }
            result.append(v)
        }
        return result
    }

    /// An array whose every element is a number (floats or integers).
    public var doubleArray: [Double]? {
        guard case let .array(_, values) = self else { return nil }
        var result: [Double] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard let v = value.doubleValue else { return nil }
            result.append(v)
        }
        return result
    }

    public var description: String {
        switch self {
        case let .uint8(v): "\(v)"
        case let .int8(v): "\(v)"
        case let .uint16(v): "\(v)"
        case let .int16(v): "\(v)"
        case let .uint32(v): "\(v)"
        case let .int32(v): "\(v)"
        case let .float32(v): "\(v)"
        case let .bool(v): "\(v)"
        case let .string(v): "\"\(v)\""
        case let .uint64(v): "\(v)"
        case let .int64(v): "\(v)"
        case let .float64(v): "\(v)"
        case let .array(type, values):
            values.count <= 8
                ? "[" + values.map(\.description).joined(separator: ", ") + "]"
                : "[\(values.count) × \(type)]"
        }
    }
}
