#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Synchronization
import AutoGLMSpecs
#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

/// Attention kernels over a `KVCache` (causal decoder attention) or explicit K/V (the vision encoder).
///
/// Two kernels compute the same function:
/// - `.materialised` forms each head's full query × key score matrix, applies the mask, a row softmax, then P·V.
/// - `.tiled` walks keys in tiles of `keyTile` with an online softmax (running max, running sum, rescaled
///   accumulator). A work item takes one KV head and a few query rows; its lanes (every query head of the group,
///   for each row) share each decoded key/value chunk, so grouped-query attention reads the cache once per group.
///   Scratch is O(lanes · (headDim + keyTile)) per worker, independent of the sequence; no score matrix exists.
///   When there are fewer work items than workers need (decoding with few KV heads), each item's key range is split
///   across workers and the partial softmax states (max, sum, accumulator) are merged.
/// Quantised caches are read in place: each 8-element chunk of a stored row is decoded in registers and used by all
/// lanes of the item; no dequantised copy of the cache is made.
/// Masks: causal; optional sliding window `w` with `g` global tokens (query i sees key p iff p ≤ i and
/// (i − p < w or p < g)); optional MoBA block-sparse selection.
public enum Attention {
    static let queryTile = 32
    static let keyTile = 64

    /// Worker threads used when none is given: the active cores.
    public static var defaultThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Causal self-attention for `n` new query tokens at positions `[cache.length, cache.length + n)`, whose K/V are
    /// appended for `layer` but not yet committed. `q`: `(n, heads*headDim)` row-major, rotary already applied.
    /// `out`: `(n, heads*headDim)`. GQA: head h reads KV head `h / (heads / kvHeads)`.
    /// `scale` defaults to 1/√headDim. With `blockSparse`, each query attends its own block of `chunk` positions
    /// (causally) plus the `topK − 1` earlier blocks whose mean-pooled keys score highest against it.
    public static func causal(q: UnsafePointer<Float>, n: Int, heads: Int, cache: KVCache, layer: Int,
                              out: UnsafeMutablePointer<Float>, kernel: AttentionKernel = .tiled,
                              scale: Float? = nil, blockSparse: Plan.BlockSparse? = nil,
                              threads: Int = Attention.defaultThreads, isa: KernelISA = .active,
                              pool: ComputePool? = nil) throws {
        try causalMeasuringScratch(q: q, n: n, heads: heads, cache: cache, layer: layer, out: out, kernel: kernel,
                                   scale: scale, blockSparse: blockSparse, threads: threads, isa: isa, pool: pool)
    }

    /// `causal`, returning the scratch bytes its workers allocated.
    @discardableResult
    static func causalMeasuringScratch(q: UnsafePointer<Float>, n: Int, heads: Int, cache: KVCache, layer: Int,
                                       out: UnsafeMutablePointer<Float>, kernel: AttentionKernel, scale: Float?,
                                       blockSparse: Plan.BlockSparse?, threads: Int,
                                       isa: KernelISA = .active, pool: ComputePool? = nil,
                                       tally: AttentionWorkTally? = nil) throws -> Int {
        guard layer >= 0 && layer < cache.layers else {
            throw AttentionError.layerOutOfRange(layer: layer, layers: cache.layers)
        }
        guard heads > 0 && heads % cache.kvHeads == 0 else {
            throw AttentionError.headsNotMultipleOfKVHeads(heads: heads, kvHeads: cache.kvHeads)
        }
        guard n >= 0 else { throw AttentionError.invalidParameter(name: "n", expected: ">= 0", got: n) }
        guard n == cache.pending[layer] else {
            throw AttentionError.queryCountMismatch(layer: layer, pending: cache.pending[layer], queries: n)
        }
        guard n > 0 else { return 0 }
        var selector: BlockSelector?
        if let blockSparse {
            guard blockSparse.chunk > 0 else {
                throw AttentionError.invalidParameter(name: "blockSparse.chunk", expected: "> 0", got: blockSparse.chunk)
            }
            guard blockSparse.topK > 0 else {
                throw AttentionError.invalidParameter(name: "blockSparse.topK", expected: "> 0", got: blockSparse.topK)
            }
            if let window = cache.window { throw AttentionError.blockSparseNeedsFullCache(window: window) }
            let tokens = cache.length + n
            selector = BlockSelector(chunk: blockSparse.chunk, topK: blockSparse.topK,
                                     means: cache.blockMeanKeys(layer: layer, chunk: blockSparse.chunk, tokens: tokens))
        }
        let spans = cache.spans(layer: layer)
        let problem = Problem(
            n: n, heads: heads, kvHeads: cache.kvHeads, headDim: cache.headDim, layout: cache.layout,
            slotBytes: cache.slotBytes, spans: spans, queryStart: cache.length,
            causal: true, window: cache.window, globalTokens: cache.globalTokens,
            scale: scale ?? 1 / Float(cache.headDim).squareRoot(), selector: selector, isa: isa, tally: tally)
        let workers = callWorkers(n: n, kernel: kernel, heads: heads, kvHeads: cache.kvHeads, headDim: cache.headDim,
                                  format: cache.layout.format, blockSparse: selector != nil,
                                  keys: spans.reduce(0) { $0 + $1.count }, threads: threads)
        return try run(problem, q: q, out: out, kernel: kernel, threads: workers, pool: pool)
    }

    /// Workers of one call over `keys` stored keys with `threads` available: every thread for a batch of rows
    /// (prefill, encode) and for a decode row the tiled kernel splits into key ranges (`keySplits`: on 2 threads and
    /// 3 KV heads from 1,024 keys); an unsplit decode row that reads the cache slot by slot (`slotMajorDecodes`:
    /// F32, F16 and INT8 caches without block selection) runs on one, and every other decode row deals its work
    /// items (KV heads; materialised: query heads) over every thread. Measured on the 2-core Zen 3 host (one SmolLM2
    /// layer, K/V flushed before each call, alternating runs at 256, 512 and 768 keys): slot by slot on one thread
    /// against the 3 KV heads dealt to 2 workers, F32 1.3× faster and F16 within 10% either way, a 256 + 4 window
    /// 1.2× faster; dealt over 2 workers against one, INT4 1.1–1.35×, MoBA 128/4 1.1–1.4× and the materialised
    /// kernel 1.3–1.7× faster. The model, `bench-attention` and the planner's cost model
    /// (`AttentionCostModel.workers`) follow this choice.
    public static func callWorkers(n: Int, kernel: AttentionKernel, heads: Int, kvHeads: Int, headDim: Int,
                                   format: KVCacheFormat, blockSparse: Bool, keys: Int, threads: Int) -> Int {
        let threads = max(1, threads)
        guard n == 1, kernel == .tiled, keySplits(items: kvHeads, workers: threads, keys: keys) == 1 else {
            return threads
        }
        let slotMajor = slotMajorDecodes(group: heads / max(1, kvHeads), headDim: headDim, format: format,
                                         blockSparse: blockSparse)
        return slotMajor ? 1 : threads
    }

    /// Whether a decode row of this layout takes the slot-major path (`slotMajorUnits`): fewer than 4 query heads
    /// per KV head (more take the wide tile), rows in whole 32-element groups, no block selection, not INT4.
    public static func slotMajorDecodes(group: Int, headDim: Int, format: KVCacheFormat, blockSparse: Bool) -> Bool {
        !blockSparse && group < 4 && headDim % KVRowLayout.groupSize == 0 && format != .int4
    }

    /// Non-causal attention over explicit K/V (the vision encoder): q `(n, heads*d)`, k/v `(m, kvHeads*d)`,
    /// out `(n, heads*d)`.
    public static func full(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, n: Int, m: Int,
                            heads: Int, kvHeads: Int, headDim: Int, out: UnsafeMutablePointer<Float>,
                            kernel: AttentionKernel = .tiled, scale: Float? = nil,
                            threads: Int = Attention.defaultThreads, isa: KernelISA = .active,
                            pool: ComputePool? = nil) throws {
        try fullMeasuringScratch(q: q, k: k, v: v, n: n, m: m, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                 out: out, kernel: kernel, scale: scale, threads: threads, isa: isa, pool: pool)
    }

