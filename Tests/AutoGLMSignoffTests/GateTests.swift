import AutoGLMSignoff
import AutoGLMSpecs
import Foundation
import Testing

@Suite struct GateTests {
    func gate(_ e: ReportEvaluation, _ id: String) throws -> GateResult {
        try #require(e.gates.first { $0.id == id }, "no gate \(id)")
    }

    @Test func passingReportPassesEveryGateFromThePlan() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let e = GateEvaluator.evaluate(try fx.passingReport(), path: "r.json", policy: SignoffPolicy())
        #expect(e.verdict == .pass)
        let peak = try gate(e, "peak_memory")
        #expect(peak.status == .pass)
        #expect(peak.measured == 5_750_000_000)  // the cgroup's peak, not the engine's RSS
        #expect(peak.limit == 6_500_000_000)
        #expect(peak.limitSource == "plan app budget")
        #expect(peak.margin == 750_000_000)
        #expect(try gate(e, "accuracy_loss").limit == 0.05)
        #expect(try gate(e, "accuracy_loss").limitSource == "plan constraints")
        #expect(try gate(e, "ttft").measured == 5.2)
        #expect(try gate(e, "decode_rate").status == .pass)
        #expect(try gate(e, "no_oom").status == .pass)
        // No policy limit and none in the plan: reported, never failing.
        #expect(try gate(e, "kl_mean").status == .noLimit)
        #expect(try gate(e, "memory_prediction_error").status == .noLimit)
    }

    @Test func peakOverBudgetFractionFailsWithReason() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var policy = SignoffPolicy()
        policy.maxPeakBudgetFraction = 0.85
        let e = GateEvaluator.evaluate(try fx.passingReport(), path: "r.json", policy: policy)
        let peak = try gate(e, "peak_memory")
        #expect(peak.status == .fail)
        #expect(peak.limit == 0.85 * 6_500_000_000)
        #expect(peak.reason.contains("exceeds"))
        #expect(peak.reason.contains("85.0%"))
        #expect((peak.margin ?? 0) < 0)
        #expect(e.verdict == .fail)
    }

    @Test func policyOverridesPlanConstraints() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var policy = SignoffPolicy()
        policy.minDecodeTokensPerSecond = 8.5
        policy.maxTTFTSeconds = 5
        let e = GateEvaluator.evaluate(try fx.passingReport(), path: "r.json", policy: policy)
        #expect(try gate(e, "decode_rate").status == .fail)
        #expect(try gate(e, "decode_rate").limitSource == "policy")
        #expect(try gate(e, "ttft").status == .fail)
        #expect(try gate(e, "ttft").reason.contains("exceeds"))
    }

    @Test func predictionErrors() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var policy = SignoffPolicy()
        policy.maxMemoryPredictionError = 0.1
        policy.maxLatencyPredictionError = 0.1
        let e = GateEvaluator.evaluate(try fx.passingReport(), path: "r.json", policy: policy)
        let mem = try gate(e, "memory_prediction_error")
        // |5.90 − 5.75| / 5.75
        #expect(abs((mem.measured ?? 0) - 0.15 / 5.75) < 1e-12)
        #expect(mem.status == .pass)
        let ttft = try gate(e, "ttft_prediction_error")
        #expect(abs((ttft.measured ?? 0) - 1.0 / 5.2) < 1e-12)
        #expect(ttft.status == .fail)
        let decode = try gate(e, "decode_prediction_error")
        #expect(abs((decode.measured ?? 0) - 1.5 / 8.0) < 1e-12)
        #expect(decode.status == .fail)
    }

    @Test func unmeasuredAccuracyIsReportedAndFailsOnlyWhenRequired() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var report = try fx.passingReport()
        var acc = RunReport.Accuracy()
        acc.measured = false
        acc.reason = "synthetic weights"
        report.accuracy = acc
        var policy = SignoffPolicy()
        policy.maxKLMean = 0.05
        let lenient = GateEvaluator.evaluate(report, path: "r.json", policy: policy)
        let g = try gate(lenient, "accuracy_loss")
        #expect(g.status == .notMeasured)
        #expect(g.reason.contains("synthetic weights"))
        #expect(try gate(lenient, "kl_mean").status == .notMeasured)
        #expect(lenient.verdict == .pass)
        policy.requireMeasured = true
        let strict = GateEvaluator.evaluate(report, path: "r.json", policy: policy)
        #expect(strict.verdict == .fail)
        #expect(strict.failures(requireMeasured: true).map(\.id) == ["accuracy_loss", "kl_mean"])
    }

    @Test func oomFails() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var report = try fx.passingReport()
        report.emulation?.oomKilled = true
        report.emulation?.phaseAtExit = "prefill"
        let e = GateEvaluator.evaluate(report, path: "r.json", policy: SignoffPolicy())
        let g = try gate(e, "no_oom")
        #expect(g.status == .fail)
        #expect(g.reason.contains("prefill"))
        var lenient = SignoffPolicy()
        lenient.forbidOOM = false
        #expect(try gate(GateEvaluator.evaluate(report, path: "r.json", policy: lenient), "no_oom").status == .noLimit)
    }

    @Test func projectedBasisUsesTheProjectionAndSaysSo() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var report = try fx.passingReport()
        var proj = RunReport.Projection()
        proj.method = "roofline"
        proj.deviceId = deviceId
        proj.ttftSeconds = 4.4
        proj.decodeTokensPerSecond = 9.1
        report.projected = proj
        var policy = SignoffPolicy()
        policy.latencyBasis = .projected
        let e = GateEvaluator.evaluate(report, path: "r.json", policy: policy)
        let g = try gate(e, "ttft")
        #expect(g.measured == 4.4)
        #expect(g.basis?.contains("not a measurement") == true)
        report.projected = nil
        #expect(try gate(GateEvaluator.evaluate(report, path: "r.json", policy: policy), "ttft").status == .notMeasured)
    }

    @Test func matrixFailsWhenAnyReportFails() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let good = try fx.passingReport()
        var bad = good
        bad.emulation?.peakBytes = 7_000_000_000
        let result = GateEvaluator.evaluate([(path: "a.json", report: good), (path: "b.json", report: bad)],
                                            policy: SignoffPolicy())
        #expect(result.evaluations.map(\.verdict) == [.pass, .fail])
        #expect(result.verdict == .fail)
    }
}
