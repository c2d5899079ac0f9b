import Foundation

/// Llama (SmolLM2, Llama 2/3): pre-norm blocks, separate Q/K/V without bias, SwiGLU with separate gate and up,
/// full rotary on every head dimension (GGUF stores Q/K rows permuted for adjacent-pair rotation), tied or untied head.
enum LlamaArchitecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        let embedding = try DecoderModel.loadEmbedding(w, config: c)
        var blocks: [DecoderBlock] = []
        for i in 0..<c.layers {
            let p = "blk.\(i)."
            let attention = SelfAttention(
                projections: .separate(
                    q: Linear(weight: try w.matrix(p + "attn_q.weight", rows: c.queryWidth, columns: c.hidden),
                              bias: try w.optionalVector(p + "attn_q.bias", count: c.queryWidth)),
                    k: Linear(weight: try w.matrix(p + "attn_k.weight", rows: c.kvWidth, columns: c.hidden),
                              bias: try w.optionalVector(p + "attn_k.bias", count: c.kvWidth)),
                    v: Linear(weight: try w.matrix(p + "attn_v.weight", rows: c.kvWidth, columns: c.hidden),
                              bias: try w.optionalVector(p + "attn_v.bias", count: c.kvWidth))),
                output: Linear(weight: try w.matrix(p + "attn_output.weight", rows: c.hidden, columns: c.queryWidth)))
            let mlp = FeedForward(
                gateUp: .separate(gate: Linear(weight: try w.matrix(p + "ffn_gate.weight", rows: c.ffn, columns: c.hidden)),
                                  up: Linear(weight: try w.matrix(p + "ffn_up.weight", rows: c.ffn, columns: c.hidden))),
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