    /// `full`, returning the scratch bytes its workers allocated.
    @discardableResult
    static func fullMeasuringScratch(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                     n: Int, m: Int, heads: Int, kvHeads: Int, headDim: Int,
                                     out: UnsafeMutablePointer<Float>, kernel: AttentionKernel, scale: Float?,
                                     threads: Int, isa: KernelISA = .active, pool: ComputePool? = nil) throws -> Int {
        guard n >= 0 else { throw AttentionError.invalidParameter(name: "n", expected: ">= 0", got: n) }
        guard m > 0 else { throw AttentionError.invalidParameter(name: "m", expected: "> 0", got: m) }
        guard headDim > 0 else { throw AttentionError.invalidParameter(name: "headDim", expected: "> 0", got: headDim) }
        guard kvHeads > 0, heads > 0, heads % kvHeads == 0 else {
            throw AttentionError.headsNotMultipleOfKVHeads(heads: heads, kvHeads: kvHeads)
        }
        guard n > 0 else { return 0 }
        let layout = KVRowLayout(format: .f32, headDim: headDim)
        let span = KVCache.Span(first: 0, count: m, keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v))
        let problem = Problem(
            n: n, heads: heads, kvHeads: kvHeads, headDim: headDim, layout: layout, slotBytes: kvHeads * headDim * 4,
            spans: [span], queryStart: 0, causal: false, window: nil, globalTokens: 0,
            scale: scale ?? 1 / Float(headDim).squareRoot(), selector: nil, isa: isa)
        let workers = callWorkers(n: n, kernel: kernel, heads: heads, kvHeads: kvHeads, headDim: headDim, format: .f32,
                                  blockSparse: false, keys: m, threads: threads)
        return try run(problem, q: q, out: out, kernel: kernel, threads: workers, pool: pool)
    }

    /// Bytes of scratch a kernel allocates for `n` queries over `m` stored keys (all workers together).
    /// Materialised: an n·m F32 score matrix per head in flight plus a worker's buffers; tiled: per worker, a query
    /// tile's scaled queries and accumulators and one key tile of scores (independent of n and m, except for the
    /// per-block scores of block-sparse selection).
    /// `kvHeads` defaults to `heads` (no grouping); `kvFormat` is the cache's (one decode row's workers depend on it).
    public static func scratchBytes(n: Int, m: Int, heads: Int, kernel: AttentionKernel, threads: Int,
                                    headDim: Int = 128, kvHeads: Int? = nil,
                                    blockSparse: Plan.BlockSparse? = nil, kvFormat: KVCacheFormat = .f32) -> Int {
        let kvHeads = max(1, kvHeads ?? heads)
        let workers = callWorkers(n: n, kernel: kernel, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                  format: kvFormat, blockSparse: blockSparse != nil, keys: m, threads: threads)
        let blocks = blockSparse.map { m / max(1, $0.chunk) + 1 } ?? 0
        let maxIntervals = blockSparse.map { $0.topK + 1 } ?? 2
        let lanes = TiledScratch.lanes(heads: heads, kvHeads: kvHeads)
        let worker = TiledScratch.bytes(lanes: lanes, headDim: headDim, blocks: blocks, maxIntervals: maxIntervals)
        func chunks(_ items: Int) -> Int {
            let per = (items + workers - 1) / workers
            return (items + per - 1) / per
        }
        switch kernel {
        case .materialised:
            return chunks(heads) * (max(4, n * m * 4) + worker)
        case .tiled:
            let rowsPer = rowsPerItem(group: heads / kvHeads)
            let items = kvHeads * ((n + rowsPer - 1) / rowsPer)
            let splits = keySplits(items: items, workers: workers, keys: m)
            let partial = splits > 1 ? items * splits * lanes * (headDim + 2) * 4 : 0
            return chunks(items * splits) * worker + partial
        }
    }

    // MARK: Problem description

    /// Everything a kernel needs, independent of where the K/V came from.
    struct Problem: @unchecked Sendable {
        var n: Int
        var heads: Int
        var kvHeads: Int
        var headDim: Int
        var layout: KVRowLayout
        var slotBytes: Int
        var spans: [KVCache.Span]
        /// Position of the first query row.
        var queryStart: Int
        var causal: Bool
        var window: Int?
        var globalTokens: Int
        var scale: Float
        var selector: BlockSelector?
        /// Kernel family of the tile loops (the AVX-512 tile needs head_dim a multiple of 16).
        var isa: KernelISA = .active
        /// Where the tiled kernel's workers add up the work their tiles did (nil: not counted).
        var tally: AttentionWorkTally? = nil

        /// Upper bound on the intervals one query row attends.
        var maxIntervals: Int { selector.map { $0.topK + 1 } ?? 2 }

        /// Writes the position intervals `[lo, hi)` query position `i` attends (sorted, disjoint, merged) into
        /// `buffer` and returns their count. `qScaled` is the query row (head h), used by block selection.
        func intervals(position i: Int, kvHead: Int, qScaled: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>,
                       chosen: UnsafeMutablePointer<Int>, into buffer: UnsafeMutablePointer<Int>) -> Int {
            guard causal else {
                buffer[0] = 0; buffer[1] = Int.max
                return 1
            }
            if let selector {
                return selector.intervals(position: i, kvHead: kvHead, q: qScaled, scores: scores, chosen: chosen,
                                          into: buffer)
            }
            guard let window else {
                buffer[0] = 0; buffer[1] = i + 1
                return 1
            }
            let recent = max(0, i - window + 1)
            let globals = min(globalTokens, i + 1)
            if globals >= recent {
                buffer[0] = 0; buffer[1] = i + 1
                return 1
            }
            if globals == 0 {
                buffer[0] = recent; buffer[1] = i + 1
                return 1
            }
            buffer[0] = 0; buffer[1] = globals; buffer[2] = recent; buffer[3] = i + 1
            return 2
        }
    }

    /// The MoBA rule: a query at position i in block b = i / chunk attends block b causally plus the topK − 1 blocks
    /// before b whose mean-pooled keys have the highest dot product with the query (ties: the earlier block).
    struct BlockSelector: Sendable {
        var chunk: Int
        var topK: Int
        /// Mean-pooled keys of complete blocks.
        var means: BlockMeanKeys

        func intervals(position i: Int, kvHead: Int, q: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>,
                       chosen: UnsafeMutablePointer<Int>, into buffer: UnsafeMutablePointer<Int>) -> Int {
            let own = i / chunk
            let others = min(topK - 1, own)
            var count = 0
            if others == own {
                for b in 0..<own { chosen[b] = b }
                count = own
            } else if others > 0 {
                means.scores(kvHead: kvHead, q: q, count: own, into: scores)
                count = Self.choosesByThreshold(count: own, keep: others)
                    ? Self.chooseByThreshold(scores, count: own, keep: others, into: chosen)
                    : Self.chooseByInsertion(scores, count: own, keep: others, into: chosen)
            }
            var k = 0
            for c in 0..<count {
                let lo = chosen[c] * chunk, hi = lo + chunk
                if k > 0 && buffer[2 * k - 1] == lo { buffer[2 * k - 1] = hi } else {
                    buffer[2 * k] = lo; buffer[2 * k + 1] = hi; k += 1
                }
            }
            let lo = own * chunk
            if k > 0 && buffer[2 * k - 1] == lo { buffer[2 * k - 1] = i + 1 } else {
                buffer[2 * k] = lo; buffer[2 * k + 1] = i + 1; k += 1
            }
            return k
        }

        /// Whether the threshold search chooses `keep` of `count` blocks rather than insertion: for 12 kept blocks
        /// or more among at most 32 times as many. Timed alternately on the Zen 3 host (random scores, threshold ÷
        /// insertion): keeping 15 of 24 / 64 / 128 / 256 / 512 / 1,024 blocks 0.70 / 0.70 / 0.56 / 0.61 / 0.75 /
        /// 1.05; 8 of 64 / 256 / 1,024 1.38 / 1.59 / 1.87; 3 of 16 / 64 / 1,024 1.7 / 2.1 / 2.9. Insertion costs a
        /// few moves and a mispredicted branch per score that enters the list, the search about 3 ns per score.
        static func choosesByThreshold(count: Int, keep: Int) -> Bool {
            keep >= 12 && count <= 32 * keep
        }

        /// The `keep` best of `count` scores (score descending, ties to the earlier block), written to `chosen` in
        /// index order: a sorted list of the best so far, each score inserted by shifting, then the list sorted by
        /// index.
        static func chooseByInsertion(_ scores: UnsafeMutablePointer<Float>, count n: Int, keep: Int,
                                      into chosen: UnsafeMutablePointer<Int>) -> Int {
            var count = 0
            for b in 0..<n {
                let s = scores[b]
                if count == keep && !(s > scores[chosen[count - 1]]) { continue }
                var j = count == keep ? count - 1 : count
                while j > 0 && s > scores[chosen[j - 1]] { chosen[j] = chosen[j - 1]; j -= 1 }
                chosen[j] = b
                if count < keep { count += 1 }
            }
            for a in 1..<max(1, count) {
                let x = chosen[a]; var j = a
                while j > 0 && chosen[j - 1] > x { chosen[j] = chosen[j - 1]; j -= 1 }
                chosen[j] = x
            }
            return count
        }

        /// The same choice (`keep` < `count`) without sorting: each score becomes a 32-bit integer key in the same
        /// order (−0 equal to +0, NaN below everything), the `keep`-th largest key is built bit by bit from the
        /// top (a bit is kept while at least `keep` keys lie at or above the candidate, counted eight at a time),
        /// stopping early once exactly `keep` keys lie at or above it; one pass in index order then takes the keys
        /// above the threshold and, of the keys equal to it, the earliest ones, already in index order. The scores
        /// are overwritten with the keys.
        static func chooseByThreshold(_ scores: UnsafeMutablePointer<Float>, count n: Int, keep: Int,
                                      into chosen: UnsafeMutablePointer<Int>) -> Int {
            scores.withMemoryRebound(to: Int32.self, capacity: n) { keys in
                for b in 0..<n {
                    let s = Float(bitPattern: UInt32(bitPattern: keys[b])) + 0
                    let bits = Int32(bitPattern: s.bitPattern)
                    keys[b] = s.isNaN ? .min : (bits < 0 ? bits ^ .max : bits)
                }
                /// Keys at or above `t`.
                func atLeast(_ t: Int32) -> Int {
                    let bound = SIMD8<Int32>(repeating: t), one = SIMD8<Int32>(repeating: 1)
                    var sum = SIMD8<Int32>(), b = 0
                    while b + 8 <= n {
                        let v = UnsafeRawPointer(keys + b).loadUnaligned(as: SIMD8<Int32>.self)
                        sum &+= SIMD8<Int32>().replacing(with: one, where: v .>= bound)
                        b += 8
                    }
                    var total = Int(sum.wrappedSum())
                    while b < n { if keys[b] >= t { total += 1 }; b += 1 }
                    return total
                }
                // Offset-binary form of the threshold (unsigned order equals the keys' signed order).
                var u: UInt32 = 0, exact = false
                for bit in stride(from: 31, through: 0, by: -1) {
                    let candidate = u | (1 << UInt32(bit))
                    let above = atLeast(Int32(bitPattern: candidate ^ 0x8000_0000))
                    if above >= keep {
                        u = candidate
                        if above == keep { exact = true; break }
                    }
                }
                let threshold = Int32(bitPattern: u ^ 0x8000_0000)
                // Keys equal to the threshold that are taken (the earliest); with `exact` every key at or above it.
                var ties = exact ? n : keep - (threshold == .max ? 0 : atLeast(threshold + 1))
                var count = 0
                for b in 0..<n {
                    let key = keys[b]
                    let tie = key == threshold && ties > 0
                    chosen[count] = b
                    count += key > threshold || tie ? 1 : 0
                    ties -= tie ? 1 : 0
                }
                return count
            }
        }
    }

    // MARK: Dispatch

    /// Runs the kernel; returns the scratch bytes allocated by all workers together.
    @discardableResult
    /// With a `pool`, the workers are the pool's threads (whose idle workers would otherwise spin beside a second
    /// set of threads); without one, Dispatch's.
    static func run(_ p: Problem, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    kernel: AttentionKernel, threads: Int, pool: ComputePool? = nil) throws -> Int {
        let workers = max(1, threads)
        let qAddress = UInt(bitPattern: q), outAddress = UInt(bitPattern: out)
        switch kernel {
        case .tiled:
            if let units = slotMajorUnits(p, workers: workers) {
                return try runSlotMajor(p, units: units, q: q, out: out, workers: workers, pool: pool)
            }
            let rowsPer = rowsPerItem(group: p.heads / p.kvHeads)
            let items = p.kvHeads * ((p.n + rowsPer - 1) / rowsPer)
            let lanes = TiledScratch.lanes(heads: p.heads, kvHeads: p.kvHeads)
            let end = p.spans.last.map { $0.first + $0.count } ?? 0
            // Split by stored keys, not by positions: under a window with global tokens the positions between the
            // globals and the window hold nothing, and a position split would leave one range nearly empty.
            let stored = p.spans.reduce(0) { $0 + $1.count }
            let splits = keySplits(items: items, workers: workers, keys: stored)
            // Block-sparse selection needs a full cache (one run of positions from 0): its splits take alternate
            // tiles of the whole range (`TileShare`).
            let interleaved = p.selector != nil && splits > 1
            let bounds = (0...splits).map { splitBoundary(p.spans, stored: stored * $0 / splits, end: end) }
            let partialFloats = splits > 1 ? items * splits * lanes * (p.headDim + 2) : 0
            let partial = try allocatePartial(floats: partialFloats)
            defer { free(partial) }
            let partialAddress = UInt(bitPattern: partial)
            let chunks = dealUnits(items * splits, workers: workers, pool: pool, p) { unit, scratch in
                let qp = UnsafePointer<Float>(bitPattern: qAddress)!, op = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                let pp = UnsafeMutablePointer<Float>(bitPattern: partialAddress)
                let item = unit / splits, split = unit % splits
                let range = interleaved ? 0..<end : bounds[split]..<bounds[split + 1]
                tiled(p, kvHead: item % p.kvHeads, rows: (item / p.kvHeads) * rowsPer, q: qp, out: op,
                      keyRange: range, tiles: interleaved ? TileShare(stride: splits, phase: split) : .all,
                      partial: pp.map { $0 + unit * lanes * (p.headDim + 2) }, scratch: scratch)
            }
            if let partial {
                mergeSplits(p, items: items, splits: splits, lanes: lanes, rowsPer: rowsPer, partial: partial, out: out)
            }
            return chunks * TiledScratch.bytes(p) + partialFloats * 4
        case .materialised:
            let m = p.spans.reduce(0) { $0 + $1.count }
            let matrixBytes = p.n * m * 4
            let perWorker = (p.heads + workers - 1) / workers
            let chunks = (p.heads + perWorker - 1) / perWorker
            let failed = FailureFlag()
            let claims = UnitClaims(p.heads)
            concurrentPerform(chunks, serial: workers == 1, pool: pool) { _ in
                // Heads are claimed one at a time (see `dealUnits`); each worker allocates its matrix and scratch
                // with its first head.
                guard let first = claims.claim() else { return }
                guard let matrix = malloc(max(4, matrixBytes))?.assumingMemoryBound(to: Float.self) else {
                    failed.set(); return
                }
                defer { free(matrix) }
                let scratch = TiledScratch(p)
                defer { scratch.release() }
                let qp = UnsafePointer<Float>(bitPattern: qAddress)!, op = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                materialised(p, head: first, m: m, q: qp, out: op, matrix: matrix, scratch: scratch)
                while let head = claims.claim() {
                    materialised(p, head: head, m: m, q: qp, out: op, matrix: matrix, scratch: scratch)
                }
            }
            if failed.isSet { throw AttentionError.allocationFailed(bytes: matrixBytes) }
            return chunks * (max(4, matrixBytes) + TiledScratch.bytes(p))
        }
    }

    /// Runs `units` work units of the tiled kernel on at most `workers` workers, each with scratch of its own
    /// (allocated with the first unit it claims); returns how many workers the call was dealt to. Workers claim units
    /// one at a time (`UnitClaims`), the most expensive first, instead of taking fixed shares: a worker that starts
    /// late or runs slower than the others (a core shared with other work on a busy host, a phone's little core)
    /// ends up with fewer units rather than holding the call up with a share it is slow to finish. Claiming from the
    /// top also balances a causal prefill, whose later query rows attend more keys.
    static func dealUnits(_ units: Int, workers: Int, pool: ComputePool?, _ p: Problem,
                          _ body: @escaping @Sendable (Int, TiledScratch) -> Void) -> Int {
        let perWorker = (units + workers - 1) / workers
        let chunks = (units + perWorker - 1) / perWorker
        let claims = UnitClaims(units)
        concurrentPerform(chunks, serial: workers == 1, pool: pool) { _ in
            guard let first = claims.claim() else { return }
            let scratch = TiledScratch(p)
            defer { scratch.release() }
            body(first, scratch)
            while let unit = claims.claim() { body(unit, scratch) }
        }
        return chunks
    }

    /// Work units handed out one at a time to whichever worker asks next, from the highest index down.
    final class UnitClaims: Sendable {
        private let taken = Atomic<Int>(0)
        let count: Int
        init(_ count: Int) { self.count = count }
        /// The next unit (count − 1 first), or nil once every unit is taken.
        func claim() -> Int? {
            let i = taken.add(1, ordering: .relaxed).oldValue
            return i < count ? count - 1 - i : nil
        }
    }

    private static func concurrentPerform(_ count: Int, serial: Bool, pool: ComputePool?,
                                          _ body: @escaping @Sendable (Int) -> Void) {
        if serial || count == 1 {
            for i in 0..<count { body(i) }
        } else if let pool {
            pool.parallelFor(count, body)
        } else {
            DispatchQueue.concurrentPerform(iterations: count, execute: body)
        }
    }

    /// Set by any worker whose allocation failed.
    final class FailureFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.lock(); value = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    }

    /// How many key ranges to split each work item into so that few work items (decoding, few KV heads) still
    /// occupy every worker; each range must keep at least 512 keys.
    /// The position of the stored key with index `k` (keys counted across the spans in order); `end` for k past them.
    static func splitBoundary(_ spans: [KVCache.Span], stored k: Int, end: Int) -> Int {
        var before = 0
        for span in spans {
            if k < before + span.count { return span.first + (k - before) }
            before += span.count
        }
        return end
    }

    static func keySplits(items: Int, workers: Int, keys: Int) -> Int {
        guard workers > 1, items < 2 * workers else { return 1 }
        return max(1, min((2 * workers + items - 1) / items, keys / 512))
    }

    /// Partial softmax states of `floats` floats (nil for none).
    static func allocatePartial(floats: Int) throws -> UnsafeMutablePointer<Float>? {
        guard floats > 0 else { return nil }
        guard let buffer = malloc(floats * 4) else { throw AttentionError.allocationFailed(bytes: floats * 4) }
        return buffer.assumingMemoryBound(to: Float.self)
    }

    /// One lane's output from the partial softmax states (max, sum, head_dim accumulators) of its `states` key
    /// ranges, in order (`state(i)` addresses the i-th): each rescaled to the largest max, summed, normalised.
    @inline(__always)
    static func mergeLane(states: Int, headDim d: Int, into dst: UnsafeMutablePointer<Float>,
                          _ state: (Int) -> UnsafeMutablePointer<Float>) {
        var top = -Float.infinity
        for i in 0..<states { top = max(top, state(i)[0]) }
        dst.initialize(repeating: 0, count: d)
        var sum: Float = 0
        for i in 0..<states {
            let st = state(i)
            guard st[0] > -.infinity else { continue }
            let w = expf(st[0] - top)
            sum += w * st[1]
            for j in 0..<d { dst[j] += w * st[2 + j] }
        }
        let inv: Float = sum > 0 ? 1 / sum : 0
        for j in 0..<d { dst[j] *= inv }
    }

    /// Combines the partial softmax states (max, sum, accumulator) of the key ranges of each lane.
    static func mergeSplits(_ p: Problem, items: Int, splits: Int, lanes: Int, rowsPer: Int,
                            partial: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let d = p.headDim, width = p.heads * d, group = p.heads / p.kvHeads
        let laneFloats = d + 2
        for item in 0..<items {
            let kvh = item % p.kvHeads, r0 = (item / p.kvHeads) * rowsPer
            let rows = min(rowsPer, p.n - r0)
            for lane in 0..<(rows * group) {
                let r = lane / group, h = kvh * group + lane % group
                mergeLane(states: splits, headDim: d, into: out + (r0 + r) * width + h * d) {
                    partial + ((item * splits + $0) * lanes + lane) * laneFloats
                }
            }
        }
    }

    /// Query rows per tiled work item: enough rows that the item's lanes (rows × query heads sharing one KV head)
    /// number about `laneTarget`, so each key tile is decoded once for many queries.
    static let laneTarget = 32
    static func rowsPerItem(group: Int) -> Int { max(1, min(queryTile, laneTarget / max(1, group))) }

    /// Per-worker buffers. A lane is one (query row, query head) pair of a work item.
    /// The lane-indexed state (maxes, sums, the transposed queries, bounds) is padded to the lane pitch, a multiple
    /// of 16, for the AVX-512 tile; every kernel family allocates the same buffers.
    final class TiledScratch {
        let lanes: Int
        /// `lanes` rounded up to a multiple of 16.
        let lanePitch: Int
        let q: UnsafeMutablePointer<Float>           // lanes × headDim scaled queries
        let acc: UnsafeMutablePointer<Float>         // lanes × headDim accumulators
        let maxes: UnsafeMutablePointer<Float>       // lanePitch
        let sums: UnsafeMutablePointer<Float>        // lanePitch
        let scores: UnsafeMutablePointer<Float>      // keyTile × lanePitch
        let qT: UnsafeMutablePointer<Float>          // headDim × lanePitch, scaled queries transposed
        let keys: UnsafeMutablePointer<Float>        // keyTile × headDim, one decoded key tile
        let values: UnsafeMutablePointer<Float>      // keyTile × headDim, one decoded value tile
        let correction: UnsafeMutablePointer<Float>  // lanePitch
        /// The work this worker's tiles did, added to the problem's tally (if any) on release.
        var work = AttentionWorkTally.Counts()
        let tally: AttentionWorkTally?
        let lo: UnsafeMutablePointer<Int32>          // lanePitch, first visible key of the tile per lane
        let hi: UnsafeMutablePointer<Int32>          // lanePitch, end of the visible keys per lane
        let blockScores: UnsafeMutablePointer<Float> // blocks (block-sparse selection)
        let intervals: UnsafeMutablePointer<Int>     // lanes × maxIntervals × 2
        let counts: UnsafeMutablePointer<Int>        // lanes
        /// Per lane, the first of its intervals that the key tiles have not yet passed (tiles go up in position
        /// within a work item), so that finding a tile's runs does not walk every interval again.
        let cursors: UnsafeMutablePointer<Int>       // lanes
        let chosen: UnsafeMutablePointer<Int>        // blocks
        /// Block-sparse problems only (nil otherwise): the lanes active in a key tile gathered at the front, so that
        /// the wide tile computes those lanes only (the heads of a KV group pick different blocks).
        let compact: CompactLanes?

        /// The wide tile's per-lane state for the active lanes of one key tile, in the order of `active`.
        final class CompactLanes {
            let qT: UnsafeMutablePointer<Float>        // headDim × lanePitch
            let acc: UnsafeMutablePointer<Float>       // lanes × headDim
            let maxes: UnsafeMutablePointer<Float>     // lanePitch
            let sums: UnsafeMutablePointer<Float>      // lanePitch
            let lo: UnsafeMutablePointer<Int32>        // lanePitch
            let hi: UnsafeMutablePointer<Int32>        // lanePitch
            let active: UnsafeMutablePointer<Int32>    // lanePitch, the item's lane for each compact lane
            init(lanes: Int, pitch: Int, headDim d: Int) {
                qT = .allocate(capacity: d * pitch); acc = .allocate(capacity: lanes * d)
                maxes = .allocate(capacity: pitch); sums = .allocate(capacity: pitch)
                lo = .allocate(capacity: pitch); hi = .allocate(capacity: pitch); active = .allocate(capacity: pitch)
            }
            func release() {
                qT.deallocate(); acc.deallocate(); maxes.deallocate(); sums.deallocate()
                lo.deallocate(); hi.deallocate(); active.deallocate()
            }
            static func bytes(lanes: Int, pitch: Int, headDim d: Int) -> Int {
                (pitch * d + lanes * d + 2 * pitch) * MemoryLayout<Float>.stride + 3 * pitch * MemoryLayout<Int32>.stride
            }
        }

        static func lanes(heads: Int, kvHeads: Int) -> Int {
            let group = heads / max(1, kvHeads)
            return rowsPerItem(group: group) * group
        }
        static func lanePitch(_ lanes: Int) -> Int { (lanes + 15) / 16 * 16 }
        /// Bytes one worker's scratch takes for a problem.
        static func bytes(_ p: Problem) -> Int {
            bytes(lanes: lanes(heads: p.heads, kvHeads: p.kvHeads), headDim: p.headDim, blocks: blocks(p),
                  maxIntervals: p.maxIntervals)
        }
        static func bytes(lanes: Int, headDim d: Int, blocks: Int, maxIntervals: Int) -> Int {
            let pitch = lanePitch(lanes)
            let floats = 2 * lanes * d + 3 * pitch + Attention.keyTile * pitch + pitch * d + 2 * Attention.keyTile * d
                + max(1, blocks)
            let int32s = 2 * pitch
            let ints = lanes * maxIntervals * 2 + 2 * lanes + max(1, blocks)
            return floats * MemoryLayout<Float>.stride + int32s * MemoryLayout<Int32>.stride
                + ints * MemoryLayout<Int>.stride + (blocks > 0 ? CompactLanes.bytes(lanes: lanes, pitch: pitch, headDim: d) : 0)
        }
        static func blocks(_ p: Problem) -> Int {
            p.selector.map { $0.means.blocks + 1 } ?? 0
        }
        init(_ p: Problem) {
            let d = p.headDim
            let blocks = TiledScratch.blocks(p)
            lanes = TiledScratch.lanes(heads: p.heads, kvHeads: p.kvHeads)
            lanePitch = TiledScratch.lanePitch(lanes)
            q = .allocate(capacity: lanes * d)
            acc = .allocate(capacity: lanes * d)
            maxes = .allocate(capacity: lanePitch)
            sums = .allocate(capacity: lanePitch)
            scores = .allocate(capacity: Attention.keyTile * lanePitch)
            qT = .allocate(capacity: d * lanePitch)
            keys = .allocate(capacity: Attention.keyTile * d)
            values = .allocate(capacity: Attention.keyTile * d)
            correction = .allocate(capacity: lanePitch)
            lo = .allocate(capacity: lanePitch)
            hi = .allocate(capacity: lanePitch)
            blockScores = .allocate(capacity: max(1, blocks))
            intervals = .allocate(capacity: lanes * p.maxIntervals * 2)
            counts = .allocate(capacity: lanes)
            cursors = .allocate(capacity: lanes)
            chosen = .allocate(capacity: max(1, blocks))
            compact = blocks > 0 ? CompactLanes(lanes: lanes, pitch: lanePitch, headDim: d) : nil
            tally = p.tally
        }
        func release() {
            tally?.add(work)
            q.deallocate(); acc.deallocate(); maxes.deallocate(); sums.deallocate(); scores.deallocate()
            qT.deallocate(); keys.deallocate(); values.deallocate(); correction.deallocate()
            lo.deallocate(); hi.deallocate()
            blockScores.deallocate(); intervals.deallocate(); counts.deallocate(); cursors.deallocate()
            chosen.deallocate()
            compact?.release()
        }
    }

    // MARK: Tiled kernel (online softmax)

    /// One work item of the tiled kernel: every query head that shares KV head `kvh`, for query rows
    /// `r0 ..< r0 + rowsPerItem`.
    /// Only keys at positions in `keyRange` are visited; with `partial`, the item writes each lane's softmax state
    /// (max, sum, headDim accumulators) there instead of its normalised output.
    static func tiled(_ p: Problem, kvHead kvh: Int, rows r0: Int, q: UnsafePointer<Float>,
                      out: UnsafeMutablePointer<Float>, keyRange: Range<Int>, tiles: TileShare = .all,
                      partial: UnsafeMutablePointer<Float>?, scratch s: TiledScratch) {
        let vectorised = p.headDim % KVRowLayout.groupSize == 0
        switch p.layout.format {
        case .f32: tiled(F32Chunks.self, vectorised, p, kvh, r0, q, out, keyRange, tiles, partial, s)
        case .f16: tiled(F16Chunks.self, vectorised, p, kvh, r0, q, out, keyRange, tiles, partial, s)
        case .int8: tiled(Int8Chunks.self, vectorised, p, kvh, r0, q, out, keyRange, tiles, partial, s)
        case .int4: tiled(Int4Chunks.self, vectorised, p, kvh, r0, q, out, keyRange, tiles, partial, s)
        }
    }

    /// Which key tiles of a span a work unit visits: those whose index within the span is `phase` modulo `stride`
    /// (`all`: every one). Block-sparse decode splits its keys this way rather than into contiguous ranges: a
    /// query's own block is always the last one, so the worker holding the last range would do every head's own
    /// block (up to three quarters of the work with two workers and large blocks), where alternate tiles share each
    /// block between the workers.
    struct TileShare {
        var stride: Int
        var phase: Int
        static let all = TileShare(stride: 1, phase: 0)
        /// The first tile offset at or after `t0` (a multiple of `keyTile`) that this share visits.
        @inline(__always)
        func align(_ t0: Int) -> Int {
            guard stride > 1 else { return t0 }
            let index = t0 / keyTile
            return (index + ((phase - index % stride) + stride) % stride) * keyTile
        }
    }

    @inline(__always)
    static func tiled<D: KVChunkDecoder>(_ decoder: D.Type, _ vectorised: Bool, _ p: Problem, _ kvh: Int, _ r0: Int,
                                         _ q: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                         _ keyRange: Range<Int>, _ tiles: TileShare,
                                         _ partial: UnsafeMutablePointer<Float>?, _ s: TiledScratch) {
        let d = p.headDim, width = p.heads * d
        let group = p.heads / p.kvHeads
        let rows = min(rowsPerItem(group: group), p.n - r0)
        let lanes = rows * group
        let ivStride = p.maxIntervals * 2
        let headOffset = kvh * p.layout.rowBytes
        // Block-sparse selection differs per head; otherwise all heads of a row share the row's intervals.
        let perLane = p.selector != nil
        for r in 0..<rows {
            for gh in 0..<group {
                let lane = r * group + gh, h = kvh * group + gh
                let src = q + (r0 + r) * width + h * d, dst = s.q + lane * d
                for j in 0..<d { dst[j] = src[j] * p.scale }
                s.maxes[lane] = -.infinity
                s.sums[lane] = 0
                (s.acc + lane * d).initialize(repeating: 0, count: d)
                s.cursors[lane] = 0
                if perLane || gh == 0 {
                    s.counts[lane] = p.intervals(position: p.queryStart + r0 + r, kvHead: kvh, qScaled: dst,
                                                 scores: s.blockScores, chosen: s.chosen, into: s.intervals + lane * ivStride)
                }
            }
        }
        let laneGroup = perLane ? 1 : group
        let lastPosition = p.causal ? p.queryStart + r0 + rows - 1 : Int.max
        let wide = usesWideTile(p, lanes: lanes)
        if wide { prepareWideTile(s, lanes: lanes, headDim: d) }
        // Lanes whose state the compacted buffers hold from one wide step to the next (0: none): a run of tiles
        // with the same active lanes (the tiles of one chosen block) gathers them once and writes them back once.
        var held = 0
        for span in p.spans {
            var t0 = max(0, keyRange.lowerBound - span.first)
            while true {
                t0 = tiles.align(t0)
                guard t0 < span.count else { break }
                let tileLo = span.first + t0
                if tileLo > lastPosition || tileLo >= keyRange.upperBound { break }
                let tileHi = min(keyRange.upperBound, span.first + min(span.count, t0 + keyTile))
                // Block-sparse: whole tiles no lane chose are jumped over rather than tested lane by lane (most of a
                // long context is not read; decode at 32K keys would otherwise test 512 tiles for its few blocks).
                if perLane {
                    guard let next = nextAttended(s, lanes: lanes, ivStride: ivStride, from: tileLo, cursors: s.cursors)
                    else { break }
                    if next >= tileHi {
                        t0 += max(keyTile, (next - tileLo) / keyTile * keyTile)
                        continue
                    }
                }
                // Every lane sees at most one run of this tile (causal, window): all lanes in one wide step, each
                // masked to its own run. Several runs in a lane (blocks shorter than a tile) take the lane loops.
                if wide, let union = singleRunBounds(s, lanes: lanes, leaderStride: laneGroup, ivStride: ivStride,
                                                     tileLo, tileHi) {
                    if union.lowerBound < union.upperBound {
                        if let c = s.compact, let active = gatherActiveLanes(p, s, c, lanes: lanes, held: &held) {
                            wideTile(D.self, vectorised, p, s, WideLanes(c), span: span, headOffset: headOffset,
                                     lanes: active, keys: union)
                        } else {
                            releaseHeldLanes(s, held: &held, headDim: d)
                            wideTile(D.self, vectorised, p, s, WideLanes(s), span: span, headOffset: headOffset,
                                     lanes: lanes, keys: union)
                        }
                    }
                    t0 += keyTile
                    continue
                }
                releaseHeldLanes(s, held: &held, headDim: d)
                // Lanes that see the same single run of this tile go through it together: all of them for keys
                // below every row (the usual case in a prefill); runs of heads with the same block selection.
                // `read`: the tile's keys some lane's run covers (bit i: position tileLo + i), for the tally.
                var first = 0, read: UInt64 = 0
                while first < lanes {
                    let runs = tileRuns(s, lane: first, leaderStride: laneGroup, ivStride: ivStride, tileLo, tileHi)
                    if runs.count == 0 { first += 1; continue }
                    if runs.count == 1 {
                        var last = first + 1
                        while last < lanes {
                            let other = tileRuns(s, lane: last, leaderStride: laneGroup, ivStride: ivStride, tileLo, tileHi)
                            if other.count != 1 || other.lo != runs.lo || other.hi != runs.hi { break }
                            last += 1
                        }
                        processRun(D.self, vectorised, p, s, span: span, headOffset: headOffset, first: first,
                                   laneCount: last - first, lo: runs.lo, hi: runs.hi)
                        read |= tileBits(runs.lo - tileLo, count: runs.hi - runs.lo)
                        first = last
                    } else {
                        // Several runs in one tile (blocks shorter than a tile): this lane alone, run by run.
                        let leader = first - first % laneGroup
                        let iv = s.intervals + leader * ivStride
                        for k in 0..<s.counts[leader] {
                            let lo = max(iv[2 * k], tileLo), hi = min(iv[2 * k + 1], tileHi)
                            if lo < hi {
                                processRun(D.self, vectorised, p, s, span: span, headOffset: headOffset, first: first,
                                           laneCount: 1, lo: lo, hi: hi)
                                read |= tileBits(lo - tileLo, count: hi - lo)
                            }
                        }
                        first += 1
                    }
                }
                s.work.readKeys += read.nonzeroBitCount
                t0 += keyTile
            }
        }
        releaseHeldLanes(s, held: &held, headDim: d)
        if let partial {
            for lane in 0..<lanes {
                let state = partial + lane * (d + 2)
                state[0] = s.maxes[lane]
                state[1] = s.sums[lane]
                (state + 2).update(from: s.acc + lane * d, count: d)
            }
            return
        }
        for r in 0..<rows {
            for gh in 0..<group {
                let lane = r * group + gh, h = kvh * group + gh
                let dst = out + (r0 + r) * width + h * d, acc = s.acc + lane * d
                let inv: Float = s.sums[lane] > 0 ? 1 / s.sums[lane] : 0
                for j in 0..<d { dst[j] = acc[j] * inv }
            }
        }
    }

    /// Bits `offset ..< offset + count` of a key tile's mask (`offset + count` ≤ `keyTile` = 64).
    @inline(__always)
    static func tileBits(_ offset: Int, count: Int) -> UInt64 {
        (count >= 64 ? ~0 : (1 << UInt64(count)) &- 1) << UInt64(offset)
    }

    /// Whether work items run the wide tile (lanes as the vector dimension): AVX-512 kernels with head_dim a
    /// multiple of 16 and at least 8 lanes, or the 8-lane family with head_dim a multiple of 8 and at least 6 lanes
    /// (enough to fill most of a vector; single-row decode with a few heads per KV head keeps the lane loops).
    @inline(__always)
    static func usesWideTile(_ p: Problem, lanes: Int) -> Bool {
        let width = wideLaneWidth(p)
        return p.headDim % width == 0 && lanes >= (width == WideTile8.laneWidth ? 6 : 8)
    }

    /// Lanes per vector of the problem's wide tile: 16 (AVX-512) or 8.
    @inline(__always)
    static func wideLaneWidth(_ p: Problem) -> Int {
        #if arch(x86_64)
        if p.isa == .avx512 { return AVX512Attention.laneWidth }
        #endif
        return WideTile8.laneWidth
    }

    /// Transposes the item's scaled queries into `qT` (padding lanes zero) and gives the padding lanes an empty
    /// state that no key reaches.
    static func prepareWideTile(_ s: TiledScratch, lanes: Int, headDim d: Int) {
        let pitch = s.lanePitch
        for c in 0..<d {
            let row = s.qT + c * pitch
            for l in 0..<lanes { row[l] = s.q[l * d + c] }
            for l in lanes..<pitch { row[l] = 0 }
        }
        for l in lanes..<pitch {
            s.maxes[l] = -.infinity; s.sums[l] = 0; s.lo[l] = 0; s.hi[l] = 0
        }
    }

    /// When every lane sees at most one run of `[tileLo, tileHi)`: the union of the runs, with each lane's run
    /// written to `s.lo` / `s.hi` relative to the union's start (empty runs as 0 ..< 0). Nil otherwise.
    @inline(__always)
    static func singleRunBounds(_ s: TiledScratch, lanes: Int, leaderStride: Int, ivStride: Int, _ tileLo: Int,
                                _ tileHi: Int) -> Range<Int>? {
        var lower = Int.max, upper = Int.min
        for lane in 0..<lanes {
            let run = tileRuns(s, lane: lane, leaderStride: leaderStride, ivStride: ivStride, tileLo, tileHi)
            if run.count > 1 { return nil }
            if run.count == 1 {
                lower = min(lower, run.lo); upper = max(upper, run.hi)
                s.lo[lane] = Int32(run.lo - tileLo); s.hi[lane] = Int32(run.hi - tileLo)
            } else {
                s.lo[lane] = 0; s.hi[lane] = 0
            }
        }
        guard lower < upper else { return tileLo..<tileLo }
        let shift = Int32(lower - tileLo)
        for lane in 0..<lanes where s.hi[lane] > s.lo[lane] { s.lo[lane] -= shift; s.hi[lane] -= shift }
        return lower..<upper
    }

    /// Online-softmax step for all lanes over the stored keys/values at positions `keys` of `span`, each lane
    /// masked to its run in `s.lo` / `s.hi`. F32 rows are read in place; other formats are decoded once into the
    /// worker's key and value tiles.
    static func wideTile<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem, _ s: TiledScratch,
                                            _ w: WideLanes, span: KVCache.Span, headOffset: Int, lanes: Int,
                                            keys range: Range<Int>) {
        let d = p.headDim, count = range.count
        let width = wideLaneWidth(p), vectors = (lanes + width - 1) / width
        s.work.wideLaneKeys += vectors * width * count
        s.work.wideLoneVectorKeys += vectors % 2 * width * count
        s.work.wideValueLaneKeys += lanes * count
        s.work.wideSteps += 1
        s.work.readKeys += count
        let keyRows = span.keys + (range.lowerBound - span.first) * p.slotBytes + headOffset
        let valueRows = span.values + (range.lowerBound - span.first) * p.slotBytes + headOffset
        let k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int
        if p.layout.format == .f32 {
            k = keyRows.assumingMemoryBound(to: Float.self)
            v = valueRows.assumingMemoryBound(to: Float.self)
            stride = p.slotBytes / MemoryLayout<Float>.stride
        } else {
            decodeRows(D.self, vectorised, p, keyRows, count, into: s.keys)
            decodeRows(D.self, vectorised, p, valueRows, count, into: s.values)
            k = UnsafePointer(s.keys); v = UnsafePointer(s.values); stride = d
        }
        #if arch(x86_64)
        if p.isa == .avx512 {
            AVX512Attention.tile(qT: w.qT, lanePitch: s.lanePitch, lanes: lanes, headDim: d, keys: k,
                                 keyStride: stride, values: v, valueStride: stride, count: count, lo: w.lo, hi: w.hi,
                                 maxes: w.maxes, sums: w.sums, acc: w.acc, scores: s.scores, correction: s.correction)
            return
        }
        #endif
        WideTile8.tile(qT: w.qT, lanePitch: s.lanePitch, lanes: lanes, headDim: d, keys: k, keyStride: stride,
                       values: v, valueStride: stride, count: count, lo: w.lo, hi: w.hi, maxes: w.maxes,
                       sums: w.sums, acc: w.acc, scores: s.scores, correction: s.correction)
    }

    /// The per-lane state one wide step reads and updates: the item's own buffers, or the compacted active lanes.
    struct WideLanes {
        let qT: UnsafePointer<Float>
        let acc: UnsafeMutablePointer<Float>
        let maxes: UnsafeMutablePointer<Float>
        let sums: UnsafeMutablePointer<Float>
        let lo: UnsafePointer<Int32>
        let hi: UnsafePointer<Int32>
        init(_ s: TiledScratch) {
            qT = UnsafePointer(s.qT); acc = s.acc; maxes = s.maxes; sums = s.sums
            lo = UnsafePointer(s.lo); hi = UnsafePointer(s.hi)
        }
        init(_ c: TiledScratch.CompactLanes) {
            qT = UnsafePointer(c.qT); acc = c.acc; maxes = c.maxes; sums = c.sums
            lo = UnsafePointer(c.lo); hi = UnsafePointer(c.hi)
        }
    }

    /// Block-sparse tiles: when the lanes that see any key of the tile (`lo < hi`) fill fewer vectors than all
    /// lanes do, puts their state (transposed queries, accumulators, max, sum, run) at the front of `c` and returns
    /// how many there are; nil when compacting would not save a vector (the caller writes `held` lanes back first).
    /// `held`: how many lanes `c` already holds (`c.active`), from the tiles before; when they are this tile's
    /// active lanes only their runs are refreshed, otherwise they are written back and the new ones gathered. Lanes
    /// past the active ones are padding (zero queries, empty runs).
    static func gatherActiveLanes(_ p: Problem, _ s: TiledScratch, _ c: TiledScratch.CompactLanes,
                                  lanes: Int, held: inout Int) -> Int? {
        var m = 0, same = held > 0
        for l in 0..<lanes where s.hi[l] > s.lo[l] {
            if same && (m >= held || c.active[m] != Int32(l)) { same = false }
            m += 1
        }
        let width = wideLaneWidth(p)
        guard (m + width - 1) / width < (lanes + width - 1) / width else { return nil }
        if same && m == held {
            for i in 0..<m { let l = Int(c.active[i]); c.lo[i] = s.lo[l]; c.hi[i] = s.hi[l] }
            return m
        }
        releaseHeldLanes(s, held: &held, headDim: p.headDim)
        m = 0
        for l in 0..<lanes where s.hi[l] > s.lo[l] { c.active[m] = Int32(l); m += 1 }
        held = m
        let d = p.headDim, pitch = s.lanePitch
        // Padding lanes the kernel reads: both tiles stop at the last vector holding an active lane.
        let padded = min(pitch, (m + width - 1) / width * width)
        for col in 0..<d {
            let src = s.qT + col * pitch, dst = c.qT + col * pitch
            for i in 0..<m { dst[i] = src[Int(c.active[i])] }
            for i in m..<padded { dst[i] = 0 }
        }
        for i in 0..<m {
            let l = Int(c.active[i])
            c.maxes[i] = s.maxes[l]; c.sums[i] = s.sums[l]; c.lo[i] = s.lo[l]; c.hi[i] = s.hi[l]
            (c.acc + i * d).update(from: s.acc + l * d, count: d)
        }
        for i in m..<padded { c.maxes[i] = -.infinity; c.sums[i] = 0; c.lo[i] = 0; c.hi[i] = 0 }
        return m
    }

    /// Writes the `held` compacted lanes' state back to their lanes (before anything reads the item's own state),
    /// leaving none held.
    @inline(__always)
    static func releaseHeldLanes(_ s: TiledScratch, held: inout Int, headDim d: Int) {
        guard held > 0, let c = s.compact else { return }
        for i in 0..<held {
            let l = Int(c.active[i])
            s.maxes[l] = c.maxes[i]; s.sums[l] = c.sums[i]
            (s.acc + l * d).update(from: c.acc + i * d, count: d)
        }
        held = 0
    }

    /// `count` stored rows (`slotBytes` apart) decoded into consecutive F32 rows of head_dim.
    static func decodeRows<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem, _ rows: UnsafeRawPointer,
                                              _ count: Int, into y: UnsafeMutablePointer<Float>) {
        let d = p.headDim, dataOffset = p.layout.dataOffset
        for j in 0..<count {
            let row = rows + j * p.slotBytes, dst = y + j * d
            if vectorised {
                for c in 0..<(d / 8) { AttentionMath.store8(D.decode8(row, chunk: c, dataOffset: dataOffset), dst + 8 * c) }
            } else {
                AttentionMath.decode(row, layout: p.layout, into: dst)
            }
        }
    }

    /// The first position at or after `from` that any lane attends, or nil when none attends one (each lane has
    /// its own sorted, disjoint intervals). With `cursors` (the tiled kernel's, `from` never going down), each
    /// lane's search starts at its first interval not yet passed.
    @inline(__always)
    static func nextAttended(_ s: TiledScratch, lanes: Int, ivStride: Int, from: Int,
                             cursors: UnsafeMutablePointer<Int>? = nil) -> Int? {
        var next = Int.max
        for lane in 0..<lanes {
            let iv = s.intervals + lane * ivStride
            for k in (cursors?[lane] ?? 0)..<s.counts[lane] where iv[2 * k + 1] > from {
                next = min(next, max(iv[2 * k], from))
                break
            }
        }
        return next == Int.max ? nil : next
    }

    /// The runs of positions in `[tileLo, tileHi)` a lane attends: how many, and the last one. Tiles come in
    /// rising position within a work item: the lane's cursor moves past the intervals that end by `tileLo`, and the
    /// walk stops at the first interval that starts at or after `tileHi`.
    @inline(__always)
    static func tileRuns(_ s: TiledScratch, lane: Int, leaderStride: Int, ivStride: Int, _ tileLo: Int,
                         _ tileHi: Int) -> (count: Int, lo: Int, hi: Int) {
        let leader = lane - lane % leaderStride
        let iv = s.intervals + leader * ivStride
        let count = s.counts[leader]
        var k = s.cursors[leader]
        while k < count && iv[2 * k + 1] <= tileLo { k += 1 }
        s.cursors[leader] = k
        var result = (count: 0, lo: 0, hi: 0)
        while k < count && iv[2 * k] < tileHi {
            let lo = max(iv[2 * k], tileLo), hi = min(iv[2 * k + 1], tileHi)
            if lo < hi { result = (result.count + 1, lo, hi) }
            k += 1
        }
        return result
    }

    /// Online-softmax step for lanes `first ..< first + laneCount` over the stored keys/values at positions
    /// `[lo, hi)` of `span`.
    @inline(__always)
    static func processRun<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem, _ s: TiledScratch,
                                              span: KVCache.Span, headOffset: Int, first: Int, laneCount: Int,
                                              lo: Int, hi: Int) {
        let d = p.headDim
        let laneGroup = laneCount
        let count = hi - lo
        s.work.loopLaneKeys += laneCount * count
        let keys = span.keys + (lo - span.first) * p.slotBytes + headOffset
        let values = span.values + (lo - span.first) * p.slotBytes + headOffset
        let scores = s.scores + first * keyTile
        // Scores for the lanes against `count` keys.
        laneScores(D.self, vectorised, p, q: s.q + first * d, lanes: laneGroup, keys: keys, count: count,
                   scores: scores, scoreStride: keyTile)
        for l in 0..<laneGroup {
            softmaxStep(s, lane: first + l, scores: scores + l * keyTile, count: count, headDim: d)
        }
        // Accumulate the weighted values.
        accumulateValues(D.self, vectorised, p, weights: scores, weightStride: keyTile, lanes: laneGroup,
                         values: values, count: count, acc: s.acc + first * d)
    }

    /// The online softmax over one lane's `count` new scores: what was accumulated is rescaled when the running
    /// max rises, and the scores become their exponentials (shifted by the max), added to the running sum.
    @inline(__always)
    static func softmaxStep(_ s: TiledScratch, lane: Int, scores row: UnsafeMutablePointer<Float>, count: Int,
                            headDim d: Int) {
        var tileMax = -Float.infinity
        for j in 0..<count { tileMax = Swift.max(tileMax, row[j]) }
        if tileMax > s.maxes[lane] {
            if s.maxes[lane] > -.infinity {
                let correction = expf(s.maxes[lane] - tileMax)
                s.sums[lane] *= correction
                AttentionMath.scale(s.acc + lane * d, d, by: correction)
            }
            s.maxes[lane] = tileMax
        }
        s.sums[lane] += AttentionMath.expShifted(row, count, shift: s.maxes[lane])
    }

    /// scores[l · scoreStride + j] = q_l · key_j for `lanes` scaled queries (`q`, head_dim apart) and `count` keys
    /// (`keys`: one KV head's part of consecutive slots).
    @inline(__always)
    static func laneScores<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem, q: UnsafePointer<Float>,
                                              lanes: Int, keys: UnsafeRawPointer, count: Int,
                                              scores: UnsafeMutablePointer<Float>, scoreStride: Int) {
        let d = p.headDim, dataOffset = p.layout.dataOffset
        if vectorised && lanes < 4 {
            AttentionMath.dotKeys(D.self, q: q, lanes: lanes, headDim: d, rows: keys, rowStride: p.slotBytes,
                                  count: count, dataOffset: dataOffset, scores: scores, scoreStride: scoreStride)
        } else if vectorised {
            for j in 0..<count {
                AttentionMath.dotLanes(D.self, q: q, lanes: lanes, headDim: d, row: keys + j * p.slotBytes,
                                       dataOffset: dataOffset, scores: scores + j, scoreStride: scoreStride)
            }
        } else {
            for l in 0..<lanes {
                for j in 0..<count {
                    scores[l * scoreStride + j] = AttentionMath.dot(q + l * d, keys + j * p.slotBytes, p.layout)
                }
            }
        }
    }

    /// acc_l (head_dim floats, consecutive) += Σ_j weights[l · weightStride + j] · value_j for `lanes` accumulators
    /// and `count` values (`values`: one KV head's part of consecutive slots).
    @inline(__always)
    static func accumulateValues<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem,
                                                    weights: UnsafePointer<Float>, weightStride: Int, lanes: Int,
                                                    values: UnsafeRawPointer, count: Int,
                                                    acc: UnsafeMutablePointer<Float>) {
        let d = p.headDim
        if vectorised {
            AttentionMath.accumulateLanes(D.self, weights: weights, weightStride: weightStride, lanes: lanes,
                                          headDim: d, rows: values, rowStride: p.slotBytes, count: count,
                                          dataOffset: p.layout.dataOffset, acc: acc)
        } else {
            for l in 0..<lanes {
                for j in 0..<count {
                    AttentionMath.axpy(weights[l * weightStride + j], values + j * p.slotBytes, p.layout, acc + l * d)
                }
            }
        }
    }

    // MARK: Slot-major decode

    /// Work units of a decode call that reads the cache slot by slot, every KV head of a slot together, or nil for
    /// the per-KV-head work items. A slot holds the KV heads' rows side by side, so a work item of one KV head reads
    /// its part of each slot at a stride, which the hardware prefetchers follow poorly: one head's rows of a 24 MiB
    /// F32 cache (256 of every 768 bytes) read at about 9 GB/s on the 2-core AVX-512 host against 30 GB/s for the
    /// same bytes in address order, on one thread. Deep in a context a decode step finds its K/V in memory, so
    /// decode takes this path where the per-head items would use the lane loops (a few query heads per KV head, no
    /// block selection): the units are the per-head path's count (KV heads × key ranges) when it splits the keys,
    /// as contiguous key ranges of every head (the same work per unit, so the partition the planner mirrors holds),
    /// or one unit on one worker. SmolLM2's layer, K/V flushed from the caches before each call (as in a model),
    /// three alternating rounds: F32 1.9×, 2.1× and 2.7× faster at 1,024, 4,096 and 16,384 keys; F16 1.6×, 2.0× and
    /// 2.7×; INT8 4–6%; with the K/V left in cache within 10% either way. Not for INT4 rows: a head's row is about
    /// half a line, its pass over the slots touches nearly every line anyway, and decoding it bounds the loop, which
    /// ran 10–15% slower slot by slot.
    static func slotMajorUnits(_ p: Problem, workers: Int) -> Int? {
        let group = p.heads / p.kvHeads
        guard p.n == 1, slotMajorDecodes(group: group, headDim: p.headDim, format: p.layout.format,
                                         blockSparse: p.selector != nil),
              !usesWideTile(p, lanes: group) else { return nil }
        let stored = p.spans.reduce(0) { $0 + $1.count }
        let splits = keySplits(items: p.kvHeads, workers: workers, keys: stored)
        if splits > 1 { return p.kvHeads * splits }
        return workers == 1 ? 1 : nil
    }

    /// Runs a slot-major decode call over `units` contiguous key ranges; returns the scratch bytes allocated.
    static func runSlotMajor(_ p: Problem, units: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                             workers: Int, pool: ComputePool?) throws -> Int {
        let lanes = TiledScratch.lanes(heads: p.heads, kvHeads: p.kvHeads)
        let end = p.spans.last.map { $0.first + $0.count } ?? 0
        let stored = p.spans.reduce(0) { $0 + $1.count }
        let bounds = (0...units).map { splitBoundary(p.spans, stored: stored * $0 / units, end: end) }
        // The per-head path's partial states: one lane block per unit (its size, so scratch is the same).
        let partialFloats = units > 1 ? units * lanes * (p.headDim + 2) : 0
        let partial = try allocatePartial(floats: partialFloats)
        defer { free(partial) }
        let qAddress = UInt(bitPattern: q), outAddress = UInt(bitPattern: out)
        let partialAddress = UInt(bitPattern: partial)
        let chunks = dealUnits(units, workers: workers, pool: pool, p) { unit, scratch in
            let qp = UnsafePointer<Float>(bitPattern: qAddress)!
            let op = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
            let pp = UnsafeMutablePointer<Float>(bitPattern: partialAddress)
            slotMajor(p, q: qp, out: op, keyRange: bounds[unit]..<bounds[unit + 1],
                      partial: pp.map { $0 + unit * lanes * (p.headDim + 2) }, scratch: scratch)
        }
        if let partial {
            let laneFloats = p.headDim + 2
            for h in 0..<p.heads {
                mergeLane(states: units, headDim: p.headDim, into: out + h * p.headDim) {
                    partial + ($0 * lanes + h) * laneFloats
                }
            }
        }
        return chunks * TiledScratch.bytes(p) + partialFloats * 4
    }

    static func slotMajor(_ p: Problem, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                          keyRange: Range<Int>, partial: UnsafeMutablePointer<Float>?, scratch s: TiledScratch) {
        switch p.layout.format {
        case .f32: slotMajor(F32Chunks.self, p, q, out, keyRange, partial, s)
        case .f16: slotMajor(F16Chunks.self, p, q, out, keyRange, partial, s)
        case .int8: slotMajor(Int8Chunks.self, p, q, out, keyRange, partial, s)
        case .int4: slotMajor(Int4Chunks.self, p, q, out, keyRange, partial, s)
        }
    }

    /// One unit of a slot-major decode: every query head (lane h = head h) over the keys of `keyRange` it attends,
    /// in the per-head path's tiles (so each lane's scores, softmax and sums are the ones that path computes).
    static func slotMajor<D: KVChunkDecoder>(_: D.Type, _ p: Problem, _ q: UnsafePointer<Float>,
                                             _ out: UnsafeMutablePointer<Float>, _ keyRange: Range<Int>,
                                             _ partial: UnsafeMutablePointer<Float>?, _ s: TiledScratch) {
        let d = p.headDim, group = p.heads / p.kvHeads
        for h in 0..<p.heads {
            let src = q + h * d, dst = s.q + h * d
            for j in 0..<d { dst[j] = src[j] * p.scale }
            s.maxes[h] = -.infinity
            s.sums[h] = 0
            (s.acc + h * d).initialize(repeating: 0, count: d)
        }
        // Without block selection every head of the row attends the same intervals.
        let count = p.intervals(position: p.queryStart, kvHead: 0, qScaled: s.q, scores: s.blockScores,
                                chosen: s.chosen, into: s.intervals)
        let iv = s.intervals
        let lastPosition = p.causal ? p.queryStart : Int.max
        for span in p.spans {
            var t0 = max(0, keyRange.lowerBound - span.first)
            while t0 < span.count {
                let tileLo = span.first + t0
                if tileLo > lastPosition || tileLo >= keyRange.upperBound { break }
                let tileHi = min(keyRange.upperBound, span.first + min(span.count, t0 + keyTile))
                for k in 0..<count {
                    let lo = max(iv[2 * k], tileLo), hi = min(iv[2 * k + 1], tileHi)
                    if lo < hi { slotMajorRun(D.self, p, s, span: span, group: group, lo: lo, hi: hi) }
                }
                t0 += keyTile
            }
        }
        for h in 0..<p.heads {
            let acc = s.acc + h * d
            if let partial {
                let state = partial + h * (d + 2)
                state[0] = s.maxes[h]
                state[1] = s.sums[h]
                (state + 2).update(from: acc, count: d)
            } else {
                let dst = out + h * d
                let inv: Float = s.sums[h] > 0 ? 1 / s.sums[h] : 0
                for j in 0..<d { dst[j] = acc[j] * inv }
            }
        }
    }

    /// Positions `[lo, hi)` of one span for every head: scores slot by slot (the value slots prefetched beside
    /// them), the online softmax per head, then each KV head's weighted values from cache. Accumulating the values
    /// slot by slot instead (nine accumulators of 64 floats in memory for SmolLM2) ran 10–30% slower with the K/V
    /// in cache and, from memory, 0–20% slower.
    static func slotMajorRun<D: KVChunkDecoder>(_: D.Type, _ p: Problem, _ s: TiledScratch, span: KVCache.Span,
                                                group: Int, lo: Int, hi: Int) {
        let d = p.headDim, count = hi - lo
        let keys = span.keys + (lo - span.first) * p.slotBytes
        let values = span.values + (lo - span.first) * p.slotBytes
        AttentionMath.dotSlots(D.self, q: s.q, group: group, kvHeads: p.kvHeads, headDim: d, rows: keys,
                               slotStride: p.slotBytes, rowBytes: p.layout.rowBytes, count: count,
                               dataOffset: p.layout.dataOffset, scores: s.scores, scoreStride: keyTile,
                               values: values)
        for h in 0..<p.heads { softmaxStep(s, lane: h, scores: s.scores + h * keyTile, count: count, headDim: d) }
        // Each KV head's values through its lanes, accumulators in registers: the rows came into cache in
        // address order while the scores were computed.
        for kvh in 0..<p.kvHeads {
            AttentionMath.accumulateLanes(D.self, weights: s.scores + kvh * group * keyTile, weightStride: keyTile,
                                          lanes: group, headDim: d, rows: values + kvh * p.layout.rowBytes,
                                          rowStride: p.slotBytes, count: count, dataOffset: p.layout.dataOffset,
                                          acc: s.acc + kvh * group * d)
        }
    }

    // MARK: Materialised kernel

    /// Query rows the materialised kernel takes together (at most a work item's lanes; block-sparse selection: one).
    /// Each key and value row is read once per block and used for all of its rows from the first-level cache (in
    /// runs of `keyTile` keys), where a row at a time swept the head's keys and values once per query row, from
    /// the shared cache once they outgrow the core's own (1,536 ViT patches and more). One ViT layer (12 heads of
    /// 128) on 2 threads, alternating builds: one row at a time 0.65 / 3.34 / 14.7 s at 1,536 / 3,072 / 6,144
    /// patches; blocks of 8 rows 0.23–0.27 / 1.00–1.07 / 10.2 s; 16 rows 0.21–0.26 / 0.95–1.00 / 6.1–6.7 s;
    /// 32 rows 0.18–0.24 / 0.85–1.14 / 4.7–4.9 s. The planner's `AttentionCostModel.materialisedRows` mirrors it.
    static let materialisedRows = 32

    static func materialised(_ p: Problem, head h: Int, m: Int, q: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>, matrix: UnsafeMutablePointer<Float>,
                             scratch s: TiledScratch) {
        let vectorised = p.headDim % KVRowLayout.groupSize == 0
        switch p.layout.format {
        case .f32: materialised(F32Chunks.self, vectorised, p, h, m, q, out, matrix, s)
        case .f16: materialised(F16Chunks.self, vectorised, p, h, m, q, out, matrix, s)
        case .int8: materialised(Int8Chunks.self, vectorised, p, h, m, q, out, matrix, s)
        case .int4: materialised(Int4Chunks.self, vectorised, p, h, m, q, out, matrix, s)
        }
    }

    /// Head `h`'s attention through its whole score matrix: row r of `matrix` (`m` floats: the stored keys in span
    /// order) holds the query at `queryStart + r` against every stored key, then that row's softmax, 0 where the
    /// mask hides the key; then P·V. Blocks of `materialisedRows` rows: the scores of a block are computed over the
    /// positions some row of the block attends (the union of its rows' intervals, `attendedRun`) and the values
    /// read over the same positions.
    @inline(__always)
    static func materialised<D: KVChunkDecoder>(_: D.Type, _ vectorised: Bool, _ p: Problem, _ h: Int, _ m: Int,
                                                _ q: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                                _ matrix: UnsafeMutablePointer<Float>, _ s: TiledScratch) {
        let d = p.headDim, width = p.heads * d
        let kvh = h / (p.heads / p.kvHeads)
        let headOffset = kvh * p.layout.rowBytes
        let ivStride = p.maxIntervals * 2
        // Rows of a block share the keys they compute; under block-sparse selection the rows of a block choose
        // different blocks, whose union would be scored for all of them, so each row goes alone.
        let block = p.selector == nil ? min(materialisedRows, s.lanes) : 1
        var r0 = 0
        while r0 < p.n {
            let rows = min(block, p.n - r0)
            // The block's scaled queries (rows × d) and each row's intervals.
            for l in 0..<rows {
                let src = q + (r0 + l) * width + h * d, qs = s.q + l * d
                for j in 0..<d { qs[j] = src[j] * p.scale }
                s.counts[l] = p.intervals(position: p.queryStart + r0 + l, kvHead: kvh, qScaled: qs,
                                          scores: s.blockScores, chosen: s.chosen, into: s.intervals + l * ivStride)
            }
            let scores = matrix + r0 * m
            /// Calls `body(span, column of its first key, first, count)` for the keys of each span at positions some
            /// row of the block attends, in runs of at most `keyTile`.
            func keyRuns(_ body: (KVCache.Span, Int, Int, Int) -> Void) {
                var from = 0
                while let (lo, hi) = attendedRun(s, rows: rows, ivStride: ivStride, from: from) {
                    var column = 0
                    for span in p.spans {
                        let t1 = Swift.min(Swift.max(hi - span.first, 0), span.count)
                        var t = Swift.min(Swift.max(lo - span.first, 0), t1)
                        while t < t1 {
                            let count = Swift.min(keyTile, t1 - t)
                            body(span, column, t, count)
                            t += count
                        }
                        column += span.count
                    }
                    if hi == Int.max { break }
                    from = hi
                }
            }
            // S (rows, keys) = Q (rows, d) @ K^T (d, keys), keys the block attends.
            keyRuns { span, column, t, count in
                laneScores(D.self, vectorised, p, q: s.q, lanes: rows, keys: span.keys + t * p.slotBytes + headOffset,
                           count: count, scores: scores + column + t, scoreStride: m)
            }
            // Each row: softmax over its own intervals, 0 for every other column of the row.
            for l in 0..<rows {
                let row = scores + l * m, iv = s.intervals + l * ivStride, count = s.counts[l]
                var rowMax = -Float.infinity
                matrixRowRuns(p.spans, intervals: iv, count: count, attended: { c, n in
                    rowMax = Swift.max(rowMax, AttentionMath.maximum(row + c, n))
                }, masked: { _, _ in })
                var sum: Float = 0
                matrixRowRuns(p.spans, intervals: iv, count: count, attended: { c, n in
                    sum += AttentionMath.expShifted(row + c, n, shift: rowMax)
                }, masked: { c, n in
                    (row + c).update(repeating: 0, count: n)
                })
                s.sums[l] = sum > 0 ? 1 / sum : 0
            }
            // O (rows, d) = P (rows, keys) @ V (keys, d), then each row scaled by 1 / its sum.
            s.acc.update(repeating: 0, count: rows * d)
            keyRuns { span, column, t, count in
                accumulateValues(D.self, vectorised, p, weights: scores + column + t, weightStride: m, lanes: rows,
                                 values: span.values + t * p.slotBytes + headOffset, count: count, acc: s.acc)
            }
            for l in 0..<rows {
                let dst = out + (r0 + l) * width + h * d, acc = s.acc + l * d, inverse = s.sums[l]
                for j in 0..<d { dst[j] = acc[j] * inverse }
            }
            r0 += rows
        }
    }

    /// The positions `[lo, hi)` from `from` on that some of the first `rows` lanes attend without a break: `lo` the
    /// first attended position at or after `from`, `hi` the first position after it that no lane attends (nil when
    /// none attends one).
    static func attendedRun(_ s: TiledScratch, rows: Int, ivStride: Int, from: Int) -> (Int, Int)? {
        guard let lo = nextAttended(s, lanes: rows, ivStride: ivStride, from: from) else { return nil }
        var hi = lo, grown = true
        while grown {
            grown = false
            for lane in 0..<rows {
                let iv = s.intervals + lane * ivStride
                for k in 0..<s.counts[lane] where iv[2 * k] <= hi && iv[2 * k + 1] > hi {
                    hi = iv[2 * k + 1]; grown = true
                }
            }
        }
        return (lo, hi)
    }

    /// Walks one materialised row's columns (the stored keys in span order) as runs: `attended(column, count)` for
    /// keys at positions inside the row's sorted, disjoint `intervals` (`count` of them, `[lo, hi)` pairs),
    /// `masked(column, count)` for the others.
    @inline(__always)
    static func matrixRowRuns(_ spans: [KVCache.Span], intervals iv: UnsafePointer<Int>, count: Int,
                              attended: (Int, Int) -> Void, masked: (Int, Int) -> Void) {
        var column = 0
        for span in spans {
            var t = 0
            for k in 0..<count {
                let a = Swift.min(Swift.max(iv[2 * k] - span.first, t), span.count)
                let b = Swift.min(Swift.max(iv[2 * k + 1] - span.first, a), span.count)
                if a > t { masked(column + t, a - t) }
                if b > a { attended(column + a, b - a) }
                t = Swift.max(t, b)
            }
            if t < span.count { masked(column + t, span.count - t) }
            column += span.count
        }
    }
}

