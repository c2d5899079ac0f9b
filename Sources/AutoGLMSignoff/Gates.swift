import AutoGLMSpecs
import Foundation

/// The outcome of one gate.
public enum GateStatus: String, Codable, Sendable, CaseIterable {
    case pass
    case fail
    /// The run did not measure the figure (e.g. accuracy on synthetic weights). Fails only under `require_measured`.
    case notMeasured = "not_measured"
    /// Neither the policy nor the plan sets a limit for this gate; it is reported and never fails.
    case noLimit = "no_limit"

    public var label: String {
        switch self {
        case .pass: return "PASS"
        case .fail: return "FAIL"
        case .notMeasured: return "NOT MEASURED"
        case .noLimit: return "NO LIMIT"
        }
    }
}

public enum Verdict: String, Codable, Sendable {
    case pass, fail
    public var label: String { rawValue.uppercased() }
}

/// The direction of a limit.
public enum Comparison: String, Codable, Sendable {
    case atMost = "<="
    case atLeast = ">="
    public var symbol: String { self == .atMost ? "≤" : "≥" }
}

/// Units gate figures are expressed in; they drive formatting.
public enum GateUnit: String, Codable, Sendable {
    case bytes, seconds
    case tokensPerSecond = "tokens_per_second"
    case ratio, fraction, nats, count

    public func format(_ value: Double) -> String {
        switch self {
        case .bytes: return SignoffFormat.bytes(value)
        case .seconds: return SignoffFormat.seconds(value)
        case .tokensPerSecond: return SignoffFormat.number(value, digits: 2) + " tok/s"
        case .ratio: return SignoffFormat.number(value, digits: 4)
        case .fraction: return SignoffFormat.percent(value)
        case .nats: return SignoffFormat.number(value, digits: 4) + " nats"
        case .count: return SignoffFormat.number(value, digits: 0)
        }
    }
}

/// One gate evaluated on one run report.
public struct GateResult: Codable, Sendable, Equatable {
    /// Stable identifier, e.g. `peak_memory`.
    public var id: String
    public var title: String
    public var status: GateStatus
    public var comparison: Comparison
    public var unit: GateUnit
    /// The figure compared with the limit; nil when not measured.
    public var measured: Double?
    /// What the plan predicted for the same figure, when it predicts one.
    public var predicted: Double?
    public var limit: Double?
    /// Where the limit came from ("policy", "plan constraints", "plan app budget × policy fraction", ...).
    public var limitSource: String?
    /// Where the measured figure came from ("cgroup peak", "host measurement", "projection: <method>", ...).
    public var basis: String?
    /// One readable sentence: why the gate passed or failed.
    public var reason: String

    enum CodingKeys: String, CodingKey {
        case id, title, status, comparison, unit, measured, predicted, limit
        case limitSource = "limit_source", basis, reason
    }

    /// Headroom in the gate's unit: positive when the figure is on the good side of the limit.
    public var margin: Double? {
        guard let measured, let limit else { return nil }
        return comparison == .atMost ? limit - measured : measured - limit
    }

    /// Headroom as a fraction of the limit.
    public var relativeMargin: Double? {
        guard let margin, let limit, limit != 0 else { return nil }
        return margin / abs(limit)
    }

    /// Whether this gate makes the report fail under `policy`.
    public func fails(requireMeasured: Bool) -> Bool {
        status == .fail || (status == .notMeasured && requireMeasured)
    }
}

/// The gates of one run report.
public struct ReportEvaluation: Codable, Sendable, Equatable {
    public var reportPath: String
    public var kind: RunReport.Kind
    public var deviceId: String
    public var modelId: String
    public var workloadId: String
    public var buildCommit: String
    /// How the run's prefill multiplied activations ("f32", "int8"), as its report says; nil when the report does
    /// not say (written before the choice existed, or an emulation).
    public var prefillActivations: String?
    public var gates: [GateResult]
    public var verdict: Verdict

    enum CodingKeys: String, CodingKey {
        case reportPath = "report_path", kind, deviceId = "device_id", modelId = "model_id"
        case workloadId = "workload_id", buildCommit = "build_commit", prefillActivations = "prefill_activations"
        case gates, verdict
    }

    /// " (prefill activations int8)" for a run that rounded them, else "".
    public var arithmeticNote: String { prefillActivations == "int8" ? " (prefill activations int8)" : "" }

