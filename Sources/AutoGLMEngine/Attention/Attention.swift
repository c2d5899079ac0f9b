#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import AutoGLMSpecs

/// Attention kernels over a `KVCache` (causal decoder attention) or explicit K/V (the vision encoder).
///
/// Two kernels compute the same function:
/// - `.materialised` forms each head's full query × key score matrix, applies the mask, a row softmax, then P·V.
/// - `.tiled` walks keys in tiles of `keyTile` with an online softmax (running max, running sum, rescaled
///   accumulator). A work item takes one KV head and a few query rows; its lanes (every query head of the group,
///   for each row) share each decoded key/value chunk, so grouped-query attention reads the cache once per group.
///   Scratch is O(lanes · (headDim + keyTile)) per worker, independent of the sequence; no score matrix exists.
/// Masks: causal; optional sliding window `w` with `g` global tokens (query i sees key p iff p ≤ i and
/// (i − p < w or p < g)); optional MoBA block-sparse selection.
public enum Attention {
    static let queryTile = 16
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
                              threads: Int = Attention.defaultThreads) throws {
        try causalMeasuringScratch(q: q, n: n, heads: heads, cache: cache, layer: layer, out: out, kernel: kernel,
                                   scale: scale, blockSparse: blockSparse, threads: threads)
    }

    /// `causal`, returning the scratch bytes its workers allocated.
    @discardableResult
    static func causalMeasuringScratch(q: UnsafePointer<Float>, n: Int, heads: Int, cache: KVCache, layer: Int,
                                       out: UnsafeMutablePointer<Float>, kernel: AttentionKernel, scale: Float?,
                                       blockSparse: Plan.BlockSparse?, threads: Int) throws -> Int {
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
        let problem = Problem(
            n: n, heads: heads, kvHeads: cache.kvHeads, headDim: cache.headDim, layout: cache.layout,
            slotBytes: cache.slotBytes, spans: cache.spans(layer: layer), queryStart: cache.length,
            causal: true, window: cache.window, globalTokens: cache.globalTokens,
            scale: scale ?? 1 / Float(cache.headDim).squareRoot(), selector: selector)
        return try run(problem, q: q, out: out, kernel: kernel, threads: threads)
    }

    /// Non-causal attention over explicit K/V (the vision encoder): q `(n, heads*d)`, k/v `(m, kvHeads*d)`,
    /// out `(n, heads*d)`.
    public static func full(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, n: Int, m: Int,
                            heads: Int, kvHeads: Int, headDim: Int, out: UnsafeMutablePointer<Float>,
                            kernel: AttentionKernel = .tiled, scale: Float? = nil,
                            threads: Int = Attention.defaultThreads) throws {
        guard n >= 0 else { throw AttentionError.invalidParameter(name: "n", expected: ">= 0", got: n) }
        guard m > 0 else { throw AttentionError.invalidParameter(name: "m", expected: "> 0", got: m) }
        guard headDim > 0 else { throw AttentionError.invalidParameter(name: "headDim", expected: "> 0", got: headDim) }
        guard kvHeads > 0, heads > 0, heads % kvHeads == 0 else {
            throw AttentionError.headsNotMultipleOfKVHeads(heads: heads, kvHeads: kvHeads)
        }
        guard n > 0 else { return }
        let layout = KVRowLayout(format: .f32, headDim: headDim)
        let span = KVCache.Span(first: 0, count: m, keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v))
        let problem = Problem(
            n: n, heads: heads, kvHeads: kvHeads, headDim: headDim, layout: layout, slotBytes: kvHeads * headDim * 4,
            spans: [span], queryStart: 0, causal: false, window: nil, globalTokens: 0,
            scale: scale ?? 1 / Float(headDim).squareRoot(), selector: nil)
        try run(problem, q: q, out: out, kernel: kernel, threads: threads)
    }

    /// Bytes of scratch a kernel allocates for `n` queries over `m` stored keys (all workers together).
    /// Materialised: an n·m F32 score matrix per head in flight plus a worker's buffers; tiled: per worker, a query
    /// tile's scaled queries and accumulators and one key tile of scores (independent of n and m, except for the
    /// per-block scores of block-sparse selection).
    /// `kvHeads` defaults to `heads` (no grouping).
    public static func scratchBytes(n: Int, m: Int, heads: Int, kernel: AttentionKernel, threads: Int,
                                    headDim: Int = 128, kvHeads: Int? = nil,
                                    blockSparse: Plan.BlockSparse? = nil) -> Int {
        let kvHeads = max(1, kvHeads ?? heads)
        let workers = max(1, threads)
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
            return chunks(kvHeads * ((n + rowsPer - 1) / rowsPer)) * worker
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
                return selector.intervals(position: i, kvHead: kvHead, kvHeads: kvHeads, headDim: headDim,
                                          q: qScaled, scores: scores, chosen: chosen, into: buffer)
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
        /// `[block][kvHead][headDim]` mean-pooled keys of complete blocks.
        var means: [Float]

        func intervals(position i: Int, kvHead: Int, kvHeads: Int, headDim: Int, q: UnsafePointer<Float>,
                       scores: UnsafeMutablePointer<Float>, chosen: UnsafeMutablePointer<Int>,
                       into buffer: UnsafeMutablePointer<Int>) -> Int {
            let own = i / chunk
            let others = min(topK - 1, own)
            var count = 0
            if others == own {
                for b in 0..<own { chosen[b] = b }
                count = own
            } else if others > 0 {
                means.withUnsafeBufferPointer { m in
                    for b in 0..<own {
                        scores[b] = AttentionMath.dotF32(q, m.baseAddress! + (b * kvHeads + kvHead) * headDim, headDim)
                    }
                }
                // Keep the best `others` blocks, ordered by score descending then index ascending.
                for b in 0..<own {
                    let s = scores[b]
                    if count == others && !(s > scores[chosen[count - 1]]) { continue }
                    var j = count == others ? count - 1 : count
                    while j > 0 && s > scores[chosen[j - 1]] { chosen[j] = chosen[j - 1]; j -= 1 }
                    chosen[j] = b
                    if count < others { count += 1 }
                }
                // Sort chosen blocks by index.
                for a in 1..<max(1, count) {
                    let x = chosen[a]; var j = a
                    while j > 0 && chosen[j - 1] > x { chosen[j] = chosen[j - 1]; j -= 1 }
                    chosen[j] = x
                }
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
    }

    // MARK: Dispatch

    /// Runs the kernel; returns the scratch bytes allocated by all workers together.
    @discardableResult
    static func run(_ p: Problem, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    kernel: AttentionKernel, threads: Int) throws -> Int {
        let workers = max(1, threads)
        let qAddress = UInt(bitPattern: q), outAddress = UInt(bitPattern: out)
        switch kernel {
        case .tiled:
            let rowsPer = rowsPerItem(group: p.heads / p.kvHeads)
            let items = p.kvHeads * ((p.n + rowsPer - 1) / rowsPer)
            let perWorker = (items + workers - 1) / workers
            let chunks = (items + perWorker - 1) / perWorker
            concurrentPerform(chunks, serial: workers == 1) { c in
                let scratch = TiledScratch(p)
                defer { scratch.release() }
                let qp = UnsafePointer<Float>(bitPattern: qAddress)!, op = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                for item in (c * perWorker)..<min(items, (c + 1) * perWorker) {
                    tiled(p, kvHead: item % p.kvHeads, rows: (item / p.kvHeads) * rowsPer, q: qp, out: op, scratch: scratch)
                }
            }
            return chunks * TiledScratch.bytes(p)
        case .materialised:
            let m = p.spans.reduce(0) { $0 + $1.count }
            let matrixBytes = p.n * m * 4
            let perWorker = (p.heads + workers - 1) / workers
            let chunks = (p.heads + perWorker - 1) / perWorker
            let failed = FailureFlag()
            concurrentPerform(chunks, serial: workers == 1) { c in
                guard let matrix = malloc(max(4, matrixBytes))?.assumingMemoryBound(to: Float.self) else {
                    failed.set(); return
                }
                defer { free(matrix) }
                let scratch = TiledScratch(p)
                defer { scratch.release() }
                let qp = UnsafePointer<Float>(bitPattern: qAddress)!, op = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
                for h in (c * perWorker)..<min(p.heads, (c + 1) * perWorker) {
                    materialised(p, head: h, m: m, q: qp, out: op, matrix: matrix, scratch: scratch)
                }
            }
            if failed.isSet { throw AttentionError.allocationFailed(bytes: matrixBytes) }
            return chunks * (max(4, matrixBytes) + TiledScratch.bytes(p))
        }
    }

    private static func concurrentPerform(_ count: Int, serial: Bool, _ body: @escaping @Sendable (Int) -> Void) {
        if serial || count == 1 {
            for i in 0..<count { body(i) }
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

    /// Query rows per tiled work item: enough rows that the item's lanes (rows × query heads sharing one KV head)
    /// number about `laneTarget`, so each key tile is decoded once for many queries.
    static let laneTarget = 32
    static func rowsPerItem(group: Int) -> Int { max(1, min(queryTile, laneTarget / max(1, group))) }

    /// Per-worker buffers. A lane is one (query row, query head) pair of a work item.
    final class TiledScratch {
        let lanes: Int
        let q: UnsafeMutablePointer<Float>           // lanes × headDim scaled queries
        let acc: UnsafeMutablePointer<Float>         // lanes × headDim accumulators
        let maxes: UnsafeMutablePointer<Float>       // lanes
        let sums: UnsafeMutablePointer<Float>        // lanes
        let scores: UnsafeMutablePointer<Float>      // lanes × keyTile
        let blockScores: UnsafeMutablePointer<Float> // blocks (block-sparse selection)
        let intervals: UnsafeMutablePointer<Int>     // lanes × maxIntervals × 2
        let counts: UnsafeMutablePointer<Int>        // lanes
        let chosen: UnsafeMutablePointer<Int>        // blocks

        static func lanes(heads: Int, kvHeads: Int) -> Int {
            let group = heads / max(1, kvHeads)
            return rowsPerItem(group: group) * group
        }
        /// Bytes one worker's scratch takes for a problem.
        static func bytes(_ p: Problem) -> Int {
            bytes(lanes: lanes(heads: p.heads, kvHeads: p.kvHeads), headDim: p.headDim, blocks: blocks(p),
                  maxIntervals: p.maxIntervals)
        }
        static func bytes(lanes: Int, headDim d: Int, blocks: Int, maxIntervals: Int) -> Int {
            let floats = 2 * lanes * d + 2 * lanes + lanes * Attention.keyTile + max(1, blocks)
            let ints = lanes * maxIntervals * 2 + lanes + max(1, blocks)
            return floats * MemoryLayout<Float>.stride + ints * MemoryLayout<Int>.stride
        }
        static func blocks(_ p: Problem) -> Int {
            p.selector.map { $0.means.count / max(1, p.kvHeads * p.headDim) + 1 } ?? 0
        }
        init(_ p: Problem) {
            let d = p.headDim
            let blocks = TiledScratch.blocks(p)
            lanes = TiledScratch.lanes(heads: p.heads, kvHeads: p.kvHeads)
            q = .allocate(capacity: lanes * d)
            acc = .allocate(capacity: lanes * d)
            maxes = .allocate(capacity: lanes)
            sums = .allocate(capacity: lanes)
            scores = .allocate(capacity: lanes * Attention.keyTile)
            blockScores = .allocate(capacity: max(1, blocks))
            intervals = .allocate(capacity: lanes * p.maxIntervals * 2)
            counts = .allocate(capacity: lanes)
            chosen = .allocate(capacity: max(1, blocks))
        }
        func release() {
            q.deallocate(); acc.deallocate(); maxes.deallocate(); sums.deallocate(); scores.deallocate()
            blockScores.deallocate(); intervals.deallocate(); counts.deallocate(); chosen.deallocate()
        }
    }

    // MARK: Tiled kernel (online softmax)

    /// One work item of the tiled kernel: every query head that shares KV head `kvh`, for query rows
    /// `r0 ..< r0 + rowsPerItem`.
    static func tiled(_ p: Problem, kvHead kvh: Int, rows r0: Int, q: UnsafePointer<Float>,
                      out: UnsafeMutablePointer<Float>, scratch s: TiledScratch) {
        let vectorised = p.headDim % KVRowLayout.groupSize == 0
        switch p.layout.format {
        case .f32: tiled(F32Chunks.self, vectorised, p, kvHead: kvh, rows: r0, q: q, out: out, scratch: s)
        case .f16: tiled(F16Chunks.self, vectorised, p, kvHead: kvh, rows: r0, q: q, out: out, scratch: s)
        case .int8: tiled(Int8Chunks.self, vectorised, p, kvHead: kvh, rows: r0, q: q, out: out, scratch: s)
        case .int4: tiled(Int4Chunks.self, vectorised, p, kvHead: kvh, rows: r0, q: q, out: out, scratch: s)
        }
    }

    @inline(__always)
    static func tiled<D: KVChunkDecoder>(_ decoder: D.Type, _ vectorised: Bool, _ p: Problem, kvHead kvh: Int,
                                         rows r0: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                         scratch s: TiledScratch) {
        let d = p.headDim, width = p.heads * d
        let group = p.heads / p.kvHeads
        let rows = min(rowsPerItem(group: group), p.n - r0)
        let lanes = rows * group
        let ivStride = p.maxIntervals * 2
        let headOffset = kvh * p.layout.rowBytes
        let dataOffset = p.layout.dataOffset
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
                if perLane || gh == 0 {
                    s.counts[lane] = p.intervals(position: p.queryStart + r0 + r, kvHead: kvh, qScaled: dst,
                                                 scores: s.blockScores, chosen: s.chosen, into: s.intervals + lane * ivStride)
                }
            }
        }
        let laneGroup = perLane ? 1 : group
        let lastPosition = p.causal ? p.queryStart + r0 + rows - 1 : Int.max
        for span in p.spans {
            var t0 = 0
            while t0 < span.count {
                let tileLo = span.first + t0
                if tileLo > lastPosition { break }
                let tileHi = span.first + min(span.count, t0 + keyTile)
                for first in stride(from: 0, to: lanes, by: laneGroup) {
                    let iv = s.intervals + first * ivStride
                    for k in 0..<s.counts[first] {
                        let lo = max(iv[2 * k], tileLo), hi = min(iv[2 * k + 1], tileHi)
                        if lo >= hi { continue }
                        let count = hi - lo
                        let keys = span.keys + (lo - span.first) * p.slotBytes + headOffset
                        let values = span.values + (lo - span.first) * p.slotBytes + headOffset
                        let scores = s.scores + first * keyTile
                        // Scores for the lanes against `count` keys.
                        if vectorised {
                            for j in 0..<count {
                                AttentionMath.dotLanes(D.self, q: s.q + first * d, lanes: laneGroup, headDim: d,
                                                       row: keys + j * p.slotBytes, dataOffset: dataOffset,
                                                       scores: scores + j, scoreStride: keyTile)
                            }
                        } else {
                            for l in 0..<laneGroup {
                                for j in 0..<count {
                                    scores[l * keyTile + j] = AttentionMath.dot(s.q + (first + l) * d,
                                                                                keys + j * p.slotBytes, p.layout)
                                }
                            }
                        }
                        // Online softmax: rescale what was accumulated when the running max rises.
                        for l in 0..<laneGroup {
                            let lane = first + l, row = scores + l * keyTile
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
                        // Accumulate the weighted values.
                        if vectorised {
                            for j in 0..<count {
                                AttentionMath.axpyLanes(D.self, weights: scores + j, weightStride: keyTile,
                                                        lanes: laneGroup, headDim: d, row: values + j * p.slotBytes,
                                                        dataOffset: dataOffset, acc: s.acc + first * d)
                            }
                        } else {
                            for l in 0..<laneGroup {
                                for j in 0..<count {
                                    AttentionMath.axpy(scores[l * keyTile + j], values + j * p.slotBytes, p.layout,
                                                       s.acc + (first + l) * d)
                                }
                            }
                        }
                    }
                }
                t0 += keyTile
            }
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

    // MARK: Materialised kernel

    static func materialised(_ p: Problem, head h: Int, m: Int, q: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>, matrix: UnsafeMutablePointer<Float>,
                             scratch s: TiledScratch) {
        let d = p.headDim, width = p.heads * d
        let kvh = h / (p.heads / p.kvHeads)
        let headOffset = kvh * p.layout.rowBytes
        // Scores for every (query, stored key); masked entries are -inf.
        for r in 0..<p.n {
            let src = q + r * width + h * d
            for j in 0..<d { s.q[j] = src[j] * p.scale }
            let count = p.intervals(position: p.queryStart + r, kvHead: kvh, qScaled: s.q, scores: s.blockScores,
                                    chosen: s.chosen, into: s.intervals)
            let row = matrix + r * m
            var column = 0
            for span in p.spans {
                for t in 0..<span.count {
                    let position = span.first + t
                    var allowed = false
                    for k in 0..<count where position >= s.intervals[2 * k] && position < s.intervals[2 * k + 1] {
                        allowed = true
                    }
                    row[column + t] = allowed
                        ? AttentionMath.dot(s.q, span.keys + t * p.slotBytes + headOffset, p.layout) : -.infinity
                }
                column += span.count
            }
        }
        // Row softmax, then P·V.
        for r in 0..<p.n {
            let row = matrix + r * m
            var rowMax = -Float.infinity
            for c in 0..<m { rowMax = max(rowMax, row[c]) }
            var sum: Float = 0
            for c in 0..<m {
                let e = row[c] > -.infinity ? expf(row[c] - rowMax) : 0
                row[c] = e
                sum += e
            }
            let inv: Float = sum > 0 ? 1 / sum : 0
            let acc = s.acc
            acc.initialize(repeating: 0, count: d)
            var column = 0
            for span in p.spans {
                for t in 0..<span.count where row[column + t] != 0 {
                    AttentionMath.axpy(row[column + t] * inv, span.values + t * p.slotBytes + headOffset, p.layout, acc)
                }
                column += span.count
            }
            let dst = out + r * width + h * d
            for j in 0..<d { dst[j] = acc[j] }
        }
    }
}
