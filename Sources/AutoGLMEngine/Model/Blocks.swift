import AutoGLMSpecs
import Foundation

/// Self-attention with grouped-query heads and rotary positions. Q, K and V come from separate projections
/// (llama, glm4) or from one fused projection split as [q | k | v] (chatglm).
public struct SelfAttention: @unchecked Sendable {
    public enum Projections: @unchecked Sendable {
        case separate(q: Linear, k: Linear, v: Linear)
        case fused(qkv: Linear)
    }

    public let projections: Projections
    public let output: Linear
    /// GLM-4's norm of the attention output before the residual add.
    public let postNorm: RMSNorm?

    /// [Wq, Wk, Wv], which read the same input: one pool job in decode, one activation rounding in an int8 prefill
    /// (empty for a fused QKV matrix).
    let sharedInputWeights: [PackedMatrix]

    public init(projections: Projections, output: Linear, postNorm: RMSNorm? = nil) {
        self.projections = projections
        self.output = output
        self.postNorm = postNorm
        if case let .separate(q, k, v) = projections {
            sharedInputWeights = [q.weight, k.weight, v.weight]
        } else {
            sharedInputWeights = []
        }
    }

    /// x (n, d) += attention(xn (n, d)) for tokens at positions cache.length ..< cache.length + n.
    func forward(_ s: ForwardScratch, count n: Int, layer: Int, cache: KVCache, rope: RoPETable,
                 config: DecoderConfig, attention: AttentionSettings, pool: ComputePool?) throws {
        let d = config.hidden, qw = config.queryWidth, kvw = config.kvWidth
        let q = s.q.pointer, k = s.k.pointer, v = s.v.pointer
        if n == 1 { cache.prefetch(layer: layer) }                        // decode: this layer's K, V on their way
        switch projections {
        case let .separate(wq, wk, wv) where n == 1:                      // decode: one job for all three matvecs
            MatrixKernels.matvec(sharedInputWeights, s.xn.pointer, into: s.qkvOutputs, pool: pool)
            wq.addBias(q, count: 1); wk.addBias(k, count: 1); wv.addBias(v, count: 1)
        case let .separate(wq, wk, wv):                                   // one input for three matmuls:
            MatrixKernels.matmul(sharedInputWeights, s.xn.pointer, count: n, into: s.qkvOutputs, pool: pool)
            wq.addBias(q, count: n)                                       // Wq (qw, d) @ xn (n, d) -> q (n, qw)
            wk.addBias(k, count: n)                                       // Wk (kvw, d) @ xn -> k (n, kvw)
            wv.addBias(v, count: n)                                       // Wv (kvw, d) @ xn -> v (n, kvw)
        case let .fused(wqkv):
            let all = s.qkv.pointer, width = qw + 2 * kvw
            wqkv(s.xn.pointer, count: n, into: all, pool: pool)           // Wqkv (qw+2kvw, d) @ xn -> (n, qw+2kvw)
            for t in 0..<n {                                              // split rows into q | k | v
                q.advanced(by: t * qw).update(from: all + t * width, count: qw)
                k.advanced(by: t * kvw).update(from: all + t * width + qw, count: kvw)
                v.advanced(by: t * kvw).update(from: all + t * width + qw + kvw, count: kvw)
            }
        }
        s.lap(.qkv)
        forRowRanges(n, pool: pool) { rows in                             // rotate the first rotaryDims of each head
            for t in rows {
                let position = cache.length + t
                rope.apply(q + t * qw, heads: config.heads, position: position)
                rope.apply(k + t * kvw, heads: config.kvHeads, position: position)
            }
        }
        try cache.append(layer: layer, keys: k, values: v, count: n)      // K, V (n, kvw) -> cache[layer]
        s.lap(.ropeAndCache)
        // The kernel picks the call's workers from the pool's threads (`Attention.callWorkers`).
        try Attention.causal(q: q, n: n, heads: config.heads,             // softmax(q Kᵀ/√hd) V -> attn (n, qw)
                             cache: cache, layer: layer, out: s.attn.pointer, kernel: attention.kernel,
                             scale: 1 / Float(config.headDim).squareRoot(), blockSparse: attention.blockSparse,
                             threads: pool?.threadCount ?? 1, pool: pool)
        s.lap(.attention)
        output(s.attn.pointer, count: n, into: s.proj.pointer, pool: pool) // Wo (d, qw) @ attn -> proj (n, d)
        s.lap(.output)
        postNorm?(s.proj.pointer, count: n, into: s.proj.pointer, pool: pool) // GLM-4: proj = rmsnorm(proj)
        residualAdd(s, count: n, width: d, pool: pool)                    // x += proj
        s.lap(.residual)
    }
}

