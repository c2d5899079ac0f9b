import Foundation
import Testing
import AutoGLMSpecs
@testable import AutoGLMEngine

@Suite("Attention kernels")
struct AttentionTests {
    static let chunks = [37, 1, 1, 20, 1, 5]  // 65 tokens: a prefill, decode steps, a second prefill chunk

    /// Every test that runs the tiled kernel runs it in each kernel family this CPU supports: the AVX-512 family's
    /// 16-lane tile takes head_dim 48 and 64 (multiples of 16) when a work item has at least 8 lanes, the 8-lane
    /// family's tile head_dim 40, 48 and 64 (multiples of 8) from 6 lanes; 20 stays on the per-lane loops in both,
    /// and so do decode steps (2 lanes here).
    @Test("F32 cache: tiled and materialised match the scalar reference",
          arguments: AttentionKernel.allCases, [20, 40, 48, 64])
    func f32MatchesReference(kernel: AttentionKernel, headDim: Int) throws {
        for isa in KernelISA.supported {
            let seq = AttentionSequence(heads: 4, kvHeads: 2, headDim: headDim, tokens: 65, seed: 1)
            let cache = try KVCache(layers: 1, kvHeads: 2, headDim: headDim, capacity: 65, format: .f32)
            let out = try seq.run(cache: cache, chunks: Self.chunks, kernel: kernel, isa: isa)
            let reference = seq.reference(format: .f32)
            #expect(relativeError(out, reference) < 1e-5, "\(isa)")
        }
    }

