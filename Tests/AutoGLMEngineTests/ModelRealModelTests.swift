import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("SmolLM2 forward pass and generation")
struct ModelRealModelTests {
    @Test func realModelGreedyTokensFromIDs() throws {
        let file = try ModelTestSupport.smolLM2()
        let model = try DecoderModel.load(gguf: file)
        let session = try InferenceSession(model: model, capacity: 256, pool: ModelTestSupport.pool)
        let prompt: [Int32] = [1, 9690, 198, 2683, 359, 253, 5356]
        let result = try session.generate(prompt: prompt, maxTokens: 16, stopTokens: [])
        print("greedy:", result.tokens, result.prefillTokensPerSecond, result.decodeTokensPerSecond)
        #expect(result.tokens.count == 16)
    }
}
