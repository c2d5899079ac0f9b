import Foundation
import AutoGLMSpecs

/// Memory cost model: weights exactly per tensor as stored, KV cache, activation peak (the maximum over stages),
/// runtime overhead. Everything in bytes. The decoder's KV cache and attention scratch come from
/// `AttentionCostModel` (see `DecoderAttentionCosts`).
public enum MemoryModel {
    /// How a tensor is stored under a requested format: vectors (norms, biases, position tables) stay F32; a matrix
    /// whose row length the format cannot store takes a smaller INT4 group, else F16 (`WeightFormat.stored`, the
    /// engine's rule).
    public static func storedFormat(_ requested: WeightFormat, for tensor: ModuleTensor) -> WeightFormat {
        if !tensor.isQuantizable { return .f32 }
        return requested.stored(columns: tensor.columns)
    }

    /// Bytes of one tensor stored under a requested format.
    public static func tensorBytes(_ tensor: ModuleTensor, format requested: WeightFormat) -> Int {
        storedFormat(requested, for: tensor).bytes(rows: tensor.rows, columns: tensor.columns)
    }

    /// Weight bytes of a set of tensors under one requested format, and the tensors that fell back to F16.
    public static func weightBytes(_ tensors: [ModuleTensor], format: WeightFormat) -> (bytes: Int, fallbacks: [ModuleTensor]) {
        var total = 0
        var fallbacks: [ModuleTensor] = []
        for t in tensors {
            let stored = storedFormat(format, for: t)
            if t.isQuantizable && stored != format { fallbacks.append(t) }
            total += stored.bytes(rows: t.rows, columns: t.columns)
        }
        return (total, fallbacks)
    }

    /// KV cache bytes: Σ layers 2 · kv_heads · head_dim · bytes per element, per cached token.
    public static func kvCacheBytes(_ decoder: TextDecoderSpec, format: KVCacheFormat, tokens: Int) -> Int {
        Int((decoder.kvBytesPerToken(bytesPerElement: format.bytesPerElement) * Double(tokens)).rounded(.up))
    }

    /// Scratch of the tiled attention kernel: one tile of query rows against all keys, per head.
    public static let attentionTile = 128

    /// Score-matrix bytes for `queries × keys` attention over `heads` heads.
    public static func scoreBytes(queries: Int, keys: Int, heads: Int, kernel: AttentionKernel, elementBytes: Int) -> Int {
        switch kernel {
        case .materialised: return queries * keys * heads * elementBytes
        case .tiled: return min(queries, attentionTile) * keys * heads * elementBytes
        }
    }

    /// Activation bytes of one vision-encoder layer over `patches` patches (the stage's working set: residual stream,
    /// normed input, QKV, attention scores or tiles, attention output; or the MLP's gate and up products).
    public static func visionActivation(_ v: VisionEncoderSpec, patches: Int, kernel: AttentionKernel,
                                        elementBytes: Int) -> Int {
        let p = patches, e = elementBytes
        let width = v.heads * v.headDim
        let stream = 2 * p * v.hidden * e
        let attention = p * 3 * width * e + scoreBytes(queries: p, keys: p, heads: v.heads, kernel: kernel,
                                                       elementBytes: e) + p * width * e
        let mlp = p * v.mlpHidden * e * (v.mlp == .swiglu ? 2 : 1)
        return stream + max(attention, mlp)
    }

    /// Activation bytes of the projector over `patches` patches.
    public static func projectorActivation(_ p: ProjectorSpec, patches: Int, elementBytes: Int) -> Int {
        let tokens = patches / max(1, p.patchesPerToken)
        return patches * p.inputHidden * elementBytes + tokens * (2 * p.outputHidden + 2 * max(p.ffn, 1)) * elementBytes
    }

    /// Activation bytes of one decoder layer for a prefill chunk of `chunk` tokens: residual stream, then the larger
    /// of the attention working set (Q, K, V and output of the chunk plus the attention kernel's scratch, as
    /// `AttentionCostModel` prices it) and the MLP's products.
    public static func decoderActivation(_ d: TextDecoderSpec, chunk: Int, attentionScratch: Int,
                                         elementBytes: Int) -> Int {
        let c = chunk, e = elementBytes
        let stream = 2 * c * d.hidden * e
        let attention = c * (d.queryWidth + 2 * d.kvWidth) * e + attentionScratch + c * d.queryWidth * e
        let mlp = c * d.ffn * e * (d.mlp == .swiglu ? 3 : 1)
        return stream + max(attention, mlp)
    }

    /// Logits buffer: vocab · tokens · 4 bytes (F32), for the tokens whose logits are computed.
    public static func logitsBytes(vocab: Int, tokens: Int) -> Int { vocab * tokens * 4 }
}
