import Foundation

/// Rewrites a GGUF checkpoint with its weight matrices in another GGUF type, keeping metadata and tokenizer.
/// One-dimensional tensors (norms, biases) stay as stored; matrices whose rows are not a whole number of blocks
/// of the target type keep their type too.
public enum CheckpointConverter {
    /// GGUF types a checkpoint can be converted to.
    public static let targets: [PackedFormat] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1]

    /// llama.cpp's `general.file_type` id for a checkpoint mostly in `format`.
    public static func fileType(_ format: PackedFormat) -> UInt32? {
        switch format {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .bf16: return 32
        default: return nil
        }
    }

    public struct Summary: Sendable, Equatable {
        public var convertedTensors: Int
        public var keptTensors: Int
        public var bytesWritten: Int
    }

    /// Converts `input` into `output`, matrices to `format`.
    @discardableResult
    public static func convert(_ input: GGUFFile, to format: PackedFormat, output: String) throws -> Summary {
        guard let targetType = format.ggmlType, let fileType = fileType(format) else {
            throw ModelError.unsupportedPlanFormat(tensor: "*", format: format.rawValue,
                                                   reason: "GGUF has no type for it (targets: \(targets.map(\.rawValue).joined(separator: ", ")))")
        }
        var descriptors: [GGUFTensorDescriptor] = []
        var convert: [Bool] = []
        for info in input.tensors {
            let isMatrix = info.dimensions.count >= 2
            let ok = isMatrix && format.supports(columns: info.rowLength) && PackedFormat(ggml: info.type) != nil
            convert.append(ok && info.type != targetType)
            descriptors.append(GGUFTensorDescriptor(name: info.name, dimensions: info.dimensions,
                                                    type: ok ? targetType : info.type))
        }
        var metadata: [(key: String, value: GGUFValue)] = []
        for key in input.metadataKeys {
            guard let value = input.metadata[key] else { continue }
            metadata.append((key: key, value: key == "general.file_type" ? .uint32(fileType) : value))
        }
        if input.metadata["general.file_type"] == nil { metadata.append((key: "general.file_type", value: .uint32(fileType))) }
        var written = 0
        try GGUFWriter.write(to: output, metadata: metadata, tensors: descriptors, alignment: input.alignment) { i, sink in
            let info = input.tensors[i]
            let bytes = input.data(for: info)
            if convert[i], let source = try input.sourceTensor(named: info.name) {
                let converted = try WeightLoader.convert(try source.matrix(), to: format)
                try sink.write(UnsafeRawBufferPointer(start: converted.data, count: converted.byteCount))
                written += converted.byteCount
            } else {
                try sink.write(bytes)
                written += bytes.count
            }
        }
        return Summary(convertedTensors: convert.filter { $0 }.count, keptTensors: convert.filter { !$0 }.count,
                       bytesWritten: written)
    }
}