// MARK: - Row formats and SIMD helpers
//
// Kept in this file with the kernels so that, even when files are compiled separately (debug builds), the
// helpers inline and the format-generic kernel specialises.

/// How one cached row (one token, one KV head, `headDim` elements) is laid out in memory.
///
/// Quantised rows keep their group parameters first, then the data:
/// - INT8: `groups` f16 scales, then `headDim` signed bytes; x ≈ scale · q, q ∈ [-127, 127] (symmetric).
/// - INT4: `groups` (f16 scale, f16 min) pairs, then packed nibbles; x ≈ min + scale · q, q ∈ [0, 15].
///   Within a group of G elements, byte k holds element k in its low nibble and element k + ⌈G/2⌉ in its high nibble,
///   so a full group of 32 unpacks into two runs of 16 with one mask and one shift.
/// Groups run along head_dim, 32 elements each; the last group may be shorter.
struct KVRowLayout: Sendable, Equatable {
    static let groupSize = 32
    let format: KVCacheFormat
    let headDim: Int

    var groups: Int { (headDim + KVRowLayout.groupSize - 1) / KVRowLayout.groupSize }
    /// f16 parameters at the start of the row.
    var parameterCount: Int {
        switch format {
        case .f32, .f16: return 0
        case .int8: return groups
        case .int4: return 2 * groups
        }
    }
    var dataOffset: Int { parameterCount * 2 }
    var dataBytes: Int {
        switch format {
        case .f32: return headDim * 4
        case .f16: return headDim * 2
        case .int8: return headDim
        case .int4:
            let full = headDim / KVRowLayout.groupSize
            let tail = headDim % KVRowLayout.groupSize
            return full * KVRowLayout.groupSize / 2 + (tail + 1) / 2
        }
    }
    /// Bytes of one row, padded to 4 so F32 rows stay aligned.
    var rowBytes: Int { (dataOffset + dataBytes + 3) & ~3 }

