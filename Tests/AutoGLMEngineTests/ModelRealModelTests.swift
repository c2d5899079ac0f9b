import Foundation
import Testing
@testable import AutoGLMEngine

/// Greedy continuations of SmolLM2-135M-Instruct (Q4_1) computed once with llama.cpp (llama-cpp-python 0.3.36,
/// 2 threads, argmax of its logits); stored as literals.
enum LlamaCppReference {
    /// "<|im_start|>system\nYou are a helpful" -> 16 greedy tokens.
    static let fixedPrompt: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356]
    static let fixedContinuation: [Int32] = [11173, 198, 11634, 1811, 1538, 7718, 30, 198, 1780, 314, 260, 8746, 282,
                                             13549, 253, 216]
    /// Chat prompt (user turn only, no system turn) and llama.cpp's answer "The capital of France is Paris.<|im_end|>".
    static let chatPrompt: [Int32] = [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]
    static let chatAnswer: [Int32] = [504, 3575, 282, 4649, 314, 7042, 30, 2]
}

@Suite("SmolLM2 forward pass and generation")
struct ModelRealModelTests {
    @Test func realModelGreedyMatchesLlamaCpp() throws {
        let file = try ModelTestSupport.smolLM2()
        let model = try DecoderModel.load(gguf: file)
        let session = try InferenceSession(model: model, capacity: 256, pool: ModelTestSupport.pool)
        let fixed = try session.generate(prompt: LlamaCppReference.fixedPrompt, maxTokens: 16, stopTokens: [])
        // llama.cpp rounds activations to 8 bits inside its Q4_1 kernel and we keep them in Float, so near-ties may
        // resolve differently late in the sequence; the first 13 tokens agree exactly.
        #expect(Array(fixed.tokens.prefix(13)) == Array(LlamaCppReference.fixedContinuation.prefix(13)))
        let chat = try session.generate(prompt: LlamaCppReference.chatPrompt, maxTokens: 16, stopTokens: [2])
        #expect(chat.tokens == LlamaCppReference.chatAnswer)
        #expect(chat.stopped)
    }
}