    /// The gates that make this report fail, with their reasons.
    public func failures(requireMeasured: Bool) -> [GateResult] {
        gates.filter { $0.fails(requireMeasured: requireMeasured) }
    }
}

/// Every report's gates under one policy; the verdict passes only when every report passes.
public struct SignoffResult: Codable, Sendable, Equatable {
    public var policy: SignoffPolicy
    public var evaluations: [ReportEvaluation]
    public var verdict: Verdict

    enum CodingKeys: String, CodingKey { case policy, evaluations, verdict }

    public init(policy: SignoffPolicy, evaluations: [ReportEvaluation]) {
        self.policy = policy
        self.evaluations = evaluations
        verdict = evaluations.allSatisfy { $0.verdict == .pass } ? .pass : .fail
    }
}

/// Evaluates a policy's gates on run reports.
public enum GateEvaluator {
    /// All gates for one report. `path` labels the report in results.
    public static func evaluate(_ report: RunReport, path: String, policy: SignoffPolicy) -> ReportEvaluation {
        let gates = [
            accuracyLoss(report, policy), klMean(report, policy), top1(report, policy),
            decodeRate(report, policy), ttft(report, policy), peakMemory(report, policy),
            memoryPredictionError(report, policy), ttftPredictionError(report, policy),
            decodePredictionError(report, policy), noOOM(report, policy),
        ]
        let failed = gates.contains { $0.fails(requireMeasured: policy.requireMeasured) }
        return ReportEvaluation(
            reportPath: path, kind: report.kind,
            deviceId: report.plan.deviceId.isEmpty ? (report.projected?.deviceId ?? "") : report.plan.deviceId,
            modelId: report.plan.modelId, workloadId: report.workload.id, buildCommit: report.build.commit,
            prefillActivations: report.measured.prefillActivations, gates: gates, verdict: failed ? .fail : .pass)
    }

    public static func evaluate(_ reports: [(path: String, report: RunReport)], policy: SignoffPolicy) -> SignoffResult {
        SignoffResult(policy: policy, evaluations: reports.map { evaluate($0.report, path: $0.path, policy: policy) })
    }

    // MARK: - Gate construction

    /// Builds a gate from its limit and figure, deciding the status and writing the reason.
    static func gate(
        id: String, title: String, comparison: Comparison, unit: GateUnit,
        measured: Double?, predicted: Double?, limit: (value: Double, source: String)?, basis: String?,
        notMeasuredReason: String, limitNote: String = ""
    ) -> GateResult {
        var result = GateResult(
            id: id, title: title, status: .noLimit, comparison: comparison, unit: unit,
            measured: measured.flatMap { $0.isFinite ? $0 : nil }, predicted: predicted, limit: limit?.value,
            limitSource: limit?.source, basis: basis, reason: "")
        guard let limit else {
            let figure = result.measured.map { "measured \(unit.format($0))" } ?? notMeasuredReason
            result.reason = "\(title): no limit in the policy or the plan (\(figure))"
            return result
        }
        let limitText = "\(comparison.symbol) \(unit.format(limit.value))\(limitNote) [\(limit.source)]"
        guard let value = result.measured else {
            result.status = .notMeasured
            result.reason = "\(title): not measured — \(notMeasuredReason); limit \(limitText)"
            return result
        }
        let ok = comparison == .atMost ? value <= limit.value : value >= limit.value
        result.status = ok ? .pass : .fail
        let verb: String
        if ok {
            verb = "within"
        } else {
            verb = comparison == .atMost ? "exceeds" : "falls short of"
        }
        let diff = abs(value - limit.value)
        let by = ok ? "margin \(unit.format(diff))" : "by \(unit.format(diff))"
        result.reason = "\(title) \(unit.format(value)) \(verb) the limit \(limitText), \(by)"
        return result
    }

    static func accuracyNotMeasured(_ report: RunReport) -> String? {
        guard let acc = report.accuracy else { return "the report has no accuracy section" }
        guard acc.measured else { return "accuracy not measured" + (acc.reason.map { ": \($0)" } ?? "") }
        return nil
    }

    static func accuracyLoss(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let limit = p.maxAccuracyLoss.map { ($0, "policy") }
            ?? r.plan.constraints.maxAccuracyLoss.map { ($0, "plan constraints") }
        let why = accuracyNotMeasured(r)
        var value: Double?
        if why == nil, let acc = r.accuracy { value = acc.accuracyLoss ?? acc.pplRatio.map { $0.value - 1 } }
        return gate(
            id: "accuracy_loss", title: "Accuracy loss (PPL ratio − 1)", comparison: .atMost, unit: .ratio,
            measured: value, predicted: r.predicted.accuracyLoss, limit: limit, basis: "reference run",
            notMeasuredReason: why ?? "the report has neither accuracy_loss nor ppl_ratio")
    }

