// Reader for GGUF v2/v3 files: header, metadata, tensor directory, zero-copy tensor data.

/// The GGUF magic, "GGUF" read as a little-endian UInt32.
let ggufMagic: UInt32 = 0x4655_4747

/// One tensor's entry in the directory of a GGUF file, with its position already validated against the file.
public struct GGUFTensorInfo: Sendable, Equatable, CustomStringConvertible {
    /// Tensor name, e.g. "blk.0.attn_q.weight".
    public let name: String
    /// Shape, fastest-varying dimension first: `dimensions[0]` (ne0) is the length of one row.
    public let dimensions: [Int]
    /// Element type.
    public let type: GGMLType
    /// Absolute byte offset of the tensor's data in the file.
    public let offset: Int
    /// Size of the tensor's data in bytes.
    public let byteCount: Int

    init(name: String, dimensions: [Int], type: GGMLType, offset: Int, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.byteCount = byteCount
    }

    /// Total number of elements (product of the dimensions; validated not to overflow).
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Length of one row (ne0).
    public var rowLength: Int { dimensions[0] }
    /// Number of rows (product of the dimensions after the first).
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    /// Bytes per row.
    public var rowByteCount: Int { byteCount / max(rowCount, 1) }

    public var description: String {
        "\(name) \(type) [\(dimensions.map(String.init).joined(separator: ", "))] \(byteCount) B @ \(offset)"
    }
}

/// A parsed GGUF file. Metadata is decoded eagerly; tensor data stays in the read-only mapping and is handed out
/// as buffers pointing into it, valid while this object is alive.
public final class GGUFFile: Sendable {
    /// Versions this reader accepts. Version 1 (32-bit counts) is obsolete and rejected.
    public static let supportedVersions: [UInt32] = [2, 3]
    /// Alignment of tensor data when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// The most dimensions a tensor may have.
    public static let maxDimensions = 4
    /// How deeply arrays may nest inside arrays.
    static let maxArrayNesting = 8

    public let path: String
    public let version: UInt32
    /// The mapping that tensor data points into.
    public let mapping: MappedFile
    /// All metadata by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor directory in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of tensor data (from `general.alignment`, else 32).
    public let alignment: Int
    /// Absolute offset where the data section begins.
    public let dataSectionOffset: Int
    private let tensorIndex: [String: Int]

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws(GGUFError) {
        try self.init(mapping: MappedFile(path: path))
    }

