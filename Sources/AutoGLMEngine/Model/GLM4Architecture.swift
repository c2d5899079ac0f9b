import Foundation

/// GLM-4 (GGUF `glm4`): Q/K/V with bias, output without; `ffn_up` holds the fused gate_up projection (first half of
/// its rows the gate, second half up); four RMSNorms per layer — attn_norm and ffn_norm before, post_attention_norm
/// and post_ffw_norm on the sublayer outputs before each residual add; partial interleaved rotary (half the head).
enum GLM4Architecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        try DecoderModel.assemble(c, w) { p in
            // Q (queryWidth, hidden), K and V (kvWidth, hidden), each with its bias.
            let attention = SelfAttention(
                projections: .separate(
                    q: try w.linear(p + "attn_q", rows: c.queryWidth, columns: c.hidden, bias: .required),
                    k: try w.linear(p + "attn_k", rows: c.kvWidth, columns: c.hidden, bias: .required),
                    v: try w.linear(p + "attn_v", rows: c.kvWidth, columns: c.hidden, bias: .required)),
                output: try w.linear(p + "attn_output", rows: c.hidden, columns: c.queryWidth),
                postNorm: try DecoderModel.norm(w, p + "post_attention_norm.weight", config: c))
            // gate_up (2·ffn, hidden), down (hidden, ffn).
            let mlp = FeedForward(
                gateUp: .fused(try w.linear(p + "ffn_up", rows: 2 * c.ffn, columns: c.hidden)),
                down: try w.linear(p + "ffn_down", rows: c.hidden, columns: c.ffn),
                postNorm: try DecoderModel.norm(w, p + "post_ffw_norm.weight", config: c))
            return (attention, mlp)
        }
    }
}