    /// Size of group `g` in elements.
    @inline(__always) func groupLength(_ g: Int) -> Int {
        min(KVRowLayout.groupSize, headDim - g * KVRowLayout.groupSize)
    }
}

/// Small SIMD helpers for the attention kernels: dot products of an F32 query against a stored row, and
/// accumulation of a scaled stored row, each decoding F16/INT8/INT4 rows in registers (no dequantised copy).
enum AttentionMath {
    // MARK: Writing rows

    /// Encodes `headDim` floats into a row of the given layout.
    static func encode(_ x: UnsafePointer<Float>, into row: UnsafeMutableRawPointer, layout: KVRowLayout) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            row.copyMemory(from: x, byteCount: d * 4)
        case .f16:
            let h = row.assumingMemoryBound(to: Float16.self)
            for j in 0..<d { h[j] = Float16(x[j]) }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: Int8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                var maxAbs: Float = 0
                for j in start..<(start + len) { maxAbs = max(maxAbs, abs(x[j])) }
                let scale16 = Float16(maxAbs / 127)
                params[g] = scale16
                let scale = Float(scale16)
                let inv: Float = scale > 0 ? 1 / scale : 0
                for j in start..<(start + len) {
                    let q = (x[j] * inv).rounded(.toNearestOrEven)
                    data[j] = Int8(max(-127, min(127, q)))
                }
            }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: UInt8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                var lo = Float.infinity, hi = -Float.infinity
                for j in start..<(start + len) { lo = min(lo, x[j]); hi = max(hi, x[j]) }
                let min16 = Float16(lo)
                let scale16 = Float16((hi - Float(min16)) / 15)
                params[2 * g] = scale16
                params[2 * g + 1] = min16
                let scale = Float(scale16), minimum = Float(min16)
                let inv: Float = scale > 0 ? 1 / scale : 0
                let half = (len + 1) / 2
                let bytes = data + g * (KVRowLayout.groupSize / 2)
                for k in 0..<half { bytes[k] = 0 }
                for e in 0..<len {
                    let q = UInt8(max(0, min(15, ((x[start + e] - minimum) * inv).rounded(.toNearestOrEven))))
                    if e < half { bytes[e] |= q } else { bytes[e - half] |= q << 4 }
                }
            }
        }
    }

    /// Decodes a row into `headDim` floats.
    static func decode(_ row: UnsafeRawPointer, layout: KVRowLayout, into y: UnsafeMutablePointer<Float>) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            y.update(from: row.assumingMemoryBound(to: Float.self), count: d)
        case .f16:
            let h = row.assumingMemoryBound(to: Float16.self)
            for j in 0..<d { y[j] = Float(h[j]) }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: Int8.self)
            for j in 0..<d { y[j] = Float(params[j / KVRowLayout.groupSize]) * Float(data[j]) }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: UInt8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let scale = Float(params[2 * g]), minimum = Float(params[2 * g + 1])
                let half = (len + 1) / 2
                let bytes = data + g * (KVRowLayout.groupSize / 2)
                for e in 0..<len {
                    let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                    y[start + e] = minimum + scale * Float(q)
                }
            }
        }
    }

    // MARK: Dot products

    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// q · row for a row in `layout`.
    @inline(__always)
    static func dot(_ q: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        switch layout.format {
        case .f32: return dotF32(q, row.assumingMemoryBound(to: Float.self), layout.headDim)
        case .f16: return dotF16(q, row, layout.headDim)
        case .int8: return dotInt8(q, row, layout)
        case .int4: return dotInt4(q, row, layout)
        }
    }

    @inline(__always)
    static func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            s0 += load8(a + i) * load8(b + i)
            s1 += load8(a + i + 8) * load8(b + i + 8)
            i += 16
        }
        if i + 8 <= n { s0 += load8(a + i) * load8(b + i); i += 8 }
        var s = (s0 + s1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    @inline(__always)
    static func dotF16(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let h0 = row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
            let h1 = row.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<Float16>.self)
            s0 += load8(a + i) * floats(h0)
            s1 += load8(a + i + 8) * floats(h1)
            i += 16
        }
        if i + 8 <= n {
            s0 += load8(a + i) * loadHalf8(row + 2 * i)
            i += 8
        }
        var s = (s0 + s1).sum()
        let h = row.assumingMemoryBound(to: Float16.self)
        while i < n { s += a[i] * Float(h[i]); i += 1 }
        return s
    }

    @inline(__always)
    static func dotInt8(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        let params = row.assumingMemoryBound(to: Float16.self)
        let data = row + layout.dataOffset
        var total: Float = 0
        for g in 0..<layout.groups {
            let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
            var acc: Float = 0
            if len == KVRowLayout.groupSize {
                var s = SIMD8<Float>()
                for k in stride(from: 0, to: 32, by: 8) {
                    let b = data.loadUnaligned(fromByteOffset: start + k, as: SIMD8<Int8>.self)
                    s += load8(a + start + k) * floats(b)
                }
                acc = s.sum()
            } else {
                let b = data.assumingMemoryBound(to: Int8.self)
                for j in start..<(start + len) { acc += a[j] * Float(b[j]) }
            }
            total += Float(params[g]) * acc
        }
        return total
    }

    @inline(__always)
    static func dotInt4(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        let params = row.assumingMemoryBound(to: Float16.self)
        let data = row + layout.dataOffset
        var total: Float = 0
        for g in 0..<layout.groups {
            let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
            let scale = Float(params[2 * g]), minimum = Float(params[2 * g + 1])
            let bytesOffset = g * (KVRowLayout.groupSize / 2)
            var acc: Float = 0, qsum: Float = 0
            if len == KVRowLayout.groupSize {
                var s = SIMD8<Float>(), t = SIMD8<Float>()
                for k in stride(from: 0, to: 16, by: 8) {
                    let b = widen(data.loadUnaligned(fromByteOffset: bytesOffset + k, as: SIMD8<UInt8>.self))
                    let lo = smallIntsToFloats(b & 0x0F), hi = smallIntsToFloats(b &>> 4)
                    let qa = load8(a + start + k), qb = load8(a + start + 16 + k)
                    s += qa * lo + qb * hi
                    t += qa + qb
                }
                acc = s.sum(); qsum = t.sum()
            } else {
                let bytes = data.assumingMemoryBound(to: UInt8.self) + bytesOffset
                let half = (len + 1) / 2
                for e in 0..<len {
                    let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                    acc += a[start + e] * Float(q)
                    qsum += a[start + e]
                }
            }
            total += scale * acc + minimum * qsum
        }
        return total
    }

    // MARK: Accumulation  y += w · row

    @inline(__always)
    static func axpy(_ w: Float, _ row: UnsafeRawPointer, _ layout: KVRowLayout, _ y: UnsafeMutablePointer<Float>) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            let x = row.assumingMemoryBound(to: Float.self)
            let wv = SIMD8<Float>(repeating: w)
            var i = 0
            while i + 8 <= d { store8(load8(y + i) + wv * load8(x + i), y + i); i += 8 }
            while i < d { y[i] += w * x[i]; i += 1 }
        case .f16:
            let wv = SIMD8<Float>(repeating: w)
            var i = 0
            while i + 8 <= d {
                let h = loadHalf8(row + 2 * i)
                store8(load8(y + i) + wv * h, y + i)
                i += 8
            }
            let h = row.assumingMemoryBound(to: Float16.self)
            while i < d { y[i] += w * Float(h[i]); i += 1 }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = row + layout.dataOffset
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let ws = w * Float(params[g])
                if len == KVRowLayout.groupSize {
                    let wv = SIMD8<Float>(repeating: ws)
                    for k in stride(from: 0, to: 32, by: 8) {
                        let b = data.loadUnaligned(fromByteOffset: start + k, as: SIMD8<Int8>.self)
                        let v = floats(b)
                        store8(load8(y + start + k) + wv * v, y + start + k)
                    }
                } else {
                    let b = data.assumingMemoryBound(to: Int8.self)
                    for j in start..<(start + len) { y[j] += ws * Float(b[j]) }
                }
            }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = row + layout.dataOffset
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let ws = w * Float(params[2 * g]), wm = w * Float(params[2 * g + 1])
                let bytesOffset = g * (KVRowLayout.groupSize / 2)
                if len == KVRowLayout.groupSize {
                    let wv = SIMD8<Float>(repeating: ws), mv = SIMD8<Float>(repeating: wm)
                    for k in stride(from: 0, to: 16, by: 8) {
                        let b = widen(data.loadUnaligned(fromByteOffset: bytesOffset + k, as: SIMD8<UInt8>.self))
                        let lo = smallIntsToFloats(b & 0x0F), hi = smallIntsToFloats(b &>> 4)
                        store8(load8(y + start + k) + (wv * lo + mv), y + start + k)
                        store8(load8(y + start + 16 + k) + (wv * hi + mv), y + start + 16 + k)
                    }
                } else {
                    let bytes = data.assumingMemoryBound(to: UInt8.self) + bytesOffset
                    let half = (len + 1) / 2
                    for e in 0..<len {
                        let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                        y[start + e] += ws * Float(q) + wm
                    }
                }
            }
        }
    }

    /// y *= c
    @inline(__always) static func scale(_ y: UnsafeMutablePointer<Float>, _ d: Int, by c: Float) {
        let cv = SIMD8<Float>(repeating: c)
        var i = 0
        while i + 8 <= d { store8(load8(y + i) * cv, y + i); i += 8 }
        while i < d { y[i] *= c; i += 1 }
    }
}

