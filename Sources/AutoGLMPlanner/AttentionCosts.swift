import Foundation
import AutoGLMSpecs

/// One attention configuration as the planner prices it: KV precision, kernel, sliding window with global tokens,
/// MoBA block-sparse selection.
public struct AttentionSettingSpec: Sendable, Equatable {
    public var name: String
    public var kv: KVCacheFormat
    public var kernel: AttentionKernel
    public var window: Int?
    public var globalTokens: Int
    public var blockSparse: Plan.BlockSparse?

    public init(name: String, kv: KVCacheFormat = .f32, kernel: AttentionKernel = .tiled, window: Int? = nil,
                globalTokens: Int = 0, blockSparse: Plan.BlockSparse? = nil) {
        self.name = name; self.kv = kv; self.kernel = kernel; self.window = window
        self.globalTokens = globalTokens; self.blockSparse = blockSparse
    }

    /// The key of this setting's accuracy figure in the manifest's `setting_sensitivity` table (nil: lossless by
    /// construction, F32 KV with the full attention pattern).
    public var accuracyKeys: [String] {
        var keys: [String] = []
        if kv != .f32 { keys.append(AccuracyModel.kvSetting(kv)) }
        if let window { keys.append(AccuracyModel.windowSetting(window: window, global: globalTokens)) }
        if let b = blockSparse { keys.append("block-sparse:\(b.chunk)/\(b.topK)") }
        return keys
    }
}

/// The shape of one attention layer.
public struct AttentionLayerShape: Sendable, Equatable {
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public init(heads: Int, kvHeads: Int, headDim: Int) { self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim }
    public init(_ d: TextDecoderSpec) { self.init(heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim) }
}

/// What the planner predicts for one attention layer at one sequence length.
public struct AttentionCostPrediction: Sendable, Equatable {
    /// KV cache bytes of the layer (keys and values of the cached tokens; 0 for `.encode`, whose K/V are
    /// activations counted in `operandBytes`).
    public var kvBytes: Int
    /// Scratch of the kernel during the call, all worker threads together.
    public var scratchBytes: Int
    /// F32 tensors the caller holds for the call: queries and output, for `.encode` keys and values too.
    public var operandBytes: Int
    public var seconds: Double
    /// New tokens per second (prefill and encode: n / seconds; decode: 1 / seconds).
    public var tokensPerSecond: Double
    /// Relative perplexity increase from the accuracy table, nil when no figure exists for the setting.
    public var loss: Double?
    public var peakBytes: Int { kvBytes + scratchBytes }
    /// Memory the call adds to the process: operands, cache and scratch.
    public var workingSetBytes: Int { kvBytes + scratchBytes + operandBytes }
}

/// Memory, latency and accuracy cost of attention settings for one layer.
///
/// Memory: KV = cached tokens · 2 · kv_heads · head_dim · bytes per element (cached tokens: all of them, or under a
/// window `window + global`). Scratch follows the engine's work partition: the tiled kernel gives each worker one
/// set of buffers (`workerScratchBytes`: a work item's scaled queries, accumulators and one key tile of scores,
/// independent of the length) plus, when a few work items are split by key range, their partial softmax states;
/// the materialised kernel gives each worker one `n × m` F32 score matrix and the buffers, and as many workers run as
/// there are chunks of heads (`chunks(heads, threads)`).
/// Latency: `LatencyModel.attentionSeconds` on the FLOPs of the visible (query, key) pairs, plus for materialised
/// scores their write and read-back traffic; decode reads the cached K/V the new token attends to (all of it, the
/// window, or the selected blocks and the block means) once. On the engine's host (`busiestWorker`) a call lasts as
/// long as its busiest worker: the roofline is scaled by `busiestShare` of the engine's equal work units (tiled:
/// work items times key ranges; materialised: heads) over the workers the engine gives the call (`workers`,
/// `busiestFactor`). Below 1,024 stored keys (3 KV heads on 2 threads) a decode call is not split by key range: one
/// read slot by slot (F32, F16, INT8, no block selection) runs on one worker, which has one core's share of the
/// unit (twice the even spread on 2 threads); the others deal their 3 KV heads over 2 workers (4/3). From 1,024 keys
/// the 6 units (3 KV heads × 2 key ranges) spread evenly.
/// `.encode` is bidirectional: every one of the `length` tokens sees every other.
/// Accuracy: the sum of the table entries for the setting's parts (KV precision, window, block sparsity).
public struct AttentionCostModel: Sendable {
    public var latency: LatencyModel
    public var accuracy: AccuracyModel?
    /// Worker threads of the attention kernel.
    public var threads: Int
    /// Measured per-call time corrections (fixed overhead, per-row overhead, rate); nil: the plain roofline.
    public var calibration: AttentionCalibration?
    /// Lanes per vector of the engine's wide tile on the device (8; 16 with AVX-512): a block-sparse key tile costs
    /// whole vectors of the lanes that selected it.
    public var tileLanes: Int
    /// Price a call at its busiest worker's share of the engine's work units (`busiestShare`), as the engine
    /// partitions it on this host's cores; false: at all of its work spread evenly over `threads` (device plans,
    /// whose attention runtime partitions work its own way).
    public var busiestWorker: Bool
    /// Whether a decode call finds its layer's K/V in memory, as in a model, where the rest of the model streams
    /// through the caches between two reads of one layer's cache (`autoglm-run bench-attention --cold-kv` measures
    /// so): then all of its sweep is priced beyond the cache (`spillSeconds`). False: a call repeated on one layer,
    /// which keeps what fits in cache, as calibrate-attention measures.
    public var decodeKVFromMemory = false

    /// Key tile of the tiled kernel and the (query row, head) lanes one work item aims for (the engine's sizes).
    public static let keyTile = 64
    public static let queryTile = 32
    public static let laneTarget = 32
    /// Fewest keys per key range when the engine splits work items by key range.
    public static let minimumKeysPerSplit = 512

    public init(device: DeviceProfile, accuracy: AccuracyModel? = nil, threads: Int,
                calibration: AttentionCalibration? = nil, tileLanes: Int = 8, busiestWorker: Bool = true) {
        latency = LatencyModel(device: device); self.accuracy = accuracy; self.threads = max(1, threads)
        self.calibration = calibration; self.tileLanes = max(1, tileLanes); self.busiestWorker = busiestWorker
    }

    /// The roofline this model's times start from (what a calibration records and corrects); nil when the profile
    /// has no unit that runs attention or gives it no positive rate.
    public var roofline: AttentionCalibration.Roofline? {
        guard let unit = latency.attentionUnit else { return nil }
        let ops = latency.attentionPeak(unit) * latency.etaAttention
        let bandwidth = latency.bandwidth(unit) * latency.etaMatvec
        guard ops > 0, ops.isFinite, bandwidth > 0, bandwidth.isFinite else { return nil }
        return .init(profile: latency.device.id, attentionOpsPerSecond: ops, bandwidthBytesPerSecond: bandwidth)
    }

    public enum Mode: String, Sendable, Codable, CaseIterable {
        /// `length` new tokens on an empty cache, causally.
        case prefill
        /// One new token over `length − 1` cached ones.
        case decode
        /// `length` tokens attending each other with no mask (a vision-encoder layer over `length` patches); K/V
        /// are activations, not a cache.
        case encode
    }

    /// Tokens the cache holds during the call that processes token `length` (1-based): prefill stages all `length`
    /// new tokens; decode has `length − 1` committed (at most `window + global` under a window) plus the new one;
    /// encode holds all `length` keys (as activations).
    public static func cachedTokens(_ s: AttentionSettingSpec, length: Int, mode: Mode) -> Int {
        switch mode {
        case .prefill, .encode: return length
        case .decode:
            let committed = length - 1
            return (s.window.map { min(committed, $0 + s.globalTokens) } ?? committed) + 1
        }
    }

    /// Keys query position `t` (0-based) sees under a causal mask.
    public static func visibleKeys(_ s: AttentionSettingSpec, position t: Int) -> Int {
        var keys = t + 1
        if let w = s.window { keys = min(keys, w + s.globalTokens) }
        if let b = s.blockSparse {
            let own = t % b.chunk + 1
            let earlierBlocks = min(t / b.chunk, b.topK - 1)
            keys = min(keys, own + earlierBlocks * b.chunk)
        }
        return keys
    }

    /// What the engine computes and reads for a block-sparse call, summed over the layer.
    public struct BlockSparseWork: Sendable, Equatable {
        /// (query lane, key) pairs the key loops run, counting the padding lanes of partly used vectors.
        public var laneKeys: Double
        /// (query lane, earlier block) scores computed to choose the blocks.
        public var laneBlocks: Double
        /// Keys whose K/V rows are read per KV head, summed over the KV heads (decode: the union of the blocks the
        /// heads sharing a KV head chose, their own block included; prefill: per work item, the union of the blocks
        /// its lanes chose and its own block up to its last row, summed over the items, `blockSparseItemKeys`).
        public var keysRead: Double
        /// Prefill: the part of `laneKeys` run over earlier blocks only some lanes chose (the selection's passes,
        /// padding included); 0 for decode.
        public var sparseLaneKeys: Double = 0
    }