    @Test("Tiled equals materialised to 1e-5 on a longer prefill with several key tiles and query tiles")
    func tiledMatchesMaterialised() throws {
        let seq = AttentionSequence(heads: 6, kvHeads: 2, headDim: 32, tokens: 300, seed: 2)
        for isa in KernelISA.supported {
            var outs: [[Float]] = []
            for kernel in AttentionKernel.allCases {
                let cache = try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 300, format: .f32)
                outs.append(try seq.run(cache: cache, chunks: [300], kernel: kernel, isa: isa))
            }
            #expect(relativeError(outs[1], outs[0]) < 1e-5, "\(isa)")
            #expect(!outs[1].contains { $0.isNaN })
        }
    }

    @Test("Single-threaded and multi-threaded runs agree exactly")
    func threadsAgree() throws {
        let seq = AttentionSequence(heads: 4, kvHeads: 1, headDim: 16, tokens: 70, seed: 3)
        for isa in KernelISA.supported {
            var outs: [[Float]] = []
            for threads in [1, 3] {
                let cache = try KVCache(layers: 1, kvHeads: 1, headDim: 16, capacity: 70, format: .f16)
                outs.append(try seq.run(cache: cache, chunks: [50, 20], kernel: .tiled, threads: threads, isa: isa))
            }
            #expect(outs[0] == outs[1], "\(isa)")
        }
    }

    /// head_dim 64 takes the vectorised multi-lane path, 40 the per-lane path with a partial group.
    @Test("Quantised caches: kernels read stored rows exactly as the reference decodes them",
          arguments: [KVCacheFormat.f16, .int8, .int4], [40, 48, 64])
    func quantisedKernelsMatchReference(format: KVCacheFormat, headDim: Int) throws {
        for kernel in AttentionKernel.allCases {
            for isa in KernelISA.supported {
                let seq = AttentionSequence(heads: 6, kvHeads: 1, headDim: headDim, tokens: 65, seed: 4)
                let cache = try KVCache(layers: 1, kvHeads: 1, headDim: headDim, capacity: 65, format: format)
                let out = try seq.run(cache: cache, chunks: Self.chunks, kernel: kernel, isa: isa)
                #expect(relativeError(out, seq.reference(format: format)) < 1e-5, "\(kernel) \(isa)")
            }
        }
    }

    /// Decode steps with 2 or 3 query heads per KV head (SmolLM2's grouping is 3) read each key and value chunk
    /// once for all of them.
    @Test("Decode steps with groups of 2 and 3 query heads per KV head match the reference",
          arguments: [KVCacheFormat.f32, .f16, .int8, .int4], [(heads: 6, kvHeads: 2), (heads: 4, kvHeads: 2),
                                                                (heads: 9, kvHeads: 3)])
    func smallGroupDecode(format: KVCacheFormat, grouping: (heads: Int, kvHeads: Int)) throws {
        for isa in KernelISA.supported {
            let seq = AttentionSequence(heads: grouping.heads, kvHeads: grouping.kvHeads, headDim: 64, tokens: 65,
                                        seed: 40)
            let cache = try KVCache(layers: 1, kvHeads: grouping.kvHeads, headDim: 64, capacity: 65, format: format)
            let out = try seq.run(cache: cache, chunks: [20, 1, 1, 1, 30, 1, 1, 10], kernel: .tiled, isa: isa)
            #expect(relativeError(out, seq.reference(format: format)) < 1e-5, "\(isa)")
        }
    }

    @Test("Grouped-query attention with many heads per KV head (GLM-4 grouping, 16 per KV head)")
    func wideGroups() throws {
        for isa in KernelISA.supported {
            let seq = AttentionSequence(heads: 32, kvHeads: 2, headDim: 32, tokens: 40, seed: 12)
            let cache = try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 40, format: .int8)
            let out = try seq.run(cache: cache, chunks: [30, 1, 9], kernel: .tiled, isa: isa)
            #expect(relativeError(out, seq.reference(format: .int8)) < 1e-5, "\(isa)")
        }
    }

    @Test("Vectorised exp matches expf to 2 ulp-ish over the softmax range")
    func vectorisedExp() {
        var x: Float = -87
        var worst: Float = 0
        while x < 0.5 {
            var v = SIMD8<Float>()
            for i in 0..<8 { v[i] = x + Float(i) * 0.0137 }
            let e = AttentionMath.exp8(v)
            for i in 0..<8 {
                let exact = Float(Foundation.exp(Double(v[i])))
                worst = max(worst, abs(e[i] - exact) / exact)
            }
            x += 0.1093
        }
        #expect(worst < 3e-7, "worst relative error \(worst)")
    }

    /// Output error of a quantised cache against an F32 cache, per bit width. Values lie in [-1, 1); the bounds are
    /// a few times the mean value-quantisation step (F16 2^-11, INT8 1/127, INT4 2/15 per group) after averaging.
    @Test("Quantised caches stay within their error bound of the F32 cache",
          arguments: [(KVCacheFormat.f16, Float(2e-3)), (.int8, 2e-2), (.int4, 1.5e-1)])
    func quantisedErrorBound(format: KVCacheFormat, bound: Float) throws {
        let seq = AttentionSequence(heads: 4, kvHeads: 2, headDim: 64, tokens: 65, seed: 5)
        let f32 = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 64, capacity: 65, format: .f32),
                              chunks: Self.chunks, kernel: .tiled)
        let quantised = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 64, capacity: 65, format: format),
                                    chunks: Self.chunks, kernel: .tiled)
        let error = maxAbsError(quantised, f32)
        #expect(error < bound, "\(format): max abs error \(error)")
        #expect(error > 0, "\(format) should not be lossless on random data")
    }

    @Test("INT4 error exceeds INT8 error exceeds F16 error")
    func errorOrdering() throws {
        let seq = AttentionSequence(heads: 2, kvHeads: 2, headDim: 32, tokens: 40, seed: 6)
        let f32 = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 40, format: .f32),
                              chunks: [40], kernel: .tiled)
        var errors: [Float] = []
        for format in [KVCacheFormat.f16, .int8, .int4] {
            let out = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 40, format: format),
                                  chunks: [40], kernel: .tiled)
            errors.append(maxAbsError(out, f32))
        }
        #expect(errors[0] < errors[1] && errors[1] < errors[2], "\(errors)")
    }

    @Test("Sliding window with global tokens matches the reference mask, chunks larger than the window included",
          arguments: [KVCacheFormat.f32, .int8], AttentionKernel.allCases)
    func slidingWindow(format: KVCacheFormat, kernel: AttentionKernel) throws {
        for isa in KernelISA.supported {
            let seq = AttentionSequence(heads: 4, kvHeads: 2, headDim: 32, tokens: 90, seed: 7)
            let cache = try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 1000, format: format, window: 16,
                                    globalTokens: 3)
            let out = try seq.run(cache: cache, chunks: [40, 1, 1, 1, 23, 1, 17, 6], kernel: kernel, isa: isa)
            let reference = seq.reference(format: format, mask: .init(window: 16, globalTokens: 3))
            #expect(relativeError(out, reference) < 1e-5, "\(isa)")
            #expect(cache.residentTokens == 19)
        }
    }

    @Test("A window without global tokens, and a window wider than the sequence")
    func windowEdges() throws {
        let seq = AttentionSequence(heads: 2, kvHeads: 1, headDim: 16, tokens: 50, seed: 8)
        for (window, globals) in [(5, 0), (1, 0), (100, 2)] {
            for isa in KernelISA.supported {
                let cache = try KVCache(layers: 1, kvHeads: 1, headDim: 16, capacity: 50, format: .f32, window: window,
                                        globalTokens: globals)
                let out = try seq.run(cache: cache, chunks: [20, 1, 9, 20], kernel: .tiled, isa: isa)
                let reference = seq.reference(format: .f32, mask: .init(window: window, globalTokens: globals))
                #expect(relativeError(out, reference) < 1e-5, "window \(window), globals \(globals), \(isa)")
            }
        }
    }

    @Test("Block-sparse (MoBA) matches the scalar reference of the same rule",
          arguments: AttentionKernel.allCases, [KVCacheFormat.f32, .int4])
    func blockSparseMatchesReference(kernel: AttentionKernel, format: KVCacheFormat) throws {
        // Chunk 8 puts several runs in one key tile (lane loops); chunk 64 one run per tile (the wide tile); chunk
        // 128 two tiles per block, whose lanes the wide tile keeps gathered from one tile to the next. Keeping 13
        // earlier blocks chooses them by the threshold search instead of insertion (`BlockSelector`); chunk 32 puts
        // two blocks in a tile, chunk 16 four.
        let cases = [(8, 2, [30, 1, 1, 151, 17]), (64, 2, [30, 1, 1, 151, 17]), (128, 2, [300, 1, 1, 281, 17]),
                     (32, 14, [300, 1, 1, 281, 17]), (16, 14, [200, 1, 1, 151, 17])]
        for (chunk, topK, chunks) in cases {
            let tokens = chunks.reduce(0, +)
            for isa in KernelISA.supported {
                let sparse = Plan.BlockSparse(chunk: chunk, topK: topK)
                let seq = AttentionSequence(heads: 4, kvHeads: 2, headDim: 32, tokens: tokens, seed: 9)
                let cache = try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: tokens, format: format)
                let out = try seq.run(cache: cache, chunks: chunks, kernel: kernel, blockSparse: sparse, isa: isa)
                let reference = seq.reference(format: format, mask: .init(blockSparse: sparse))
                #expect(relativeError(out, reference) < 1e-5, "chunk \(chunk), top \(topK), \(isa)")
                // The selection really drops blocks: the output differs from dense attention.
                let dense = seq.reference(format: format)
                #expect(relativeError(out, dense) > 1e-3)
            }
        }
    }

    @Test("Block choice: insertion and the threshold search keep the blocks a sort keeps, in index order",
          arguments: [1, 2, 7, 8, 9, 15, 31, 64])
    func blockChoiceMatchesSort(keep: Int) {
        var rng = AttentionRandom(seed: UInt64(100 + keep))
        for n in (keep + 1)...(keep + 40) {
            // Distinct scores; a few repeated values (ties across the threshold); signed zeros and infinities
            // among them; all equal.
            let pools: [[Float]] = [[], [0.25, -1, 3], [0, -0, .infinity, -.infinity, 1e-30, -1e-30], [2]]
            for pool in pools {
                let scores: [Float] = (0..<n).map { _ in
                    pool.isEmpty ? rng.uniform() : pool[Int(rng.next() % UInt64(pool.count))]
                }
                let expected = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
                    .prefix(keep).sorted()
                for threshold in [false, true] {
                    var buffer = scores, chosen = [Int](repeating: -1, count: n)
                    let count = buffer.withUnsafeMutableBufferPointer { s in
                        chosen.withUnsafeMutableBufferPointer { c in
                            threshold
                                ? Attention.BlockSelector.chooseByThreshold(s.baseAddress!, count: n, keep: keep,
                                                                            into: c.baseAddress!)
                                : Attention.BlockSelector.chooseByInsertion(s.baseAddress!, count: n, keep: keep,
                                                                            into: c.baseAddress!)
                        }
                    }
                    #expect(Array(chosen.prefix(count)) == expected,
                            "n \(n), keep \(keep), pool \(pool), threshold \(threshold)")
                }
            }
        }
    }

    @Test("Block-sparse decode far into a context jumps the tiles no head chose and still matches the reference",
          arguments: [1, 2, 3])
    func blockSparseDecodeSkipsTiles(threads: Int) throws {
        // 1,500 keys in 64-key tiles, blocks of 16 with 2 chosen per head: most tiles hold no chosen block, and
        // with 2–3 threads the decode rows split their key range (each part starting mid-context).
        let sparse = Plan.BlockSparse(chunk: 16, topK: 3)
        let seq = AttentionSequence(heads: 6, kvHeads: 2, headDim: 32, tokens: 1_500, seed: 12)
        let cache = try KVCache(layers: 1, kvHeads: 2, headDim: 32, capacity: 1_500, format: .f32)
        let out = try seq.run(cache: cache, chunks: [1_400, 1, 1, 1, 97], kernel: .tiled, blockSparse: sparse,
                              threads: threads)
        let reference = seq.reference(format: .f32, mask: .init(blockSparse: sparse))
        #expect(relativeError(out, reference) < 1e-5)
    }

    @Test("Block mean keys: the grouped layout holds each block's mean key, and a query's scores are its dot products",
          arguments: [1, 15, 16, 17, 40])
    func blockMeanKeysScores(blocks: Int) throws {
        let kvHeads = 2, headDim = 24, chunk = 5, tokens = blocks * chunk + 3
        var rng = AttentionRandom(seed: UInt64(blocks))
        let keys = rng.array(tokens * kvHeads * headDim), values = rng.array(tokens * kvHeads * headDim)
        let cache = try KVCache(layers: 1, kvHeads: kvHeads, headDim: headDim, capacity: tokens, format: .f32)
        // Two appends: the blocks completed by the first are kept and extended by the second.
        let first = tokens / 2
        try cache.append(layer: 0, keys: keys, values: values, count: first)
        _ = cache.blockMeanKeys(layer: 0, chunk: chunk, tokens: first)
        try cache.commit(first)
        try keys.withUnsafeBufferPointer { k in
            try values.withUnsafeBufferPointer { v in
                let offset = first * kvHeads * headDim
                try cache.append(layer: 0, keys: k.baseAddress! + offset, values: v.baseAddress! + offset,
                                 count: tokens - first)
            }
        }
        let means = cache.blockMeanKeys(layer: 0, chunk: chunk, tokens: tokens)
        #expect(means.blocks == blocks)
        let q = rng.array(headDim)
        var scores = [Float](repeating: .nan, count: blocks + 1)
        for h in 0..<kvHeads {
            scores.withUnsafeMutableBufferPointer { means.scores(kvHead: h, q: q, count: blocks, into: $0.baseAddress!) }
            #expect(scores[blocks].isNaN, "wrote past the blocks asked for")
            for b in 0..<blocks {
                var dot = 0.0
                for j in 0..<headDim {
                    var mean = 0.0
                    for p in (b * chunk)..<((b + 1) * chunk) { mean += Double(keys[(p * kvHeads + h) * headDim + j]) }
                    mean /= Double(chunk)
                    #expect(abs(Double(means.mean(block: b, kvHead: h, j)) - mean) < 1e-6)
                    dot += Double(q[j]) * mean
                }
                #expect(abs(Double(scores[b]) - dot) < 1e-5, "block \(b), KV head \(h)")
            }
        }
    }

    @Test("Block-sparse with top-k covering every block is exactly dense causal attention",
          arguments: AttentionKernel.allCases)
    func blockSparseCoveringAllIsDense(kernel: AttentionKernel) throws {
        let seq = AttentionSequence(heads: 2, kvHeads: 2, headDim: 24, tokens: 70, seed: 10)
        let sparse = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 24, capacity: 70, format: .f32),
                                 chunks: [33, 1, 36], kernel: kernel, blockSparse: .init(chunk: 7, topK: 10))
        let dense = try seq.run(cache: try KVCache(layers: 1, kvHeads: 2, headDim: 24, capacity: 70, format: .f32),
                                chunks: [33, 1, 36], kernel: kernel)
        #expect(sparse == dense)
    }

    @Test("Non-causal full attention (vision) matches the reference", arguments: AttentionKernel.allCases, [40, 80])
    func fullAttention(kernel: AttentionKernel, d: Int) throws {
        var rng = AttentionRandom(seed: 11)
        let (n, m, heads, kvHeads) = (23, 81, 4, 2)
        let q = rng.array(n * heads * d, amplitude: 2), k = rng.array(m * kvHeads * d, amplitude: 2)
        let v = rng.array(m * kvHeads * d)
        let reference = AttentionReference.attention(q: q, n: n, heads: heads, kvHeads: kvHeads, headDim: d, keys: k,
                                                     values: v, t: m, scale: 0.2, mask: .init(causal: false))
        for isa in KernelISA.supported {
            var out = [Float](repeating: .nan, count: n * heads * d)
            try Attention.full(q: q, k: k, v: v, n: n, m: m, heads: heads, kvHeads: kvHeads, headDim: d, out: &out,
                               kernel: kernel, scale: 0.2, isa: isa)
            #expect(relativeError(out, reference) < 1e-5, "\(isa)")
        }
    }

    @Test("Tiled scratch does not grow with the sequence; materialised grows with n·m")
    func scratchAccounting() {
        let small = Attention.scratchBytes(n: 1024, m: 1024, heads: 8, kernel: .tiled, threads: 2)
        let large = Attention.scratchBytes(n: 16384, m: 16384, heads: 8, kernel: .tiled, threads: 2)
        #expect(small == large)
        let m1 = Attention.scratchBytes(n: 1024, m: 1024, heads: 8, kernel: .materialised, threads: 2)
        let m2 = Attention.scratchBytes(n: 2048, m: 2048, heads: 8, kernel: .materialised, threads: 2)
        #expect(m1 >= 2 * 1024 * 1024 * 4)
        #expect(m2 > 3 * m1)
        #expect(large < m1)
    }

    @Test("Bad arguments throw clear errors")
    func errors() throws {
        let cache = try KVCache(layers: 2, kvHeads: 2, headDim: 8, capacity: 4, format: .f32)
        let row = [Float](repeating: 1, count: 16)
        var out = [Float](repeating: 0, count: 24)
        try cache.append(layer: 0, keys: row, values: row, count: 1)
        #expect(throws: AttentionError.headsNotMultipleOfKVHeads(heads: 3, kvHeads: 2)) {
            try Attention.causal(q: out, n: 1, heads: 3, cache: cache, layer: 0, out: &out)
        }
        #expect(throws: AttentionError.queryCountMismatch(layer: 0, pending: 1, queries: 2)) {
            try Attention.causal(q: out, n: 2, heads: 2, cache: cache, layer: 0, out: &out)
        }
        #expect(throws: AttentionError.layerOutOfRange(layer: 2, layers: 2)) {
            try Attention.causal(q: out, n: 1, heads: 2, cache: cache, layer: 2, out: &out)
        }
        #expect(throws: AttentionError.self) {
            try Attention.causal(q: out, n: 1, heads: 2, cache: cache, layer: 0, out: &out,
                                 blockSparse: .init(chunk: 0, topK: 2))
        }
        let windowed = try KVCache(layers: 1, kvHeads: 2, headDim: 8, capacity: 4, format: .f32, window: 2)
        try windowed.append(layer: 0, keys: row, values: row, count: 1)
        #expect(throws: AttentionError.blockSparseNeedsFullCache(window: 2)) {
            try Attention.causal(q: out, n: 1, heads: 2, cache: windowed, layer: 0, out: &out,
                                 blockSparse: .init(chunk: 4, topK: 2))
        }
        #expect(throws: AttentionError.self) {
            try Attention.full(q: out, k: row, v: row, n: 1, m: 0, heads: 2, kvHeads: 2, headDim: 8, out: &out)
        }
        let message = AttentionError.headsNotMultipleOfKVHeads(heads: 3, kvHeads: 2).description
        #expect(message.contains("3") && message.contains("2"))
    }
}