/// Decodes 8 consecutive elements of a stored row into registers. Chunk c covers elements 8c ..< 8c + 8; used by
/// the multi-lane kernels when head_dim is a multiple of 32 (every group full). Decoding happens in registers,
/// once per chunk for several query lanes.
protocol KVChunkDecoder {
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float>
}

enum F32Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        row.loadUnaligned(fromByteOffset: 32 * c, as: SIMD8<Float>.self)
    }
}

enum F16Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        floats(row.loadUnaligned(fromByteOffset: 16 * c, as: SIMD8<Float16>.self))
    }
}

enum Int8Chunks: KVChunkDecoder {
    /// Chunks of 8 codes per scale group.
    static let chunksPerGroup = KVRowLayout.groupSize / 8
    /// The F16 scale of group `g`.
    @inline(__always)
    static func scale(_ row: UnsafeRawPointer, group g: Int) -> Float {
        Float(row.load(fromByteOffset: 2 * g, as: Float16.self))
    }
    /// Chunk `c`'s codes as floats, unscaled.
    @inline(__always)
    static func codes8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        floats(row.loadUnaligned(fromByteOffset: dataOffset + 8 * c, as: SIMD8<Int8>.self))
    }
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        codes8(row, chunk: c, dataOffset: dataOffset) * scale(row, group: c / chunksPerGroup)
    }
}