    /// The engine's block-sparse work for `length` (prefill: all rows; decode: the last one), taking each lane's choice
    /// of `topK − 1` earlier blocks as independent and uniform among the blocks before its own. Prefill: a work item's
    /// lanes (rows × query heads of one KV head) go through its own block's tiles together, and through each earlier
    /// block's tiles with only the lanes that chose it, in whole vectors of `tileLanes` (expected over A ~
    /// Binomial(lanes, p) choosers, p = (topK − 1) / earlier blocks): with the tile's measured `vectorShare`, that
    /// share of a full vector's cost per vector and the rest per lane handed over; without, a lone vector's score step
    /// at half the rate of a pair's (the 6 × 1 register tile against the 6 × 2); blocks that do not line up with the
    /// key tiles are priced tile by tile (`unalignedTiles`: the lanes that chose any block of a tile, over the span of
    /// the blocks chosen there). When selections agree more than independent ones (real queries of neighbouring rows),
    /// the engine does less: the prediction is an upper bound on the work. Decode: one row, each head its own runs (no
    /// padding); the rows read are the union of the heads' choices. Choosing costs one dot product per lane and
    /// earlier block, done again by each key range of a split decode.
    public static func blockSparseWork(_ b: Plan.BlockSparse, shape: AttentionLayerShape, mode: Mode, length: Int,
                                       tileLanes: Int, splits: Int = 1, vectorShare: Double? = nil)
        -> BlockSparseWork {
        let chunk = max(1, b.chunk), others = max(0, b.topK - 1)
        let group = max(1, shape.heads / max(1, shape.kvHeads))
        let width = max(1, tileLanes)
        /// Lane-key cost of one key over `active` of a work item's `lanes` lanes. With the tile's measured vector
        /// share s (`SparsePrefill.vectorShare`): s · width · v + (1 − s) · a, the score and softmax steps running
        /// the v vectors that hold the lanes handed to the tile and the value step those a lanes one by one; the
        /// engine hands over the active lanes alone when they fill fewer vectors than all of the item's
        /// (`gatherActiveLanes`), else all of them. Without it: whole vectors, a lone last vector's score step at
        /// the cost of a pair (the value step costs a vector per vector; the score step takes vectors two at a time).
        func vectorCost(_ active: Int, of lanes: Int) -> Double {
            let vectors = { (n: Int) in (n + width - 1) / width }
            guard let s = vectorShare else {
                let v = vectors(active)
                return Double(width) * Double(2 * v + v % 2) / 2
            }
            let handed = vectors(active) < vectors(lanes) ? active : lanes
            return s * Double(width * vectors(handed)) + (1 - s) * Double(handed)
        }
        /// Expected lane-key cost per key of a block that each of `lanes` lanes chose with probability `p`.
        func paddedLanes(_ lanes: Int, _ p: Double) -> Double {
            if p >= 1 { return vectorCost(lanes, of: lanes) }
            if p <= 0 { return 0 }
            var pmf = pow(1 - p, Double(lanes)), expected = 0.0
            for a in 0..<lanes {
                pmf *= Double(lanes - a) / Double(a + 1) * p / (1 - p)
                expected += pmf * vectorCost(a + 1, of: lanes)
            }
            return expected
        }
        /// Expected lane-key cost of a work item's key tiles over its `own` earlier blocks when blocks do not line
        /// up with the key tiles (shorter than a tile, or not a multiple of one): a lane is active in a tile when it
        /// chose any block the tile overlaps, and the tile runs every active lane over the keys from the first to
        /// the last block some lane chose there (each lane masked to its own run), so a tile costs the active
        /// lanes' vectors times that span; the tile that reaches into the item's own block runs all of its lanes.
        /// A lane's choice of `chosen` among `own` blocks misses all m blocks of a tile with the hypergeometric
        /// probability; a block is some lane's choice with probability 1 − (1 − p)^lanes, taken as independent.
        func unalignedTiles(lanes: Int, own: Int, chosen: Int) -> Double {
            let end = own * chunk, p = Double(chosen) / Double(own)
            let hit = 1 - pow(1 - p, Double(lanes))
            var byPhase: [Int: Double] = [:], total = 0.0, a = 0
            while a < end {
                let reachesOwn = a + keyTile > end
                let phase = reachesOwn ? -1 - a % chunk : a % chunk
                if let cost = byPhase[phase] { total += cost; a += keyTile; continue }
                // Keys of each block the tile overlaps below `end`, in order.
                var widths: [Int] = [], b = a / chunk
                while b * chunk < min(a + keyTile, end) {
                    widths.append(min(min(a + keyTile, end), (b + 1) * chunk) - max(a, b * chunk))
                    b += 1
                }
                let m = widths.count, miss = 1 - hit
                var cost = 0.0
                if reachesOwn {
                    // All lanes, from the first block some lane chose to the own block: block k is in the span when
                    // some block at or before it was chosen.
                    var span = 0.0
                    for (k, w) in widths.enumerated() { span += Double(w) * (1 - pow(miss, Double(k + 1))) }
                    cost = vectorCost(lanes, of: lanes) * span
                } else {
                    var missAll = 1.0
                    for i in 0..<m { missAll *= max(0, Double(own - chosen - i)) / Double(own - i) }
                    // Expected span from the first to the last block some lane chose, given that one did: block k
                    // is in it when some block at or before it and some block at or after it were chosen.
                    let anyHit = 1 - pow(miss, Double(m))
                    var span = 0.0
                    for (k, w) in widths.enumerated() {
                        let before = 1 - pow(miss, Double(k + 1)), after = 1 - pow(miss, Double(m - k))
                        span += Double(w) * (before + after - anyHit)
                    }
                    cost = anyHit > 0 ? paddedLanes(lanes, 1 - missAll) * span / anyHit : 0
                }
                byPhase[phase] = cost
                total += cost
                a += keyTile
            }
            return total
        }
        var work = BlockSparseWork(laneKeys: 0, laneBlocks: 0, keysRead: 0)
        switch mode {
        case .encode:
            return work
        case .decode:
            let t = length - 1, own = t / chunk, chosen = min(others, own)
            let p = own > 0 ? Double(chosen) / Double(own) : 0
            work.laneKeys = Double(shape.heads) * Double(visibleKeys(
                AttentionSettingSpec(name: "", blockSparse: b), position: t))
            work.laneBlocks = chosen < own ? Double(shape.heads * own * max(1, splits)) : 0
            let union = Double(own) * (1 - pow(1 - p, Double(group)))
            work.keysRead = Double(shape.kvHeads) * (union * Double(chunk) + Double(t % chunk + 1))
            return work
        case .prefill:
            let rowsPer = rowsPerItem(shape)
            var r0 = 0
            var earlierCosts: [Int: Double] = [:]  // by (lanes, earlier blocks)
            while r0 < length {
                let rows = min(rowsPer, length - r0), lanes = rows * group
                // Own block, causally, all lanes (counted as the pairs themselves, as full attention is).
                for t in r0..<(r0 + rows) {
                    work.laneKeys += Double(group * (t % chunk + 1))
                    let own = t / chunk
                    if min(others, own) < own { work.laneBlocks += Double(group * own) }
                }
                let own = r0 / chunk, chosen = min(others, own)
                if own > 0 && chosen > 0 {
                    if chosen == own {
                        work.laneKeys += Double(lanes * own * chunk)
                    } else {
                        let key = lanes * 1_000_003 + own
                        let earlier = earlierCosts[key] ?? (chunk % keyTile == 0
                            ? paddedLanes(lanes, Double(chosen) / Double(own)) * Double(own * chunk)
                            : unalignedTiles(lanes: lanes, own: own, chosen: chosen))
                        earlierCosts[key] = earlier
                        work.laneKeys += earlier
                        work.sparseLaneKeys += earlier
                    }
                }
                // The keys the item reads, as the beyond-cache term counts them (a full item's lanes).
                work.keysRead += blockSparseItemKeys(b, lastRow: r0 + rows - 1, lanes: rowsPer * group)
                r0 += rows
            }
            work.laneKeys *= Double(shape.kvHeads)
            work.sparseLaneKeys *= Double(shape.kvHeads)
            work.laneBlocks *= Double(shape.kvHeads)
            work.keysRead *= Double(shape.kvHeads)
            return work
        }
    }

    /// Keys a block-sparse prefill work item whose last row is `lastRow` reads for its KV head: its own block up to
    /// that row and every earlier block one of its `lanes` chose. With each lane's topK − 1 choices independent and
    /// uniform, own · (1 − (1 − p)^lanes) earlier blocks, p = chosen / own.
    public static func blockSparseItemKeys(_ b: Plan.BlockSparse, lastRow last: Int, lanes: Int) -> Double {
        let chunk = max(1, b.chunk)
        let own = last / chunk, chosen = min(max(0, b.topK - 1), own)
        let p = own > 0 ? Double(chosen) / Double(own) : 0
        let union = Double(own) * (1 - pow(1 - p, Double(lanes)))
        return union * Double(chunk) + Double(last - own * chunk + 1)
    }

    /// Query rows per work item: enough that rows × (query heads per KV head) is about `laneTarget`.
    public static func rowsPerItem(_ shape: AttentionLayerShape) -> Int {
        let group = max(1, shape.heads / max(1, shape.kvHeads))
        return max(1, min(queryTile, laneTarget / group))
    }

    /// Lanes of a work item: its rows × the query heads per KV head.
    public static func itemLanes(_ shape: AttentionLayerShape) -> Int {
        rowsPerItem(shape) * max(1, shape.heads / max(1, shape.kvHeads))
    }

    /// Query rows the materialised kernel computes together (the engine's `Attention.materialisedRows`).
    public static let materialisedRows = 32

    /// Rows of one block of the materialised kernel: `materialisedRows`, at most a work item's lanes (the engine
    /// keeps the block's queries in a work item's buffers); one under block-sparse selection, whose rows choose
    /// different blocks.
    public static func materialisedBlockRows(_ s: AttentionSettingSpec, shape: AttentionLayerShape) -> Int {
        guard s.blockSparse == nil else { return 1 }
        return max(1, min(materialisedRows, itemLanes(shape)))
    }

    /// The materialised kernel's blocks of query rows for a call: `body(rows, keys)` per block, `keys` the
    /// positions some row of the block sees, for which the engine computes every row's score and reads the value
    /// (encode: all; causal: up to the last row; under a window the first row's window through the last row, and
    /// the global tokens before it; block-sparse blocks are single rows).
    public static func materialisedBlocks(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode,
                                          length: Int, _ body: (_ rows: Int, _ keys: Int) -> Void) {
        switch mode {
        case .decode:
            body(1, visibleKeys(s, position: length - 1))
        case .encode, .prefill:
            let block = materialisedBlockRows(s, shape: shape)
            var first = 0
            while first < length {
                let rows = min(block, length - first), last = first + rows - 1
                var keys = length
                if mode == .prefill {
                    if s.blockSparse != nil {
                        keys = visibleKeys(s, position: last)
                    } else if let w = s.window {
                        let recent = max(0, first - w + 1)
                        keys = last + 1 - recent + min(s.globalTokens, recent)
                    } else {
                        keys = last + 1
                    }
                }
                body(rows, keys)
                first += rows
            }
        }
    }

    /// Workers that run `units` work units when each takes a contiguous run of `⌈units / threads⌉`.
    public static func chunks(_ units: Int, threads: Int) -> Int {
        guard units > 0 else { return 0 }
        let per = (units + max(1, threads) - 1) / max(1, threads)
        return (units + per - 1) / per
    }

    /// The tiled kernel's partition of a call, as the engine makes it: work items (KV head × block of
    /// `rowsPerItem` query rows) and the key ranges each is split into (by the keys the cache holds: a window keeps
    /// window + globals + the new token).
    public func tiledPartition(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int)
        -> (items: Int, splits: Int) {
        let n = mode == .decode ? 1 : length
        let rowsPer = Self.rowsPerItem(shape)
        let items = shape.kvHeads * ((n + rowsPer - 1) / rowsPer)
        return (items, Self.keySplits(items: items, threads: threads,
                                      keys: Self.cachedTokens(s, length: length, mode: mode)))
    }

    /// Workers the engine runs a call on (`Attention.callWorkers`): every thread, except for a decode call that the
    /// tiled kernel neither splits by key range nor deals by KV head because it reads the cache slot by slot
    /// (`slotMajorDecodes`), which runs on one.
    public func workers(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int) -> Int {
        guard mode == .decode, s.kernel == .tiled, Self.slotMajorDecodes(s, shape: shape),
              tiledPartition(s, shape: shape, mode: mode, length: length).splits == 1 else { return threads }
        return 1
    }

