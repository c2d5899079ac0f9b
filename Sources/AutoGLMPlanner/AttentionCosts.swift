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
    /// KV cache bytes of the layer (keys and values of the cached tokens).
    public var kvBytes: Int
    /// Scratch of the kernel during the call, all worker threads together.
    public var scratchBytes: Int
    public var seconds: Double
    /// New tokens per second (prefill: n / seconds; decode: 1 / seconds).
    public var tokensPerSecond: Double
    /// Relative perplexity increase from the accuracy table, nil when no figure exists for the setting.
    public var loss: Double?
    public var peakBytes: Int { kvBytes + scratchBytes }
}

/// Memory, latency and accuracy cost of attention settings for one layer.
///
/// Memory: KV = cached tokens · 2 · kv_heads · head_dim · bytes per element (cached tokens: all of them, or under a
/// window `window + global`). Scratch: the tiled kernel keeps per worker thread one query tile's accumulators and
/// one key tile of scores (`tileScratchBytes`, independent of the length); the materialised kernel holds one
/// `n × m` F32 score matrix per head in flight, and `min(heads, threads)` heads are in flight.
/// Latency: `LatencyModel.attentionSeconds` on the FLOPs of the visible (query, key) pairs, plus for materialised
/// scores their write and read-back traffic; decode reads the cached K/V the new token attends to (all of it, the
/// window, or the selected blocks and the block means) once.
/// Accuracy: the sum of the table entries for the setting's parts (KV precision, window, block sparsity).
public struct AttentionCostModel: Sendable {
    public var latency: LatencyModel
    public var accuracy: AccuracyModel?
    /// Worker threads of the attention kernel.
    public var threads: Int

    /// Key tile of the tiled kernel and the (query row, head) lanes one work item aims for (the engine's sizes).
    public static let keyTile = 64
    public static let queryTile = 16
    public static let laneTarget = 32

    public init(device: DeviceProfile, accuracy: AccuracyModel? = nil, threads: Int) {
        latency = LatencyModel(device: device); self.accuracy = accuracy; self.threads = max(1, threads)
    }

    public enum Mode: String, Sendable { case prefill, decode }

    /// Tokens the cache holds during the call that processes token `length` (1-based): prefill stages all `length`
    /// new tokens; decode has `length − 1` committed (at most `window + global` under a window) plus the new one.
    public static func cachedTokens(_ s: AttentionSettingSpec, length: Int, mode: Mode) -> Int {
        switch mode {
        case .prefill: return length
        case .decode:
            let committed = length - 1
            return (s.window.map { min(committed, $0 + s.globalTokens) } ?? committed) + 1
        }
    }

    /// Keys query position `t` (0-based) sees.
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

    /// Query rows per work item: enough that rows × (query heads per KV head) is about `laneTarget`.
    public static func rowsPerItem(_ shape: AttentionLayerShape) -> Int {
        let group = max(1, shape.heads / max(1, shape.kvHeads))
        return max(1, min(queryTile, laneTarget / group))
    }

    /// One worker's buffers: per lane (query row × head of a KV group) the scaled query and the output accumulator
    /// (head_dim floats each), running max and sum, one key tile of scores and the block-sparse interval list; per
    /// key block a score and a selection flag.
    public static func workerScratchBytes(_ shape: AttentionLayerShape, keys: Int, blockSparse: Plan.BlockSparse?) -> Int {
        let group = max(1, shape.heads / max(1, shape.kvHeads))
        let lanes = rowsPerItem(shape) * group
        let blocks = blockSparse.map { keys / max(1, $0.chunk) + 1 } ?? 0
        let intervals = blockSparse.map { $0.topK + 1 } ?? 2
        let floats = 2 * lanes * shape.headDim + 2 * lanes + lanes * keyTile + max(1, blocks)
        let ints = lanes * intervals * 2 + lanes + max(1, blocks)
        return floats * 4 + ints * 8
    }