enum Int4Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        let g = c >> 2, k = c & 3
        let scale = Float(row.load(fromByteOffset: 4 * g, as: Float16.self))
        let minimum = Float(row.load(fromByteOffset: 4 * g + 2, as: Float16.self))
        // Byte j of a group holds element j (low nibble) and element j + 16 (high nibble).
        let b = widen(row.loadUnaligned(fromByteOffset: dataOffset + 16 * g + 8 * (k & 1), as: SIMD8<UInt8>.self))
        let q = k < 2 ? b & 0x0F : b &>> 4
        return smallIntsToFloats(q) * scale + minimum
    }
}

extension AttentionMath {
    /// scores[l · scoreStride] = q_l · row for `lanes` query lanes (q_l at q + l · headDim).
    @inline(__always)
    static func dotLanes<D: KVChunkDecoder>(_: D.Type, q: UnsafePointer<Float>, lanes: Int, headDim d: Int,
                                            row: UnsafeRawPointer, dataOffset: Int,
                                            scores: UnsafeMutablePointer<Float>, scoreStride: Int) {
        let chunks = d / 8
        var l = 0
        while l + 8 <= lanes {
            let q0 = q + l * d
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
            for c in 0..<chunks {
                let k = D.decode8(row, chunk: c, dataOffset: dataOffset)
                let qc = q0 + 8 * c
                a0 = a0.addingProduct(load8(qc), k)
                a1 = a1.addingProduct(load8(qc + d), k)
                a2 = a2.addingProduct(load8(qc + 2 * d), k)
                a3 = a3.addingProduct(load8(qc + 3 * d), k)
                a4 = a4.addingProduct(load8(qc + 4 * d), k)
                a5 = a5.addingProduct(load8(qc + 5 * d), k)
                a6 = a6.addingProduct(load8(qc + 6 * d), k)
                a7 = a7.addingProduct(load8(qc + 7 * d), k)
            }
            let sc = scores + l * scoreStride
            sc[0] = a0.sum(); sc[scoreStride] = a1.sum(); sc[2 * scoreStride] = a2.sum(); sc[3 * scoreStride] = a3.sum()
            sc[4 * scoreStride] = a4.sum(); sc[5 * scoreStride] = a5.sum(); sc[6 * scoreStride] = a6.sum()
            sc[7 * scoreStride] = a7.sum()
            l += 8
        }
        while l + 4 <= lanes {
            let q0 = q + l * d, q1 = q0 + d, q2 = q1 + d, q3 = q2 + d
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for c in 0..<chunks {
                let k = D.decode8(row, chunk: c, dataOffset: dataOffset)
                a0 = a0.addingProduct(load8(q0 + 8 * c), k)
                a1 = a1.addingProduct(load8(q1 + 8 * c), k)
                a2 = a2.addingProduct(load8(q2 + 8 * c), k)
                a3 = a3.addingProduct(load8(q3 + 8 * c), k)
            }
            scores[l * scoreStride] = a0.sum()
            scores[(l + 1) * scoreStride] = a1.sum()
            scores[(l + 2) * scoreStride] = a2.sum()
            scores[(l + 3) * scoreStride] = a3.sum()
            l += 4
        }
        while l < lanes {
            let q0 = q + l * d
            // Same summation order as the four-lane path, so results do not depend on how lanes are grouped.
            var a0 = SIMD8<Float>()
            for c in 0..<chunks { a0 = a0.addingProduct(load8(q0 + 8 * c), D.decode8(row, chunk: c, dataOffset: dataOffset)) }
            scores[l * scoreStride] = a0.sum()
            l += 1
        }
    }