    /// Parses a file that is already mapped (or held in memory).
    public init(mapping: MappedFile) throws(GGUFError) {
        self.mapping = mapping
        self.path = mapping.path
        var reader = ByteReader(bytes: mapping.bytes, path: mapping.path)

        let magicBytes = Array(mapping.bytes.prefix(4))
        let magic = try reader.readUInt32("magic")
        guard magic == ggufMagic else { throw .badMagic(path: path, found: magicBytes) }
        let version = try reader.readUInt32("version")
        guard GGUFFile.supportedVersions.contains(version) else {
            throw .unsupportedVersion(path: path, found: version, supported: GGUFFile.supportedVersions)
        }
        self.version = version

        let tensorCountOffset = reader.offset
        let tensorCount = try reader.readUInt64("tensor count")
        let kvCountOffset = reader.offset
        let kvCount = try reader.readUInt64("metadata key/value count")
        // Bound the counts by what the rest of the file could hold before allocating anything.
        // Smallest tensor entry: name length 8 + n_dims 4 + one dimension 8 + type 4 + offset 8.
        let tensorLimit = UInt64(reader.remaining / 32)
        guard tensorCount <= tensorLimit else {
            throw .countTooLarge(path: path, field: "tensor count", offset: tensorCountOffset,
                                 count: tensorCount, limit: tensorLimit)
        }
        // Smallest key/value: key length 8 + type 4 + a one-byte value.
        let kvLimit = UInt64(reader.remaining / 13)
        guard kvCount <= kvLimit else {
            throw .countTooLarge(path: path, field: "metadata key/value count", offset: kvCountOffset,
                                 count: kvCount, limit: kvLimit)
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        metadata.reserveCapacity(Int(kvCount))
        keys.reserveCapacity(Int(kvCount))
        for index in 0..<Int(kvCount) {
            let keyOffset = reader.offset
            let key = try reader.readString("key of metadata entry \(index)")
            guard metadata[key] == nil else { throw .duplicateKey(path: path, key: key, offset: keyOffset) }
            let typeOffset = reader.offset
            let rawType = try reader.readUInt32("value type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw .unknownValueType(path: path, field: "'\(key)'", offset: typeOffset, raw: rawType)
            }
            metadata[key] = try reader.readValue(type, key: key, depth: 0)
            keys.append(key)
        }
        self.metadata = metadata
        self.metadataKeys = keys

        var alignment = GGUFFile.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a & (a - 1) == 0, a <= 1 << 30 else {
                throw .invalidAlignment(path: path, found: "\(value) (\(value.typeName))")
            }
            alignment = a
        }
        self.alignment = alignment

        struct RawTensor {
            let name: String
            let dimensions: [Int]
            let type: GGMLType
            let relativeOffset: UInt64
            let byteCount: Int
        }
        var raw: [RawTensor] = []
        raw.reserveCapacity(Int(tensorCount))
        var index: [String: Int] = [:]
        index.reserveCapacity(Int(tensorCount))
        for t in 0..<Int(tensorCount) {
            let entryOffset = reader.offset
            let name = try reader.readString("name of tensor \(t)")
            guard index[name] == nil else { throw .duplicateTensor(path: path, name: name, offset: entryOffset) }
            let nDims = try reader.readUInt32("dimension count of tensor '\(name)'")
            guard nDims >= 1, nDims <= UInt32(GGUFFile.maxDimensions) else {
                throw .invalidTensorShape(path: path, tensor: name, offset: entryOffset,
                                          reason: "\(nDims) dimensions, expected 1...\(GGUFFile.maxDimensions)")
            }
            var dims: [Int] = []
            for d in 0..<Int(nDims) {
                let value = try reader.readUInt64("dimension \(d) of tensor '\(name)'")
                guard value > 0, value <= UInt64(Int.max) else {
                    throw .invalidTensorShape(path: path, tensor: name, offset: entryOffset,
                                              reason: "dimension \(d) is \(value), expected > 0")
                }
                dims.append(Int(value))
            }
            var elements = 1
            for dim in dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else {
                    throw .invalidTensorShape(path: path, tensor: name, offset: entryOffset,
                                              reason: "element count of \(dims) overflows")
                }
                elements = product
            }
            let typeOffset = reader.offset
            let rawType = try reader.readUInt32("type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unknownTensorType(path: path, tensor: name, offset: typeOffset, raw: rawType)
            }
            guard dims[0] % type.blockSize == 0 else {
                throw .invalidTensorShape(path: path, tensor: name, offset: entryOffset,
                                          reason: "row length \(dims[0]) is not a multiple of the \(type) block size \(type.blockSize)")
            }
            guard let byteCount = type.byteCount(dimensions: dims) else {
                throw .invalidTensorShape(path: path, tensor: name, offset: entryOffset,
                                          reason: "byte size of \(dims) in \(type) overflows")
            }
            let relativeOffset = try reader.readUInt64("data offset of tensor '\(name)'")
            index[name] = t
            raw.append(RawTensor(name: name, dimensions: dims, type: type,
                                 relativeOffset: relativeOffset, byteCount: byteCount))
        }

