import Foundation

/// A checkpoint opened for inference: the mapped GGUF file, the model in the policy's formats, its tokenizer and
/// chat template, and how long loading took.
public final class LoadedCheckpoint: @unchecked Sendable {
    public let path: String
    public let file: GGUFFile
    public let model: DecoderModel
    public let tokenizer: Tokenizer
    /// Nil when the file has no chat template the engine understands.
    public let chatTemplate: ChatTemplate?
    public let loadSeconds: Double

    /// Opens `path` and loads the model with `policy` and the prefill activation precision.
    public init(path: String, policy: WeightFormatPolicy = .checkpoint,
                activations: ActivationPrecision = .float32) throws {
        let start = Clock.now()
        self.path = path
        file = try GGUFFile(path: path)
        model = try DecoderModel.load(gguf: file, policy: policy, activations: activations)
        tokenizer = try Tokenizer(file: file)
        chatTemplate = try? ChatTemplate(file: file)
        // The header, metadata and tensor directory live on as parsed values: their pages are not read again.
        file.mapping.releasePages(offset: 0, count: file.dataSectionOffset)
        loadSeconds = Clock.now() - start
    }

    /// Loads the same file again with another policy (sharing nothing but the path).
    public func reloaded(policy: WeightFormatPolicy) throws -> LoadedCheckpoint {
        try LoadedCheckpoint(path: path, policy: policy)
    }

    /// Bytes of every tensor in the file.
    public var tensorBytes: Int { file.tensors.reduce(0) { $0 + $1.byteCount } }

    /// Tokens after which generation stops.
    public var stopTokens: Set<Int32> { tokenizer.endOfGenerationIDs }
}