/// SwiGLU feed-forward: down(silu(gate x) · up x). GLM-4 and ChatGLM store gate and up as one matrix whose first
/// half of rows is the gate and second half the up projection.
public struct FeedForward: @unchecked Sendable {
    public enum GateUp: @unchecked Sendable {
        case separate(gate: Linear, up: Linear)
        case fused(Linear)
    }

    public let gateUp: GateUp
    public let down: Linear
    /// GLM-4's norm of the MLP output before the residual add.
    public let postNorm: RMSNorm?

    /// [Wgate, Wup], which read the same input (as for Q, K, V; empty for a fused gate_up matrix).
    let sharedInputWeights: [PackedMatrix]

    public init(gateUp: GateUp, down: Linear, postNorm: RMSNorm? = nil) {
        self.gateUp = gateUp
        self.down = down
        self.postNorm = postNorm
        if case let .separate(g, u) = gateUp {
            sharedInputWeights = [g.weight, u.weight]
        } else {
            sharedInputWeights = []
        }
    }

    /// x (n, d) += mlp(xn (n, d)).
    func forward(_ s: ForwardScratch, count n: Int, config: DecoderConfig, pool: ComputePool?) {
        let d = config.hidden, f = config.ffn
        let act = s.act.pointer
        switch gateUp {
        case .separate where n == 1:                                       // decode: gate and up in one job
            MatrixKernels.matvec(sharedInputWeights, s.xn.pointer, into: s.gateUpOutputs, pool: pool)
            s.lap(.gateUp)
            VectorOps.siluMul(gate: s.gate.pointer, up: s.up.pointer, into: act, count: f)
        case let .separate(gate, up):                                      // one input for two matmuls:
            MatrixKernels.matmul(sharedInputWeights, s.xn.pointer, count: n, into: s.gateUpOutputs, pool: pool)
            gate.addBias(s.gate.pointer, count: n)                         // Wg (f, d) @ xn (n, d) -> gate (n, f)
            up.addBias(s.up.pointer, count: n)                             // Wu (f, d) @ xn -> up (n, f)
            s.lap(.gateUp)
            forRowRanges(n, pool: pool) { rows in                          // act = silu(gate) · up (n, f)
                let first = rows.lowerBound * f
                VectorOps.siluMul(gate: s.gate.pointer + first, up: s.up.pointer + first, into: act + first,
                                  count: rows.count * f)
            }
        case let .fused(gu):
            let both = s.gateUp.pointer
            gu(s.xn.pointer, count: n, into: both, pool: pool)             // Wgu (2f, d) @ xn -> (n, 2f)
            s.lap(.gateUp)
            forRowRanges(n, pool: pool) { rows in                          // act[t] = silu(gu[t, :f]) · gu[t, f:]
                for t in rows {
                    VectorOps.siluMul(gate: both + t * 2 * f, up: both + t * 2 * f + f, into: act + t * f, count: f)
                }
            }
        }
        s.lap(.activation)
        down(act, count: n, into: s.proj.pointer, pool: pool)              // Wd (d, f) @ act (n, f) -> proj (n, d)
        s.lap(.down)
        postNorm?(s.proj.pointer, count: n, into: s.proj.pointer, pool: pool) // GLM-4: proj = rmsnorm(proj)
        residualAdd(s, count: n, width: d, pool: pool)                     // x += proj
        s.lap(.residual)
    }
}

/// x (n, d) += proj (n, d), a batch's rows spread over `pool`.
@inline(__always)
func residualAdd(_ s: ForwardScratch, count n: Int, width d: Int, pool: ComputePool?) {
    forRowRanges(n, pool: pool) { rows in
        let first = rows.lowerBound * d
        VectorOps.add(s.x.pointer + first, s.proj.pointer + first, into: s.x.pointer + first, count: rows.count * d)
    }
}

/// One pre-norm decoder layer: x += attn(norm(x)); x += mlp(norm(x)).
public struct DecoderBlock: @unchecked Sendable {
    public let attentionNorm: RMSNorm
    public let attention: SelfAttention
    public let ffnNorm: RMSNorm
    public let feedForward: FeedForward

