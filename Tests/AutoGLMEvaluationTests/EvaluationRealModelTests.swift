import AutoGLMEngine
import Foundation
import Testing
@testable import AutoGLMEvaluation

/// Accuracy of converted SmolLM2 weights against the same checkpoint dequantised to F32, on two windows of 256
/// tokens of the GPL-3 text (254 scored tokens).
@Suite("Evaluation on SmolLM2", .serialized)
struct EvaluationRealModelTests {
    static var modelPath: String {
        if let env = ProcessInfo.processInfo.environment["AUTOGLM_SMOLLM2"], !env.isEmpty { return env }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    static func checkpoint(_ policy: WeightFormatPolicy,
                           activations: ActivationPrecision = .float32) throws -> LoadedCheckpoint {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            Issue.record("SmolLM2 checkpoint not found at \(modelPath): run `make models` or set AUTOGLM_SMOLLM2")
            throw EvaluationError.unreadableText(file: modelPath, reason: "missing checkpoint")
        }
        return try LoadedCheckpoint(path: modelPath, policy: policy, activations: activations)
    }

    static let pool = ComputePool(threadCount: 2)

    /// The F32 reference, loaded once for every case.
    static let reference = Result { try checkpoint(.uniform(.f32)) }

    /// (format, max mean KL, min top-1 agreement, min mean KL). Every matrix, embedding included, is converted
    /// (the checkpoint's embedding is Q8_0, its layers Q4_1); nil keeps the checkpoint as stored.
    static let cases: [(PackedFormat?, Double, Double, Double)] = [
        (nil, 0.001, 0.98, 0),          // the stored weights themselves: only float rounding differs
        (.q8_0, 0.01, 0.97, 0),         // 8-bit re-quantisation of the Q4_1 values
        (.int4g32, 0.2, 0.8, 0.005),    // layers re-expressed almost exactly; the Q8_0 embedding drops to 4 bits
        (.int4g128, 0.6, 0.6, 0.01),    // coarser groups (g64 where rows of 576 are not a multiple of 128)
        (.q4_0, 1.0, 0.5, 0.01),        // symmetric 4-bit re-quantisation of 4-bit values (double quantisation)
    ]

    @Test(arguments: cases)
    func realModelAccuracyAgainstF32(format: PackedFormat?, maxKL: Double, minTop1: Double, minKL: Double) throws {
        let reference = try Self.reference.get()
        let plan = try Self.checkpoint(format.map { .uniform($0) } ?? .checkpoint)
        let text = try EvaluationText.load(["/usr/share/common-licenses/GPL-3"])
        let settings = EvaluationSettings(context: 256, maxTokens: 512)
        let (s, comparisons) = try PlanEvaluation.evaluate(plan: plan, reference: reference.model, text: text,
                                                           textName: "GPL-3", settings: settings, pool: Self.pool)
        print("\(format?.rawValue ?? "checkpoint"): PPL ref \(s.pplReference.value) plan \(s.pplPlan.value) ratio \(s.pplRatio.value) ± \(s.pplRatio.uncertainty) KL \(s.klMean.value) ± \(s.klMean.uncertainty) p99 \(s.klP99) top1 \(s.top1Agreement.value)")
        #expect(comparisons.count == 254)
        #expect(s.scoredTokens == 254)
        #expect(s.klMean.value <= maxKL)
        #expect(s.klMean.value >= minKL)
        #expect(s.top1Agreement.value >= minTop1)
        #expect(s.pplReference.value > 1 && s.pplReference.value < 100)
        #expect(abs(s.pplRatio.value - 1) < 0.6)
    }

    /// The stored weights with prefill activations rounded to 8 bits: the cost of the rounding alone (the weights
    /// are the reference's, so F32 activations give KL ≈ 0). Windows of 256 tokens run the integer kernels.
    @Test func realModelInt8ActivationsCostAgainstF32() throws {
        let reference = try Self.reference.get()
        let plan = try Self.checkpoint(.checkpoint, activations: .int8)
        let text = try EvaluationText.load(["/usr/share/common-licenses/GPL-3"])
        let settings = EvaluationSettings(context: 256, maxTokens: 512)
        let (s, _) = try PlanEvaluation.evaluate(plan: plan, reference: reference.model, text: text, textName: "GPL-3",
                                                 settings: settings, pool: Self.pool)
        print("int8 activations: PPL ratio \(s.pplRatio.value) KL \(s.klMean.value) p99 \(s.klP99) top1 \(s.top1Agreement.value)")
        #expect(s.scoredTokens == 254)
        if MatrixKernels.effectiveActivations(.int8) == .int8 {
            // Measured on 2,040 tokens of GPL-3 + Apache-2.0: mean KL 0.0035, top-1 96%, PPL ratio 1.0025.
            #expect(s.klMean.value > 1e-4 && s.klMean.value < 0.02, "mean KL \(s.klMean.value)")
            #expect(s.top1Agreement.value >= 0.9)
            #expect(abs(s.pplRatio.value - 1) < 0.02)
        } else {
            #expect(s.klMean.value < 0.001)             // no integer kernels here: Float32 activations
        }
    }
}
