import Foundation

/// GLM-4 (GGUF `glm4`): Q/K/V with bias, output without; `ffn_up` holds the fused gate_up projection (first half of
/// its rows the gate, second half up); four RMSNorms per layer — attn_norm and ffn_norm before, post_attention_norm
/// and post_ffw_norm on the sublayer outputs before each residual add; partial interleaved rotary (half the head).
enum GLM4Architecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        let embedding = try DecoderModel.loadEmbedding(w, config: c)
        var blocks: [DecoderBlock] = []
        for i in 0..<c.layers {
            let p = "blk.\(i)."
            let attention = SelfAttention(
                projections: .separate(
                    q: Linear(weight: try w.matrix(p + "attn_q.weight", rows: c.queryWidth, columns: c.hidden),
                              bias: try w.vector(p + "attn_q.bias", count: c.queryWidth)),
                    k: Linear(weight: try w.matrix(p + "attn_k.weight", rows: c.kvWidth, columns: c.hidden),
                              bias: try w.vector(p + "attn_k.bias", count: c.kvWidth)),
                    v: Linear(weight: try w.matrix(p + "attn_v.weight", rows: c.kvWidth, columns: c.hidden),
                              bias: try w.vector(p + "attn_v.bias", count: c.kvWidth))),
                output: Linear(weight: try w.matrix(p + "attn_output.weight", rows: c.hidden, columns: c.queryWidth)),
                postNorm: try DecoderModel.norm(w, p + "post_attention_norm.weight", config: c))
            let mlp = FeedForward(
                gateUp: .fused(Linear(weight: try w.matrix(p + "ffn_up.weight", rows: 2 * c.ffn, columns: c.hidden))),
                down: Linear(weight: try w.matrix(p + "ffn_down.weight", rows: c.hidden, columns: c.ffn)),
                postNorm: try DecoderModel.norm(w, p + "post_ffw_norm.weight", config: c))
            blocks.append(DecoderBlock(attentionNorm: try DecoderModel.norm(w, p + "attn_norm.weight", config: c),
                                       attention: attention,
                                       ffnNorm: try DecoderModel.norm(w, p + "ffn_norm.weight", config: c),
                                       feedForward: mlp))
        }
        let outputNorm = try DecoderModel.norm(w, "output_norm.weight", config: c)
        let (head, tied) = try DecoderModel.loadHead(w, config: c, embedding: embedding)
        return DecoderModel(config: c, embedding: Embedding(table: embedding), blocks: blocks, outputNorm: outputNorm,
                            head: head, tiedHead: tied, residentBytesByModule: w.residentBytesByModule,
                            tensorFormats: w.formats)
    }
}
