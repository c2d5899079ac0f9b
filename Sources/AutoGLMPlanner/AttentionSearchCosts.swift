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
    /// that unit's worker count, with the work spread evenly over them (the device's runtime partitions its own way).
    public init(request: PlanRequest, accuracy: AccuracyModel) {
        let heads = request.model.textDecoder?.heads ?? 1
        let unit = LatencyModel(device: request.device).attentionUnit
        self.init(device: request.device, accuracy: accuracy, threads: Self.workers(on: unit, heads: heads),
                  busiestWorker: false)
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
