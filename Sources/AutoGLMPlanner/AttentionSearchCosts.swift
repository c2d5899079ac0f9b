import Foundation
import AutoGLMSpecs

/// The decoder attention costs of one search setting over all layers of the decoder, priced by `AttentionCostModel`
/// (the model `autoglm-run bench-attention` checks against measurement), so the search optimises the same figures.
///
/// - Prefill: one call over the whole context per layer (`AttentionCostModel.Mode.prefill` at the context length):
///   time of the visible (query, key) pairs and the kernel's scratch. The engine prefills in chunks; the FLOPs of
///   the visible pairs are the same either way, while the materialised kernel's score matrix is priced for the whole
///   context against itself, which overstates it for chunked prefill (the tiled kernel's scratch does not depend on
///   the chunking).
/// - Decode: the last output token (`Mode.decode` at context + output tokens), the slowest of the generation; its time
///   is divided by the profile's sustained factor like every decode figure.
/// - KV cache: the decode prediction's cache (all tokens, or under a window the ring and the new token), plus, for a
///   window smaller than the sequence, one prefill chunk staged beside the ring (`Mode.prefill` at the chunk length).
/// - Accuracy: the prediction's loss (the table entries of the setting's parts).
public struct DecoderAttentionCosts: Sendable, Equatable {
    public var setting: AttentionSettingSpec
    public var layers: Int
    /// One layer's prefill call over the context.
    public var prefill: AttentionCostPrediction
    /// One layer's decode call for the last output token.
    public var decode: AttentionCostPrediction
    /// KV bytes of all layers at the peak.
    public var kvBytes: Int
    /// Tokens those bytes hold per layer.
    public var cachedTokens: Int
    /// Prefill attention seconds, all layers.
    public var prefillSeconds: Double
    /// Decode attention seconds per token, all layers, at the sustained rate.
    public var decodeSeconds: Double
    /// Accuracy cost; nil when the table lacks a figure for a part of the setting.
    public var loss: Double?
}

extension AttentionCostModel {
    /// Worker threads the attention kernel runs on a unit: a CPU's cores (all clusters, all units); a unit whose
    /// profile lists no cores (a GPU or NPU) is taken to keep one work item per query head in flight.
    public static func workers(on unit: DeviceProfile.ComputeUnit?, heads: Int) -> Int {
        guard let unit else { return 1 }
        let cores = unit.clusters.reduce(0) { $0 + $1.cores } * unit.count
        return max(1, cores > 0 ? cores : heads * unit.count)
    }

    /// The cost model for a request: its device (attention on `LatencyModel.attentionUnit`), its accuracy table and
    /// that unit's worker count. With a calibration that applies to the decoder (`AttentionCalibrationFile.applies`)
    /// the times are the engine's on the measured host: the calibration's corrections, the engine's work partition
    /// (a call lasts as long as its busiest worker), its tile width, and decode reading each layer's K/V from memory
    /// as it does inside a model. Without one, the roofline with the work spread evenly over the workers (a device's
    /// runtime partitions its own way).
    public init(request: PlanRequest, accuracy: AccuracyModel) {
        let heads = request.model.textDecoder?.heads ?? 1
        let unit = LatencyModel(device: request.device).attentionUnit
        let threads = Self.workers(on: unit, heads: heads)
        if let d = request.model.textDecoder,
           let calibration = request.attentionCalibration?.decoderCalibration(for: AttentionLayerShape(d)),
           calibration.fits.keys.contains(where: { accuracy.setting(AccuracyModel.kvSetting($0.kv)) != nil }) {
            self.init(device: request.device, accuracy: accuracy, threads: threads, calibration: calibration,
                      tileLanes: calibration.tileLanes, busiestWorker: true)
            decodeKVFromMemory = true
        } else {
            self.init(device: request.device, accuracy: accuracy, threads: threads, busiestWorker: false)
        }
    }

    /// Whether a KV format and decoder kernel are priced alike with the others: always without a calibration
    /// (all on the roofline); with one, when it has fits for both their prefill and their decode, since a setting it
    /// never measured would be priced on the uncorrected roofline beside corrected ones (the search does not offer
    /// it).
    public func calibrates(kv: KVCacheFormat, kernel: AttentionKernel) -> Bool {
        guard let calibration else { return true }
        return [Mode.prefill, .decode].allSatisfy { calibration.fits[.init(kv: kv, kernel: kernel, mode: $0)] != nil }
    }

