import AutoGLMSpecs
@testable import AutoGLMEngine

/// Deterministic pseudo-random numbers for attention tests (SplitMix64).
struct AttentionRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
    mutating func array(_ count: Int, amplitude: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform() * amplitude }
    }
}

/// max |a − b| / max |b|.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    var diff: Float = 0, scale: Float = 0
    for i in 0..<min(a.count, b.count) { diff = max(diff, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
    return scale > 0 ? diff / scale : diff
}

func maxAbsError(_ a: [Float], _ b: [Float]) -> Float {
    var diff: Float = 0
    for i in 0..<min(a.count, b.count) { diff = max(diff, abs(a[i] - b[i])) }
    return diff
}

/// A synthetic decoder sequence: per-token queries, keys and values for one layer.
struct AttentionSequence {
    let heads: Int, kvHeads: Int, headDim: Int, tokens: Int
    let q: [Float], k: [Float], v: [Float]
    init(heads: Int, kvHeads: Int, headDim: Int, tokens: Int, seed: UInt64, keyAmplitude: Float = 2) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.tokens = tokens
        var rng = AttentionRandom(seed: seed)
        q = rng.array(tokens * heads * headDim, amplitude: 2)
        k = rng.array(tokens * kvHeads * headDim, amplitude: keyAmplitude)
        v = rng.array(tokens * kvHeads * headDim)
    }

    /// Keys and values as a cache of `format` stores them.
    func stored(_ format: KVCacheFormat) -> (k: [Float], v: [Float]) {
        func roundTrip(_ x: [Float]) -> [Float] {
            var y: [Float] = []
            for r in stride(from: 0, to: x.count, by: headDim) {
                y += AttentionReference.roundTrip(Array(x[r..<(r + headDim)]), format: format)
            }
            return y
        }
        return (roundTrip(k), roundTrip(v))
    }

    /// Feeds the sequence through a cache in the given chunk sizes, running the kernel after each append;
    /// returns the outputs of every token, `(tokens, heads*headDim)`.
    func run(cache: KVCache, chunks: [Int], kernel: AttentionKernel, blockSparse: Plan.BlockSparse? = nil,
             threads: Int = 2, isa: KernelISA = .active) throws -> [Float] {
        var out = [Float](repeating: .nan, count: tokens * heads * headDim)
        var start = 0
        for n in chunks {
            let kvw = kvHeads * headDim, qw = heads * headDim
            try k.withUnsafeBufferPointer { kp in
                try v.withUnsafeBufferPointer { vp in
                    try cache.append(layer: 0, keys: kp.baseAddress! + start * kvw, values: vp.baseAddress! + start * kvw,
                                     count: n)
                }
            }
            try q.withUnsafeBufferPointer { qp in
                try out.withUnsafeMutableBufferPointer { op in
                    try Attention.causal(q: qp.baseAddress! + start * qw, n: n, heads: heads, cache: cache, layer: 0,
                                         out: op.baseAddress! + start * qw, kernel: kernel, blockSparse: blockSparse,
                                         threads: threads, isa: isa)
                }
            }
            try cache.commit(n)
            start += n
        }
        return out
    }

    /// The reference output for every token, with keys/values as stored in `format`.
    func reference(format: KVCacheFormat, mask: AttentionReference.Mask = .init()) -> [Float] {
        let (ks, vs) = stored(format)
        var out: [Float] = []
        // Each query token attends positions [0, its position]; evaluate one token at a time.
        let qw = heads * headDim, kvw = kvHeads * headDim
        for t in 0..<tokens {
            out += AttentionReference.attention(
                q: Array(q[(t * qw)..<((t + 1) * qw)]), n: 1, heads: heads, kvHeads: kvHeads, headDim: headDim,
                keys: Array(ks[0..<((t + 1) * kvw)]), values: Array(vs[0..<((t + 1) * kvw)]), t: t + 1, mask: mask)
        }
        return out
    }
}
