#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AutoGLMSpecs

/// The per-layer key/value cache of a decoder.
///
/// Storage is laid out `[slot][kvHead][row]` per layer, one row being `headDim` elements in the cache's format
/// (see `KVRowLayout`). Without a window, slot = position and storage grows in pages of 256 tokens up to
/// `capacity`. With a window `w` and `g` global tokens, the first `g` positions keep slots `0..<g` and later positions
/// share a ring of `w` slots, so storage never exceeds `g + w` tokens; tokens appended but not yet committed wait in
/// a staging buffer so a multi-token chunk can still see the `w` positions before each of its queries.
///
/// Usage per forward step of n tokens: `append(layer:...)` for every layer, attention for that layer, then `commit(n)`.
/// `append` and `commit` throw `AttentionError` on a bad layer, capacity overflow or mismatched counts.
/// Not thread-safe: one forward pass drives a cache at a time.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Maximum number of positions (sequence length) the cache accepts. With a window this bounds positions, not
    /// storage: storage stays at most `window + globalTokens` tokens.
    public let capacity: Int
    public let format: KVCacheFormat
    public let window: Int?
    public let globalTokens: Int

    let layout: KVRowLayout
    /// Bytes of one token for one layer (all KV heads), keys or values.
    let slotBytes: Int
    static let pageTokens = 256

    private var keyStore: [UnsafeMutableRawPointer?]
    private var valueStore: [UnsafeMutableRawPointer?]
    private var storeSlots: [Int]
    /// Staging buffers for uncommitted tokens (windowed caches only).
    private var stageKeys: [UnsafeMutableRawPointer?]
    private var stageValues: [UnsafeMutableRawPointer?]
    private var stageSlots: [Int]
    /// Tokens appended but not yet committed, per layer.
    private(set) var pending: [Int]
    private var committed = 0

    /// Mean-pooled keys per block for block-sparse attention, per layer (`BlockMeanKeys`).
    private var blockMeanChunk: [Int]
    private var blockMeans: [BlockMeanKeys]

    public init(layers: Int, kvHeads: Int, headDim: Int, capacity: Int, format: KVCacheFormat,
                window: Int? = nil, globalTokens: Int = 0) throws {
        guard layers > 0 else { throw AttentionError.invalidParameter(name: "layers", expected: "> 0", got: layers) }
        guard kvHeads > 0 else { throw AttentionError.invalidParameter(name: "kvHeads", expected: "> 0", got: kvHeads) }
        guard headDim > 0 else { throw AttentionError.invalidParameter(name: "headDim", expected: "> 0", got: headDim) }
        guard capacity > 0 else {
            throw AttentionError.invalidParameter(name: "capacity", expected: "> 0", got: capacity)
        }
        if let window, window <= 0 {
            throw AttentionError.invalidParameter(name: "window", expected: "> 0", got: window)
        }
        guard globalTokens >= 0 else {
            throw AttentionError.invalidParameter(name: "globalTokens", expected: ">= 0", got: globalTokens)
        }
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.capacity = capacity
        self.format = format
        self.window = window
        self.globalTokens = window == nil ? 0 : globalTokens
        layout = KVRowLayout(format: format, headDim: headDim)
        slotBytes = layout.rowBytes * kvHeads
        keyStore = Array(repeating: nil, count: layers)
        valueStore = Array(repeating: nil, count: layers)
        storeSlots = Array(repeating: 0, count: layers)
        stageKeys = Array(repeating: nil, count: layers)
        stageValues = Array(repeating: nil, count: layers)
        stageSlots = Array(repeating: 0, count: layers)
        pending = Array(repeating: 0, count: layers)
        blockMeanChunk = Array(repeating: 0, count: layers)
        blockMeans = Array(repeating: BlockMeanKeys(kvHeads: kvHeads, headDim: headDim), count: layers)
    }

    deinit { release() }

    private func release() {
        for l in 0..<layers {
            free(keyStore[l]); free(valueStore[l]); free(stageKeys[l]); free(stageValues[l])
            keyStore[l] = nil; valueStore[l] = nil; stageKeys[l] = nil; stageValues[l] = nil
            storeSlots[l] = 0; stageSlots[l] = 0
        }
    }

    /// Tokens seen so far (committed positions).
    public var length: Int { committed }

    /// Slots a windowed cache keeps: global tokens plus the ring.
    var ringLimit: Int? { window.map { globalTokens + $0 } }

    /// Tokens actually stored (committed); at most `window + globalTokens` under a window.
    public var residentTokens: Int {
        guard let limit = ringLimit else { return committed }
        return min(committed, limit)
    }

    /// Bytes allocated for storage (keys and values, all layers, staging included).
    public var residentBytes: Int {
        var slots = 0
        for l in 0..<layers { slots += storeSlots[l] + stageSlots[l] }
        return 2 * slots * slotBytes
    }

    /// Drops every token and frees storage.
    public func reset() {
        release()
        committed = 0
        for l in 0..<layers { pending[l] = 0; blockMeanChunk[l] = 0; blockMeans[l].removeAll() }
    }

    private func grow(_ pointer: inout UnsafeMutableRawPointer?, to slots: Int) throws {
        let bytes = slots * slotBytes
        guard let p = realloc(pointer, bytes) else { throw AttentionError.allocationFailed(bytes: bytes) }
        pointer = p
    }

    /// Ensures layer `l`'s main storage has at least `slots` slots (rounded up to a page, capped).
    private func reserveStore(layer l: Int, slots needed: Int, cap: Int) throws {
        guard needed > storeSlots[l] else { return }
        let rounded = min(cap, (needed + KVCache.pageTokens - 1) / KVCache.pageTokens * KVCache.pageTokens)
        try grow(&keyStore[l], to: rounded)
        try grow(&valueStore[l], to: rounded)
        storeSlots[l] = rounded
    }

    /// Appends n tokens' keys and values for one layer (row-major `(n, kvHeads*headDim)`), positions continuing
    /// from the layer's current length (committed plus already appended).
    public func append(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, count n: Int) throws {
        guard layer >= 0 && layer < layers else { throw AttentionError.layerOutOfRange(layer: layer, layers: layers) }
        guard n >= 0 else { throw AttentionError.invalidParameter(name: "count", expected: ">= 0", got: n) }
        guard n > 0 else { return }
        let first = committed + pending[layer]
        guard first + n <= capacity else {
            throw AttentionError.capacityExceeded(layer: layer, needed: first + n, capacity: capacity)
        }
        let width = kvHeads * headDim
        let destK: UnsafeMutableRawPointer, destV: UnsafeMutableRawPointer
        if ringLimit != nil {
            let slots = pending[layer] + n
            if slots > stageSlots[layer] {
                try grow(&stageKeys[layer], to: slots)
                try grow(&stageValues[layer], to: slots)
                stageSlots[layer] = slots
            }
            guard let k = stageKeys[layer], let v = stageValues[layer] else {
                throw AttentionError.allocationFailed(bytes: slots * slotBytes)
            }
            destK = k + pending[layer] * slotBytes
            destV = v + pending[layer] * slotBytes
        } else {
            try reserveStore(layer: layer, slots: first + n, cap: capacity)
            guard let k = keyStore[layer], let v = valueStore[layer] else {
                throw AttentionError.allocationFailed(bytes: (first + n) * slotBytes)
            }
            destK = k + first * slotBytes
            destV = v + first * slotBytes
        }
        let rowBytes = layout.rowBytes
        for t in 0..<n {
            for h in 0..<kvHeads {
                let src = t * width + h * headDim
                let dst = t * slotBytes + h * rowBytes
                AttentionMath.encode(keys + src, into: destK + dst, layout: layout)
                AttentionMath.encode(values + src, into: destV + dst, layout: layout)
            }
        }
        pending[layer] += n
    }

    /// Drops the tokens appended since the last commit (every layer), so the same positions can be appended again.
    func discardPending() {
        for l in 0..<layers { pending[l] = 0 }
    }

    /// Advances the shared length by n; every layer must have exactly n tokens appended since the last commit.
    public func commit(_ n: Int) throws {
        for l in 0..<layers where pending[l] != n {
            throw AttentionError.commitMismatch(layer: l, appended: pending[l], committing: n)
        }
        guard n > 0 else { return }
        if let window, let limit = ringLimit {
            let g = globalTokens
            for l in 0..<layers {
                try reserveStore(layer: l, slots: min(committed + n, limit), cap: limit)
                guard let k = keyStore[l], let v = valueStore[l], let sk = stageKeys[l], let sv = stageValues[l] else {
                    throw AttentionError.allocationFailed(bytes: limit * slotBytes)
                }
                for t in 0..<n {
                    let p = committed + t
                    let slot: Int
                    if p < g { slot = p } else if p >= committed + n - window { slot = g + (p - g) % window } else {
                        continue
                    }
                    (k + slot * slotBytes).copyMemory(from: sk + t * slotBytes, byteCount: slotBytes)
                    (v + slot * slotBytes).copyMemory(from: sv + t * slotBytes, byteCount: slotBytes)
                }
                // Keep a one-token staging buffer for decoding; drop larger ones so memory stays flat.
                if stageSlots[l] > 1 {
                    free(stageKeys[l]); free(stageValues[l])
                    stageKeys[l] = nil; stageValues[l] = nil; stageSlots[l] = 0
                }
                pending[l] = 0
            }
        } else {
            for l in 0..<layers { pending[l] = 0 }
        }
        committed += n
    }

    // MARK: Reading

    /// A contiguous run of positions `[first, first + count)` stored in consecutive slots; pointers address the
    /// first slot's head-0 row.
    struct Span: @unchecked Sendable {
        var first: Int
        var count: Int
        var keys: UnsafeRawPointer
        var values: UnsafeRawPointer
    }

    /// Starts loading layer `l`'s stored keys and values into the caches (a software prefetch of every line, keys
    /// and values of the first positions first, up to `budget` bytes in all), so that a decode step's attention,
    /// which runs after the Q/K/V projections have streamed their weights, finds them there instead of waiting
    /// on one miss after another. Beyond the budget (a quarter of a 1 MiB L2) the hardware prefetcher follows the
    /// sequential reads. SmolLM2 Q4_0 decode from an empty cache to 256 tokens on the 2-core AVX-512 host: the
    /// attention kernels' share of the profile fell from 7.2% to 3.9% (plus 0.9% issuing the prefetches).
    func prefetch(layer l: Int, budget: Int = 256 * 1024) {
        var left = budget
        for span in spans(layer: l) where left > 0 {
            let bytes = min(span.count * slotBytes, left / 2)
            var offset = 0
            while offset < bytes {
                AutoGLMEngine.prefetch(span.keys + offset); AutoGLMEngine.prefetch(span.values + offset)
                offset += 64
            }
            left -= 2 * bytes
        }
    }

    /// Removes layer `l`'s stored keys and values from every cache level, as a decode step finds them in a model:
    /// between two reads of one layer's K/V the rest of the model's weights and caches stream through. x86 flushes
    /// each line (`clflush`); elsewhere `false` is returned and nothing is done (the caller sweeps a buffer larger
    /// than the caches instead).
    @discardableResult
    public func evictFromCaches(layer l: Int) -> Bool {
        #if arch(x86_64)
        for span in spans(layer: l) {
            let bytes = span.count * slotBytes
            var offset = 0
            while offset < bytes {
                llvmCacheLineFlush(span.keys + offset); llvmCacheLineFlush(span.values + offset)
                offset += 64
            }
            if bytes > 0 { llvmCacheLineFlush(span.keys + bytes - 1); llvmCacheLineFlush(span.values + bytes - 1) }
        }
        return true
        #else
        return false
        #endif
    }

    /// Whether `evictFromCaches` can flush cache lines on this architecture.
    public static var flushesLines: Bool {
        #if arch(x86_64)
        return true
        #else
        return false
        #endif
    }

    /// The runs of stored positions layer `l` holds, committed and pending, in increasing position order.
    func spans(layer l: Int) -> [Span] {
        var result: [Span] = []
        let total = committed + pending[l]
        guard let window, let limit = ringLimit else {
            if total > 0, let k = keyStore[l], let v = valueStore[l] {
                result.append(Span(first: 0, count: total, keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v)))
            }
            return result
        }
        _ = limit
        let g = globalTokens
        if let k = keyStore[l], let v = valueStore[l] {
            let globals = min(g, committed)
            if globals > 0 {
                result.append(Span(first: 0, count: globals, keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v)))
            }
            let start = max(g, committed - window)
            if committed > start {
                let firstSlot = g + (start - g) % window
                let run1 = min(committed - start, g + window - firstSlot)
                result.append(Span(first: start, count: run1, keys: UnsafeRawPointer(k + firstSlot * slotBytes),
                                   values: UnsafeRawPointer(v + firstSlot * slotBytes)))
                let run2 = committed - start - run1
                if run2 > 0 {
                    result.append(Span(first: start + run1, count: run2, keys: UnsafeRawPointer(k + g * slotBytes),
                                       values: UnsafeRawPointer(v + g * slotBytes)))
                }
            }
        }
        if pending[l] > 0, let sk = stageKeys[l], let sv = stageValues[l] {
            result.append(Span(first: committed, count: pending[l], keys: UnsafeRawPointer(sk),
                               values: UnsafeRawPointer(sv)))
        }
        return result
    }

    /// The stored (decoded) key and value rows of one position and KV head, or nil if that position is not resident.
    public func storedRows(layer: Int, position: Int, kvHead: Int) throws -> (key: [Float], value: [Float])? {
        guard layer >= 0 && layer < layers else { throw AttentionError.layerOutOfRange(layer: layer, layers: layers) }
        guard kvHead >= 0 && kvHead < kvHeads else {
            throw AttentionError.invalidParameter(name: "kvHead", expected: "0..<\(kvHeads)", got: kvHead)
        }
        for span in spans(layer: layer) where position >= span.first && position < span.first + span.count {
            let offset = (position - span.first) * slotBytes + kvHead * layout.rowBytes
            var key = [Float](repeating: 0, count: headDim), value = key
            key.withUnsafeMutableBufferPointer { AttentionMath.decode(span.keys + offset, layout: layout, into: $0.baseAddress!) }
            value.withUnsafeMutableBufferPointer {
                AttentionMath.decode(span.values + offset, layout: layout, into: $0.baseAddress!)
            }
            return (key, value)
        }
        return nil
    }

    /// Mean-pooled stored keys of every complete block of `chunk` positions among the first `tokens` positions.
    /// Kept between calls and extended as blocks complete (full caches only).
    func blockMeanKeys(layer l: Int, chunk: Int, tokens: Int) -> BlockMeanKeys {
        let blocks = tokens / chunk
        if blockMeanChunk[l] != chunk { blockMeanChunk[l] = chunk; blockMeans[l].removeAll() }
        let have = blockMeans[l].blocks
        guard blocks > have, let k = keyStore[l] else { return blockMeans[l] }
        var row = [Float](repeating: 0, count: headDim), means = [Float](repeating: 0, count: kvHeads * headDim)
        let inv = 1 / Float(chunk)
        for b in have..<blocks {
            row.withUnsafeMutableBufferPointer { r in
                means.withUnsafeMutableBufferPointer { m in
                    m.update(repeating: 0)
                    for h in 0..<kvHeads {
                        let dst = m.baseAddress! + h * headDim
                        for p in (b * chunk)..<((b + 1) * chunk) {
                            AttentionMath.decode(k + p * slotBytes + h * layout.rowBytes, layout: layout,
                                                 into: r.baseAddress!)
                            for j in 0..<headDim { dst[j] += r[j] }
                        }
                        for j in 0..<headDim { dst[j] *= inv }
                    }
                }
            }
            blockMeans[l].append(means)
        }
        return blockMeans[l]
    }
}

