import AutoGLMSpecs
import Foundation
import Testing
@testable import AutoGLMEvaluation

@Suite("Accuracy statistics")
struct AccuracySummaryTests {
    @Test func refusesFewerThan100Tokens() {
        let one = TokenComparison(referenceNLL: 1, planNLL: 1, klDivergence: 0, sameTop1: true)
        #expect(throws: EvaluationError.tooFewScoredTokens(scored: 99, minimum: 100)) {
            try AccuracySummary(Array(repeating: one, count: 99))
        }
        #expect(throws: Never.self) { try AccuracySummary(Array(repeating: one, count: 100)) }
    }

    @Test func identicalLogitsGiveZeroDivergence() {
        let logits: [Float] = [0.5, -1, 3, 2.25, 0]
        let c = logits.withUnsafeBufferPointer {
            TokenComparison.compare(reference: $0.baseAddress!, plan: $0.baseAddress!, vocab: 5, target: 3)
        }
        #expect(c?.klDivergence == 0)
        #expect(c?.sameTop1 == true)
        // NLL = logsumexp − x_target
        let lse = log(logits.map { exp(Double($0)) }.reduce(0, +))
        #expect(abs((c?.referenceNLL ?? 0) - (lse - 2.25)) < 1e-12)
    }

    @Test func divergenceMatchesClosedForm() {
        // P = softmax(0, 0) = (½, ½), Q = softmax(0, ln 3) = (¼, ¾).
        let p: [Float] = [0, 0], q: [Float] = [0, Float(log(3.0))]
        let c = p.withUnsafeBufferPointer { pb in
            q.withUnsafeBufferPointer { qb in
                TokenComparison.compare(reference: pb.baseAddress!, plan: qb.baseAddress!, vocab: 2, target: 0)
            }
        }
        let expected = 0.5 * log(0.5 / 0.25) + 0.5 * log(0.5 / 0.75)
        #expect(abs((c?.klDivergence ?? 0) - expected) < 1e-7)
        // The reference tie resolves to index 0, the plan prefers index 1.
        #expect(c?.sameTop1 == false)
        #expect(abs((c?.planNLL ?? 0) - log(4.0)) < 1e-6)
    }

    @Test func nonFiniteLogitsAreRejected() {
        let p: [Float] = [0, .nan]
        let c = p.withUnsafeBufferPointer {
            TokenComparison.compare(reference: $0.baseAddress!, plan: $0.baseAddress!, vocab: 2, target: 0)
        }
        #expect(c == nil)
    }

    @Test func summaryStatistics() throws {
        // Half the tokens have NLL 1 and half NLL 3 under the reference; the plan adds 0.1 to each.
        var tokens: [TokenComparison] = []
        for i in 0..<200 {
            let r = i % 2 == 0 ? 1.0 : 3.0
            tokens.append(TokenComparison(referenceNLL: r, planNLL: r + 0.1, klDivergence: Double(i) / 1000,
                                          sameTop1: i % 4 != 0))
        }
        let s = try AccuracySummary(tokens)
        #expect(s.scoredTokens == 200)
        #expect(abs(s.pplReference.value - exp(2.0)) < 1e-9)
        #expect(abs(s.pplPlan.value - exp(2.1)) < 1e-9)
        #expect(abs(s.pplRatio.value - exp(0.1)) < 1e-9)
        // Every paired difference is exactly 0.1, so the ratio's standard error vanishes while each PPL's does not.
        #expect(s.pplRatio.uncertainty < 1e-9)
        #expect(s.pplReference.uncertainty > 0.1)
        // SE of the reference mean NLL: sd = sqrt(200/199), divided by sqrt(200).
        let se = (200.0 / 199).squareRoot() / 200.0.squareRoot()
        #expect(abs(s.pplReference.uncertainty - exp(2.0) * se) < 1e-9)
        #expect(abs(s.klMean.value - 0.0995) < 1e-12)
        #expect(abs(s.klP99 - 0.19701) < 1e-9)
        #expect(abs(s.top1Agreement.value - 0.75) < 1e-12)
        #expect(abs(s.top1Agreement.uncertainty - (0.75 * 0.25 / 200).squareRoot()) < 1e-12)
        let block = s.reportBlock(textFile: "t.txt")
        #expect(block.measured && block.scoredTokens == 200)
        #expect(abs((block.accuracyLoss ?? 0) - (exp(0.1) - 1)) < 1e-12)
    }

    @Test func settingsValidate() {
        #expect(throws: EvaluationError.self) { try EvaluationSettings(context: 2).validate() }
        #expect(throws: EvaluationError.self) { try EvaluationSettings(context: 512, maxTokens: 100).validate() }
        #expect(EvaluationSettings(context: 512).scoredPerWindow == 255)
        #expect(EvaluationSettings(context: 256).scoredPerWindow == 127)
    }
}
