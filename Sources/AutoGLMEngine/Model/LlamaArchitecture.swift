import Foundation

/// Llama (SmolLM2, Llama 2/3): pre-norm blocks, separate Q/K/V without bias, SwiGLU with separate gate and up,
/// full rotary on every head dimension (GGUF stores Q/K rows permuted for adjacent-pair rotation), tied or untied head.
enum LlamaArchitecture {
    @Sendable static func build(_ c: DecoderConfig, _ w: WeightLoader) throws -> DecoderModel {
        try DecoderModel.assemble(c, w) { p in
            // Q (queryWidth, hidden), K and V (kvWidth, hidden), each with a bias where the checkpoint has one.
            let attention = SelfAttention(
                projections: .separate(
                    q: try w.linear(p + "attn_q", rows: c.queryWidth, columns: c.hidden, bias: .optional),
                    k: try w.linear(p + "attn_k", rows: c.kvWidth, columns: c.hidden, bias: .optional),
                    v: try w.linear(p + "attn_v", rows: c.kvWidth, columns: c.hidden, bias: .optional)),
                output: try w.linear(p + "attn_output", rows: c.hidden, columns: c.queryWidth))
            // gate and up (ffn, hidden), down (hidden, ffn).
            let mlp = FeedForward(
                gateUp: .separate(gate: try w.linear(p + "ffn_gate", rows: c.ffn, columns: c.hidden),
                                  up: try w.linear(p + "ffn_up", rows: c.ffn, columns: c.hidden)),
                down: try w.linear(p + "ffn_down", rows: c.hidden, columns: c.ffn))
            return (attention, mlp)
        }
    }
}