    /// Whether the engine decodes this setting's cache slot by slot (all KV heads of a slot in one pass) rather than
    /// head by head: fewer than 4 query heads per KV head, head_dim a multiple of `slotGroup`, no block selection,
    /// not INT4 (`Attention.slotMajorDecodes`).
    public static func slotMajorDecodes(_ s: AttentionSettingSpec, shape: AttentionLayerShape) -> Bool {
        s.blockSparse == nil && shape.heads / max(1, shape.kvHeads) < 4 && shape.headDim % slotGroup == 0
            && s.kv != .int4
    }

    /// Elements per group of a quantised cache row (the slot-major path needs whole groups).
    public static let slotGroup = 32

    /// The busiest worker's time relative to the call's work spread evenly over `threads`: its share of the call's
    /// work units over the `workers` the engine gives the call (`busiestShare`), times threads ÷ workers where that
    /// is fewer (a worker has one core's share of the unit's arithmetic and bandwidth; one worker on 2 threads: 2);
    /// 1 without `busiestWorker`.
    public func busiestFactor(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode,
                              length: Int) -> Double {
        guard busiestWorker else { return 1 }
        let w = workers(s, shape: shape, mode: mode, length: length)
        return Self.busiestShare(units: workUnits(s, shape: shape, mode: mode, length: length), threads: w)
            * Double(threads) / Double(max(1, w))
    }

    /// Equal work units the engine hands its workers for a call: tiled, the work items times the key ranges each
    /// is split into; materialised, the heads.
    public func workUnits(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int) -> Int {
        switch s.kernel {
        case .materialised:
            return shape.heads
        case .tiled:
            let (items, splits) = tiledPartition(s, shape: shape, mode: mode, length: length)
            return items * splits
        }
    }

    /// The busiest worker's part of `units` equal units spread over `threads` workers, relative to an even spread:
    /// `threads · ⌈units / threads⌉ / units` (1 when the units divide evenly; 4/3 for 3 units on 2 workers; 2 for one
    /// unit on 2 workers, which leaves one idle).
    public static func busiestShare(units: Int, threads: Int) -> Double {
        guard units > 0, threads > 1 else { return 1 }
        let busiest = (units + threads - 1) / threads
        return Double(threads * busiest) / Double(units)
    }

    /// Key ranges each tiled work item is split into: only when there are fewer than two items per worker, and each
    /// range keeps at least `minimumKeysPerSplit` keys.
    public static func keySplits(items: Int, threads: Int, keys: Int) -> Int {
        guard threads > 1, items < 2 * threads else { return 1 }
        return max(1, min((2 * threads + items - 1) / max(1, items), keys / minimumKeysPerSplit))
    }

    /// One worker's buffers: per lane (query row × head of a KV group) the scaled query and the output accumulator
    /// (head_dim floats each), the block-sparse interval list and a cursor into it; per lane, padded to a multiple of
    /// 16 lanes, the transposed query, running max, sum and rescale factor, the visible-key bounds and one key tile
    /// of scores; one decoded key tile and value tile; per key block a score and a selection flag.
    public static func workerScratchBytes(_ shape: AttentionLayerShape, keys: Int, blockSparse: Plan.BlockSparse?) -> Int {
        let lanes = itemLanes(shape)
        let pitch = (lanes + 15) / 16 * 16
        let blocks = blockSparse.map { keys / max(1, $0.chunk) + 1 } ?? 0
        let intervals = blockSparse.map { $0.topK + 1 } ?? 2
        let floats = 2 * lanes * shape.headDim + 3 * pitch + keyTile * pitch + pitch * shape.headDim
            + 2 * keyTile * shape.headDim + max(1, blocks)
        let int32s = 2 * pitch
        let ints = lanes * intervals * 2 + 2 * lanes + max(1, blocks)
        // Block-sparse items also keep a compacted copy of the lane state (queries transposed, accumulators, max,
        // sum, run bounds, lane indices) for the lanes active in a key tile.
        let compact = blockSparse == nil ? 0
            : (pitch * shape.headDim + lanes * shape.headDim + 2 * pitch) * 4 + 3 * pitch * 4
        return floats * 4 + int32s * 4 + ints * 8 + compact
    }

    /// The engine's scratch for the call, all workers together.
    public func scratchBytes(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int) -> Int {
        let n = mode == .decode ? 1 : length
        let cached = Self.cachedTokens(s, length: length, mode: mode)
        let worker = Self.workerScratchBytes(shape, keys: mode == .encode ? 0 : length,
                                             blockSparse: mode == .encode ? nil : s.blockSparse)
        switch s.kernel {
        case .tiled:
            let rowsPer = Self.rowsPerItem(shape)
            let (items, splits) = tiledPartition(s, shape: shape, mode: mode, length: length)
            let lanes = rowsPer * max(1, shape.heads / max(1, shape.kvHeads))
            let partial = splits > 1 ? items * splits * lanes * (shape.headDim + 2) * 4 : 0
            return Self.chunks(items * splits, threads: workers(s, shape: shape, mode: mode, length: length)) * worker
                + partial
        case .materialised:
            return Self.chunks(shape.heads, threads: workers(s, shape: shape, mode: mode, length: length))
                * (max(4, n * cached * 4) + worker)
        }
    }

    /// Seconds to move the part of the call's K/V sweep that does not fit in `cacheBytes` of cache at the device's
    /// matrix-vector memory rate. A call repeated on one layer keeps what it reads (its working set) in the
    /// last-level cache while that holds it; beyond, the share `1 − cache / working set` comes from memory each time
    /// (a cyclic sweep larger than the cache finds little of it there). Decode reads the keys and values the new
    /// token attends (under block-sparse selection the chosen blocks, the same ones call after call), once: that
    /// is both the sweep and the working set. Prefill reads, per work item, the keys and values its last row sees,
    /// for its KV head (block-sparse: its own block and the union of the earlier blocks its lanes chose, as the
    /// tile computes them); the working set of that sweep is the prefix the item's rows see, of every KV head (the
    /// items of neighbouring rows run together), so early rows stay in cache where late rows do not. Encode: every
    /// work item reads all the keys and values of its head; the working set is all heads' (activations the caller holds). The materialised kernel
    /// works a head at a time per worker and a block of query rows at a time (`materialisedBlocks`), computing the
    /// block's rows against the keys they see (scores), then against the same values (P·V): its sweep is every
    /// head's keys and values of each block once, and its working set the keys, values and block score rows of the
    /// heads the workers hold at once (a key's reuse distance). `calibration`'s `spill` factor prices these seconds.
    /// With `decodeKVFromMemory`, all of a decode call's sweep is beyond the cache.
    public func spillSeconds(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int,
                             cacheBytes: Int) -> Double {
        guard cacheBytes > 0 else { return 0 }
        let headTokenBytes = Double(2 * shape.headDim) * s.kv.bytesPerElement
        var keys = 0.0, workingKeys = 0.0, matrixBytes = 0.0
        switch mode {
        case .decode:
            if let b = s.blockSparse, s.kernel == .tiled {
                keys = Self.blockSparseWork(b, shape: shape, mode: .decode, length: length, tileLanes: tileLanes).keysRead
            } else {
                keys = Double(shape.kvHeads * Self.visibleKeys(s, position: length - 1))
            }
            if decodeKVFromMemory { return latency.attentionSeconds(flops: 0, bytes: keys * headTokenBytes) }
            workingKeys = keys
        case .prefill where s.kernel == .materialised, .encode where s.kernel == .materialised:
            Self.materialisedBlocks(s, shape: shape, mode: mode, length: length) { _, blockKeys in
                keys += Double(blockKeys)
            }
            keys *= Double(shape.heads)
            let cached = Self.cachedTokens(s, length: length, mode: mode)
            // Between two blocks' reads of a key come the rest of the keys, all the values and the block's score
            // rows, for each head the workers hold at once: that is the sweep's working set.
            let rows = Double(Self.materialisedBlockRows(s, shape: shape))
            workingKeys = Double(min(threads, shape.heads) * cached) * (1 + rows * 4 / headTokenBytes)
            // The score matrices: each head's is written and read back once from beyond the cache (its passes
            // over a block of rows stay in the core's cache), in the part the workers' matrices overflow it.
            let matrix = Double(length) * Double(cached) * 4
            matrixBytes = 2 * matrix * Double(shape.heads)
                * max(0, 1 - Double(cacheBytes) / (Double(min(threads, shape.heads)) * matrix))
        case .prefill:
            // Work items go through the rows in order, alternating KV heads, so while the items of rows near t run
            // the keys and values in use are the prefix the rows see, of every KV head: each item's sweep is
            // priced against that prefix (the whole layer's cache only for the last rows).
            let rowsPer = Self.rowsPerItem(shape)
            let lanes = rowsPer * max(1, shape.heads / max(1, shape.kvHeads))
            var beyondBytes = 0.0
            var r0 = 0
            while r0 < length {
                let last = min(length, r0 + rowsPer) - 1
                var itemKeys: Double
                if let b = s.blockSparse, s.kernel == .tiled, b.chunk > 0 {
                    itemKeys = Self.blockSparseItemKeys(b, lastRow: last, lanes: lanes)
                } else {
                    itemKeys = Double(Self.visibleKeys(s, position: last))
                }
                itemKeys *= Double(shape.kvHeads)
                // The prefix: under a window its last window + global keys; block-sparse lanes together touch all.
                let seen = s.window.map { min(last + 1, $0 + s.globalTokens) } ?? last + 1
                let prefix = Double(seen * shape.kvHeads)
                beyondBytes += itemKeys * headTokenBytes * max(0, 1 - Double(cacheBytes) / (prefix * headTokenBytes))
                r0 += rowsPer
            }
            return beyondBytes > 0 ? latency.attentionSeconds(flops: 0, bytes: beyondBytes) : 0
        case .encode:
            let rowsPer = Self.rowsPerItem(shape)
            keys = Double(shape.kvHeads * ((length + rowsPer - 1) / rowsPer)) * Double(length)
            workingKeys = Double(length * shape.kvHeads)
        }
        let beyond = max(0, 1 - Double(cacheBytes) / max(1, workingKeys * headTokenBytes))
        let bytes = keys * headTokenBytes * beyond + matrixBytes
        return bytes > 0 ? latency.attentionSeconds(flops: 0, bytes: bytes) : 0
    }