@Suite("Attention kernels: long-context decode")
struct AttentionDecodeTests {
    /// Decoding one token over a long cache splits the keys across workers when there are few KV heads; the merged
    /// partial softmax states must equal the reference.
    @Test("Split-key decode matches the reference", arguments: [KVCacheFormat.f32, .int4], [1, 2, 4])
    func splitDecode(format: KVCacheFormat, threads: Int) throws {
        let (heads, kvHeads, d, context) = (6, 3, 32, 1600)
        var rng = AttentionRandom(seed: 30)
        let keys = rng.array(context * kvHeads * d, amplitude: 2), values = rng.array(context * kvHeads * d)
        let q = rng.array(heads * d, amplitude: 2)
        let cache = try KVCache(layers: 1, kvHeads: kvHeads, headDim: d, capacity: context, format: format)
        try cache.append(layer: 0, keys: keys, values: values, count: context - 1)
        try cache.commit(context - 1)
        try cache.append(layer: 0, keys: Array(keys.suffix(kvHeads * d)), values: Array(values.suffix(kvHeads * d)),
                         count: 1)
        var out = [Float](repeating: .nan, count: heads * d)
        try Attention.causal(q: q, n: 1, heads: heads, cache: cache, layer: 0, out: &out, threads: threads)
        func stored(_ x: [Float]) -> [Float] {
            stride(from: 0, to: x.count, by: d).flatMap {
                AttentionReference.roundTrip(Array(x[$0..<($0 + d)]), format: format)
            }
        }
        let reference = AttentionReference.attention(q: q, n: 1, heads: heads, kvHeads: kvHeads, headDim: d,
                                                     keys: stored(keys), values: stored(values), t: context)
        #expect(relativeError(out, reference) < 1e-5)
        if threads > 1 {
            #expect(Attention.keySplits(items: kvHeads, workers: threads, keys: context) > 1, "the split path ran")
        }
    }