    /// scores[l · scoreStride + j] = q_l · row_j for a few lanes (decode's query heads of one KV head) and `count`
    /// rows: four keys at a time per lane, so four dot products are in flight instead of one chain of dependent
    /// multiply-adds. Each key's sum runs in the same order as in `dotLanes`, so results do not depend on the path
    /// (two or three lanes over INT8 rows: `dotRow`'s order, as the slot-major decode).
    @inline(__always)
    static func dotKeys<D: KVChunkDecoder>(_: D.Type, q: UnsafePointer<Float>, lanes: Int, headDim d: Int,
                                           rows: UnsafeRawPointer, rowStride: Int, count: Int, dataOffset: Int,
                                           scores: UnsafeMutablePointer<Float>, scoreStride: Int) {
        let chunks = d / 8
        // Two or three lanes (a decode step's query heads of one KV head, as in SmolLM2's groups of 3): each key
        // chunk is decoded once for all lanes; every (lane, key) still sums its chunks in order on one
        // accumulator, so the scores are the ones the lane-by-lane loop below gives.
        @inline(__always) func shared(_ three: Bool) {
            let q0 = q, q1 = q + d, q2 = q + 2 * d
            let s0 = scores, s1 = scores + scoreStride, s2 = scores + 2 * scoreStride
            var j = 0
            // INT8 rows go a key at a time through `dotRow` (its groups scaled once), as the slot-major path does.
            let pairs = D.self != Int8Chunks.self
            while pairs && j + 2 <= count {
                let r0 = rows + j * rowStride, r1 = r0 + rowStride
                // Keys 16 rows ahead on their way: deep in a context the rows come from memory, a head's part of
                // each slot at a stride (SmolLM2 Q4_0 tg64 @ d4096: median of 5 alternating rounds 54.3 -> 58.5).
                let ahead = r0 + 16 * rowStride
                AutoGLMEngine.prefetch(ahead); AutoGLMEngine.prefetch(ahead + 64)
                AutoGLMEngine.prefetch(ahead + rowStride); AutoGLMEngine.prefetch(ahead + rowStride + 64)
                var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
                var a20 = SIMD8<Float>(), a21 = SIMD8<Float>()
                for c in 0..<chunks {
                    let k0 = D.decode8(r0, chunk: c, dataOffset: dataOffset)
                    let k1 = D.decode8(r1, chunk: c, dataOffset: dataOffset)
                    let x0 = load8(q0 + 8 * c), x1 = load8(q1 + 8 * c)
                    a00 = a00.addingProduct(x0, k0); a01 = a01.addingProduct(x0, k1)
                    a10 = a10.addingProduct(x1, k0); a11 = a11.addingProduct(x1, k1)
                    if three {
                        let x2 = load8(q2 + 8 * c)
                        a20 = a20.addingProduct(x2, k0); a21 = a21.addingProduct(x2, k1)
                    }
                }
                s0[j] = a00.sum(); s0[j + 1] = a01.sum(); s1[j] = a10.sum(); s1[j + 1] = a11.sum()
                if three { s2[j] = a20.sum(); s2[j + 1] = a21.sum() }
                j += 2
            }
            while j < count {
                let row = rows + j * rowStride
                let ahead = row + 16 * rowStride
                AutoGLMEngine.prefetch(ahead); AutoGLMEngine.prefetch(ahead + 64)
                let (a0, a1, a2) = dotRow(D.self, row, q0, q1, q2, group: three ? 3 : 2, chunks: chunks,
                                          dataOffset: dataOffset)
                s0[j] = a0.sum(); s1[j] = a1.sum()
                if three { s2[j] = a2.sum() }
                j += 1
            }
        }
        if lanes == 3 { shared(true); return }
        if lanes == 2 { shared(false); return }
        for l in 0..<lanes {
            let q0 = q + l * d, sc = scores + l * scoreStride
            var j = 0
            while j + 4 <= count {
                let r0 = rows + j * rowStride, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                for c in 0..<chunks {
                    let qc = load8(q0 + 8 * c)
                    a0 = a0.addingProduct(qc, D.decode8(r0, chunk: c, dataOffset: dataOffset))
                    a1 = a1.addingProduct(qc, D.decode8(r1, chunk: c, dataOffset: dataOffset))
                    a2 = a2.addingProduct(qc, D.decode8(r2, chunk: c, dataOffset: dataOffset))
                    a3 = a3.addingProduct(qc, D.decode8(r3, chunk: c, dataOffset: dataOffset))
                }
                sc[j] = a0.sum(); sc[j + 1] = a1.sum(); sc[j + 2] = a2.sum(); sc[j + 3] = a3.sum()
                j += 4
            }
            while j < count {
                let row = rows + j * rowStride
                var a0 = SIMD8<Float>()
                for c in 0..<chunks { a0 = a0.addingProduct(load8(q0 + 8 * c), D.decode8(row, chunk: c, dataOffset: dataOffset)) }
                sc[j] = a0.sum()
                j += 1
            }
        }
    }

