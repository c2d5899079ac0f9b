// Errors raised while mapping, reading, interpreting or writing GGUF files.

/// Everything that can go wrong with a GGUF file. Each case names the file and, where it applies, the field,
/// what was expected, what was found and the byte offset.
public enum GGUFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be opened or inspected (`reason` is the system's message).
    case cannotOpen(path: String, reason: String)
    /// The file could not be memory-mapped.
    case cannotMap(path: String, reason: String)
    /// The file ends before `field` could be read.
    case truncated(path: String, field: String, offset: Int, needed: Int, available: Int)
    /// The first four bytes are not "GGUF".
    case badMagic(path: String, found: [UInt8])
    /// The version is not one this reader understands.
    case unsupportedVersion(path: String, found: UInt32, supported: [UInt32])
    /// A count is larger than the rest of the file could possibly hold.
    case countTooLarge(path: String, field: String, offset: Int, count: UInt64, limit: UInt64)
    /// A metadata value type id is not defined by the format.
    case unknownValueType(path: String, field: String, offset: Int, raw: UInt32)
    /// A string is not valid UTF-8.
    case invalidUTF8(path: String, field: String, offset: Int)
    /// The same metadata key appears twice.
    case duplicateKey(path: String, key: String, offset: Int)
    /// The same tensor name appears twice.
    case duplicateTensor(path: String, name: String, offset: Int)
    /// `general.alignment` is not a positive power of two (or has the wrong type).
    case invalidAlignment(path: String, found: String)
    /// A tensor's shape is unusable (too many dimensions, zero or negative sizes, overflow, partial blocks).
    case invalidTensorShape(path: String, tensor: String, offset: Int, reason: String)
    /// A tensor's type id is not a known element type.
    case unknownTensorType(path: String, tensor: String, offset: Int, raw: UInt32)
    /// A tensor's data offset is not a multiple of the file's alignment.
    case misalignedTensor(path: String, tensor: String, dataOffset: UInt64, alignment: Int)
    /// A tensor's data extends past the end of the file.
    case tensorOutOfBounds(path: String, tensor: String, start: UInt64, byteCount: Int, fileSize: Int)
    /// Two tensors' data ranges overlap.
    case tensorsOverlap(path: String, first: String, second: String)
    /// A metadata key the caller needs is absent.
    case missingKey(path: String, key: String)
    /// A metadata value has a different type than the caller needs.
    case typeMismatch(path: String, key: String, expected: String, found: String)
    /// A metadata value has the right type but an unusable value.
    case invalidValue(path: String, key: String, reason: String)
    /// A tensor the caller needs is absent.
    case missingTensor(path: String, name: String)
    /// Writing failed (`reason` names what and why).
    case writeFailed(path: String, reason: String)
    /// The writer was given inconsistent input (sizes, names, counts).
    case invalidWriterInput(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "GGUF \(path): cannot open file: \(reason)"
        case let .cannotMap(path, reason):
            return "GGUF \(path): cannot memory-map file: \(reason)"
        case let .truncated(path, field, offset, needed, available):
            return "GGUF \(path): file truncated reading \(field) at byte \(offset): needs \(needed) bytes, \(available) left"
        case let .badMagic(path, found):
            let hex = found.map { byte -> String in
                let digits = String(byte, radix: 16, uppercase: true)
                return digits.count == 1 ? "0" + digits : digits
            }.joined(separator: " ")
            return "GGUF \(path): bad magic: expected \"GGUF\" (47 47 55 46), found \(hex)"
        case let .unsupportedVersion(path, found, supported):
            let list = supported.map(String.init).joined(separator: ", ")
            let hint = found > 0xFFFF && found.byteSwapped <= 0xFFFF ? " (a big-endian file?)" : ""
            return "GGUF \(path): unsupported version \(found)\(hint): expected one of \(list)"
        case let .countTooLarge(path, field, offset, count, limit):
            return "GGUF \(path): \(field) \(count) at byte \(offset) is impossible: the rest of the file holds at most \(limit) (file truncated or corrupt)"
        case let .unknownValueType(path, field, offset, raw):
            return "GGUF \(path): unknown value type \(raw) for \(field) at byte \(offset): expected 0...12"
        case let .invalidUTF8(path, field, offset):
            return "GGUF \(path): \(field) at byte \(offset) is not valid UTF-8"
        case let .duplicateKey(path, key, offset):
            return "GGUF \(path): duplicate metadata key '\(key)' at byte \(offset)"
        case let .duplicateTensor(path, name, offset):
            return "GGUF \(path): duplicate tensor name '\(name)' at byte \(offset)"
        case let .invalidAlignment(path, found):
            return "GGUF \(path): general.alignment must be a positive power of two, found \(found)"
        case let .invalidTensorShape(path, tensor, offset, reason):
            return "GGUF \(path): tensor '\(tensor)' at byte \(offset) has an invalid shape: \(reason)"
        case let .unknownTensorType(path, tensor, offset, raw):
            return "GGUF \(path): tensor '\(tensor)' at byte \(offset) has unknown tensor type \(raw)"
        case let .misalignedTensor(path, tensor, dataOffset, alignment):
            return "GGUF \(path): tensor '\(tensor)' data offset \(dataOffset) is misaligned: expected a multiple of \(alignment)"
        case let .tensorOutOfBounds(path, tensor, start, byteCount, fileSize):
            return "GGUF \(path): tensor '\(tensor)' data (\(byteCount) bytes at byte \(start)) extends past end of file (\(fileSize) bytes)"
        case let .tensorsOverlap(path, first, second):
            return "GGUF \(path): tensors '\(first)' and '\(second)' overlap in the data section"
        case let .missingKey(path, key):
            return "GGUF \(path): missing metadata key '\(key)'"
        case let .typeMismatch(path, key, expected, found):
            return "GGUF \(path): metadata key '\(key)' has type \(found), expected \(expected)"
        case let .invalidValue(path, key, reason):
            return "GGUF \(path): metadata key '\(key)' is invalid: \(reason)"
        case let .missingTensor(path, name):
            return "GGUF \(path): missing tensor '\(name)'"
        case let .writeFailed(path, reason):
            return "GGUF \(path): write failed: \(reason)"
        case let .invalidWriterInput(path, reason):
            return "GGUF \(path): cannot write: \(reason)"
        }
    }
}
