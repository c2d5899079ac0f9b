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

    /// Activation bytes of the decoder for prefill chunks of `chunk` tokens, as the engine holds them: the buffers a
    /// session allocates once and keeps for every pass (residual stream and its norm, Q, K, V, attention output and
    /// output projection, then gate, up and their product: all held at once, not only the larger stage's), the
    /// rotary tables for `positions` positions (cosine and sine, Float32), and the attention kernel's scratch while it
    /// runs (as `AttentionCostModel` prices it).
    public static func decoderActivation(_ d: TextDecoderSpec, chunk: Int, positions: Int, attentionScratch: Int,
                                         elementBytes: Int) -> Int {
        let c = chunk, e = elementBytes
        let stream = 3 * c * d.hidden * e                                   // x, its norm, the output projection
        let attention = c * (2 * d.queryWidth + 2 * d.kvWidth) * e          // Q, K, V, attention output
        let mlp = c * d.ffn * e * (d.mlp == .swiglu ? 3 : 2)                // gate, up, product
        return stream + attention + mlp + rotaryTableBytes(d, positions: positions) + attentionScratch
    }

    /// The rotary tables: cosine and sine of every position for half the rotated dimensions, Float32.
    public static func rotaryTableBytes(_ d: TextDecoderSpec, positions: Int) -> Int {
        2 * positions * max(d.rotaryDims / 2, 1) * 4
    }

    /// Resident bytes of the tokenizer per vocabulary entry: the checkpoint's parsed vocabulary, token types and
    /// merges, and the tables the engine builds from them (ids by text, merge ranks, byte pieces). Measured in an
    /// `autoglm-run` process on SmolLM2-135M's 49,152 entries and 48,900 merges: 3.4 MiB of parsed metadata and
    /// 4.3 MiB of tables, 164 bytes per entry (byte-level BPE vocabularies carry about one merge per entry).
    public static let tokenizerBytesPerEntry = 164

    /// Resident bytes of the tokenizer of a `vocab`-entry vocabulary.
    public static func tokenizerBytes(vocab: Int) -> Int { vocab * tokenizerBytesPerEntry }

    /// Logits buffer: vocab · tokens · 4 bytes (F32), for the tokens whose logits are computed.
    public static func logitsBytes(vocab: Int, tokens: Int) -> Int { vocab * tokens * 4 }
}