    /// Seconds to move the part of the materialised kernel's sweeps that does not fit in `privateCacheBytes` of a
    /// core's private cache, at the device's matrix-vector memory rate. Each worker takes a head and runs each block
    /// of query rows against the keys the block sees (scores), then against the same values (P·V): one cyclic sweep
    /// per block (`materialisedBlocks`), whose reuse distance is the keys and values the block sees and its rows of
    /// scores. While those fit the core's private cache the block reads them from it; beyond, the share
    /// `1 − private / reuse distance` comes from the shared cache (its cost is what `calibration`'s `near` factor
    /// prices). One ViT layer on the 2-core host, measured ÷ roofline: 2.5 at 512 patches (keys, values and scores
    /// 0.56 MiB), 3.4 at 1,024 (1.1 MiB), 4.3 from 2,048; the score matrices leaving the last-level cache
    /// (`spillSeconds`) add the rest, 5.0 at 6,144. Prefill and encode
    /// only (decode runs one row); 0 for the tiled kernel, whose key tiles serve a work item's rows from one read.
    public func nearSeconds(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int,
                            privateCacheBytes: Int) -> Double {
        guard s.kernel == .materialised, mode != .decode, privateCacheBytes > 0 else { return 0 }
        let rowBytes = Double(shape.headDim) * s.kv.bytesPerElement             // one key (or value) of one head
        var bytes = 0.0
        Self.materialisedBlocks(s, shape: shape, mode: mode, length: length) { rows, keys in
            // The block reads its keys, then the same values; between one block's read of a key and the next's
            // come all the keys, all the values and the block's score rows: the part of that beyond the private
            // cache is read from further out.
            let sweep = 2 * Double(keys) * rowBytes
            let reuse = sweep + Double(rows * keys * 4)
            bytes += sweep * max(0, 1 - Double(privateCacheBytes) / reuse)
        }
        bytes *= Double(shape.heads)
        return bytes > 0 ? latency.attentionSeconds(flops: 0, bytes: bytes) : 0
    }

    /// Block scores (a query head against an earlier block's mean key) the busiest worker computes in a
    /// block-sparse decode call of the tiled kernel (each key range of a split decode scores again); 0 otherwise.
    public func blockScores(_ s: AttentionSettingSpec, shape: AttentionLayerShape, length: Int) -> Double {
        guard let b = s.blockSparse, s.kernel == .tiled else { return 0 }
        let work = Self.blockSparseWork(b, shape: shape, mode: .decode, length: length, tileLanes: tileLanes,
                                        splits: tiledPartition(s, shape: shape, mode: .decode, length: length).splits)
        return work.laneBlocks * busiestFactor(s, shape: shape, mode: .decode, length: length)
    }

    public func predict(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int)
        -> AttentionCostPrediction {
        let cached = Self.cachedTokens(s, length: length, mode: mode)
        let kvBytes = mode == .encode ? 0
            : Int((Double(cached * 2 * shape.kvHeads * shape.headDim) * s.kv.bytesPerElement).rounded(.up))
        let n = mode == .decode ? 1 : length
        let operandBytes = 4 * shape.headDim * (2 * n * shape.heads + (mode == .encode ? 2 * n * shape.kvHeads : 0))
        var pairs = 0.0
        if mode == .encode {
            pairs = Double(n) * Double(n)
        } else {
            for t in (length - n)..<length { pairs += Double(Self.visibleKeys(s, position: t)) }
        }
        var flops = 4 * Double(shape.heads * shape.headDim) * pairs
        if s.kernel == .materialised {
            // A block of rows computes every key some row of it sees, masked or not.
            var blockPairs = 0.0
            Self.materialisedBlocks(s, shape: shape, mode: mode, length: length) { rows, keys in
                blockPairs += Double(rows * keys)
            }
            flops = 4 * Double(shape.heads * shape.headDim) * blockPairs
        }
        let scratch = scratchBytes(s, shape: shape, mode: mode, length: length)
        // Decode reads the keys and values the new token sees (under block-sparse selection only the chosen blocks,
        // plus one mean key per block to choose them); prefill's K/V stay in cache while the tiles sweep them.
        let bytesPerToken = Double(2 * shape.kvHeads * shape.headDim) * s.kv.bytesPerElement
        var traffic = 0.0, scores = 0.0
        if mode == .decode { traffic = pairs * bytesPerToken }
        if let b = s.blockSparse, mode != .encode, s.kernel == .tiled {
            // The engine's work rather than the visible pairs: padded vectors over blocks few lanes chose (by the
            // tile's measured vector share where calibrated), and the block scores, priced at half the tile loop's
            // rate (one dot product and a horizontal sum per block and lane, against eight or sixteen lanes per
            // vector in the tile).
            let work = Self.blockSparseWork(b, shape: shape, mode: mode, length: length, tileLanes: tileLanes,
                                            splits: tiledPartition(s, shape: shape, mode: mode, length: length).splits,
                                            vectorShare: calibration?.sparsePrefill?.vectorShare)
            flops = 4 * Double(shape.headDim) * work.laneKeys
            if mode == .prefill {
                // The passes over blocks only some lanes chose run at a measured rate of their own where calibrated.
                flops += 4 * Double(shape.headDim) * ((calibration?.sparsePrefill?.rate ?? 1) - 1) * work.sparseLaneKeys
                flops += 2 * 2 * Double(shape.headDim) * work.laneBlocks
            }
            if mode == .decode {
                // Decode's key loop reads each chosen row once for the heads that chose it (the union of their
                // blocks) and does each head's dot product and accumulation over its own keys. Full decode, which
                // the rate is calibrated on, reads every row for the whole group of heads, so its sweep of k keys
                // per KV head costs (1 − share) per row read plus share per group of head-keys, where `share` is
                // the part of a row's cost that grows with the heads reading it (`SparseDecode`, fitted to measured
                // block-sparse decode; 0 without one: rows priced as bytes, as the roofline does). Block-sparse
                // decode is priced as the full sweep of that many equivalent keys. Choosing the blocks is a step of
                // its own before the loop: a score per head and earlier block against the mean keys (each mean key
                // read once), at the measured seconds per score when calibrated, else on the roofline.
                // Calibrations fitted with a cache share of block-sparse decode's own (`SparseDecode.cacheBytes`)
                // price the union's reads beyond that share in the beyond-cache term and keep the share whole for
                // repeated calls. Earlier ones, and decode reading its K/V from memory, scale the share by the part
                // of the union's K/V the workers' private caches hold (a row fetched from further out costing the
                // same whichever heads use it).
                let group = Double(max(1, shape.heads / max(1, shape.kvHeads)))
                let unionBytes = work.keysRead * bytesPerToken / Double(shape.kvHeads)
                let running = workers(s, shape: shape, mode: mode, length: length)
                let privateHeld = calibration?.privateCacheBytes.map {
                    min(1, Double($0 * running) / max(1, unionBytes))
                }
                let ownShare = calibration?.sparseDecode?.cacheBytes != nil && !decodeKVFromMemory
                let held = ownShare ? 1 : privateHeld ?? 1
                let share = (calibration?.sparseDecode?.share ?? 0) * held
                let rows = (1 - share) * work.keysRead + share * work.laneKeys / group
                traffic = rows * bytesPerToken / Double(shape.kvHeads)
                scores = work.laneBlocks
            }
        }
        if s.kernel == .materialised { traffic += 2 * Double(n * cached * 4) * Double(shape.heads) }
        let busiest = busiestFactor(s, shape: shape, mode: mode, length: length)
        let measuredScore = calibration?.sparseDecode?.scoreSeconds
        let selection = scores > 0 && measuredScore == nil ? latency.attentionSeconds(
            flops: 2 * 2 * Double(shape.headDim) * scores,
            bytes: Double((cached / max(1, s.blockSparse?.chunk ?? 1) + 1) * shape.kvHeads * shape.headDim * 4)) : 0
        let roofline = (latency.attentionSeconds(flops: flops, bytes: traffic) + selection) * busiest
        // A decode call reading its K/V from memory sweeps all of it from there, whatever the cache holds.
        let cold = decodeKVFromMemory && mode == .decode
        // Block-sparse decode's constants (nil for other settings and modes).
        let sparse = s.blockSparse != nil && mode == .decode && s.kernel == .tiled ? calibration?.sparseDecode : nil
        // Block-sparse decode's union stays in a cache share of its own where the calibration fitted one.
        let spillCache = cold ? calibration.map { $0.cacheBytes ?? 1 } : sparse?.cacheBytes ?? calibration?.cacheBytes
        let spill = spillCache.map {
            spillSeconds(s, shape: shape, mode: mode, length: length, cacheBytes: $0)
        } ?? 0
        let near = calibration?.privateCacheBytes.map {
            nearSeconds(s, shape: shape, mode: mode, length: length, privateCacheBytes: $0)
        } ?? 0
        // scores: decode's only (`blockScores`). Block-sparse decode runs head by head where full decode reads the
        // cache slot by slot: its fitted rate scales the full decode fit's time (`SparseDecode.rate`).
        // From memory, its pass head by head has a cold-sweep factor of its own (`SparseDecode.coldSpill`).
        var corrected = calibration?.seconds(roofline: roofline, rows: n, spill: spill, near: near, cold: cold, s,
                                             mode: mode) ?? roofline
        if cold, let factor = sparse?.coldSpill, var fit = calibration?.fits[.init(s, mode: mode)] {
            fit.coldSpill = factor
            corrected = fit.seconds(roofline: roofline, rows: n, spill: spill, near: near, cold: true)
        }
        let seconds = corrected * (sparse?.rate ?? 1) + (measuredScore ?? 0) * scores * busiest
        let loss: Double?
        if let accuracy {
            var total = 0.0, known = true
            for key in s.accuracyKeys {
                if let e = accuracy.setting(key) { total += e.loss } else { known = false }
            }
            loss = known ? total : nil
        } else {
            loss = nil
        }
        return AttentionCostPrediction(kvBytes: kvBytes, scratchBytes: scratch, operandBytes: operandBytes,
                                       seconds: seconds, tokensPerSecond: Double(n) / seconds, loss: loss)
    }
}

