import Foundation

extension PackedFormat {
    /// The engine format of a GGUF tensor type, nil for types the engine does not execute.
    public init?(ggml type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .q8_0: self = .q8_0
        case .q4_0: self = .q4_0
        case .q4_1: self = .q4_1
        default: return nil
        }
    }

    /// The GGUF tensor type with this layout, nil for engine-only formats (int8 per channel, int4-gN).
    public var ggmlType: GGMLType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .int8, .int4g32, .int4g64, .int4g128: return nil
        }
    }
}

extension GGUFFile: TensorSource {
    public func sourceTensor(named name: String) throws -> SourceTensor? {
        guard let info = tensor(named: name) else { return nil }
        guard let format = PackedFormat(ggml: info.type) else {
            throw ModelError.unsupportedTensorType(name: name, type: info.type.description)
        }
        let bytes = data(for: info)
        guard let base = bytes.baseAddress else {
            throw ModelError.tensorShape(name: name, expected: info.dimensions, got: [])
        }
        return SourceTensor(name: name, dimensions: info.dimensions, format: format, data: base,
                            byteCount: bytes.count, owner: self)
    }

    public var sourceTensorNames: [String] { tensors.map(\.name) }
}

extension DecoderConfig {
    /// Hyperparameters from a GGUF file's metadata. Llama, GLM-4 and ChatGLM files all rotate adjacent pairs
    /// (GGUF llama files store Q/K rows permuted for it).
    public init(gguf file: GGUFFile) throws {
        let m = try GGUFModelConfig(file: file)
        self.init(architecture: m.architecture, layers: m.blockCount, hidden: m.embeddingLength, heads: m.headCount,
                  kvHeads: m.headCountKV, headDim: m.headDimension, ffn: m.feedForwardLength,
                  vocab: m.vocabularySize, rotaryDims: m.ropeDimensionCount, ropeTheta: Double(m.ropeFreqBase),
                  ropeStyle: .interleaved, normEpsilon: Double(m.rmsNormEpsilon), contextLength: m.contextLength)
        if let embd = file.tensor(named: "token_embd.weight"), embd.dimensions.count == 2 {
            vocab = embd.dimensions[1]
        }
    }
}

extension DecoderModel {
    /// Loads a model from a GGUF file with a format policy and an activation precision for prefill.
    public static func load(gguf file: GGUFFile, policy: WeightFormatPolicy = .checkpoint,
                            activations: ActivationPrecision = .float32) throws -> DecoderModel {
        try load(config: try DecoderConfig(gguf: file), source: file, policy: policy, activations: activations)
    }
}