        // The data section starts at the next multiple of the alignment after the directory.
        let directoryEnd = reader.offset
        let dataStart = (directoryEnd + alignment - 1) / alignment * alignment
        self.dataSectionOffset = dataStart
        let fileSize = mapping.count
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(raw.count)
        for tensor in raw {
            guard tensor.relativeOffset % UInt64(alignment) == 0 else {
                throw .misalignedTensor(path: path, tensor: tensor.name, dataOffset: tensor.relativeOffset,
                                        alignment: alignment)
            }
            let absolute = UInt64(dataStart).addingReportingOverflow(tensor.relativeOffset)
            let end = absolute.partialValue.addingReportingOverflow(UInt64(tensor.byteCount))
            guard !absolute.overflow, !end.overflow, end.partialValue <= UInt64(fileSize) else {
                throw .tensorOutOfBounds(path: path, tensor: tensor.name,
                                         start: absolute.overflow ? UInt64.max : absolute.partialValue,
                                         byteCount: tensor.byteCount, fileSize: fileSize)
            }
            infos.append(GGUFTensorInfo(name: tensor.name, dimensions: tensor.dimensions, type: tensor.type,
                                        offset: Int(absolute.partialValue), byteCount: tensor.byteCount))
        }
        let byStart = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byStart, byStart.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw .tensorsOverlap(path: path, first: a.name, second: b.name)
        }
        self.tensors = infos
        self.tensorIndex = index
    }

    // MARK: Tensors

    /// The tensor called `name`, if present.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor called `name`, or `GGUFError.missingTensor`.
    public func requireTensor(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
        guard let info = tensor(named: name) else { throw .missingTensor(path: path, name: name) }
        return info
    }

    /// The bytes of a tensor of this file, pointing into the mapping (valid while this object lives).
    /// Infos are only made by the reader and were checked to lie inside their file; an info from another, larger
    /// file that does not fit this one yields an empty buffer rather than memory outside the mapping.
    public func data(for tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard tensor.offset >= 0, tensor.byteCount >= 0, tensor.offset <= mapping.count - tensor.byteCount else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    /// The bytes of the tensor called `name`.
    public func data(named name: String) throws(GGUFError) -> UnsafeRawBufferPointer {
        data(for: try requireTensor(name))
    }

    // MARK: Metadata

    public subscript(key: String) -> GGUFValue? { metadata[key] }

    /// All metadata in file order, in the form `GGUFWriter` takes.
    public var metadataEntries: [(key: String, value: GGUFValue)] {
        metadataKeys.compactMap { key in metadata[key].map { (key: key, value: $0) } }
    }

    /// The architecture named by `general.architecture`.
    public var architecture: String? { metadata["general.architecture"]?.stringValue }

    public func requireValue(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        return value
    }

    /// An integer value (any integer type), or nil when absent; throws when present with another type.
    public func int(_ key: String) throws(GGUFError) -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.intValue else {
            throw .typeMismatch(path: path, key: key, expected: "integer", found: value.typeName)
        }
        return v
    }

    public func requireInt(_ key: String) throws(GGUFError) -> Int {
        guard let v = try int(key) else { throw .missingKey(path: path, key: key) }
        return v
    }

    /// A number (float or integer), or nil when absent; throws when present with another type.
    public func double(_ key: String) throws(GGUFError) -> Double? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.doubleValue else {
            throw .typeMismatch(path: path, key: key, expected: "number", found: value.typeName)
        }
        return v
    }

    public func requireDouble(_ key: String) throws(GGUFError) -> Double {
        guard let v = try double(key) else { throw .missingKey(path: path, key: key) }
        return v
    }

    public func bool(_ key: String) throws(GGUFError) -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.boolValue else {
            throw .typeMismatch(path: path, key: key, expected: "bool", found: value.typeName)
        }
        return v
    }

    public func string(_ key: String) throws(GGUFError) -> String? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.stringValue else {
            throw .typeMismatch(path: path, key: key, expected: "string", found: value.typeName)
        }
        return v
    }

    public func requireString(_ key: String) throws(GGUFError) -> String {
        guard let v = try string(key) else { throw .missingKey(path: path, key: key) }
        return v
    }

    public func stringArray(_ key: String) throws(GGUFError) -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.stringArray else {
            throw .typeMismatch(path: path, key: key, expected: "array of string", found: value.typeName)
        }
        return v
    }

    public func requireStringArray(_ key: String) throws(GGUFError) -> [String] {
        guard let v = try stringArray(key) else { throw .missingKey(path: path, key: key) }
        return v
    }

    public func intArray(_ key: String) throws(GGUFError) -> [Int]? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.intArray else {
            throw .typeMismatch(path: path, key: key, expected: "array of integer", found: value.typeName)
        }
        return v
    }
}