    /// A decode step with a few query heads per KV head reads the cache slot by slot, every KV head of a slot
    /// together (one unit on one worker, key ranges of all heads on several); under a window the ring's two runs
    /// and the global tokens are separate spans, and the oldest ring slot is outside the new token's window.
    @Test("Slot-major decode matches the reference: formats, groups of 1–3, one or two workers, with a window",
          arguments: [KVCacheFormat.f32, .f16, .int8], [(heads: 3, kvHeads: 3), (heads: 4, kvHeads: 2),
                                                         (heads: 9, kvHeads: 3)])
    func slotMajorDecode(format: KVCacheFormat, grouping: (heads: Int, kvHeads: Int)) throws {
        let (heads, kvHeads, d, context) = (grouping.heads, grouping.kvHeads, 64, 2100)
        var rng = AttentionRandom(seed: 31)
        let keys = rng.array(context * kvHeads * d, amplitude: 2), values = rng.array(context * kvHeads * d)
        let q = rng.array(heads * d, amplitude: 2)
        func stored(_ x: [Float]) -> [Float] {
            stride(from: 0, to: x.count, by: d).flatMap {
                AttentionReference.roundTrip(Array(x[$0..<($0 + d)]), format: format)
            }
        }
        for window in [nil, 1100] as [Int?] {
            for threads in [1, 2] {
                let cache = try KVCache(layers: 1, kvHeads: kvHeads, headDim: d, capacity: context, format: format,
                                        window: window, globalTokens: window == nil ? 0 : 5)
                var filled = 0
                for chunk in [1000, 1, 600, 498] {
                    let range = (filled * kvHeads * d)..<((filled + chunk) * kvHeads * d)
                    try cache.append(layer: 0, keys: Array(keys[range]), values: Array(values[range]), count: chunk)
                    try cache.commit(chunk)
                    filled += chunk
                }
                try cache.append(layer: 0, keys: Array(keys.suffix(kvHeads * d)),
                                 values: Array(values.suffix(kvHeads * d)), count: 1)
                var out = [Float](repeating: .nan, count: heads * d)
                try Attention.causal(q: q, n: 1, heads: heads, cache: cache, layer: 0, out: &out, threads: threads)
                let reference = AttentionReference.attention(
                    q: q, n: 1, heads: heads, kvHeads: kvHeads, headDim: d, keys: stored(keys),
                    values: stored(values), t: context,
                    mask: .init(window: window, globalTokens: window == nil ? 0 : 5))
                #expect(relativeError(out, reference) < 1e-5,
                        "window \(String(describing: window)), \(threads) threads")
                let problem = Attention.Problem(
                    n: 1, heads: heads, kvHeads: kvHeads, headDim: d, layout: KVRowLayout(format: format, headDim: d),
                    slotBytes: KVRowLayout(format: format, headDim: d).rowBytes * kvHeads,
                    spans: cache.spans(layer: 0), queryStart: context - 1, causal: true, window: window,
                    globalTokens: window == nil ? 0 : 5, scale: 1, selector: nil)
                let units = Attention.slotMajorUnits(problem, workers: threads)
                #expect(units == (threads == 1 ? 1 : kvHeads * 2), "the slot-major path ran")
            }
        }
    }

    @Test("Decode over an INT4 cache, and block-sparse decode, keep the per-KV-head work items")
    func slotMajorIsNotTaken() throws {
        let spans = [KVCache.Span(first: 0, count: 4096, keys: UnsafeRawPointer(bitPattern: 64)!,
                                  values: UnsafeRawPointer(bitPattern: 64)!)]
        func problem(_ format: KVCacheFormat, heads: Int = 9, n: Int = 1) -> Attention.Problem {
            let layout = KVRowLayout(format: format, headDim: 64)
            return Attention.Problem(n: n, heads: heads, kvHeads: 3, headDim: 64, layout: layout,
                                     slotBytes: 3 * layout.rowBytes, spans: spans, queryStart: 4095, causal: true,
                                     window: nil, globalTokens: 0, scale: 1, selector: nil)
        }
        #expect(Attention.slotMajorUnits(problem(.f16), workers: 2) == 6)
        #expect(Attention.slotMajorUnits(problem(.int4), workers: 2) == nil)
        #expect(Attention.slotMajorUnits(problem(.f16, n: 2), workers: 2) == nil, "prefill")
        #expect(Attention.slotMajorUnits(problem(.f16, heads: 48), workers: 2) == nil, "16 heads per KV head")
        var sparse = problem(.f16)
        sparse.selector = Attention.BlockSelector(chunk: 128, topK: 4, means: BlockMeanKeys(kvHeads: 3, headDim: 64))
        #expect(Attention.slotMajorUnits(sparse, workers: 2) == nil, "block-sparse")
    }
}

