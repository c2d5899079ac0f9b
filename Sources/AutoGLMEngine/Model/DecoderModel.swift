import Foundation

/// A loaded decoder-only language model: embedding, layers, final norm and output head.
public final class DecoderModel: @unchecked Sendable {
    public let config: DecoderConfig
    public let embedding: Embedding
    public let blocks: [DecoderBlock]
    public let outputNorm: RMSNorm
    /// The output head (vocab, hidden); the embedding table itself when tied.
    public let head: Linear
    public let tiedHead: Bool
    /// Resident weight bytes per manifest module ("embedding", "decoder", "head").
    public let residentBytesByModule: [String: Int]
    /// The packed format of every matrix, by tensor name.
    public let tensorFormats: [String: PackedFormat]
    /// Planned formats the engine ran another format in place of (planned → executed).
    public internal(set) var formatSubstitutions: [String: PackedFormat] = [:]
    /// How the matrices multiply activations in prefill (`ActivationPrecision`).
    public internal(set) var activations: ActivationPrecision = .float32

    public init(config: DecoderConfig, embedding: Embedding, blocks: [DecoderBlock], outputNorm: RMSNorm,
                head: Linear, tiedHead: Bool, residentBytesByModule: [String: Int],
                tensorFormats: [String: PackedFormat]) {
        self.config = config; self.embedding = embedding; self.blocks = blocks; self.outputNorm = outputNorm
        self.head = head; self.tiedHead = tiedHead; self.residentBytesByModule = residentBytesByModule
        self.tensorFormats = tensorFormats
    }

    /// Total resident weight bytes.
    public var weightBytes: Int { residentBytesByModule.values.reduce(0, +) }

    /// How prefill actually multiplies activations here: int8 when asked for, on a CPU with the integer kernels,
    /// with quantised matrices to run them on; otherwise f32.
    public var prefillActivations: ActivationPrecision {
        MatrixKernels.effectiveActivations(activations) == .int8 && tensorFormats.values.contains(where: \.isQuantized)
            ? .int8 : .float32
    }

    var usesFusedQKV: Bool {
        if case .fused = blocks.first?.attention.projections { return true }
        return false
    }

    var usesFusedGateUp: Bool {
        if case .fused = blocks.first?.feedForward.gateUp { return true }
        return false
    }

    /// Loads a model of a registered architecture with a format policy.
    public static func load(config: DecoderConfig, source: TensorSource, policy: WeightFormatPolicy = .checkpoint,
                            activations: ActivationPrecision = .float32) throws -> DecoderModel {
        try config.validate()
        guard let build = ArchitectureRegistry.constructor(for: config.architecture) else {
            throw ModelError.unsupportedArchitecture(name: config.architecture, known: ArchitectureRegistry.names)
        }
        let loader = WeightLoader(source: source, policy: policy, activations: activations)
        let model = try build(config, loader)
        model.formatSubstitutions = loader.substitutions
        model.activations = activations
        return model
    }

    /// Builds a decoder of `c.layers` pre-norm blocks from the parts every architecture shares (the embedding, each
    /// block's `attn_norm` and `ffn_norm`, the output norm and head); `layer` loads one block's attention and
    /// feed-forward from its tensor-name prefix (`blk.N.`).
    static func assemble(_ c: DecoderConfig, _ w: WeightLoader,
                         layer: (_ prefix: String) throws -> (SelfAttention, FeedForward)) throws -> DecoderModel {
        let embedding = try loadEmbedding(w, config: c)
        let blocks = try (0..<c.layers).map { i -> DecoderBlock in
            let p = "blk.\(i)."
            let (attention, feedForward) = try layer(p)
            return DecoderBlock(attentionNorm: try norm(w, p + "attn_norm.weight", config: c), attention: attention,
                                ffnNorm: try norm(w, p + "ffn_norm.weight", config: c), feedForward: feedForward)
        }
        let outputNorm = try norm(w, "output_norm.weight", config: c)
        let (head, tied) = try loadHead(w, config: c, embedding: embedding)
        return DecoderModel(config: c, embedding: Embedding(table: embedding), blocks: blocks, outputNorm: outputNorm,
                            head: head, tiedHead: tied, residentBytesByModule: w.residentBytesByModule,
                            tensorFormats: w.formats)
    }

    /// Loads the output head: `output.weight` when present, else the embedding table (tied). A tied head whose
    /// policy format differs from the embedding's gets its own converted copy.
    static func loadHead(_ loader: WeightLoader, config c: DecoderConfig,
                         embedding: PackedMatrix) throws -> (Linear, tied: Bool) {
        if try loader.has("output.weight") {
            return (Linear(weight: try loader.matrix("output.weight", rows: c.vocab, columns: c.hidden)), false)
        }
        let stored = try loader.require("token_embd.weight")
        var wanted = try loader.targetFormat(name: "output.weight", module: "head", layer: nil, rows: c.vocab,
                                             columns: c.hidden, role: .matrix, stored: stored.format)
        if !wanted.supports(columns: c.hidden), let smaller = WeightLoader.int4Fallback(wanted, columns: c.hidden) {
            wanted = smaller
        }
        if wanted == embedding.format { return (Linear(weight: embedding), true) }
        // The tied head in its own format: a converted copy of the embedding table, counted under "head".
        return (Linear(weight: try loader.matrix("token_embd.weight", rows: c.vocab, columns: c.hidden,
                                                 module: "head")), true)
    }

    /// Loads the embedding table.
    static func loadEmbedding(_ loader: WeightLoader, config c: DecoderConfig) throws -> PackedMatrix {
        try loader.matrix("token_embd.weight", rows: c.vocab, columns: c.hidden, role: .embedding)
    }

    /// Loads an RMSNorm weight.
    static func norm(_ loader: WeightLoader, _ name: String, config c: DecoderConfig) throws -> RMSNorm {
        RMSNorm(weight: try loader.vector(name, count: c.hidden), epsilon: Float(c.normEpsilon))
    }
}

/// Maps GGUF architecture names to the functions that build a model from a weight loader.
public enum ArchitectureRegistry {
    public typealias Constructor = @Sendable (DecoderConfig, WeightLoader) throws -> DecoderModel

    static let constructors: [String: Constructor] = [
        "llama": LlamaArchitecture.build,
        "glm4": GLM4Architecture.build,
        "chatglm": ChatGLMArchitecture.build,
    ]

    /// Registered architecture names, sorted.
    public static var names: [String] { constructors.keys.sorted() }

    public static func constructor(for architecture: String) -> Constructor? { constructors[architecture] }
}