    /// Decoder attention costs of a setting for a sequence of `contextTokens` prefilled and `totalTokens` at the end
    /// of decoding, prefilled in chunks of `chunk` tokens.
    public func decoderCosts(_ s: AttentionSettingSpec, decoder d: TextDecoderSpec, contextTokens: Int,
                             totalTokens: Int, chunk: Int) -> DecoderAttentionCosts {
        let shape = AttentionLayerShape(d)
        let context = max(1, contextTokens), total = max(context, totalTokens)
        let prefill = predict(s, shape: shape, mode: .prefill, length: context)
        let decode = predict(s, shape: shape, mode: .decode, length: total)
        var perLayerKV = decode.kvBytes
        var cached = Self.cachedTokens(s, length: total, mode: .decode)
        if s.window != nil && cached < total {
            let staged = min(max(1, chunk), context)
            perLayerKV += predict(s, shape: shape, mode: .prefill, length: staged).kvBytes
            cached += staged
        }
        return DecoderAttentionCosts(setting: s, layers: d.layers, prefill: prefill, decode: decode,
                                     kvBytes: perLayerKV * d.layers, cachedTokens: cached,
                                     prefillSeconds: prefill.seconds * Double(d.layers),
                                     decodeSeconds: decode.seconds * Double(d.layers) / latency.sustained,
                                     loss: prefill.loss)
    }
}

/// A measured attention time calibration (`autoglm-run calibrate-attention`) handed to the planner, and its file.
public struct AttentionCalibrationFile: Sendable {
    /// The file as named to the planner (recorded in the plan, `Plan.Attention.timeCalibration`).
    public var path: String
    public var calibration: AttentionCalibration

    public init(path: String, calibration: AttentionCalibration) {
        self.path = path; self.calibration = calibration
    }

    /// Loads a calibration file (a clear error naming the file when it does not load).
    public static func load(_ path: String) throws -> AttentionCalibrationFile {
        AttentionCalibrationFile(path: path, calibration: try SpecLoader.load(AttentionCalibration.self, from: path))
    }

    /// The decoder layer shapes its decoder fits (prefill and decode) were measured on.
    public var decoderShapes: [AttentionLayerShape] {
        var shapes: [AttentionLayerShape] = []
        for (key, fit) in calibration.fits where key.mode != .encode {
            let shape = AttentionLayerShape(heads: fit.heads, kvHeads: fit.kvHeads, headDim: fit.headDim)
            if !shapes.contains(shape) { shapes.append(shape) }
        }
        return shapes.sorted { ($0.heads, $0.kvHeads, $0.headDim) < ($1.heads, $1.kvHeads, $1.headDim) }
    }

    /// The calibration for a decoder of `shape`: its decoder fits measured on that shape (their fixed and per-row
    /// costs and rates belong to the shape they were fitted on), kept only for the KV formats and kernels measured
    /// in both prefill and decode; nil when none is.
    public func decoderCalibration(for shape: AttentionLayerShape) -> AttentionCalibration? {
        var out = calibration
        out.fits = calibration.fits.filter { key, fit in
            key.mode != .encode && AttentionLayerShape(heads: fit.heads, kvHeads: fit.kvHeads, headDim: fit.headDim)
                == shape
        }
        out.fits = out.fits.filter { key, _ in
            out.fits[.init(kv: key.kv, kernel: key.kernel, mode: key.mode == .prefill ? .decode : .prefill)] != nil
        }
        return out.fits.isEmpty ? nil : out
    }

    /// Whether it prices a decoder of this shape (`decoderCalibration`); another decoder is priced on the roofline.
    public func applies(to shape: AttentionLayerShape) -> Bool { decoderCalibration(for: shape) != nil }

    /// Why the calibration does not describe a device profile: measured with another kernel family or on another
    /// CPU than the profile, or fitted against another roofline than the profile's (measured again since); nil when
    /// they match, or when either side does not say.
    public func mismatch(device: DeviceProfile) -> String? {
        let differences = device.measuredWith.map {
            DeviceProfile.MeasurementContext(kernels: calibration.kernels ?? $0.kernels, cpu: calibration.cpu)
                .differences(kernels: $0.kernels, cpu: $0.cpu, other: ("the profile", "the profile"))
        } ?? []
        if !differences.isEmpty {
            return "\(path) was measured with " + differences.joined(separator: "; ") + " (profile '\(device.id)'): "
                + "its times do not describe that machine"
        }
        return calibration.rooflineMismatch(device: device).map { "\(path): " + $0 }
    }
}

extension AttentionCalibration {
    /// Lanes per vector of the engine's attention tile with the kernel family it was measured with (16 for
    /// AVX-512, else 8).
    public var tileLanes: Int { kernels == "avx512" ? 16 : 8 }
}
