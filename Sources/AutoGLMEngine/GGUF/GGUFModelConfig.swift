// Transformer hyper-parameters read from GGUF metadata.

/// The hyper-parameters of a decoder-only transformer, read from `<architecture>.*` metadata keys
/// (`llama.*`, `glm4.*`, `chatglm.*`, ...).
public struct GGUFModelConfig: Codable, Sendable, Equatable {
    /// `general.architecture`, e.g. "llama", "glm4".
    public var architecture: String
    public var blockCount: Int
    public var embeddingLength: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var headCountKV: Int
    /// Per-head key/query size (`attention.key_length`, else embedding / heads).
    public var headDimension: Int
    /// Per-head value size (`attention.value_length`, else the key size).
    public var valueHeadDimension: Int
    public var contextLength: Int
    public var rmsNormEpsilon: Float
    public var ropeFreqBase: Float
    /// Rotated dimensions per head (`rope.dimension_count`, else the whole head).
    public var ropeDimensionCount: Int
    public var vocabularySize: Int
    /// True when the file has no `output.weight`, so the token embedding doubles as the output head.
    public var tiedOutput: Bool
    /// `general.file_type` (llama.cpp's ftype id), when present.
    public var fileType: Int?

    enum CodingKeys: String, CodingKey {
        case architecture
        case blockCount = "block_count"
        case embeddingLength = "embedding_length"
        case feedForwardLength = "feed_forward_length"
        case headCount = "head_count"
        case headCountKV = "head_count_kv"
        case headDimension = "head_dimension"
        case valueHeadDimension = "value_head_dimension"
        case contextLength = "context_length"
        case rmsNormEpsilon = "rms_norm_epsilon"
        case ropeFreqBase = "rope_freq_base"
        case ropeDimensionCount = "rope_dimension_count"
        case vocabularySize = "vocabulary_size"
        case tiedOutput = "tied_output"
        case fileType = "file_type"
    }

    /// Default RoPE base when the file does not say.
    public static let defaultRopeFreqBase: Float = 10_000

    /// Grouped-query factor: query heads per KV head.
    public var queryGroupSize: Int { headCount / headCountKV }
    /// Width of the concatenated query heads.
    public var queryWidth: Int { headCount * headDimension }
    /// Width of the concatenated key (and value) heads.
    public var kvWidth: Int { headCountKV * headDimension }

    /// Reads the configuration from `file`, throwing `GGUFError.missingKey` naming the absent key.
    public init(file: GGUFFile) throws(GGUFError) {
        let arch = try file.requireString("general.architecture")
        guard !arch.isEmpty else {
            throw .invalidValue(path: file.path, key: "general.architecture", reason: "empty")
        }
        func key(_ suffix: String) -> String { "\(arch).\(suffix)" }
        func positive(_ suffix: String) throws(GGUFError) -> Int {
            let k = key(suffix)
            let v = try GGUFModelConfig.uniformInt(file, k)
            guard let v else { throw .missingKey(path: file.path, key: k) }
            guard v > 0 else { throw .invalidValue(path: file.path, key: k, reason: "\(v), expected > 0") }
            return v
        }
        func optionalPositive(_ suffix: String) throws(GGUFError) -> Int? {
            let k = key(suffix)
            guard let v = try GGUFModelConfig.uniformInt(file, k) else { return nil }
            guard v > 0 else { throw .invalidValue(path: file.path, key: k, reason: "\(v), expected > 0") }
            return v
        }

        architecture = arch
        blockCount = try positive("block_count")
        embeddingLength = try positive("embedding_length")
        feedForwardLength = try positive("feed_forward_length")
        headCount = try positive("attention.head_count")
        headCountKV = try optionalPositive("attention.head_count_kv") ?? headCount
        guard headCount % headCountKV == 0 else {
            throw .invalidValue(path: file.path, key: key("attention.head_count_kv"),
                                reason: "\(headCountKV) does not divide head count \(headCount)")
        }
        if let keyLength = try optionalPositive("attention.key_length") {
            headDimension = keyLength
        } else {
            guard embeddingLength % headCount == 0 else {
                throw .invalidValue(path: file.path, key: key("attention.head_count"),
                                    reason: "\(headCount) does not divide embedding length \(embeddingLength) and attention.key_length is absent")
            }
            headDimension = embeddingLength / headCount
        }
        valueHeadDimension = try optionalPositive("attention.value_length") ?? headDimension
        contextLength = try positive("context_length")

        let epsKey = key("attention.layer_norm_rms_epsilon")
        guard let eps = try file.double(epsKey) else { throw .missingKey(path: file.path, key: epsKey) }
        guard eps > 0, eps < 1 else { throw .invalidValue(path: file.path, key: epsKey, reason: "\(eps), expected in (0, 1)") }
        rmsNormEpsilon = Float(eps)

        let baseKey = key("rope.freq_base")
        let base = try file.double(baseKey) ?? Double(GGUFModelConfig.defaultRopeFreqBase)
        guard base > 1 else { throw .invalidValue(path: file.path, key: baseKey, reason: "\(base), expected > 1") }
        ropeFreqBase = Float(base)

        ropeDimensionCount = try optionalPositive("rope.dimension_count") ?? headDimension
        guard ropeDimensionCount <= headDimension, ropeDimensionCount % 2 == 0 else {
            throw .invalidValue(path: file.path, key: key("rope.dimension_count"),
                                reason: "\(ropeDimensionCount), expected an even number ≤ head dimension \(headDimension)")
        }

        if let v = try optionalPositive("vocab_size") {
            vocabularySize = v
        } else if let tokens = file["tokenizer.ggml.tokens"]?.arrayValue, !tokens.isEmpty {
            vocabularySize = tokens.count
        } else if let embedding = file.tensor(named: "token_embd.weight"), embedding.dimensions.count == 2 {
            vocabularySize = embedding.dimensions[1]
        } else {
            throw .missingKey(path: file.path, key: key("vocab_size"))
        }

        tiedOutput = file.tensor(named: "output.weight") == nil
        fileType = try file.int("general.file_type")
    }

    /// Reads an integer key that some architectures store per layer as an array; a per-layer array must hold one
    /// value repeated.
    private static func uniformInt(_ file: GGUFFile, _ key: String) throws(GGUFError) -> Int? {
        guard let value = file[key] else { return nil }
        if let v = value.intValue { return v }
        if let values = value.intArray, let first = values.first {
            guard values.allSatisfy({ $0 == first }) else {
                throw .invalidValue(path: file.path, key: key, reason: "per-layer values differ; only uniform models are supported")
            }
            return first
        }
        throw .typeMismatch(path: file.path, key: key, expected: "integer", found: value.typeName)
    }
}