/// Bounds-checked little-endian reads over the mapped bytes.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    private func need(_ count: Int, _ field: @autoclosure () -> String) throws(GGUFError) {
        guard count <= remaining else {
            throw .truncated(path: path, field: field(), offset: offset, needed: count, available: remaining)
        }
    }

    mutating func readInteger<T: FixedWidthInteger>(_ type: T.Type, _ field: @autoclosure () -> String) throws(GGUFError) -> T {
        try need(MemoryLayout<T>.size, field())
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    mutating func readUInt32(_ field: @autoclosure () -> String) throws(GGUFError) -> UInt32 {
        try readInteger(UInt32.self, field())
    }

    mutating func readUInt64(_ field: @autoclosure () -> String) throws(GGUFError) -> UInt64 {
        try readInteger(UInt64.self, field())
    }

    mutating func readString(_ field: @autoclosure () -> String) throws(GGUFError) -> String {
        let lengthOffset = offset
        let length = try readUInt64("length of \(field())")
        guard length <= UInt64(remaining) else {
            throw .truncated(path: path, field: "\(field()) (string of \(length) bytes)", offset: lengthOffset + 8,
                             needed: Int(clamping: length), available: remaining)
        }
        let count = Int(length)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        guard let string = String(validating: slice.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .invalidUTF8(path: path, field: field(), offset: offset)
        }
        offset += count
        return string
    }

    /// Reads one value; `key` names it in errors ("tokenizer.ggml.tokens[7]" for array elements).
    mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try readInteger(UInt8.self, "value of '\(key)'"))
        case .int8: return .int8(try readInteger(Int8.self, "value of '\(key)'"))
        case .uint16: return .uint16(try readInteger(UInt16.self, "value of '\(key)'"))
        case .int16: return .int16(try readInteger(Int16.self, "value of '\(key)'"))
        case .uint32: return .uint32(try readInteger(UInt32.self, "value of '\(key)'"))
        case .int32: return .int32(try readInteger(Int32.self, "value of '\(key)'"))
        case .uint64: return .uint64(try readInteger(UInt64.self, "value of '\(key)'"))
        case .int64: return .int64(try readInteger(Int64.self, "value of '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try readInteger(UInt32.self, "value of '\(key)'")))
        case .float64: return .float64(Double(bitPattern: try readInteger(UInt64.self, "value of '\(key)'")))
        case .bool:
            let at = offset
            let raw = try readInteger(UInt8.self, "value of '\(key)'")
            guard raw <= 1 else {
                throw .invalidValue(path: path, key: key, reason: "bool byte at \(at) is \(raw), expected 0 or 1")
            }
            return .bool(raw == 1)
        case .string:
            return .string(try readString("'\(key)'"))
        case .array:
            let typeOffset = offset
            let rawElementType = try readUInt32("element type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawElementType) else {
                throw .unknownValueType(path: path, field: "elements of '\(key)'", offset: typeOffset, raw: rawElementType)
            }
            if elementType == .array, depth + 1 >= GGUFFile.maxArrayNesting {
                throw .invalidValue(path: path, key: key,
                                    reason: "arrays nested deeper than \(GGUFFile.maxArrayNesting) levels")
            }
            let countOffset = offset
            let count = try readUInt64("element count of '\(key)'")
            let limit = UInt64(remaining / elementType.minimumByteCount)
            guard count <= limit else {
                throw .countTooLarge(path: path, field: "element count of '\(key)'", offset: countOffset,
                                     count: count, limit: limit)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            let indexed = elementType == .string || elementType == .array
            for i in 0..<Int(count) {
                values.append(try readValue(elementType, key: indexed ? "\(key)[\(i)]" : key, depth: depth + 1))
            }
            return .array(elementType, values)
        }
    }
}