    static func klMean(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let why = accuracyNotMeasured(r)
        let value = why == nil ? r.accuracy?.klMean?.value : nil
        return gate(
            id: "kl_mean", title: "Mean KL divergence", comparison: .atMost, unit: .nats,
            measured: value, predicted: nil, limit: p.maxKLMean.map { ($0, "policy") }, basis: "reference run",
            notMeasuredReason: why ?? "the report has no kl_mean")
    }

    static func top1(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let why = accuracyNotMeasured(r)
        let value = why == nil ? r.accuracy?.top1Agreement?.value : nil
        return gate(
            id: "top1_agreement", title: "Top-1 agreement", comparison: .atLeast, unit: .fraction,
            measured: value, predicted: nil, limit: p.minTop1Agreement.map { ($0, "policy") },
            basis: "reference run", notMeasuredReason: why ?? "the report has no top1_agreement")
    }

    /// The latency figure (TTFT or decode rate) on the policy's basis, with its label, or why there is none.
    static func latency(_ r: RunReport, _ p: SignoffPolicy, ttft: Bool) -> (value: Double?, basis: String, why: String) {
        switch p.latencyBasis {
        case .measured:
            let stat = ttft ? r.measured.ttftSeconds : r.measured.decodeTokensPerSecond
            let value = stat.flatMap { $0.samples > 0 && $0.median.isFinite ? $0.median : nil }
            let basis = r.kind == .emulation ? "measured on the host under emulation caps (median)" : "measured on the host (median)"
            return (value, basis, "the report has no measured \(ttft ? "ttft_seconds" : "decode_tokens_per_second")")
        case .projected:
            guard let proj = r.projected else { return (nil, "projection", "the report has no projection") }
            let v = ttft ? proj.ttftSeconds : proj.decodeTokensPerSecond
            return (v > 0 ? v : nil, "projected to \(proj.deviceId) (\(proj.method)), not a measurement",
                    "the projection has no \(ttft ? "ttft_seconds" : "decode_tokens_per_second")")
        }
    }

    static func decodeRate(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let limit = p.minDecodeTokensPerSecond.map { ($0, "policy") }
            ?? r.plan.constraints.minDecodeTokensPerSecond.map { ($0, "plan constraints") }
        let l = latency(r, p, ttft: false)
        return gate(
            id: "decode_rate", title: "Decode rate", comparison: .atLeast, unit: .tokensPerSecond,
            measured: l.value, predicted: r.predicted.decodeTokensPerSecond > 0 ? r.predicted.decodeTokensPerSecond : nil,
            limit: limit, basis: l.basis, notMeasuredReason: l.why)
    }

    static func ttft(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let limit = p.maxTTFTSeconds.map { ($0, "policy") }
            ?? r.plan.constraints.maxTTFTSeconds.map { ($0, "plan constraints") }
        let l = latency(r, p, ttft: true)
        return gate(
            id: "ttft", title: "Time to first token", comparison: .atMost, unit: .seconds,
            measured: l.value, predicted: r.predicted.ttftSeconds > 0 ? r.predicted.ttftSeconds : nil,
            limit: limit, basis: l.basis, notMeasuredReason: l.why)
    }

    /// The measured peak: the cgroup's peak under emulation, else the engine's own peak RSS.
    static func measuredPeak(_ r: RunReport) -> (value: Double?, basis: String) {
        if let e = r.emulation, e.peakBytes > 0 {
            return (Double(e.peakBytes), "emulation peak (\(e.peakSource.isEmpty ? "cgroup" : e.peakSource))")
        }
        if r.measured.peakMemoryBytes > 0 {
            return (Double(r.measured.peakMemoryBytes), "engine peak (\(r.measured.peakMemorySource))")
        }
        return (nil, "")
    }

    /// The memory budget the plan was made for: its explicit constraint, else the device's app budget.
    public static func budget(_ r: RunReport) -> (bytes: Int, source: String)? {
        if let b = r.plan.constraints.memoryBudgetBytes, b > 0 { return (b, "plan memory budget") }
        if r.plan.appBudgetBytes > 0 { return (r.plan.appBudgetBytes, "plan app budget") }
        return nil
    }

