import AutoGLMSpecs
import Foundation

/// How a session's attention runs: KV cache element format, kernel, sliding window and block-sparse selection.
public struct AttentionSettings: Sendable, Equatable {
    public var kvCacheFormat: KVCacheFormat
    public var kernel: AttentionKernel
    public var window: Int?
    public var globalTokens: Int
    public var blockSparse: Plan.BlockSparse?

    public init(kvCacheFormat: KVCacheFormat = .f32, kernel: AttentionKernel = .tiled, window: Int? = nil,
                globalTokens: Int = 0, blockSparse: Plan.BlockSparse? = nil) {
        self.kvCacheFormat = kvCacheFormat; self.kernel = kernel; self.window = window
        self.globalTokens = globalTokens; self.blockSparse = blockSparse
    }

    /// The decoder attention a plan asks for.
    public init(plan: Plan.Attention) {
        self.init(kvCacheFormat: plan.kvCacheFormat, kernel: plan.kernel, window: plan.window,
                  globalTokens: plan.globalTokens, blockSparse: plan.blockSparse)
    }
}

/// Runs a model over a growing context: owns the KV cache, the rotary table and every activation buffer, so the
/// token loop allocates nothing. Prefill processes up to `batch` tokens per pass with matmul; decode one token
/// with matvec.
public final class InferenceSession: @unchecked Sendable {
    public let model: DecoderModel
    public let pool: ComputePool?
    /// KV cache capacity in tokens.
    public let capacity: Int
    /// Tokens per forward pass.
    public let batch: Int
    public let cache: KVCache
    public let attention: AttentionSettings
    let scratch: ForwardScratch
    let rope: RoPETable
    /// Logits of the requested rows of the last pass, (rows, vocab).
    private var logits: ScratchBuffer
    private var normed: ScratchBuffer

    public init(model: DecoderModel, capacity: Int, batch: Int = 512, attention: AttentionSettings = .init(),
                pool: ComputePool?) throws {
        guard capacity > 0 else {
            throw ModelError.invalidSetting(name: "context", expected: "a positive token count", got: "\(capacity)")
        }
        guard batch > 0 else {
            throw ModelError.invalidSetting(name: "batch", expected: "a positive token count", got: "\(batch)")
        }
        let c = model.config
        self.model = model
        self.pool = pool
        self.capacity = capacity
        self.batch = batch
        self.attention = attention
        do {
            cache = try KVCache(layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, capacity: capacity,
                                format: attention.kvCacheFormat, window: attention.window,
                                globalTokens: attention.globalTokens)
        } catch {
            throw ModelError.invalidSetting(name: "attention", expected: "a valid KV cache", got: "\(error)")
        }
        scratch = ForwardScratch(config: c, batch: batch, fusedQKV: model.usesFusedQKV,
                                 fusedGateUp: model.usesFusedGateUp)
        rope = RoPETable(config: c, positions: capacity)
        logits = ScratchBuffer(c.vocab)
        normed = ScratchBuffer(c.hidden)
    }

    /// Tokens in the context.
    public var length: Int { cache.length }

    /// Times the steps of every following pass (`ForwardPhase`) when set; nil (the default) times nothing.
    public var phaseClock: PhaseClock? {
        get { scratch.clock }
        set { scratch.clock = newValue }
    }

    /// Bytes of activation buffers, rotary table and logits (everything but weights and KV cache).
    public var scratchBytes: Int { scratch.bytes + rope.cos.bytes + rope.sin.bytes + logits.bytes + normed.bytes }

    /// Forgets the context.
    public func reset() { cache.reset() }

    /// Appends `tokens` to the context and returns the logits of the last one (vocab floats, valid until the next
    /// call).
    public func forward(_ tokens: [Int32]) throws -> UnsafeBufferPointer<Float> {
        try tokens.withUnsafeBufferPointer { try forward($0, logitsFrom: tokens.count - 1) }
    }

    /// Appends `tokens` and returns logits for the positions `logitsFrom ..< tokens.count` of this call, row-major
    /// (rows, vocab), valid until the next call.
    public func forward(_ tokens: UnsafeBufferPointer<Int32>, logitsFrom: Int) throws -> UnsafeBufferPointer<Float> {
        let n = tokens.count
        let c = model.config
        guard n > 0 else { throw ModelError.invalidSetting(name: "tokens", expected: "at least one", got: "0") }
        guard logitsFrom >= 0, logitsFrom < n else {
            throw ModelError.invalidSetting(name: "logitsFrom", expected: "0..<\(n)", got: "\(logitsFrom)")
        }
        guard length + n <= capacity else { throw ModelError.contextFull(needed: length + n, capacity: capacity) }
        for token in tokens where token < 0 || Int(token) >= c.vocab {
            throw ModelError.tokenOutOfRange(token: Int(token), vocab: c.vocab)
        }
        scratch.clock?.start()
        let rows = n - logitsFrom
        if logits.count < rows * c.vocab { logits = ScratchBuffer(rows * c.vocab) }
        if normed.count < rows * c.hidden { normed = ScratchBuffer(rows * c.hidden) }
        var done = 0
        while done < n {
            let m = min(batch, n - done)
            let chunk = UnsafeBufferPointer(rebasing: tokens[done..<(done + m)])
            try runBatch(chunk)
            // Final norm and head for the rows of this chunk that were asked for.
            let first = max(logitsFrom, done)
            if first < done + m {
                let count = done + m - first
                let xRows = UnsafePointer(scratch.x.pointer + (first - done) * c.hidden)
                model.outputNorm(xRows, count: count, into: normed.pointer, pool: pool) // xn = rmsnorm(x) (count, d)
                scratch.lap(.norms)
                model.head(normed.pointer, count: count,                              // W (vocab, d) @ xn -> logits
                           into: logits.pointer + (first - logitsFrom) * c.vocab, pool: pool)
                scratch.lap(.head)
            }
            done += m
        }
        return UnsafeBufferPointer(start: logits.pointer, count: rows * c.vocab)
    }

    /// One pass over at most `batch` tokens: embed, run every layer, commit the tokens to the cache.
    private func runBatch(_ tokens: UnsafeBufferPointer<Int32>) throws {
        let n = tokens.count
        try model.embedding.lookup(tokens, into: scratch.x.pointer)                  // x = E[tokens] (n, d)
        scratch.lap(.embedding)
        do {
            for (layer, block) in model.blocks.enumerated() {
                try block.forward(scratch, count: n, layer: layer, cache: cache, rope: rope, config: model.config,
                                  attentionSettings: attention, pool: pool)
            }
            try cache.commit(n)
        } catch {
            cache.reset()   // a half-appended pass leaves nothing behind
            throw error
        }
    }
}
