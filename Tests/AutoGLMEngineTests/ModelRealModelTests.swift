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

    @Test("realModel: decode deep in a context (keys split over the pool's threads) gives one thread's logits")
    func realModelDecodeAtDepthMatchesOneThread() throws {
        let file = try ModelTestSupport.smolLM2()
        let model = try DecoderModel.load(gguf: file)
        // 1,100 context tokens: past the 1,024 keys from which a decode step splits its keys over 2 threads.
        let context = (0..<1_100).map { Int32(100 + ($0 * 7_919) % 40_000) }
        let c = model.config
        func workers(keys: Int) -> Int {
            Attention.callWorkers(n: 1, kernel: .tiled, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                  format: .f32, blockSparse: false, keys: keys, threads: 2)
        }
        #expect(workers(keys: context.count + 1) == 2)
        #expect(workers(keys: 512) == 1)
        func lastLogits(pool: ComputePool?) throws -> [Float] {
            let session = try InferenceSession(model: model, capacity: 1_200, pool: pool)
            _ = try session.forward(context)
            var logits: [Float] = []
            for token: Int32 in [504, 3575, 282] { logits = Array(try session.forward([token])) }
            return logits
        }
        let split = try lastLogits(pool: ModelTestSupport.pool)
        let single = try lastLogits(pool: nil)
        let scale = single.map(abs).max() ?? 1
        let worst = zip(split, single).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * scale, "largest logit difference \(worst) of \(scale)")
        #expect(split.indices.max { split[$0] < split[$1] } == single.indices.max { single[$0] < single[$1] })
    }

    @Test("realModel: the phase clock divides prefill and decode passes among their steps, and only while set")
    func realModelPhaseClockCoversThePass() throws {
        let model = try DecoderModel.load(gguf: try ModelTestSupport.smolLM2())
        let session = try InferenceSession(model: model, capacity: 64, pool: ModelTestSupport.pool)
        let clock = PhaseClock()
        session.phaseClock = clock
        let start = Clock.now()
        _ = try session.forward(LlamaCppReference.fixedPrompt)
        for token: Int32 in [504, 3575, 282, 4649] { _ = try session.forward([token]) }
        let wall = Clock.now() - start
        let totals = clock.totals
        // Every step of a llama layer ran, and the steps account for the passes (the rest is argument checks).
        for phase in ForwardPhase.allCases { #expect(totals[phase, default: 0] > 0, "\(phase) not timed") }
        #expect(clock.total <= wall)
        #expect(clock.total >= 0.9 * wall, "steps \(clock.total) s of \(wall) s")
        let matrices: [ForwardPhase] = [.qkv, .output, .gateUp, .down, .head]
        #expect(matrices.reduce(0) { $0 + totals[$1, default: 0] } > 0.3 * clock.total)
        session.phaseClock = nil
        _ = try session.forward([7042])
        #expect(clock.totals == totals)
    }

    @Test("realModel: bench with phases puts each step's seconds per token in both records")
    func realModelBenchRecordsPhases() throws {
        let model = try DecoderModel.load(gguf: try ModelTestSupport.smolLM2())
        // With a context before each test: its untimed prefill must not reach the clock.
        let bench = ModelBenchmark(promptTokens: 32, generatedTokens: 4, repeats: 2, warmups: 1, depth: 64, phases: true)
        let records = try bench.run(model: model, modelName: "smollm2", label: "q4_1", buildCommit: "test",
                                    pool: ModelTestSupport.pool)
        #expect(records.count == 2)
        for r in records {
            let phases = try #require(r.phaseSeconds, "\(r.test) has no phases")
            #expect(Set(phases.keys) == Set(ForwardPhase.allCases.map(\.rawValue)))
            let forward = phases.values.reduce(0, +)
            // Phases are timed inside the timed passes: never more than the wall time per token.
            #expect(forward > 0 && forward <= r.secondsPerToken * 1.0001, "\(r.test): \(forward) s of \(r.secondsPerToken) s")
        }
        let table = BenchmarkPrinter.table(records)
        #expect(table.contains("| q4_1 | tg4 @ d64 |") && table.contains("gate_up"))
        let plain = try ModelBenchmark(promptTokens: 8, generatedTokens: 2, repeats: 1, warmups: 0)
            .run(model: model, modelName: "smollm2", label: "q4_1", buildCommit: "test", pool: ModelTestSupport.pool)
        #expect(plain.allSatisfy { $0.phaseSeconds == nil })
        #expect(!BenchmarkPrinter.table(plain).contains("µs per token"))
    }
}