    static func peakMemory(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let peak = measuredPeak(r)
        var limit: (Double, String)?
        var note = ""
        if let b = budget(r) {
            limit = (Double(b.bytes) * p.maxPeakBudgetFraction, p.maxPeakBudgetFraction == 1 ? b.source
                     : "\(b.source) × policy fraction")
            if p.maxPeakBudgetFraction != 1 {
                note = " (\(SignoffFormat.percent(p.maxPeakBudgetFraction)) of \(SignoffFormat.bytes(Double(b.bytes))))"
            }
        }
        return gate(
            id: "peak_memory", title: "Peak memory", comparison: .atMost, unit: .bytes, measured: peak.value,
            predicted: r.predicted.peakMemoryBytes > 0 ? Double(r.predicted.peakMemoryBytes) : nil, limit: limit,
            basis: peak.value == nil ? nil : peak.basis, notMeasuredReason: "the report has no peak memory figure",
            limitNote: note)
    }

    /// |predicted − measured| / measured, or nil when either side is missing.
    static func relativeError(predicted: Double?, measured: Double?) -> Double? {
        guard let predicted, let measured, predicted > 0, measured > 0, predicted.isFinite, measured.isFinite
        else { return nil }
        return abs(predicted - measured) / measured
    }

    static func memoryPredictionError(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let peak = measuredPeak(r)
        let predicted = r.predicted.peakMemoryBytes > 0 ? Double(r.predicted.peakMemoryBytes) : nil
        return gate(
            id: "memory_prediction_error", title: "Peak memory prediction error", comparison: .atMost, unit: .fraction,
            measured: relativeError(predicted: predicted, measured: peak.value), predicted: nil,
            limit: p.maxMemoryPredictionError.map { ($0, "policy") },
            basis: peak.value == nil ? nil : "|predicted − measured| / measured against \(peak.basis)",
            notMeasuredReason: predicted == nil ? "the plan predicts no peak" : "the report has no peak memory figure")
    }

    static func ttftPredictionError(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let l = latency(r, p, ttft: true)
        let predicted = r.predicted.ttftSeconds > 0 ? r.predicted.ttftSeconds : nil
        return gate(
            id: "ttft_prediction_error", title: "TTFT prediction error", comparison: .atMost, unit: .fraction,
            measured: relativeError(predicted: predicted, measured: l.value), predicted: nil,
            limit: p.maxLatencyPredictionError.map { ($0, "policy") },
            basis: "|predicted − figure| / figure against \(l.basis)",
            notMeasuredReason: predicted == nil ? "the plan predicts no TTFT" : l.why)
    }

    static func decodePredictionError(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let l = latency(r, p, ttft: false)
        let predicted = r.predicted.decodeTokensPerSecond > 0 ? r.predicted.decodeTokensPerSecond : nil
        return gate(
            id: "decode_prediction_error", title: "Decode rate prediction error", comparison: .atMost,
            unit: .fraction, measured: relativeError(predicted: predicted, measured: l.value), predicted: nil,
            limit: p.maxLatencyPredictionError.map { ($0, "policy") },
            basis: "|predicted − figure| / figure against \(l.basis)",
            notMeasuredReason: predicted == nil ? "the plan predicts no decode rate" : l.why)
    }

    static func noOOM(_ r: RunReport, _ p: SignoffPolicy) -> GateResult {
        let value: Double? = r.emulation.map { $0.oomKilled ? 1 : 0 }
        var g = gate(
            id: "no_oom", title: "Out-of-memory kills", comparison: .atMost, unit: .count, measured: value,
            predicted: nil, limit: p.forbidOOM ? (0, "policy") : nil, basis: value == nil ? nil : "emulation cgroup",
            notMeasuredReason: "the run was not under emulation")
        if g.status == .fail, let e = r.emulation {
            let cap = SignoffFormat.bytes(Double(e.memoryCapBytes))
            g.reason = "Out-of-memory kill under the \(cap) cap" + (e.phaseAtExit.map { " during \($0)" } ?? "")
                + " (peak \(SignoffFormat.bytes(Double(e.peakBytes))))"
        } else if g.status == .pass {
            g.reason = "No out-of-memory kill under the \(SignoffFormat.bytes(Double(r.emulation?.memoryCapBytes ?? 0))) cap"
        }
        return g
    }
}
