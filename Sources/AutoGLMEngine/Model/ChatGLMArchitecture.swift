import Foundation

/// ChatGLM / GLM-4 as converted under GGUF `chatglm`: one fused `attn_qkv` projection with bias (rows [q | k | v]),
/// output without bias, fused gate_up in `ffn_up`, two norms per layer, partial interleaved rotary.
enum ChatGLMArchitecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        try DecoderModel.assemble(c, w) { p in
            // QKV (queryWidth + 2·kvWidth, hidden) with a bias where the checkpoint has one.
            let attention = SelfAttention(
                projections: .fused(qkv: try w.linear(p + "attn_qkv", rows: c.queryWidth + 2 * c.kvWidth,
                                                      columns: c.hidden, bias: .optional)),
                output: try w.linear(p + "attn_output", rows: c.hidden, columns: c.queryWidth))
            // gate_up (2·ffn, hidden), down (hidden, ffn).
            let mlp = FeedForward(
                gateUp: .fused(try w.linear(p + "ffn_up", rows: 2 * c.ffn, columns: c.hidden)),
                down: try w.linear(p + "ffn_down", rows: c.hidden, columns: c.ffn))
            return (attention, mlp)
        }
    }
}