@Suite("Attention kernels: dealing work units to workers")
struct AttentionDealingTests {
    static func problem() -> Attention.Problem {
        let spans = [KVCache.Span(first: 0, count: 1024, keys: UnsafeRawPointer(bitPattern: 64)!,
                                  values: UnsafeRawPointer(bitPattern: 64)!)]
        let layout = KVRowLayout(format: .f32, headDim: 64)
        return Attention.Problem(n: 1, heads: 9, kvHeads: 3, headDim: 64, layout: layout,
                                 slotBytes: 3 * layout.rowBytes, spans: spans, queryStart: 1023, causal: true,
                                 window: nil, globalTokens: 0, scale: 1, selector: nil)
    }

    /// Counts of how many times each unit ran, written from any thread.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var runs: [Int]
        private(set) var order: [Int] = []
        init(_ units: Int) { runs = [Int](repeating: 0, count: units) }
        func record(_ unit: Int) { lock.lock(); runs[unit] += 1; order.append(unit); lock.unlock() }
    }

    @Test("Every unit runs exactly once, on as many workers as the even deal gives",
          arguments: [1, 2, 3, 5, 6, 13], [1, 2, 3])
    func everyUnitOnce(units: Int, workers: Int) {
        let pool = ComputePool(threadCount: 3)
        for usePool in [true, false] {
            let tally = Tally(units)
            let chunks = Attention.dealUnits(units, workers: workers, pool: usePool ? pool : nil, Self.problem()) {
                unit, _ in tally.record(unit)
            }
            let perWorker = (units + workers - 1) / workers
            #expect(chunks == (units + perWorker - 1) / perWorker)
            #expect(tally.runs == [Int](repeating: 1, count: units), "pool \(usePool)")
        }
    }

    @Test("One worker takes the units from the last down (a causal prefill's longest rows first)")
    func lastUnitFirst() {
        let tally = Tally(7)
        _ = Attention.dealUnits(7, workers: 1, pool: nil, Self.problem()) { unit, _ in tally.record(unit) }
        #expect(tally.order == [6, 5, 4, 3, 2, 1, 0])
    }

    /// With fixed shares the caller would run 8 of 16 units and then wait for the slow worker's 8; claiming one at a
    /// time, the caller runs every unit the slow worker has not started.
    @Test("A slow worker takes fewer units: the caller runs the rest")
    func slowWorkerTakesFewer() {
        let pool = ComputePool(threadCount: 2)
        let caller = pthread_self()
        let tally = Tally(16)
        final class CallerCount: @unchecked Sendable { var value = 0 }
        let onCaller = CallerCount()
        _ = Attention.dealUnits(16, workers: 2, pool: pool, Self.problem()) { unit, _ in
            if pthread_equal(pthread_self(), caller) != 0 {
                onCaller.value += 1
            } else {
                usleep(20_000)
            }
            tally.record(unit)
        }
        #expect(tally.runs == [Int](repeating: 1, count: 16))
        #expect(onCaller.value >= 14, "the caller ran \(onCaller.value) of 16 units")
    }
}