    /// The dot products of one stored key row with `group` (1–3) queries, each as an 8-wide partial sum. Each sums
    /// the row's chunks in order; INT8 rows sum each group of 32 codes unscaled and scale the sum once (one SmolLM2
    /// layer, three alternating rounds: INT8 decode 16–17% faster with the K/V in cache, 13% from memory).
    @inline(__always)
    static func dotRow<D: KVChunkDecoder>(_: D.Type, _ row: UnsafeRawPointer, _ q0: UnsafePointer<Float>,
                                          _ q1: UnsafePointer<Float>, _ q2: UnsafePointer<Float>, group: Int,
                                          chunks: Int, dataOffset: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
        let per = Int8Chunks.chunksPerGroup
        if D.self == Int8Chunks.self && chunks % per == 0 {
            for g in 0..<(chunks / per) {
                let scale = Int8Chunks.scale(row, group: g)
                var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>()
                for c in (per * g)..<(per * g + per) {
                    let k = Int8Chunks.codes8(row, chunk: c, dataOffset: dataOffset)
                    b0 = b0.addingProduct(load8(q0 + 8 * c), k)
                    if group > 1 { b1 = b1.addingProduct(load8(q1 + 8 * c), k) }
                    if group > 2 { b2 = b2.addingProduct(load8(q2 + 8 * c), k) }
                }
                a0 = a0.addingProduct(b0, scale)
                if group > 1 { a1 = a1.addingProduct(b1, scale) }
                if group > 2 { a2 = a2.addingProduct(b2, scale) }
            }
        } else {
            for c in 0..<chunks {
                let k = D.decode8(row, chunk: c, dataOffset: dataOffset)
                a0 = a0.addingProduct(load8(q0 + 8 * c), k)
                if group > 1 { a1 = a1.addingProduct(load8(q1 + 8 * c), k) }
                if group > 2 { a2 = a2.addingProduct(load8(q2 + 8 * c), k) }
            }
        }
        return (a0, a1, a2)
    }

    /// scores[h · scoreStride + j] = q_h · key_j of head h's KV head, for every head (`group` of them per KV head,
    /// at most 3) and `count` slots read in address order: slot j, then each KV head's row in it; with each key
    /// slot the value slot at the same index (`values`) is prefetched, so the values too arrive in address order.
    /// Each (head, key) is `dotRow`'s, as in `dotKeys`, so the scores are the same.
    @inline(__always)
    static func dotSlots<D: KVChunkDecoder>(_: D.Type, q: UnsafePointer<Float>, group: Int, kvHeads: Int,
                                            headDim d: Int, rows: UnsafeRawPointer, slotStride: Int, rowBytes: Int,
                                            count: Int, dataOffset: Int, scores: UnsafeMutablePointer<Float>,
                                            scoreStride: Int, values: UnsafeRawPointer) {
        let chunks = d / 8
        // Specialised per group size (a constant after inlining), as `dotKeys` is for two and three lanes.
        @inline(__always) func run(_ group: Int) {
            for j in 0..<count {
                let slot = rows + j * slotStride
                let v = values + j * slotStride
                var o = 0
                while o < slotStride { AutoGLMEngine.prefetch(v + o); o += 64 }
                for kvh in 0..<kvHeads {
                    let row = slot + kvh * rowBytes, h0 = kvh * group
                    let q0 = q + h0 * d, q1 = q0 + d, q2 = q1 + d
                    let (a0, a1, a2) = dotRow(D.self, row, q0, q1, q2, group: group, chunks: chunks,
                                              dataOffset: dataOffset)
                    scores[h0 * scoreStride + j] = a0.sum()
                    if group > 1 { scores[(h0 + 1) * scoreStride + j] = a1.sum() }
                    if group > 2 { scores[(h0 + 2) * scoreStride + j] = a2.sum() }
                }
            }
        }
        switch group {
        case 3: run(3)
        case 2: run(2)
        default: run(1)
        }
    }

    /// acc_l += Σ_j w[l · weightStride + j] · row_j for `lanes` accumulators and `count` rows (row j at
    /// rows + j · rowStride). Each 8-wide accumulator chunk stays in registers across all rows.
    @inline(__always)
    static func accumulateLanes<D: KVChunkDecoder>(_: D.Type, weights w: UnsafePointer<Float>, weightStride: Int,
                                                   lanes: Int, headDim d: Int, rows: UnsafeRawPointer, rowStride: Int,
                                                   count: Int, dataOffset: Int, acc: UnsafeMutablePointer<Float>) {
        let chunks = d / 8
        var l = 0
        while l + 8 <= lanes {
            let w0 = w + l * weightStride, ws = weightStride
            let y0 = acc + l * d
            for c in 0..<chunks {
                let yc = y0 + 8 * c
                var a0 = load8(yc), a1 = load8(yc + d), a2 = load8(yc + 2 * d), a3 = load8(yc + 3 * d)
                var a4 = load8(yc + 4 * d), a5 = load8(yc + 5 * d), a6 = load8(yc + 6 * d), a7 = load8(yc + 7 * d)
                for j in 0..<count {
                    let v = D.decode8(rows + j * rowStride, chunk: c, dataOffset: dataOffset)
                    let wj = w0 + j
                    a0 = a0.addingProduct(wj[0], v)
                    a1 = a1.addingProduct(wj[ws], v)
                    a2 = a2.addingProduct(wj[2 * ws], v)
                    a3 = a3.addingProduct(wj[3 * ws], v)
                    a4 = a4.addingProduct(wj[4 * ws], v)
                    a5 = a5.addingProduct(wj[5 * ws], v)
                    a6 = a6.addingProduct(wj[6 * ws], v)
                    a7 = a7.addingProduct(wj[7 * ws], v)
                }
                store8(a0, yc); store8(a1, yc + d); store8(a2, yc + 2 * d); store8(a3, yc + 3 * d)
                store8(a4, yc + 4 * d); store8(a5, yc + 5 * d); store8(a6, yc + 6 * d); store8(a7, yc + 7 * d)
            }
            l += 8
        }
        while l + 4 <= lanes {
            let w0 = w + l * weightStride, w1 = w0 + weightStride, w2 = w1 + weightStride, w3 = w2 + weightStride
            let y0 = acc + l * d, y1 = y0 + d, y2 = y1 + d, y3 = y2 + d
            for c in 0..<chunks {
                var a0 = load8(y0 + 8 * c), a1 = load8(y1 + 8 * c), a2 = load8(y2 + 8 * c), a3 = load8(y3 + 8 * c)
                for j in 0..<count {
                    let v = D.decode8(rows + j * rowStride, chunk: c, dataOffset: dataOffset)
                    a0 = a0.addingProduct(w0[j], v)
                    a1 = a1.addingProduct(w1[j], v)
                    a2 = a2.addingProduct(w2[j], v)
                    a3 = a3.addingProduct(w3[j], v)
                }
                store8(a0, y0 + 8 * c); store8(a1, y1 + 8 * c); store8(a2, y2 + 8 * c); store8(a3, y3 + 8 * c)
            }
            l += 4
        }
        if lanes - l >= 2 {
            // Two or three lanes left (a decode step's query heads of one KV head): each value chunk is decoded once
            // for all of them; each lane's chunk sums the rows in order, as on the one-lane path.
            let three = lanes - l == 3
            let w0 = w + l * weightStride, w1 = w0 + weightStride, w2 = w1 + weightStride
            let y0 = acc + l * d, y1 = y0 + d, y2 = y1 + d
            for c in 0..<chunks {
                var a0 = load8(y0 + 8 * c), a1 = load8(y1 + 8 * c)
                var a2 = three ? load8(y2 + 8 * c) : SIMD8<Float>()
                for j in 0..<count {
                    if c == 0 {                                             // values 16 rows ahead, as the keys
                        let ahead = rows + (j + 16) * rowStride
                        AutoGLMEngine.prefetch(ahead); AutoGLMEngine.prefetch(ahead + 64)
                    }
                    let v = D.decode8(rows + j * rowStride, chunk: c, dataOffset: dataOffset)
                    a0 = a0.addingProduct(w0[j], v)
                    a1 = a1.addingProduct(w1[j], v)
                    if three { a2 = a2.addingProduct(w2[j], v) }
                }
                store8(a0, y0 + 8 * c); store8(a1, y1 + 8 * c)
                if three { store8(a2, y2 + 8 * c) }
            }
            l = lanes
        }
        while l < lanes {
            let w0 = w + l * weightStride, y0 = acc + l * d
            // One lane: four chunks of its accumulator at a time, four independent chains over the rows (each chunk
            // still sums the rows in order).
            var c = 0
            while c + 4 <= chunks {
                let y = y0 + 8 * c
                var a0 = load8(y), a1 = load8(y + 8), a2 = load8(y + 16), a3 = load8(y + 24)
                for j in 0..<count {
                    let row = rows + j * rowStride, wj = w0[j]
                    a0 = a0.addingProduct(wj, D.decode8(row, chunk: c, dataOffset: dataOffset))
                    a1 = a1.addingProduct(wj, D.decode8(row, chunk: c + 1, dataOffset: dataOffset))
                    a2 = a2.addingProduct(wj, D.decode8(row, chunk: c + 2, dataOffset: dataOffset))
                    a3 = a3.addingProduct(wj, D.decode8(row, chunk: c + 3, dataOffset: dataOffset))
                }
                store8(a0, y); store8(a1, y + 8); store8(a2, y + 16); store8(a3, y + 24)
                c += 4
            }
            for c in c..<chunks {
                var a0 = load8(y0 + 8 * c)
                for j in 0..<count {
                    a0 = a0.addingProduct(w0[j], D.decode8(rows + j * rowStride, chunk: c, dataOffset: dataOffset))
                }
                store8(a0, y0 + 8 * c)
            }
            l += 1
        }
    }

    /// e^x for 8 lanes (range reduction by ln 2 and a degree-5 polynomial; about 1 ulp for x in [-87, 88]).
    @inline(__always)
    static func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let low = SIMD8<Float>(repeating: -87.3), high = SIMD8<Float>(repeating: 88.3)
        var x = input.replacing(with: low, where: input .< low)
        x.replace(with: high, where: x .> high)
        // Adding 1.5 · 2^23 rounds to an integer n held in the low mantissa bits: bits = 0x4B40_0000 + n.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: SIMD8<Float>.self)
    }

    /// The largest of x[0 ..< count] (−∞ for none), with the kernels' `vmax` / `hmax` (the standard library's
    /// `pointwiseMax` is a generic call here: 1.4–3% of a materialised ViT profile).
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        var m = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        while j + 8 <= count { m = vmax(m, load8(x + j)); j += 8 }
        var result = hmax(m)
        while j < count { result = Swift.max(result, x[j]); j += 1 }
        return result
    }

    /// x[j] = e^(x[j] − shift) for j < count; returns the sum.
    @inline(__always)
    static func expShifted(_ x: UnsafeMutablePointer<Float>, _ count: Int, shift: Float) -> Float {
        let s = SIMD8<Float>(repeating: shift)
        var sum = SIMD8<Float>()
        var j = 0
        while j + 8 <= count {
            let e = exp8(load8(x + j) - s)
            store8(e, x + j)
            sum += e
            j += 8
        }
        var total = sum.sum()
        if j < count {
            var tail = SIMD8<Float>(repeating: -.infinity)
            for t in j..<count { tail[t - j] = x[t] }
            let e = exp8(tail - s)
            for t in j..<count { x[t] = e[t - j]; total += e[t - j] }
        }
        return total
    }
}

/// The tiled kernel's work on one call, counted by its workers: what a cost model's work count is checked against.
public final class AttentionWorkTally: Sendable {
    public struct Counts: Codable, Sendable, Equatable {
        /// (lane, key) pairs the wide tile's score and softmax steps ran: the lanes handed to the step rounded up
        /// to whole vectors.
        public var wideLaneKeys = 0
        /// The part of `wideLaneKeys` in a step's odd last vector (whose score step runs alone, not in a pair).
        public var wideLoneVectorKeys = 0
        /// (lane, key) pairs the wide tile's value step ran: the lanes handed to the step (a block-sparse item's
        /// compacted active lanes, or all of its lanes), one by one.
        public var wideValueLaneKeys = 0
        /// Wide steps (one key tile over one set of active lanes).
        public var wideSteps = 0
        /// (lane, key) pairs the per-lane loops ran (tiles where a lane has several runs; decode's few lanes).
        public var loopLaneKeys = 0
        /// Keys whose K/V rows the work items' tiles read, once per item however many of its lanes used them: a wide
        /// step's span of keys, in the lane loops the keys some lane's run covers in the tile (block-sparse decode:
        /// the union of the blocks the query heads of a KV head chose, their own block included).
        public var readKeys = 0

        public init() {}

        /// The pairs priced as the cost model prices them (`AttentionCostModel.blockSparseWork`), the per-lane
        /// loops' pairs as they are. With the tile's vector share s: s of the score steps' vectors and 1 − s of the
        /// value step's lanes; without: whole vectors, a lone last vector's score step at a pair's cost (its half of
        /// `wideLoneVectorKeys` again).
        public func pricedLaneKeys(vectorShare: Double? = nil) -> Double {
            guard let s = vectorShare else {
                return Double(wideLaneKeys) + Double(wideLoneVectorKeys) / 2 + Double(loopLaneKeys)
            }
            return s * Double(wideLaneKeys) + (1 - s) * Double(wideValueLaneKeys) + Double(loopLaneKeys)
        }

        enum CodingKeys: String, CodingKey {
            case wideLaneKeys = "wide_lane_keys", wideLoneVectorKeys = "wide_lone_vector_keys"
            case wideValueLaneKeys = "wide_value_lane_keys"
            case wideSteps = "wide_steps", loopLaneKeys = "loop_lane_keys", readKeys = "read_keys"
        }
    }
    private let total = Mutex(Counts())
    public init() {}
    public var counts: Counts { total.withLock { $0 } }
    func add(_ c: Counts) {
        total.withLock {
            $0.wideLaneKeys += c.wideLaneKeys; $0.wideLoneVectorKeys += c.wideLoneVectorKeys
            $0.wideValueLaneKeys += c.wideValueLaneKeys
            $0.wideSteps += c.wideSteps; $0.loopLaneKeys += c.loopLaneKeys; $0.readKeys += c.readKeys
        }
    }
}