    public init(attentionNorm: RMSNorm, attention: SelfAttention, ffnNorm: RMSNorm, feedForward: FeedForward) {
        self.attentionNorm = attentionNorm
        self.attention = attention
        self.ffnNorm = ffnNorm
        self.feedForward = feedForward
    }

    func forward(_ s: ForwardScratch, count n: Int, layer: Int, cache: KVCache, rope: RoPETable,
                 config: DecoderConfig, attentionSettings: AttentionSettings, pool: ComputePool?) throws {
        attentionNorm(s.x.pointer, count: n, into: s.xn.pointer, pool: pool) // xn = rmsnorm(x) (n, d)
        s.lap(.norms)
        try attention.forward(s, count: n, layer: layer, cache: cache, rope: rope, config: config,
                              attention: attentionSettings, pool: pool)
        ffnNorm(s.x.pointer, count: n, into: s.xn.pointer, pool: pool)     // xn = rmsnorm(x) (n, d)
        s.lap(.norms)
        feedForward.forward(s, count: n, config: config, pool: pool)
    }
}

/// Rotary angles for every position up to the cache capacity, computed once.
final class RoPETable: @unchecked Sendable {
    let rotaryDims: Int
    let headDim: Int
    let style: RoPEStyle
    let cos: ScratchBuffer
    let sin: ScratchBuffer

    init(config: DecoderConfig, positions: Int) {
        rotaryDims = config.rotaryDims
        headDim = config.headDim
        style = config.ropeStyle
        let half = max(config.rotaryDims / 2, 1)
        cos = ScratchBuffer(positions * half)
        sin = ScratchBuffer(positions * half)
        for p in 0..<positions {
            VectorOps.ropeCosSin(position: p, rotaryDims: config.rotaryDims, base: Float(config.ropeTheta),
                                 cos: cos.pointer + p * half, sin: sin.pointer + p * half)
        }
    }

    @inline(__always) func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        guard rotaryDims > 0 else { return }
        let half = rotaryDims / 2
        VectorOps.rope(x, heads: heads, headDim: headDim, rotaryDims: rotaryDims, cos: cos.pointer + position * half,
                       sin: sin.pointer + position * half, style: style)
    }
}

/// Named activation buffers for a batch of up to `batch` tokens, allocated once per session.
final class ForwardScratch: @unchecked Sendable {
    let batch: Int
    let x, xn, q, k, v, qkv, attn, proj, gate, up, gateUp, act: ScratchBuffer

    init(config c: DecoderConfig, batch: Int, fusedQKV: Bool, fusedGateUp: Bool) {
        self.batch = batch
        x = ScratchBuffer(batch * c.hidden)
        xn = ScratchBuffer(batch * c.hidden)
        q = ScratchBuffer(batch * c.queryWidth)
        k = ScratchBuffer(batch * c.kvWidth)
        v = ScratchBuffer(batch * c.kvWidth)
        qkv = ScratchBuffer(fusedQKV ? batch * (c.queryWidth + 2 * c.kvWidth) : 0)
        attn = ScratchBuffer(batch * c.queryWidth)
        proj = ScratchBuffer(batch * c.hidden)
        gate = ScratchBuffer(fusedGateUp ? 0 : batch * c.ffn)
        up = ScratchBuffer(fusedGateUp ? 0 : batch * c.ffn)
        gateUp = ScratchBuffer(fusedGateUp ? batch * 2 * c.ffn : 0)
        act = ScratchBuffer(batch * c.ffn)
        qkvOutputs = [q.pointer, k.pointer, v.pointer]
        gateUpOutputs = [gate.pointer, up.pointer]
    }

    /// Output pointers for the fused decode matvecs, built once.
    let qkvOutputs: [UnsafeMutablePointer<Float>]
    let gateUpOutputs: [UnsafeMutablePointer<Float>]

    /// Where the steps of the passes run with these buffers are timed (nil: not timed).
    var clock: PhaseClock?

    /// Charges the time since the previous step to `phase` when the pass is timed.
    @inline(__always) func lap(_ phase: ForwardPhase) { clock?.lap(phase) }

    var bytes: Int {
        [x, xn, q, k, v, qkv, attn, proj, gate, up, gateUp, act].reduce(0) { $0 + $1.bytes }
    }
}
