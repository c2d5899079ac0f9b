import AutoGLMSignoff
import AutoGLMSpecs
import Foundation
import Testing

@Suite struct PolicyTests {
    func policy(_ json: String) throws -> SignoffPolicy {
        let fx = try Fixture()
        defer { fx.remove() }
        return try SignoffPolicy.load(try fx.write(text: json, as: "signoff.json"))
    }

    func error(_ json: String) throws -> String {
        do {
            _ = try policy(json)
        } catch let e as SignoffError {
            return e.description
        }
        Issue.record("expected the policy to be rejected: \(json)")
        return ""
    }

    @Test func fullPolicyDecodes() throws {
        let p = try policy("""
            {"schema_version": 1, "max_accuracy_loss": 0.04, "max_kl_mean": 0.05, "min_top1_agreement": 0.9,
             "min_decode_tokens_per_second": 6, "max_ttft_seconds": 7.5, "max_peak_budget_fraction": 0.9,
             "max_memory_prediction_error": 0.2, "max_latency_prediction_error": 0.5, "forbid_oom": true,
             "require_measured": true, "latency_basis": "projected"}
            """)
        #expect(p.maxAccuracyLoss == 0.04)
        #expect(p.maxKLMean == 0.05)
        #expect(p.minTop1Agreement == 0.9)
        #expect(p.minDecodeTokensPerSecond == 6)
        #expect(p.maxTTFTSeconds == 7.5)
        #expect(p.maxPeakBudgetFraction == 0.9)
        #expect(p.maxMemoryPredictionError == 0.2)
        #expect(p.maxLatencyPredictionError == 0.5)
        #expect(p.requireMeasured)
        #expect(p.latencyBasis == .projected)
    }

    @Test func emptyPolicyTakesDefaults() throws {
        let p = try policy("{}")
        #expect(p == SignoffPolicy())
        #expect(p.maxPeakBudgetFraction == 1)
        #expect(p.forbidOOM)
        #expect(!p.requireMeasured)
        #expect(p.maxAccuracyLoss == nil)
    }

    @Test(arguments: [
        (#"{"max_peak_budget_fraction": 1.5}"#, "max_peak_budget_fraction"),
        (#"{"min_top1_agreement": 2}"#, "min_top1_agreement"),
        (#"{"max_ttft_seconds": -1}"#, "max_ttft_seconds"),
        (#"{"max_ttft_seconds": "fast"}"#, "max_ttft_seconds"),
        (#"{"latency_basis": "guessed"}"#, "latency_basis"),
        (#"{"schema_version": 2}"#, "schema_version"),
        (#"{"max_peak_fraction": 0.9}"#, "max_peak_fraction"),
        (#"{"forbid_oom": "yes"}"#, "forbid_oom"),
    ])
    func malformedPolicyNamesTheField(json: String, field: String) throws {
        let message = try error(json)
        #expect(message.contains("'\(field)'"), "\(message)")
        #expect(message.contains("signoff.json"), "\(message)")
    }

    @Test func invalidJSONIsReported() throws {
        let message = try error("{\"max_ttft_seconds\": ")
        #expect(message.contains("invalid JSON"), "\(message)")
    }
}