    public func predict(_ s: AttentionSettingSpec, shape: AttentionLayerShape, mode: Mode, length: Int)
        -> AttentionCostPrediction {
        let cached = Self.cachedTokens(s, length: length, mode: mode)
        let kvBytes = Int((Double(cached * 2 * shape.kvHeads * shape.headDim) * s.kv.bytesPerElement).rounded(.up))
        let n = mode == .prefill ? length : 1
        var pairs = 0.0
        for t in (length - n)..<length { pairs += Double(Self.visibleKeys(s, position: t)) }
        let flops = 4 * Double(shape.heads * shape.headDim) * pairs
        let worker = Self.workerScratchBytes(shape, keys: cached, blockSparse: s.blockSparse)
        let scratch: Int
        // Decode reads the keys and values the new token sees (under block-sparse selection only the chosen blocks,
        // plus one mean key per block to choose them); prefill's K/V stay in cache while the tiles sweep them.
        let bytesPerToken = Double(2 * shape.kvHeads * shape.headDim) * s.kv.bytesPerElement
        var traffic = 0.0
        if mode == .decode {
            traffic = pairs * bytesPerToken
            if let b = s.blockSparse { traffic += Double((cached / max(1, b.chunk) + 1) * shape.kvHeads * shape.headDim * 4) }
        }
        switch s.kernel {
        case .tiled:
            let items = shape.kvHeads * ((n + Self.rowsPerItem(shape) - 1) / Self.rowsPerItem(shape))
            scratch = min(threads, items) * worker
        case .materialised:
            // One n × m score matrix per head in flight, heads split over the workers.
            let matrix = n * cached * 4
            scratch = min(threads, shape.heads) * (matrix + worker)
            traffic += 2 * Double(matrix) * Double(shape.heads)
        }
        let seconds = latency.attentionSeconds(flops: flops, bytes: traffic)
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
        return AttentionCostPrediction(kvBytes: kvBytes, scratchBytes: scratch, seconds: seconds,
                                       tokensPerSecond: Double(n) / seconds, loss: loss)
    }
}

/// Measured corrections of the roofline time per (KV format, kernel, mode): measured seconds ÷ predicted seconds of
/// the full-attention setting at one reference length. The roofline's efficiency factor comes from one shape (the
/// host profile measures a GLM-4 layer); a model with other head sizes and grouping, and KV formats that must be
/// decoded, run at other rates. With a calibration, predictions at other lengths and for windowed and block-sparse
/// settings test how the model scales, not its absolute rate.
public struct AttentionCalibration: Sendable, Equatable {
    public struct Key: Hashable, Sendable {
        public var kv: KVCacheFormat
        public var kernel: AttentionKernel
        public var mode: AttentionCostModel.Mode
        public init(kv: KVCacheFormat, kernel: AttentionKernel, mode: AttentionCostModel.Mode) {
            self.kv = kv; self.kernel = kernel; self.mode = mode
        }
    }
    public var referenceLength: Int
    public var factors: [Key: Double]

    public init(referenceLength: Int, factors: [Key: Double] = [:]) {
        self.referenceLength = referenceLength; self.factors = factors
    }

    /// Records a measured time for a full-attention setting at the reference length.
    public mutating func record(_ s: AttentionSettingSpec, mode: AttentionCostModel.Mode, measuredSeconds: Double,
                                model: AttentionCostModel, shape: AttentionLayerShape) {
        let predicted = model.predict(s, shape: shape, mode: mode, length: referenceLength).seconds
        guard predicted > 0, measuredSeconds > 0, predicted.isFinite, measuredSeconds.isFinite else { return }
        factors[Key(kv: s.kv, kernel: s.kernel, mode: mode)] = measuredSeconds / predicted
    }

    /// The prediction with its time corrected (unchanged when no factor was recorded for its key).
    public func apply(_ p: AttentionCostPrediction, _ s: AttentionSettingSpec, mode: AttentionCostModel.Mode)
        -> AttentionCostPrediction {
        guard let f = factors[Key(kv: s.kv, kernel: s.kernel, mode: mode)] else { return p }
        var out = p
        out.seconds = p.seconds * f
        out.tokensPerSecond = p.tokensPerSecond / f
        return out
    }
}
