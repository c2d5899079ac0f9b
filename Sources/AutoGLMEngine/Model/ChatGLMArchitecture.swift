import Foundation

/// ChatGLM / GLM-4 as converted under GGUF `chatglm`: one fused `attn_qkv` projection with bias (rows [q | k | v]),
/// output without bias, fused gate_up in `ffn_up`, two norms per layer, partial interleaved rotary.
enum ChatGLMArchitecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        let embedding = try DecoderModel.loadEmbedding(w, config: c)
        let fusedWidth = c.queryWidth + 2 * c.kvWidth
        var blocks: [DecoderBlock] = []
        for i in 0..<c.layers {
            let p = "blk.\(i)."
            let attention = SelfAttention(
                projections: .fused(qkv: Linear(
                    weight: try w.matrix(p + "attn_qkv.weight", rows: fusedWidth, columns: c.hidden),
                    bias: try w.optionalVector(p + "attn_qkv.bias", count: fusedWidth))),
                output: Linear(weight: try w.matrix(p + "attn_output.weight", rows: c.hidden, columns: c.queryWidth)))
            let mlp = FeedForward(
                gateUp: .fused(Linear(weight: try w.matrix(p + "ffn_up.weight", rows: 2 * c.ffn, columns: c.hidden))),
                down: Linear(weight: try w.matrix(p + "ffn_down.weight", rows: c.hidden, columns: c.ffn)))
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