/// Measured corrections of the roofline time per (KV format, kernel, mode):
/// `seconds = fixed + perRow · rows + scale · roofline + spill · beyond-cache seconds`, where `fixed` is the per-call cost (handing work to the
/// threads, allocating scratch), `perRow` the cost per query row that does not grow with the keys (scaling the
/// query, setting up its intervals, writing its output; the partly masked diagonal tile) and `scale` corrects the
/// rate of the key loop: the roofline's efficiency comes from one shape (the host profile measures a GLM-4 layer),
/// and other head sizes, grouping and KV formats that must be decoded run at other rates; `spill` prices the part
/// of a call's K/V sweep that does not fit in `cacheBytes` (`AttentionCostModel.spillSeconds`): a one-layer call
/// repeated finds its K/V in the last-level cache up to some length and in memory beyond it; `near` (`+ near ·
/// beyond-private-cache seconds`) prices the materialised kernel's per-row sweeps of a head's keys and values that
/// do not fit in `privateCacheBytes` of a core's own cache (`AttentionCostModel.nearSeconds`).
/// The constants come from measurements of the full-attention settings at several lengths, fitted by least squares
/// on relative error with no negative term (`fit`); predictions at other lengths and for windowed and
/// block-sparse settings then test how the model scales, not reproduce the points. `record` keeps the older
/// one-point form (a rate only, at `referenceLength`).
public struct AttentionCalibration: Sendable, Equatable, Codable {
    public struct Key: Hashable, Sendable {
        public var kv: KVCacheFormat
        public var kernel: AttentionKernel
        public var mode: AttentionCostModel.Mode
        public init(kv: KVCacheFormat, kernel: AttentionKernel, mode: AttentionCostModel.Mode) {
            self.kv = kv; self.kernel = kernel; self.mode = mode
        }
        public init(_ s: AttentionSettingSpec, mode: AttentionCostModel.Mode) {
            self.init(kv: s.kv, kernel: s.kernel, mode: mode)
        }
    }

    /// One measured point: a length, the uncorrected model's seconds, the seconds of its K/V sweep beyond the
    /// cache (`AttentionCostModel.spillSeconds`, 0 when it fits) and the measured seconds.
    public struct Point: Sendable, Equatable, Codable {
        public var length: Int
        public var rows: Int
        public var modelSeconds: Double
        public var spillSeconds: Double
        /// Seconds of the materialised kernel's row sweeps beyond the core's private cache
        /// (`AttentionCostModel.nearSeconds`, 0 for other kernels or when they fit).
        public var nearSeconds: Double
        public var measuredSeconds: Double
        enum CodingKeys: String, CodingKey {
            case length, rows, modelSeconds = "model_seconds", spillSeconds = "spill_seconds"
            case nearSeconds = "near_seconds", measuredSeconds = "measured_seconds"
        }
        public init(length: Int, rows: Int, modelSeconds: Double, spillSeconds: Double = 0, nearSeconds: Double = 0,
                    measuredSeconds: Double) {
            self.length = length; self.rows = rows; self.modelSeconds = modelSeconds; self.spillSeconds = spillSeconds
            self.nearSeconds = nearSeconds; self.measuredSeconds = measuredSeconds
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            length = try c.decode(Int.self, forKey: .length)
            rows = try c.decode(Int.self, forKey: .rows)
            modelSeconds = try c.decode(Double.self, forKey: .modelSeconds)
            spillSeconds = try c.decodeIfPresent(Double.self, forKey: .spillSeconds) ?? 0
            nearSeconds = try c.decodeIfPresent(Double.self, forKey: .nearSeconds) ?? 0
            measuredSeconds = try c.decode(Double.self, forKey: .measuredSeconds)
        }
    }

    public struct Fit: Sendable, Equatable, Codable {
        public var fixedSeconds: Double
        public var perRowSeconds: Double
        public var scale: Double
        /// Factor on the seconds of the K/V sweep beyond the cache (0: none fitted, or the points all fit in cache).
        public var spill: Double
        /// Factor on the seconds of the materialised kernel's row sweeps beyond the private cache (0: none fitted).
        public var near: Double
        /// The layer shape the points were measured on.
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var points: [Point]
        /// Where `spill` comes from when none of this key's points reach beyond the cache: the key whose fitted
        /// factor it carries (`borrowingSpill`); nil when fitted on its own points or zero.
        public var spillFrom: String?
        /// Decode only: the factor on the sweep seconds when the call reads all of its K/V from memory (as in a
        /// model; `AttentionCostModel.decodeKVFromMemory`), fitted to calls measured so (`coldPoints`) with the
        /// other constants held; nil: `spill` prices those calls too.
        public var coldSpill: Double?
        /// The decode calls measured with their K/V flushed from the caches, `spillSeconds` their whole sweep.
        public var coldPoints: [Point]
        enum CodingKeys: String, CodingKey {
            case fixedSeconds = "fixed_seconds", perRowSeconds = "per_row_seconds", scale, spill, near
            case heads, kvHeads = "kv_heads", headDim = "head_dim", points, spillFrom = "spill_from"
            case coldSpill = "cold_spill", coldPoints = "cold_points"
        }
        public init(fixedSeconds: Double, perRowSeconds: Double, scale: Double, spill: Double = 0, near: Double = 0,
                    heads: Int = 0, kvHeads: Int = 0, headDim: Int = 0, points: [Point] = []) {
            self.fixedSeconds = fixedSeconds; self.perRowSeconds = perRowSeconds; self.scale = scale
            self.spill = spill; self.near = near; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.points = points
            self.coldPoints = []
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            fixedSeconds = try c.decode(Double.self, forKey: .fixedSeconds)
            perRowSeconds = try c.decode(Double.self, forKey: .perRowSeconds)
            scale = try c.decode(Double.self, forKey: .scale)
            spill = try c.decodeIfPresent(Double.self, forKey: .spill) ?? 0
            near = try c.decodeIfPresent(Double.self, forKey: .near) ?? 0
            heads = try c.decode(Int.self, forKey: .heads)
            kvHeads = try c.decode(Int.self, forKey: .kvHeads)
            headDim = try c.decode(Int.self, forKey: .headDim)
            points = try c.decode([Point].self, forKey: .points)
            spillFrom = try c.decodeIfPresent(String.self, forKey: .spillFrom)
            coldSpill = try c.decodeIfPresent(Double.self, forKey: .coldSpill)
            if let coldSpill, !(coldSpill >= 0 && coldSpill.isFinite) {
                throw DecodingError.dataCorruptedError(forKey: .coldSpill, in: c,
                                                       debugDescription: "expected a factor ≥ 0, got \(coldSpill)")
            }
            coldPoints = try c.decodeIfPresent([Point].self, forKey: .coldPoints) ?? []
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(fixedSeconds, forKey: .fixedSeconds)
            try c.encode(perRowSeconds, forKey: .perRowSeconds)
            try c.encode(scale, forKey: .scale)
            try c.encode(spill, forKey: .spill)
            try c.encode(near, forKey: .near)
            try c.encode(heads, forKey: .heads)
            try c.encode(kvHeads, forKey: .kvHeads)
            try c.encode(headDim, forKey: .headDim)
            try c.encode(points, forKey: .points)
            try c.encodeIfPresent(spillFrom, forKey: .spillFrom)
            try c.encodeIfPresent(coldSpill, forKey: .coldSpill)
            if !coldPoints.isEmpty { try c.encode(coldPoints, forKey: .coldPoints) }
        }
        /// Corrected seconds; `cold`: a decode call reading its K/V from memory, whose sweep `coldSpill` prices
        /// where fitted.
        public func seconds(roofline: Double, rows: Int, spill spillSeconds: Double = 0,
                            near nearSeconds: Double = 0, cold: Bool = false) -> Double {
            fixedSeconds + perRowSeconds * Double(rows) + scale * roofline
                + (cold ? coldSpill ?? spill : spill) * spillSeconds + near * nearSeconds
        }

        /// The cold-sweep factor that best matches `points` (decode calls measured with their K/V flushed, each
        /// `spillSeconds` its whole sweep from memory) with the other constants held: least squares on relative
        /// error, at least 0; nil without a usable point.
        public func fittingColdSpill(_ points: [Point]) -> Double? {
            let usable = points.filter {
                $0.measuredSeconds > 0 && $0.measuredSeconds.isFinite && $0.spillSeconds > 0 && $0.modelSeconds.isFinite
            }
            guard !usable.isEmpty else { return nil }
            var xx = 0.0, xy = 0.0
            for p in usable {
                let base = seconds(roofline: p.modelSeconds, rows: p.rows, near: p.nearSeconds) / p.measuredSeconds
                let x = p.spillSeconds / p.measuredSeconds
                xx += x * x; xy += x * (1 - base)
            }
            return xx > 0 ? max(0, xy / xx) : nil
        }
        /// The fit's seconds for one of its points.
        public func seconds(_ p: Point) -> Double {
            seconds(roofline: p.modelSeconds, rows: p.rows, spill: p.spillSeconds, near: p.nearSeconds)
        }
        /// Sum of the squared relative errors of the fit over its own points.
        public var squaredError: Double {
            points.reduce(0) {
                let r = seconds($1) / $1.measuredSeconds - 1
                return $0 + r * r
            }
        }
        /// Largest relative error of the fit over its own points.
        public var worstPointError: Double {
            points.map { abs(seconds($0) / $0.measuredSeconds - 1) }.max() ?? 0
        }
    }

    /// Length of the one-point calibration (`record`); 0 when the constants come from `fit`.
    public var referenceLength: Int
    public var fits: [Key: Fit]
    /// Where the constants come from: command, host, date, load, repetitions.
    public var source: String
    /// The kernel family the points were measured with ("avx512", "simd8"); nil in files written before it was
    /// recorded. Times measured with one family do not carry over to the other.
    public var kernels: String?
    /// The CPU the points were measured on (its model name); nil in files written before it was recorded.
    public var cpu: String?
    /// The cache a call's K/V must fit in to be read from cache when the call is repeated (the share of the
    /// last-level cache that behaved so on the measuring host, fitted by calibrate-attention); nil: no beyond-cache
    /// term.
    public var cacheBytes: Int?
    /// The share of a core's private cache that a materialised row sweep must fit in to be read from it (fitted
    /// by calibrate-attention); nil: no private-cache term.
    public var privateCacheBytes: Int?
    /// Block-sparse decode's measured constants (nil: not measured).
    public var sparseDecode: SparseDecode?
    /// Block-sparse prefill's rate and beyond-cache factor (nil: not measured; rate 1, the prefill fit's `spill`).
    public var sparsePrefill: SparsePrefill?
    /// The roofline the fits correct (nil in files written before it was recorded).
    public var roofline: Roofline?

