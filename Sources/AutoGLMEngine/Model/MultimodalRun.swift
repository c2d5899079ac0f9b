import AutoGLMSpecs
import Foundation

extension InferenceSession {
    /// Appends `n` positions given directly as input embeddings `(n, hidden)` (image tokens from the vision
    /// merger), a batch at a time, without computing logits. Positions are sequential (1-D rotary); GLM-4.1V's
    /// 3-D M-RoPE positions for image tokens are not modelled (the cost is identical).
    public func appendEmbeddings(_ e: UnsafePointer<Float>, count n: Int) throws {
        let c = model.config
        guard n > 0 else { throw ModelError.invalidSetting(name: "embeddings", expected: "at least one row", got: "0") }
        guard length + n <= capacity else { throw ModelError.contextFull(needed: length + n, capacity: capacity) }
        var done = 0
        while done < n {
            let m = min(batch, n - done)
            scratch.x.pointer.update(from: e + done * c.hidden, count: m * c.hidden)
            do {
                for (layer, block) in model.blocks.enumerated() {
                    try block.forward(scratch, count: m, layer: layer, cache: cache, rope: rope, config: c,
                                      attentionSettings: attention, pool: pool)
                }
                try cache.commit(m)
            } catch {
                cache.reset()
                throw error
            }
            done += m
        }
    }
}

/// Times and figures of one multimodal run: vision encode, prefill (image + prompt tokens), decode.
public struct MultimodalRunResult: Sendable, Equatable {
    public var loadSeconds: Double
    public var visionSeconds: Double
    public var imageTokens: Int
    public var patches: Int
    /// Prefill of image embeddings and prompt tokens, up to the first token's logits.
    public var prefillSeconds: Double
    public var promptTokens: Int
    /// Tokens generated, the first one included.
    public var generated: [Int32]
    /// Time for the tokens after the first.
    public var decodeSeconds: Double
    /// Time from the start of vision encoding to the first token.
    public var ttftSeconds: Double
    public var weightBytesByModule: [String: Int]
    public var kvCacheBytes: Int
    public var scratchBytes: Int

    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generated.count - 1, 0)) / decodeSeconds : 0
    }
}

/// Loads a GLM-4.1V checkpoint (decoder + vision tower + merger) and runs one image-and-prompt request.
public final class MultimodalModel: @unchecked Sendable {
    public let decoder: DecoderModel
    public let vision: GLM4VVisionEncoder?
    public let loadSeconds: Double

    public init(decoder: DecoderModel, vision: GLM4VVisionEncoder?, loadSeconds: Double) {
        self.decoder = decoder; self.vision = vision; self.loadSeconds = loadSeconds
    }

    /// Loads from a checkpoint. The vision tower is loaded when the file has `v.patch_embd.weight` and a
    /// configuration is given; `activations` applies to the decoder's prefill (the vision tower stays Float32).
    public static func load(source: CheckpointSource, vision: VisionConfig?,
                            activations: ActivationPrecision = .float32) throws -> MultimodalModel {
        let start = Clock.now()
        let config = try DecoderConfig(gguf: source.file)
        let decoder = try DecoderModel.load(config: config, source: source, policy: .checkpoint,
                                            activations: activations)
        var encoder: GLM4VVisionEncoder?
        if let vision, try source.sourceTensor(named: "v.patch_embd.weight") != nil {
            encoder = try GLM4VVisionEncoder.load(config: vision, source: source)
        }
        source.releaseCache()
        return MultimodalModel(decoder: decoder, vision: encoder, loadSeconds: Clock.now() - start)
    }

    /// Runs one request: encodes a synthetic image of `imageHeight × imageWidth` (already resized to multiples of
    /// patch × merge; nil for none), prefills the image tokens then `promptTokens` seeded random token ids, and
    /// greedily decodes `outputTokens` tokens. `phase` is called with "vision-encode", "prefill", "decode".
    public func run(imageHeight: Int?, imageWidth: Int?, promptTokens: Int, outputTokens: Int,
                    attention: AttentionSettings, visionKernel: AttentionKernel, seed: UInt64, pool: ComputePool?,
                    phase: (String) -> Void) throws -> MultimodalRunResult {
        guard promptTokens > 0, outputTokens > 0 else {
            throw ModelError.invalidSetting(name: "workload", expected: "positive prompt and output tokens",
                                            got: "\(promptTokens), \(outputTokens)")
        }
        var rng = SplitMix64(seed: seed)
        let start = Clock.now()
        var embeddings: [Float] = []
        var patches = 0, imageTokens = 0
        if let h = imageHeight, let w = imageWidth {
            guard let vision else {
                throw ModelError.missingTensor(name: "v.patch_embd.weight (the workload has an image)")
            }
            phase("vision-encode")
            let vc = vision.config
            var pixels = [Float](repeating: 0, count: h * w * vc.channels)
            for i in pixels.indices { pixels[i] = Float(rng.next() >> 40) / Float(1 << 24) * 4 - 2 }
            let p = try GLM4VVisionEncoder.patchify(image: pixels, height: h, width: w, config: vc)
            let gh = h / vc.patchSize, gw = w / vc.patchSize
            patches = gh * gw
            embeddings = try vision.encode(patches: p, gridHeight: gh, gridWidth: gw, kernel: visionKernel,
                                           pool: pool)
            imageTokens = patches / (vc.merge * vc.merge)
        }
        let visionEnd = Clock.now()
        phase("prefill")
        let context = imageTokens + promptTokens + outputTokens
        let session = try InferenceSession(model: decoder, capacity: context,
                                           batch: min(512, imageTokens + promptTokens), attention: attention,
                                           pool: pool)
        if imageTokens > 0 {
            try embeddings.withUnsafeBufferPointer { try session.appendEmbeddings($0.baseAddress!, count: imageTokens) }
        }
        let vocab = decoder.config.vocab
        let prompt = (0..<promptTokens).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(vocab)) }
        var logits = try session.forward(prompt)
        var token = Self.argmax(logits)
        let firstToken = Clock.now()
        var out: [Int32] = [token]
        phase("decode")
        var single: [Int32] = [0]
        while out.count < outputTokens {
            single[0] = token
            logits = try single.withUnsafeBufferPointer { try session.forward($0, logitsFrom: 0) }
            token = Self.argmax(logits)
            out.append(token)
        }
        let end = Clock.now()
        var bytes = decoder.residentBytesByModule
        for (k, v) in vision?.residentBytesByModule ?? [:] { bytes[k, default: 0] += v }
        return MultimodalRunResult(
            loadSeconds: loadSeconds, visionSeconds: visionEnd - start, imageTokens: imageTokens, patches: patches,
            prefillSeconds: firstToken - visionEnd, promptTokens: promptTokens, generated: out,
            decodeSeconds: end - firstToken, ttftSeconds: firstToken - start, weightBytesByModule: bytes,
            kvCacheBytes: session.cache.residentBytes, scratchBytes: session.scratchBytes)
    }

    static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        var value = -Float.infinity
        for i in x.indices where x[i] > value { value = x[i]; best = i }
        return Int32(best)
    }
}
