// Streaming writer for GGUF v3 files.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A tensor to be written: its name, shape (ne0 first) and element type. Its data is supplied later, in order.
public struct GGUFTensorDescriptor: Sendable, Equatable {
    public var name: String
    public var dimensions: [Int]
    public var type: GGMLType

    public init(name: String, dimensions: [Int], type: GGMLType) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
    }

    /// Bytes the tensor's data must have; nil when the shape does not fit the type (partial block, overflow).
    public var byteCount: Int? {
        guard !dimensions.isEmpty, dimensions.count <= GGUFFile.maxDimensions,
              dimensions.allSatisfy({ $0 > 0 }) else { return nil }
        return type.byteCount(dimensions: dimensions)
    }
}

/// Receives one tensor's bytes during `GGUFWriter.write`. Bytes may arrive in any number of pieces; together they
/// must make exactly the tensor's size.
public final class GGUFTensorSink {
    fileprivate let output: BufferedFileOutput
    /// The tensor being written.
    public let tensor: GGUFTensorDescriptor
    /// Its size in bytes.
    public let expectedByteCount: Int
    /// Bytes received so far.
    public private(set) var writtenByteCount = 0

    fileprivate init(output: BufferedFileOutput, tensor: GGUFTensorDescriptor, expectedByteCount: Int) {
        self.output = output
        self.tensor = tensor
        self.expectedByteCount = expectedByteCount
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) {
        guard bytes.count <= expectedByteCount - writtenByteCount else {
            throw .invalidWriterInput(path: output.path, reason: "tensor '\(tensor.name)' got more than its \(expectedByteCount) bytes")
        }
        try output.append(bytes)
        writtenByteCount += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws(GGUFError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(GGUFError) in try write(raw) } }
        try result.get()
    }

    /// Writes the elements' in-memory bytes (little-endian on the supported hosts), e.g. `[Float]` for F32.
    public func write<T: BitwiseCopyable>(elements: [T]) throws(GGUFError) {
        let result = elements.withUnsafeBytes { raw in Result { () throws(GGUFError) in try write(raw) } }
        try result.get()
    }
}

/// Writes GGUF v3 files. Metadata and the tensor directory are written first; then each tensor's data is requested
/// in order and streamed to disk, so files far larger than memory can be produced. The file is written next to
/// its destination and renamed into place only when complete.
public enum GGUFWriter {
    public static let version: UInt32 = 3

