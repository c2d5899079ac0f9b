import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("Sampling and session limits")
struct ModelSamplingTests {
    static let logits: [Float] = [0.1, 2.5, -1, 2.4, 0, 1.9, -3, 0.5]

    @Test func greedyPicksTheLargestLogit() {
        var s = Sampler(.greedy)
        #expect(Self.logits.withUnsafeBufferPointer { s.next($0) } == 1)
    }

    @Test func tinyTopPKeepsOnlyTheMostLikelyToken() {
        var s = Sampler(SamplingSettings(temperature: 1, topP: 0.01, seed: 3))
        for _ in 0..<20 { #expect(Self.logits.withUnsafeBufferPointer { s.next($0) } == 1) }
    }

    @Test func sameSeedSameDrawsAndTemperatureSpreadsThem() {
        func draws(_ seed: UInt64) -> [Int32] {
            var s = Sampler(SamplingSettings(temperature: 1.5, topP: 1, seed: seed))
            return (0..<200).map { _ in Self.logits.withUnsafeBufferPointer { s.next($0) } }
        }
        let a = draws(42)
        #expect(a == draws(42))
        #expect(a != draws(43))
        #expect(Set(a).count >= 4)
        // Token 1 (the largest logit) is drawn most often.
        let counts = Dictionary(grouping: a, by: { $0 }).mapValues(\.count)
        #expect(counts[1] == counts.values.max())
    }

    @Test func invalidSettingsAreRejected() {
        #expect(throws: ModelError.self) { try SamplingSettings(temperature: -1).validate() }
        #expect(throws: ModelError.self) { try SamplingSettings(temperature: 1, topP: 0).validate() }
        #expect(throws: ModelError.self) { try SamplingSettings(temperature: .nan).validate() }
    }

    @Test func sessionRejectsBadTokensAndFullContext() throws {
        let tiny = TinyGLM4(seed: 1)
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try tiny.write(to: path)
        let model = try DecoderModel.load(gguf: try GGUFFile(path: path))
        let session = try InferenceSession(model: model, capacity: 4, pool: nil)
        #expect(throws: ModelError.tokenOutOfRange(token: 128, vocab: 128)) { try session.forward([1, 128]) }
        #expect(throws: ModelError.tokenOutOfRange(token: -1, vocab: 128)) { try session.forward([-1]) }
        #expect(session.length == 0)
        _ = try session.forward([1, 2, 3])
        #expect(throws: ModelError.contextFull(needed: 5, capacity: 4)) { try session.forward([4, 5]) }
        #expect(session.length == 3)
        #expect(throws: ModelError.self) {
            try session.generate(prompt: [1, 2, 3], maxTokens: 3, stopTokens: [])
        }
        let result = try session.generate(prompt: [1, 2], maxTokens: 3, stopTokens: [])
        #expect(result.tokens.count == 3)
        #expect(result.promptTokens == 2)
        #expect(throws: ModelError.self) { try InferenceSession(model: model, capacity: 0, pool: nil) }
    }

    @Test func unknownArchitectureIsNamed() throws {
        let config = DecoderConfig(architecture: "mamba", layers: 1, hidden: 32, heads: 2, kvHeads: 1, ffn: 64,
                                   vocab: 10)
        final class Empty: TensorSource {
            func sourceTensor(named name: String) throws -> SourceTensor? { nil }
            var sourceTensorNames: [String] { [] }
        }
        #expect(throws: ModelError.unsupportedArchitecture(name: "mamba", known: ["chatglm", "glm4", "llama"])) {
            try DecoderModel.load(config: config, source: Empty())
        }
    }
}