    /// The figures of the device profile a calibration's fits were measured against: its corrections hold for
    /// that roofline only, so a profile measured again afterwards needs the calibration measured again.
    public struct Roofline: Sendable, Equatable, Codable {
        /// The profile's id.
        public var profile: String
        /// Attention throughput: the attention unit's peak × the profile's attention efficiency.
        public var attentionOpsPerSecond: Double
        /// K/V bandwidth: the attention unit's bandwidth × the profile's matrix × vector efficiency.
        public var bandwidthBytesPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case profile, attentionOpsPerSecond = "attention_ops_per_second"
            case bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
        }
        public init(profile: String, attentionOpsPerSecond: Double, bandwidthBytesPerSecond: Double) {
            self.profile = profile; self.attentionOpsPerSecond = attentionOpsPerSecond
            self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        }
    }

    /// `rooflineMismatch` against the roofline the cost model prices on `device` (nil where it has none).
    public func rooflineMismatch(device: DeviceProfile) -> String? {
        AttentionCostModel(device: device, threads: 1).roofline.flatMap(rooflineMismatch)
    }

    /// Why the fits do not correct `current` (the roofline of the profile a prediction is made on): nil when it is
    /// the one they were measured against, or when the file does not say.
    public func rooflineMismatch(_ current: Roofline) -> String? {
        guard let roofline else { return nil }
        func same(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-9 * max(abs(a), abs(b)) }
        guard roofline.profile != current.profile
                || !same(roofline.attentionOpsPerSecond, current.attentionOpsPerSecond)
                || !same(roofline.bandwidthBytesPerSecond, current.bandwidthBytesPerSecond) else { return nil }
        func text(_ r: Roofline) -> String {
            String(format: "profile '%@' at %.1f GFLOP/s attention and %.2f GB/s K/V bandwidth", r.profile,
                   r.attentionOpsPerSecond / 1e9, r.bandwidthBytesPerSecond / 1e9)
        }
        return "the time calibration was fitted against \(text(roofline)), this prediction is on \(text(current)) "
            + "(the profile was measured again since): re-measure with make calibrate-attention"
    }

    public init(referenceLength: Int = 0, fits: [Key: Fit] = [:], source: String = "", kernels: String? = nil,
                cpu: String? = nil, cacheBytes: Int? = nil, privateCacheBytes: Int? = nil,
                sparseDecode: SparseDecode? = nil, sparsePrefill: SparsePrefill? = nil, roofline: Roofline? = nil) {
        self.referenceLength = referenceLength; self.fits = fits; self.source = source
        self.kernels = kernels; self.cpu = cpu; self.cacheBytes = cacheBytes; self.privateCacheBytes = privateCacheBytes
        self.sparseDecode = sparseDecode; self.sparsePrefill = sparsePrefill; self.roofline = roofline
    }

    /// Block-sparse prefill on this host, two measured constants in place of what full prefill's fit would say.
    /// `rate`: the time of the passes over earlier blocks only some lanes chose (`BlockSparseWork.sparseLaneKeys`)
    /// relative to the tile loop's rate that full prefill is fitted on (1 in files written before it was fitted):
    /// those passes gather and pad the lanes block by block. `spill`: the factor on the seconds of the blocks a work
    /// item reads beyond the cache (`AttentionCostModel.spillSeconds`), in place of the prefill fit's `spill`, which
    /// full prefill's items, sweeping the whole prefix they see, set. Both hold for block-sparse prefill of every KV
    /// format; fitted on F32 block-sparse prefill with the prefill fit's other constants held; `points` are those
    /// calls.
    ///
    /// `vectorShare`: the part of the wide tile's cost per (lane, key) that its score and softmax steps take, which
    /// run whole vectors of lanes, the value step taking the rest lane by lane (`AttentionCostModel.blockSparseWork`
    /// prices a compacted pass so); measured on this host's tile at each lane count (`tileTimes`) and fitted
    /// (`fitVectorShare`) before the rate. Nil in files written before it was measured: whole vectors, a lone one's
    /// score step at a pair's cost.
    public struct SparsePrefill: Sendable, Equatable, Codable {
        public var rate: Double
        public var spill: Double
        public var vectorShare: Double?
        public var tileTimes: [TileTime]
        public var points: [SparseDecode.Point]
        enum CodingKeys: String, CodingKey {
            case rate, spill, vectorShare = "tile_vector_share", tileTimes = "tile_times", points
        }

        /// The wide tile's time per key over `lanes` lanes, one thread, its operands in cache.
        public struct TileTime: Sendable, Equatable, Codable {
            public var lanes: Int
            public var secondsPerKey: Double
            enum CodingKeys: String, CodingKey { case lanes, secondsPerKey = "seconds_per_key" }
            public init(lanes: Int, secondsPerKey: Double) { self.lanes = lanes; self.secondsPerKey = secondsPerKey }
            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                lanes = try c.decode(Int.self, forKey: .lanes)
                guard lanes > 0 else {
                    throw DecodingError.dataCorruptedError(forKey: .lanes, in: c,
                                                           debugDescription: "expected lanes > 0, got \(lanes)")
                }
                secondsPerKey = try c.decode(Double.self, forKey: .secondsPerKey)
                guard secondsPerKey > 0, secondsPerKey.isFinite else {
                    throw DecodingError.dataCorruptedError(forKey: .secondsPerKey, in: c, debugDescription:
                                                           "expected seconds > 0, got \(secondsPerKey)")
                }
            }
        }

        public init(rate: Double = 1, spill: Double, vectorShare: Double? = nil, tileTimes: [TileTime] = [],
                    points: [SparseDecode.Point]) {
            self.rate = rate; self.spill = spill; self.vectorShare = vectorShare; self.tileTimes = tileTimes
            self.points = points
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rate = try c.decodeIfPresent(Double.self, forKey: .rate) ?? 1
            guard rate > 0, rate.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .rate, in: c,
                                                       debugDescription: "expected a rate > 0, got \(rate)")
            }
            spill = try c.decode(Double.self, forKey: .spill)
            guard spill >= 0, spill.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .spill, in: c,
                                                       debugDescription: "expected a factor ≥ 0, got \(spill)")
            }
            vectorShare = try c.decodeIfPresent(Double.self, forKey: .vectorShare)
            if let share = vectorShare, !(share >= 0 && share <= 1) {
                throw DecodingError.dataCorruptedError(forKey: .vectorShare, in: c,
                                                       debugDescription: "expected a share in [0, 1], got \(share)")
            }
            tileTimes = try c.decodeIfPresent([TileTime].self, forKey: .tileTimes) ?? []
            points = try c.decodeIfPresent([SparseDecode.Point].self, forKey: .points) ?? []
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rate, forKey: .rate)
            try c.encode(spill, forKey: .spill)
            try c.encodeIfPresent(vectorShare, forKey: .vectorShare)
            if !tileTimes.isEmpty { try c.encode(tileTimes, forKey: .tileTimes) }
            try c.encode(points, forKey: .points)
        }

        /// The vector share that best fits tile times per key t(a) ≈ α · v(a) + β · a over lane counts a (v(a) the
        /// vectors of `width` lanes holding them; least squares on relative error): s = α / (α + β · width), the
        /// score steps' part of a full vector's cost, each term held at 0 or more. Nil where the lane counts cannot
        /// tell the two terms apart (a single count, or only whole vectors) or the fit has no positive cost.
        public static func fitVectorShare(_ times: [TileTime], width: Int) -> Double? {
            let w = max(1, width)
            let usable = times.filter { $0.lanes > 0 && $0.secondsPerKey > 0 && $0.secondsPerKey.isFinite }
            let rows = usable.map { t -> (v: Double, a: Double) in
                (Double((t.lanes + w - 1) / w) / t.secondsPerKey, Double(t.lanes) / t.secondsPerKey)
            }
            guard let (alpha, beta) = AttentionCalibration.twoTermFit(rows.map { (x: $0.v, z: $0.a, y: 1) }) else {
                return nil
            }
            let perVector = max(0, alpha), perLane = max(0, beta)
            guard perVector + perLane * Double(w) > 0 else { return nil }
            return perVector / (perVector + perLane * Double(w))
        }

        /// The rate and factor that best fit measured seconds `m ≈ a + rate · b + spill · c` (least squares on
        /// relative error) for points whose prediction is `a` at rate 0 and factor 0 and grows by `b` per unit of
        /// rate and `c` per unit of factor; the factor at least 0, the rate above 0 (1, the factor fitted alone,
        /// where the points cannot tell a positive rate). Nil without a usable point beyond the cache (`c > 0`).
        public static func fitRateAndSpill(_ points: [(a: Double, b: Double, c: Double, measured: Double)])
            -> (rate: Double, spill: Double)? {
            let usable = points.filter {
                $0.measured > 0 && $0.measured.isFinite && $0.a.isFinite && $0.b >= 0 && $0.c >= 0
            }
            guard usable.contains(where: { $0.c > 0 }) else { return nil }
            let rows = usable.map { (x: $0.b / $0.measured, z: $0.c / $0.measured, y: 1 - $0.a / $0.measured) }
            let xx = rows.reduce(0) { $0 + $1.x * $1.x }, xy = rows.reduce(0) { $0 + $1.x * $1.y }
            var rateAlone = xx > 0 && xy / xx > 0
            if let (rate, spill) = AttentionCalibration.twoTermFit(rows) {
                if rate > 0 && spill >= 0 { return (rate, spill) }
                rateAlone = rateAlone && spill < 0
            }
            // One term alone: the rate with no factor where the factor would be negative, else the factor at rate 1.
            if rateAlone { return (xy / xx, 0) }
            let spill = SparseDecode.linearFactor(usable.map { (a: $0.a + $0.b, b: $0.c, measured: $0.measured) })
            return (1, spill ?? 0)
        }
    }

    /// Block-sparse decode on this host, fitted to measured block-sparse decode points with the full-decode fit's
    /// constants. `share`: the part of the tiled decode loop's cost per key that grows with the query heads reading
    /// the key (their dot products and accumulations, and the runs that heads which chose different blocks take
    /// apart), the rest being the key's own (reading its row); full-decode points cannot tell the two apart (every
    /// row is read for the whole group). `scoreSeconds`: one score of a query head against an earlier block's mean
    /// key, with keeping the best, on one worker.
    public struct SparseDecode: Sendable, Equatable, Codable {
        public struct Point: Sendable, Equatable, Codable {
            public var chunk: Int
            public var topK: Int
            public var length: Int
            public var measuredSeconds: Double
            /// The prediction with the fitted constants.
            public var predictedSeconds: Double
            enum CodingKeys: String, CodingKey {
                case chunk, topK = "top_k", length, measuredSeconds = "measured_seconds"
                case predictedSeconds = "predicted_seconds"
            }
            public init(chunk: Int, topK: Int, length: Int, measuredSeconds: Double, predictedSeconds: Double) {
                self.chunk = chunk; self.topK = topK; self.length = length; self.measuredSeconds = measuredSeconds
                self.predictedSeconds = predictedSeconds
            }
        }
        public var share: Double
        public var scoreSeconds: Double
        /// Block-sparse decode's time relative to the full decode fit's for the same work: its kernel takes the
        /// cache head by head (block selection), full decode slot by slot; 1 in files written before it was fitted.
        public var rate: Double
        /// The factor on the from-memory sweep of block-sparse decode reading its K/V from memory, fitted on calls
        /// with the layer's K/V flushed; nil: the full decode fit's `coldSpill`.
        public var coldSpill: Double?
        /// The cache share in which the union of the blocks a call chose stays from one call to the next (its reads
        /// beyond it priced by the beyond-cache term), fitted with the other constants; with it the lane share is
        /// not scaled by the private caches. Nil in files fitted before it: the calibration's `cacheBytes` and that
        /// scaling.
        public var cacheBytes: Int?
        public var points: [Point]
        enum CodingKeys: String, CodingKey {
            case share, scoreSeconds = "score_seconds", rate, coldSpill = "cold_spill", cacheBytes = "cache_bytes"
            case points
        }

        public init(share: Double, scoreSeconds: Double, rate: Double = 1, coldSpill: Double? = nil,
                    cacheBytes: Int? = nil, points: [Point]) {
            self.share = share; self.scoreSeconds = scoreSeconds; self.rate = rate; self.coldSpill = coldSpill
            self.cacheBytes = cacheBytes; self.points = points
        }
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            share = try c.decode(Double.self, forKey: .share)
            guard share >= 0, share <= 1 else {
                throw DecodingError.dataCorruptedError(forKey: .share, in: c,
                                                       debugDescription: "expected a share in 0 … 1, got \(share)")
            }
            scoreSeconds = try c.decode(Double.self, forKey: .scoreSeconds)
            guard scoreSeconds >= 0, scoreSeconds.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .scoreSeconds, in: c, debugDescription:
                                                       "expected seconds ≥ 0, got \(scoreSeconds)")
            }
            rate = try c.decodeIfPresent(Double.self, forKey: .rate) ?? 1
            guard rate > 0, rate.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .rate, in: c,
                                                       debugDescription: "expected a rate > 0, got \(rate)")
            }
            coldSpill = try c.decodeIfPresent(Double.self, forKey: .coldSpill)
            if let coldSpill, !(coldSpill >= 0 && coldSpill.isFinite) {
                throw DecodingError.dataCorruptedError(forKey: .coldSpill, in: c,
                                                       debugDescription: "expected a factor ≥ 0, got \(coldSpill)")
            }
            cacheBytes = try c.decodeIfPresent(Int.self, forKey: .cacheBytes)
            if let cacheBytes, cacheBytes <= 0 {
                throw DecodingError.dataCorruptedError(forKey: .cacheBytes, in: c,
                                                       debugDescription: "expected bytes > 0, got \(cacheBytes)")
            }
            points = try c.decodeIfPresent([Point].self, forKey: .points) ?? []
        }

        /// The factor `c ≥ 0` that best fits measured seconds `m ≈ a + c · b` (least squares on relative error),
        /// for points whose prediction is `a` at `c = 0` and grows by `b` per unit of `c`; nil with no usable
        /// point.
        public static func linearFactor(_ points: [(a: Double, b: Double, measured: Double)]) -> Double? {
            let usable = points.filter { $0.measured > 0 && $0.measured.isFinite && $0.b > 0 && $0.a.isFinite }
            guard !usable.isEmpty else { return nil }
            var xx = 0.0, xy = 0.0
            for p in usable {
                let x = p.b / p.measured
                xx += x * x; xy += x * (1 - p.a / p.measured)
            }
            return max(0, xy / xx)
        }

        /// One measured call: the setting, the length and its seconds.
        public struct Measured: Sendable {
            public var setting: Plan.BlockSparse
            public var length: Int
            public var seconds: Double
            public init(setting: Plan.BlockSparse, length: Int, seconds: Double) {
                self.setting = setting; self.length = length; self.seconds = seconds
            }
        }

        /// The constants whose predictions best match `measured` (least squares on relative error). `predict`
        /// gives, for a share, a setting and a length, the predicted seconds without the scores (at rate 1) and the
        /// scores the busiest worker computes; the share is searched on a grid of 0.01 over 0 … 1 refined to 0.001
        /// around the best, the rate and the seconds per score solved for each share (the seconds per score 0
        /// where it would be negative). Nil with no usable point.
        public static func fit(measured: [Measured],
                               predict: (Double, Plan.BlockSparse, Int) -> (seconds: Double, scores: Double))
            -> SparseDecode? {
            let usable = measured.filter { $0.seconds > 0 && $0.seconds.isFinite }
            guard !usable.isEmpty else { return nil }
            /// The best rate and seconds per score for `share`, and the squared relative error they leave.
            func solve(_ share: Double) -> (rate: Double, score: Double, error: Double) {
                let terms = usable.map { m -> (base: Double, x: Double) in
                    let p = predict(share, m.setting, m.length)
                    return (p.seconds / m.seconds, p.scores / m.seconds)
                }
                let (rate, score) = fitRateAndScore(terms)
                let error = terms.reduce(0) { $0 + pow(rate * $1.base + score * $1.x - 1, 2) }
                return (rate, score, error)
            }
            func best(_ shares: [Double]) -> Double {
                shares.min { solve($0).error < solve($1).error } ?? 0
            }
            let coarse = best((0...100).map { Double($0) / 100 })
            let share = best((-10...10).map { min(1, max(0, coarse + Double($0) / 1000)) })
            let (rate, score, _) = solve(share)
            return SparseDecode(share: share, scoreSeconds: score, rate: rate, points: usable.map {
                let p = predict(share, $0.setting, $0.length)
                return Point(chunk: $0.setting.chunk, topK: $0.setting.topK, length: $0.length,
                             measuredSeconds: $0.seconds, predictedSeconds: rate * p.seconds + score * p.scores)
            })
        }

        /// Least squares of `rate · base + score · x = 1` over the terms (each a point's prediction parts relative
        /// to its measurement), with `score ≥ 0`; rate 1 when the points cannot tell it (no positive base).
        static func fitRateAndScore(_ terms: [(base: Double, x: Double)]) -> (rate: Double, score: Double) {
            let bb = terms.reduce(0) { $0 + $1.base * $1.base }, xx = terms.reduce(0) { $0 + $1.x * $1.x }
            let b1 = terms.reduce(0) { $0 + $1.base }, x1 = terms.reduce(0) { $0 + $1.x }
            guard bb > 0 else { return (1, xx > 0 ? max(0, x1 / xx) : 0) }
            if let (rate, score) = AttentionCalibration.twoTermFit(terms.map { (x: $0.base, z: $0.x, y: 1) }),
               score >= 0 && rate > 0 {
                return (rate, score)
            }
            return (b1 / bb, 0)
        }
    }

    /// Least squares of y ≈ p · x + q · z over `rows` (the two normal equations solved); nil where the rows cannot
    /// tell x from z (a determinant of at most 1e-12 of xx · zz).
    static func twoTermFit(_ rows: [(x: Double, z: Double, y: Double)]) -> (p: Double, q: Double)? {
        let xx = rows.reduce(0) { $0 + $1.x * $1.x }, zz = rows.reduce(0) { $0 + $1.z * $1.z }
        let xz = rows.reduce(0) { $0 + $1.x * $1.z }
        let xy = rows.reduce(0) { $0 + $1.x * $1.y }, zy = rows.reduce(0) { $0 + $1.z * $1.y }
        let det = xx * zz - xz * xz
        guard det > 1e-12 * xx * zz else { return nil }
        return ((xy * zz - zy * xz) / det, (xx * zy - xz * xy) / det)
    }

    /// Why this calibration's times may not hold for a run with `kernels` on `cpu` (nil when they match, or when
    /// the file does not say where it was measured).
    public func mismatch(kernels current: String, cpu currentCPU: String?) -> String? {
        let measured = DeviceProfile.MeasurementContext(kernels: kernels ?? current, cpu: cpu)
        let differences = measured.differences(kernels: current, cpu: currentCPU)
        guard !differences.isEmpty else { return nil }
        return "the time calibration was measured with " + differences.joined(separator: "; ")
            + ": its predicted times are not expected to hold here (re-measure with make profile-host and "
            + "make calibrate-attention on this machine)"
    }

    /// The rate factor of each key (measured ÷ roofline for a one-point calibration).
    public var factors: [Key: Double] { fits.mapValues(\.scale) }

    /// Records a measured time for a full-attention setting at the reference length: a rate factor only.
    public mutating func record(_ s: AttentionSettingSpec, mode: AttentionCostModel.Mode, measuredSeconds: Double,
                                model: AttentionCostModel, shape: AttentionLayerShape) {
        var plain = model; plain.calibration = nil
        let predicted = plain.predict(s, shape: shape, mode: mode, length: referenceLength).seconds
        guard predicted > 0, measuredSeconds > 0, predicted.isFinite, measuredSeconds.isFinite else { return }
        let rows = mode == .decode ? 1 : referenceLength
        fits[Key(s, mode: mode)] = Fit(
            fixedSeconds: 0, perRowSeconds: 0, scale: measuredSeconds / predicted, heads: shape.heads,
            kvHeads: shape.kvHeads, headDim: shape.headDim,
            points: [Point(length: referenceLength, rows: rows, modelSeconds: predicted, measuredSeconds: measuredSeconds)])
    }

    /// The median of measured ÷ predicted seconds over (measured, predicted) pairs: how much slower (> 1) the machine
    /// ran than when the fit that made the predictions was measured; 1 where no pair has both times positive and
    /// finite. calibrate-attention divides block-sparse decode's times by it (full F32 decode measured in the same
    /// passes against its fit), so that a refit in another spell compares kernels, not spells.
    public static func pace(_ pairs: [(measured: Double, predicted: Double)]) -> Double {
        let ratios = pairs
            .filter { $0.measured > 0 && $0.predicted > 0 && $0.measured.isFinite && $0.predicted.isFinite }
            .map { $0.measured / $0.predicted }
        return ratios.isEmpty ? 1 : Statistic(ratios).median
    }

    /// Fits `fixed`, `perRow`, `scale`, `spill` and `near` for one key to measured points by least squares on
    /// relative error, with every term non-negative (a term that would go negative is dropped and the rest
    /// refitted). `perRow` is only fitted where the points have different row counts (not for decode), `spill` only
    /// where some point's K/V sweep goes beyond the cache, `near` only where some point's row sweep goes beyond the
    /// private cache. Points with a non-positive or non-finite time are ignored; nil when
    /// fewer than two remain.
    public static func fit(points: [Point], shape: AttentionLayerShape) -> Fit? {
        let usable = points.filter {
            $0.modelSeconds > 0 && $0.measuredSeconds > 0 && $0.modelSeconds.isFinite && $0.measuredSeconds.isFinite
        }
        guard usable.count >= 2 else { return nil }
        let rowsVary = Set(usable.map(\.rows)).count > 1
        // Terms: 0 fixed, 1 per row, 2 scale (always kept), 3 beyond-cache sweep, 4 beyond-private-cache sweep.
        var candidates: [[Int]] = rowsVary ? [[0, 1, 2], [0, 2], [1, 2], [2]] : [[0, 2], [2]]
        if usable.contains(where: { $0.spillSeconds > 0 }) { candidates += candidates.map { $0 + [3] } }
        if usable.contains(where: { $0.nearSeconds > 0 }) { candidates += candidates.map { $0 + [4] } }
        var best: (fit: Fit, error: Double)?
        for terms in candidates where terms.count <= usable.count {
            guard let coefficients = leastSquares(usable, terms: terms), coefficients.allSatisfy({ $0 >= 0 }) else {
                continue
            }
            var c = [0.0, 0.0, 0.0, 0.0, 0.0]
            for (i, t) in terms.enumerated() { c[t] = coefficients[i] }
            guard c[2] > 0 else { continue }
            let fit = Fit(fixedSeconds: c[0], perRowSeconds: c[1], scale: c[2], spill: c[3], near: c[4], heads: shape.heads,
                          kvHeads: shape.kvHeads, headDim: shape.headDim, points: usable)
            let error = fit.squaredError
            if best == nil || error < best!.error - 1e-15 { best = (fit, error) }
        }
        return best?.fit
    }

    /// `fits` with a beyond-cache factor for every key whose own points all fit in the cache (so its fit has none,
    /// while a longer call of the same kernel would spill): prefill takes the factor of the same kernel's prefill of
    /// another KV format measured beyond the cache (its work items read one KV head's rows at the slot stride, where
    /// tiled decode now reads the cache slot by slot in address order, about three times faster from memory), else
    /// its own kernel's decode fit of the same KV format, else the other kernel's prefill, else its decode (the
    /// materialised prefill's factor also prices its score matrices); encode, whose layer has no decode,
    /// the other kernel's encode, else the decode fits (same kernel first); each when that fit was fitted on points
    /// beyond the cache. The factor is the price of a byte read from memory instead of the cache
    /// relative to the host's matrix-vector rate, a property of the memory system more than of the kernel;
    /// `spillFrom` names the key it came from.
    public static func borrowingSpill(_ fits: [Key: Fit]) -> [Key: Fit] {
        func measuredSpill(_ key: Key) -> Fit? {
            guard let f = fits[key], f.spill > 0, f.spillFrom == nil, f.points.contains(where: { $0.spillSeconds > 0 })
            else { return nil }
            return f
        }
        var out = fits
        for (key, fit) in fits where fit.spill == 0 && !fit.points.contains(where: { $0.spillSeconds > 0 }) {
            let otherKernels = AttentionKernel.allCases.filter { $0 != key.kernel }
            let sameMode = otherKernels.map { Key(kv: key.kv, kernel: $0, mode: key.mode) }
            let decode = ([key.kernel] + otherKernels).map { Key(kv: key.kv, kernel: $0, mode: .decode) }
            let samePrefill = KVCacheFormat.allCases.filter { $0 != key.kv }
                .map { Key(kv: $0, kernel: key.kernel, mode: .prefill) }
            let others = key.mode == .encode ? sameMode + decode
                : (key.mode == .prefill ? samePrefill : []) + [decode[0]] + sameMode + decode.dropFirst()
            guard let source = others.first(where: { $0 != key && measuredSpill($0) != nil }),
                  let donor = measuredSpill(source) else { continue }
            var borrowed = fit
            borrowed.spill = donor.spill
            borrowed.spillFrom = "\(source.kv.rawValue) \(source.kernel.rawValue) \(source.mode.rawValue)"
            out[key] = borrowed
        }
        return out
    }

    /// Solves min Σ ((Σ_k c_k · basis_k(p)) / measured − 1)² over the chosen terms (normal equations).
    static func leastSquares(_ points: [Point], terms: [Int]) -> [Double]? {
        let k = terms.count
        var a = [[Double]](repeating: [Double](repeating: 0, count: k), count: k)
        var b = [Double](repeating: 0, count: k)
        for p in points {
            let basis = [1.0, Double(p.rows), p.modelSeconds, p.spillSeconds, p.nearSeconds]
            let row = terms.map { basis[$0] / p.measuredSeconds }
            for i in 0..<k {
                b[i] += row[i]
                for j in 0..<k { a[i][j] += row[i] * row[j] }
            }
        }
        // Gaussian elimination with partial pivoting.
        for col in 0..<k {
            guard let pivot = (col..<k).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }),
                  abs(a[pivot][col]) > 1e-300 else { return nil }
            a.swapAt(col, pivot); b.swapAt(col, pivot)
            for r in (col + 1)..<k {
                let f = a[r][col] / a[col][col]
                for c in col..<k { a[r][c] -= f * a[col][c] }
                b[r] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: k)
        for r in stride(from: k - 1, through: 0, by: -1) {
            var v = b[r]
            for c in (r + 1)..<k { v -= a[r][c] * x[c] }
            x[r] = v / a[r][r]
        }
        return x.allSatisfy(\.isFinite) ? x : nil
    }

    /// Corrected seconds for a roofline time of a setting and the seconds of its sweep beyond the cache (the
    /// roofline unchanged when no fit exists for its key).
    public func seconds(roofline: Double, rows: Int, spill: Double = 0, near: Double = 0, cold: Bool = false,
                        _ s: AttentionSettingSpec, mode: AttentionCostModel.Mode) -> Double {
        guard var f = fits[Key(s, mode: mode)] else { return roofline }
        if mode == .prefill, s.blockSparse != nil, s.kernel == .tiled, let factor = sparsePrefill?.spill {
            f.spill = factor
        }
        return f.seconds(roofline: roofline, rows: rows, spill: spill, near: near, cold: cold && mode == .decode)
    }

    /// The prediction with its time corrected (unchanged when no fit exists for its key). For a prediction made by
    /// a model without a calibration, which has no beyond-cache figure: the `spill` term is left out.
    public func apply(_ p: AttentionCostPrediction, _ s: AttentionSettingSpec, mode: AttentionCostModel.Mode)
        -> AttentionCostPrediction {
        guard fits[Key(s, mode: mode)] != nil else { return p }
        let rows = p.tokensPerSecond.isFinite && p.tokensPerSecond > 0
            ? Int((p.tokensPerSecond * p.seconds).rounded()) : 1
        var out = p
        out.seconds = seconds(roofline: p.seconds, rows: rows, s, mode: mode)
        out.tokensPerSecond = Double(rows) / out.seconds
        return out
    }

    // MARK: File form

    public static let schemaVersion = 1

    struct Entry: Codable {
        var kv: KVCacheFormat
        var kernel: AttentionKernel
        var mode: AttentionCostModel.Mode
        var fit: Fit
        enum CodingKeys: String, CodingKey { case kv, kernel, mode, fit }
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", source, referenceLength = "reference_length", fits, kernels, cpu
        case cacheBytes = "cache_bytes", privateCacheBytes = "private_cache_bytes"
        case sparseDecode = "block_sparse_decode", sparsePrefill = "block_sparse_prefill", roofline
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? Self.schemaVersion
        guard version == Self.schemaVersion else {
            throw DecodingError.dataCorruptedError(forKey: .schemaVersion, in: c,
                                                   debugDescription: "expected \(Self.schemaVersion), got \(version)")
        }
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? ""
        kernels = try c.decodeIfPresent(String.self, forKey: .kernels)
        cpu = try c.decodeIfPresent(String.self, forKey: .cpu)
        cacheBytes = try c.decodeIfPresent(Int.self, forKey: .cacheBytes)
        if let cacheBytes, cacheBytes <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .cacheBytes, in: c,
                                                   debugDescription: "expected a positive byte count, got \(cacheBytes)")
        }
        privateCacheBytes = try c.decodeIfPresent(Int.self, forKey: .privateCacheBytes)
        if let privateCacheBytes, privateCacheBytes <= 0 {
            throw DecodingError.dataCorruptedError(forKey: .privateCacheBytes, in: c, debugDescription:
                                                   "expected a positive byte count, got \(privateCacheBytes)")
        }
        sparseDecode = try c.decodeIfPresent(SparseDecode.self, forKey: .sparseDecode)
        sparsePrefill = try c.decodeIfPresent(SparsePrefill.self, forKey: .sparsePrefill)
        roofline = try c.decodeIfPresent(Roofline.self, forKey: .roofline)
        if let r = roofline, !(r.attentionOpsPerSecond > 0 && r.attentionOpsPerSecond.isFinite
                                 && r.bandwidthBytesPerSecond > 0 && r.bandwidthBytesPerSecond.isFinite) {
            throw DecodingError.dataCorruptedError(forKey: .roofline, in: c, debugDescription: "expected positive "
                + "finite rates, got \(r.attentionOpsPerSecond) ops/s and \(r.bandwidthBytesPerSecond) bytes/s")
        }
        referenceLength = try c.decodeIfPresent(Int.self, forKey: .referenceLength) ?? 0
        var fits: [Key: Fit] = [:]
        for e in try c.decodeIfPresent([Entry].self, forKey: .fits) ?? [] {
            let f = e.fit
            guard f.scale > 0, f.fixedSeconds >= 0, f.perRowSeconds >= 0, f.spill >= 0, f.near >= 0,
                  [f.scale, f.fixedSeconds, f.perRowSeconds, f.spill, f.near].allSatisfy(\.isFinite) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .fits, in: c,
                    debugDescription: "\(e.kv.rawValue)/\(e.kernel.rawValue)/\(e.mode.rawValue): scale must be > 0 and "
                        + "the overheads, spill and near ≥ 0, got scale \(f.scale), fixed \(f.fixedSeconds), per row "
                        + "\(f.perRowSeconds), spill \(f.spill), near \(f.near)")
            }
            let key = Key(kv: e.kv, kernel: e.kernel, mode: e.mode)
            guard fits[key] == nil else {
                throw DecodingError.dataCorruptedError(
                    forKey: .fits, in: c,
                    debugDescription: "two fits for \(e.kv.rawValue)/\(e.kernel.rawValue)/\(e.mode.rawValue)")
            }
            fits[key] = f
        }
        self.fits = fits
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaVersion, forKey: .schemaVersion)
        try c.encode(source, forKey: .source)
        try c.encodeIfPresent(kernels, forKey: .kernels)
        try c.encodeIfPresent(cpu, forKey: .cpu)
        try c.encodeIfPresent(cacheBytes, forKey: .cacheBytes)
        try c.encodeIfPresent(privateCacheBytes, forKey: .privateCacheBytes)
        try c.encodeIfPresent(sparseDecode, forKey: .sparseDecode)
        try c.encodeIfPresent(sparsePrefill, forKey: .sparsePrefill)
        try c.encodeIfPresent(roofline, forKey: .roofline)
        if referenceLength > 0 { try c.encode(referenceLength, forKey: .referenceLength) }
        let entries = fits.map { Entry(kv: $0.key.kv, kernel: $0.key.kernel, mode: $0.key.mode, fit: $0.value) }
            .sorted { ($0.mode.rawValue, $0.kernel.rawValue, $0.kv.rawValue) < ($1.mode.rawValue, $1.kernel.rawValue, $1.kv.rawValue) }
        try c.encode(entries, forKey: .fits)
    }
}