/// Mean-pooled keys of complete blocks for block-sparse selection, in groups of `lanes` blocks:
/// `[group][kvHead][headDim][lanes]` (a group's unused lanes zero). A query's scores against a group's blocks are then
/// one multiply-add of a vector per key dimension, rather than a dot product and a horizontal sum per block.
struct BlockMeanKeys: Sendable {
    static let lanes = 16
    let kvHeads: Int
    let headDim: Int
    /// Complete blocks held.
    private(set) var blocks = 0
    private(set) var values: [Float] = []

    init(kvHeads: Int, headDim: Int) { self.kvHeads = kvHeads; self.headDim = headDim }

    /// Floats of one group: every KV head's `headDim × lanes` tile.
    var groupStride: Int { kvHeads * headDim * Self.lanes }

    mutating func removeAll() { blocks = 0; values = [] }

    /// Appends one block's mean keys, `[kvHead][headDim]`.
    mutating func append(_ means: [Float]) {
        let lane = blocks % Self.lanes
        if lane == 0 { values.append(contentsOf: repeatElement(0, count: groupStride)) }
        let base = (blocks / Self.lanes) * groupStride
        for i in 0..<(kvHeads * headDim) { values[base + i * Self.lanes + lane] = means[i] }
        blocks += 1
    }