    /// Writes a GGUF file.
    ///
    /// - Parameters:
    ///   - metadata: key/value pairs in the order they are to appear. `general.alignment` is added when `alignment`
    ///     is not 32 and the key is absent; if present it must equal `alignment`.
    ///   - tensors: the tensor directory, in data order.
    ///   - tensorData: called once per tensor, in order, with its index and a sink that must receive exactly the
    ///     tensor's bytes.
    public static func write(
        to path: String,
        metadata: [(key: String, value: GGUFValue)],
        tensors: [GGUFTensorDescriptor],
        alignment: Int = GGUFFile.defaultAlignment,
        tensorData: (_ index: Int, _ sink: GGUFTensorSink) throws -> Void
    ) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw GGUFError.invalidWriterInput(path: path, reason: "alignment \(alignment) is not a positive power of two")
        }
        var entries = metadata
        var seenKeys = Set<String>()
        for (key, value) in entries {
            guard seenKeys.insert(key).inserted else {
                throw GGUFError.invalidWriterInput(path: path, reason: "duplicate metadata key '\(key)'")
            }
            try checkArrayTypes(value, key: key, path: path)
        }
        if let declared = entries.first(where: { $0.key == "general.alignment" })?.value {
            guard declared.intValue == alignment else {
                throw GGUFError.invalidWriterInput(path: path, reason: "general.alignment is \(declared) but alignment is \(alignment)")
            }
        } else if alignment != GGUFFile.defaultAlignment {
            entries.append((key: "general.alignment", value: .uint32(UInt32(alignment))))
        }

        var sizes: [Int] = []
        var offsets: [Int] = []
        var names = Set<String>()
        var running = 0
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else {
                throw GGUFError.invalidWriterInput(path: path, reason: "duplicate tensor name '\(tensor.name)'")
            }
            guard let size = tensor.byteCount else {
                throw GGUFError.invalidWriterInput(
                    path: path, reason: "tensor '\(tensor.name)' shape \(tensor.dimensions) does not fit type \(tensor.type)")
            }
            sizes.append(size)
            offsets.append(running)
            running += padded(size, to: alignment)
        }

        var header: [UInt8] = []
        appendInteger(ggufMagic, to: &header)
        appendInteger(version, to: &header)
        appendInteger(UInt64(tensors.count), to: &header)
        appendInteger(UInt64(entries.count), to: &header)
        for (key, value) in entries {
            appendString(key, to: &header)
            appendInteger(value.type.rawValue, to: &header)
            appendValue(value, to: &header)
        }
        for (tensor, offset) in zip(tensors, offsets) {
            appendString(tensor.name, to: &header)
            appendInteger(UInt32(tensor.dimensions.count), to: &header)
            for dim in tensor.dimensions { appendInteger(UInt64(dim), to: &header) }
            appendInteger(tensor.type.rawValue, to: &header)
            appendInteger(UInt64(offset), to: &header)
        }
        header.append(contentsOf: repeatElement(0, count: padded(header.count, to: alignment) - header.count))

        let partialPath = path + ".partial"
        let output = try BufferedFileOutput(path: partialPath)
        do {
            try output.append(header)
            for (index, tensor) in tensors.enumerated() {
                let sink = GGUFTensorSink(output: output, tensor: tensor, expectedByteCount: sizes[index])
                try tensorData(index, sink)
                guard sink.writtenByteCount == sizes[index] else {
                    throw GGUFError.invalidWriterInput(
                        path: path, reason: "tensor '\(tensor.name)' got \(sink.writtenByteCount) bytes, expected \(sizes[index])")
                }
                try output.appendZeros(padded(sizes[index], to: alignment) - sizes[index])
            }
            try output.finish()
        } catch {
            output.closeQuietly()
            unlink(partialPath)
            throw error
        }
        guard rename(partialPath, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partialPath)
            throw GGUFError.writeFailed(path: path, reason: "rename from \(partialPath): \(reason)")
        }
    }

    /// Writes a GGUF file whose tensor data is already in memory.
    public static func write(
        to path: String,
        metadata: [(key: String, value: GGUFValue)],
        tensors: [(descriptor: GGUFTensorDescriptor, bytes: [UInt8])],
        alignment: Int = GGUFFile.defaultAlignment
    ) throws {
        try write(to: path, metadata: metadata, tensors: tensors.map(\.descriptor), alignment: alignment) { index, sink in
            try sink.write(tensors[index].bytes)
        }
    }

    static func padded(_ value: Int, to alignment: Int) -> Int {
        (value + alignment - 1) / alignment * alignment
    }

    private static func checkArrayTypes(_ value: GGUFValue, key: String, path: String) throws(GGUFError) {
        guard case let .array(elementType, values) = value else { return }
        for element in values {
            guard element.type == elementType else {
                throw .invalidWriterInput(
                    path: path, reason: "array '\(key)' declared as \(elementType) holds a \(element.typeName)")
            }
            try checkArrayTypes(element, key: key, path: path)
        }
    }

    private static func appendInteger<T: FixedWidthInteger>(_ value: T, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private static func appendString(_ string: String, to buffer: inout [UInt8]) {
        let utf8 = Array(string.utf8)
        appendInteger(UInt64(utf8.count), to: &buffer)
        buffer.append(contentsOf: utf8)
    }

    private static func appendValue(_ value: GGUFValue, to buffer: inout [UInt8]) {
        switch value {
        case let .uint8(v): appendInteger(v, to: &buffer)
        case let .int8(v): appendInteger(v, to: &buffer)
        case let .uint16(v): appendInteger(v, to: &buffer)
        case let .int16(v): appendInteger(v, to: &buffer)
        case let .uint32(v): appendInteger(v, to: &buffer)
        case let .int32(v): appendInteger(v, to: &buffer)
        case let .uint64(v): appendInteger(v, to: &buffer)
        case let .int64(v): appendInteger(v, to: &buffer)
        case let .float32(v): appendInteger(v.bitPattern, to: &buffer)
        case let .float64(v): appendInteger(v.bitPattern, to: &buffer)
        case let .bool(v): buffer.append(v ? 1 : 0)
        case let .string(v): appendString(v, to: &buffer)
        case let .array(elementType, values):
            appendInteger(elementType.rawValue, to: &buffer)
            appendInteger(UInt64(values.count), to: &buffer)
            for element in values { appendValue(element, to: &buffer) }
        }
    }
}

/// A write-only file with a large buffer in front of it.
final class BufferedFileOutput {
    let path: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var used = 0

    init(path: String, capacity: Int = 4 << 20) throws(GGUFError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        if fd >= 0 { close(fd) }
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) {
        var source = bytes
        while !source.isEmpty {
            if used == buffer.count { try flush() }
            // Large pieces bypass the buffer once it is empty.
            if used == 0 && source.count >= buffer.count {
                try writeAll(source)
                return
            }
            let n = min(source.count, buffer.count - used)
            UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<n]))
            used += n
            source = UnsafeRawBufferPointer(rebasing: source[n...])
        }
    }

    func append(_ bytes: [UInt8]) throws(GGUFError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(GGUFError) in try append(raw) } }
        try result.get()
    }

    func appendZeros(_ count: Int) throws(GGUFError) {
        guard count > 0 else { return }
        try append([UInt8](repeating: 0, count: count))
    }

    func flush() throws(GGUFError) {
        guard used > 0 else { return }
        try writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
        used = 0
    }

    func finish() throws(GGUFError) {
        try flush()
        let result = close(fd)
        fd = -1
        guard result == 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    }

    func closeQuietly() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(GGUFError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = write(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
    }
}
