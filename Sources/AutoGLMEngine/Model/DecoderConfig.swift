import Foundation

/// Hyperparameters of a decoder-only transformer, as the architectures need them.
public struct DecoderConfig: Sendable, Equatable {
    /// GGUF architecture name (`llama`, `glm4`, `chatglm`).
    public var architecture: String
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffn: Int
    public var vocab: Int
    /// Dimensions of each head that rotate (≤ headDim, even).
    public var rotaryDims: Int
    public var ropeTheta: Double
    public var ropeStyle: RoPEStyle
    public var normEpsilon: Double
    /// Training context length (an upper bound for the KV cache).
    public var contextLength: Int

    public init(architecture: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int? = nil,
                ffn: Int, vocab: Int, rotaryDims: Int? = nil, ropeTheta: Double = 10000,
                ropeStyle: RoPEStyle = .interleaved, normEpsilon: Double = 1e-5, contextLength: Int = 2048) {
        self.architecture = architecture
        self.layers = layers; self.hidden = hidden; self.heads = heads; self.kvHeads = kvHeads
        let hd = headDim ?? (heads > 0 ? hidden / heads : 0)
        self.headDim = hd
        self.ffn = ffn; self.vocab = vocab
        self.rotaryDims = rotaryDims ?? hd
        self.ropeTheta = ropeTheta; self.ropeStyle = ropeStyle; self.normEpsilon = normEpsilon
        self.contextLength = contextLength
    }

    public var queryWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }

    /// Throws if the numbers cannot describe a working model.
    public func validate() throws {
        func check(_ ok: Bool, _ name: String, _ expected: String, _ got: Int) throws {
            if !ok { throw ModelError.invalidHyperparameter(name: name, expected: expected, got: "\(got)") }
        }
        try check(layers > 0, "block_count", "a positive layer count", layers)
        try check(hidden > 0, "embedding_length", "a positive hidden size", hidden)
        try check(heads > 0, "attention.head_count", "a positive head count", heads)
        try check(kvHeads > 0 && heads % kvHeads == 0, "attention.head_count_kv",
                  "a positive divisor of the head count \(heads)", kvHeads)
        try check(headDim > 0 && headDim % 2 == 0, "head dimension", "a positive even number", headDim)
        try check(ffn > 0, "feed_forward_length", "a positive FFN size", ffn)
        try check(vocab > 0, "vocabulary size", "a positive count", vocab)
        try check(rotaryDims >= 0 && rotaryDims <= headDim && rotaryDims % 2 == 0, "rope.dimension_count",
                  "an even count ≤ head dimension \(headDim)", rotaryDims)
        try check(contextLength > 0, "context_length", "a positive length", contextLength)
        if !(ropeTheta > 0) || !(normEpsilon > 0) {
            throw ModelError.invalidHyperparameter(name: "rope.freq_base / layer_norm_rms_epsilon",
                                                   expected: "positive values", got: "\(ropeTheta), \(normEpsilon)")
        }
    }
}