    /// Mean key of `block` for `kvHead`, dimension `j`.
    func mean(block: Int, kvHead: Int, _ j: Int) -> Float {
        values[(block / Self.lanes) * groupStride + (kvHead * headDim + j) * Self.lanes + block % Self.lanes]
    }

    /// Writes the scores `q · mean(b)` of blocks `0 ..< count` for `kvHead` into `scores` (count ≤ `blocks`).
    func scores(kvHead: Int, q: UnsafePointer<Float>, count: Int, into scores: UnsafeMutablePointer<Float>) {
        let d = headDim
        values.withUnsafeBufferPointer { v in
            var b0 = 0
            while b0 < count {
                let tile = v.baseAddress! + (b0 / Self.lanes) * groupStride + kvHead * d * Self.lanes
                // Two independent sums per half (even and odd dimensions) so the multiply-adds do not wait on each
                // other's results.
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), b0s = SIMD8<Float>(), b1s = SIMD8<Float>()
                var j = 0
                while j + 2 <= d {
                    let x = SIMD8<Float>(repeating: q[j]), y = SIMD8<Float>(repeating: q[j + 1])
                    let row0 = UnsafeRawPointer(tile + j * Self.lanes)
                    let row1 = UnsafeRawPointer(tile + (j + 1) * Self.lanes)
                    a0 = a0.addingProduct(x, row0.loadUnaligned(as: SIMD8<Float>.self))
                    a1 = a1.addingProduct(x, row0.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                    b0s = b0s.addingProduct(y, row1.loadUnaligned(as: SIMD8<Float>.self))
                    b1s = b1s.addingProduct(y, row1.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                    j += 2
                }
                if j < d {
                    let x = SIMD8<Float>(repeating: q[j]), row = UnsafeRawPointer(tile + j * Self.lanes)
                    a0 = a0.addingProduct(x, row.loadUnaligned(as: SIMD8<Float>.self))
                    a1 = a1.addingProduct(x, row.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                }
                let acc0 = a0 + b0s, acc1 = a1 + b1s
                let n = min(Self.lanes, count - b0)
                for i in 0..<min(8, n) { scores[b0 + i] = acc0[i] }
                if n > 8 { for i in 8..<n { scores[b0 + i] = acc1[i - 8] } }
                b0 += Self.lanes
            }
        }
    }
}
