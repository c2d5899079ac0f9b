import AutoGLMSpecs
import Foundation

/// A self-contained HTML sign-off report: inline CSS and inline SVG charts, no scripts, no external resources.
public enum HTMLReport {
    /// `reports` pairs each evaluation's run report with its plan (for per-module predictions), in the same order.
    public static func render(
        _ result: SignoffResult, reports: [(report: RunReport, plan: Plan?)], build: BuildInfo?,
        createdAt: String = SignoffFormat.timestamp()
    ) -> String {
        let require = result.policy.requireMeasured
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>Sign-off \(result.verdict.label)</title>
        <style>
        body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:24px 32px;color:#1b2430;background:#fff;max-width:1160px}
        h1{font-size:26px;margin:0 0 6px} h2{font-size:20px;margin:34px 0 8px;border-bottom:1px solid #e4e7ec;padding-bottom:6px}
        h3{font-size:15px;margin:20px 0 6px;color:#333a45}
        .meta{color:#5b6472;font-size:13px;margin-bottom:14px}
        .badge{display:inline-block;padding:2px 9px;border-radius:4px;font-weight:700;font-size:12px;letter-spacing:.3px;color:#fff}
        .pass{background:#2e9e5b}.fail{background:#d33a3a}.not_measured{background:#8c96a8}.no_limit{background:#b6bcc6}
        .verdict{font-size:18px;padding:4px 14px}
        table{border-collapse:collapse;font-size:13px;margin:6px 0 12px;width:100%}
        th,td{border:1px solid #e4e7ec;padding:5px 8px;text-align:left;vertical-align:top}
        th{background:#f6f7f9;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
        tr.failrow td{background:#fdf1f1}
        .reason{color:#5b6472;font-size:12px} .muted{color:#8c96a8;font-size:11px}
        table.matrix{font-size:12px} table.matrix th{font-size:11px;text-align:center} table.matrix td{text-align:center}
        table.matrix td:nth-child(-n+2){text-align:left}
        svg{display:block;margin:8px 0 14px;max-width:100%;height:auto}
        svg .ct{font-size:14px;font-weight:600;fill:#1b2430} svg .ax{font-size:11px;fill:#5b6472}
        svg .cat{font-size:12px;fill:#1b2430} svg .val{font-size:11px;fill:#1b2430} svg .lbl{font-size:11px;font-weight:600}
        svg .note{font-size:12px;fill:#8c96a8;font-style:italic} svg .phase{font-size:11px;fill:#5b6472}
        code{font-size:12px;background:#f6f7f9;padding:1px 4px;border-radius:3px}
        </style></head><body>

        """
        h += "<h1>Sign-off <span class=\"badge verdict \(result.verdict.rawValue)\">\(result.verdict.label)</span></h1>\n"
        var meta = "Created \(esc(createdAt))"
        if let build {
            meta += " · build <code>\(esc(build.commit))</code>" + (build.dirty == true ? " (uncommitted changes)" : "")
        }
        meta += " · \(result.evaluations.filter { $0.verdict == .pass }.count) of \(result.evaluations.count) run reports pass"
        meta += result.policy.requireMeasured ? " · unmeasured gates fail" : " · unmeasured gates are reported, not failed"
        h += "<div class=\"meta\">\(meta)</div>\n"

        // Matrix.
        if let first = result.evaluations.first {
            h += "<h2>Matrix</h2>\n<table class=\"matrix\"><tr><th>Device</th><th>Report</th><th>Verdict</th>"
            h += first.gates.map {
                "<th title=\"\(esc($0.title))\">\(esc($0.id.replacingOccurrences(of: "_", with: " ")))</th>"
            }.joined() + "</tr>\n"
            for e in result.evaluations {
                h += "<tr><td>\(esc(e.deviceId))</td><td>\(esc(URL(fileURLWithPath: e.reportPath).lastPathComponent))</td>"
                h += "<td>\(badge(e.verdict.rawValue, e.verdict.label))</td>"
                h += e.gates.map { g -> String in
                    let shown = g.fails(requireMeasured: require) || g.status == .pass
                    return "<td>" + (shown ? gateBadge(g, require) : "<span class=\"muted\">\(esc(g.status.label.lowercased()))</span>")
                        + "</td>"
                }.joined() + "</tr>\n"
            }
            h += "</table>\n"
        }

        for (i, e) in result.evaluations.enumerated() {
            let report = i < reports.count ? reports[i].report : nil
            let plan = i < reports.count ? reports[i].plan : nil
            h += "<h2>\(esc(e.deviceId)) \(badge(e.verdict.rawValue, e.verdict.label))</h2>\n"
            h += "<div class=\"meta\">Report <code>\(esc(e.reportPath))</code> (\(esc(e.kind.rawValue))) · model "
            h += "<code>\(esc(e.modelId))</code> · workload <code>\(esc(e.workloadId))</code> · engine build "
            h += "<code>\(esc(e.buildCommit))</code>\(esc(e.arithmeticNote))"
            if let report, !report.host.cpu.isEmpty {
                h += " · host \(esc(report.host.cpu)), \(report.host.threads) threads"
            }
            h += "</div>\n"
            h += "<table><tr><th>Gate</th><th>Status</th><th>Measured</th><th>Predicted</th><th>Limit</th><th>Margin</th><th>Reason</th></tr>\n"
            for g in e.gates {
                let failing = g.fails(requireMeasured: require)
                h += "<tr\(failing ? " class=\"failrow\"" : "")><td>\(esc(g.title))</td><td>\(gateBadge(g, require))</td>"
                h += "<td class=\"num\">\(esc(g.measured.map(g.unit.format) ?? "—"))</td>"
                h += "<td class=\"num\">\(esc(g.predicted.map(g.unit.format) ?? "—"))</td>"
                h += "<td class=\"num\">\(esc(g.limit.map { "\(g.comparison.symbol) \(g.unit.format($0))" } ?? "—"))</td>"
                h += "<td class=\"num\">\(esc(g.margin.map(g.unit.format) ?? "—"))</td>"
                h += "<td class=\"reason\">\(esc(g.reason))\(g.basis.map { "<br>basis: " + esc($0) } ?? "")</td></tr>\n"
            }
            h += "</table>\n"
            if let report { h += charts(report, plan: plan) }
        }
        h += "</body></html>\n"
        return h
    }

    static func charts(_ r: RunReport, plan: Plan?) -> String {
        var h = "<h3>Memory</h3>\n"
        let points = (r.emulation?.timeline ?? []).map { (t: $0.seconds, bytes: Double($0.bytes), phase: $0.phase) }
        let cap = r.emulation.flatMap { $0.memoryCapBytes > 0 ? Double($0.memoryCapBytes) : nil }
        let budget = GateEvaluator.budget(r).map { Double($0.bytes) }
        h += Charts.timeline(
            title: "Memory over time (cgroup)", points: points, cap: cap, budget: budget,
            predictedPeak: r.predicted.peakMemoryBytes > 0 ? Double(r.predicted.peakMemoryBytes) : nil,
            oomKilled: r.emulation?.oomKilled ?? false)

        // Per-module memory: the plan's weight bytes per module against the measured resident bytes.
        var predictedByModule: [String: Double] = [:]
        var order: [String] = []
        for m in plan?.modules ?? [] {
            if predictedByModule[m.moduleName] == nil { order.append(m.moduleName) }
            predictedByModule[m.moduleName, default: 0] += Double(m.weightBytes)
        }
        for k in r.measured.residentBytesByModule.keys.sorted() where predictedByModule[k] == nil { order.append(k) }
        h += Charts.groupedBars(
            title: "Memory by module", categories: order,
            series: [
                .init(label: "predicted weights (plan)", color: Charts.palette.predicted,
                      values: order.map { predictedByModule[$0] }),
                .init(label: "measured resident", color: Charts.palette.measured,
                      values: order.map { r.measured.residentBytesByModule[$0].map(Double.init) }),
            ], format: SignoffFormat.bytes, emptyMessage: "No per-module memory in the plan or the report.")

        // Latency by stage.
        h += "<h3>Latency</h3>\n"
        // Engine phases and planner stages use different names; decode is compared per token (the plan predicts
        // one decode step, the engine times the whole decode phase).
        func canonical(_ stage: String) -> String {
            switch stage {
            case "vision-encode", "vision_encode": return "vision_encode"
            case "prefill", "decoder_prefill": return "decoder_prefill"
            case "decode", "decode_token": return "decode_token"
            default: return stage
            }
        }
        var stages: [String] = []
        for s in (r.predicted.stages.map(\.stage) + r.measured.stages.map(\.stage)
                  + (r.projected?.stages.map(\.stage) ?? [])).map(canonical)
        where s != "load" && !stages.contains(s) { stages.append(s) }
        var decodeTokens = 1
        var measuredStages: [String: (median: Double, min: Double, max: Double)] = [:]
        for m in r.measured.stages {
            let name = canonical(m.stage)
            let per = name == "decode_token" && m.stage == "decode" ? Double(max(1, m.tokens)) : 1
            if name == "decode_token" && m.stage == "decode" { decodeTokens = max(1, m.tokens) }
            measuredStages[name] = measuredStages[name]
                ?? (m.seconds.median / per, m.seconds.min / per, m.seconds.max / per)
        }
        let predictedStages = Dictionary(r.predicted.stages.map { (canonical($0.stage), $0.seconds) },
                                         uniquingKeysWith: { a, _ in a })
        var series: [Charts.Series] = [
            .init(label: "predicted (device)", color: Charts.palette.predicted, values: stages.map { predictedStages[$0] }),
            .init(label: r.kind == .emulation ? "measured (host, emulated caps; median, min–max)" : "measured (host; median, min–max)",
                  color: Charts.palette.measured,
                  values: stages.map { measuredStages[$0]?.median },
                  ranges: stages.map { name in measuredStages[name].map { ($0.min, $0.max) } }),
        ]
        if let proj = r.projected, !proj.stages.isEmpty {
            var p: [String: Double] = [:]
            for stage in proj.stages {
                let name = canonical(stage.stage)
                p[name] = p[name] ?? stage.seconds / (stage.stage == "decode" ? Double(decodeTokens) : 1)
            }
            series.append(.init(label: "projected to device (\(proj.method))", color: Charts.palette.projected,
                                values: stages.map { p[$0] }))
        }
        h += Charts.groupedBars(
            title: "Latency by stage", categories: stages, series: series, format: SignoffFormat.seconds,
            emptyMessage: "No per-stage latency in the report.")

        // Predicted vs measured.
        h += "<h3>Predicted vs measured</h3>\n"
        let peak = GateEvaluator.measuredPeak(r).value
        func pos(_ v: Int) -> Double? { v > 0 ? Double(v) : nil }
        func posD(_ v: Double) -> Double? { v > 0 && v.isFinite ? v : nil }
        let rows: [(label: String, predicted: Double?, measured: Double?, format: (Double) -> String)] = [
            ("Peak memory", pos(r.predicted.peakMemoryBytes), peak, SignoffFormat.bytes),
            ("Weights", pos(r.predicted.weightBytes), pos(r.measured.weightBytes), SignoffFormat.bytes),
            ("KV cache", pos(r.predicted.kvCacheBytes), pos(r.measured.kvCacheBytes), SignoffFormat.bytes),
            ("TTFT", posD(r.predicted.ttftSeconds), r.measured.ttftSeconds.flatMap { posD($0.median) }, SignoffFormat.seconds),
            ("Decode rate", posD(r.predicted.decodeTokensPerSecond),
             r.measured.decodeTokensPerSecond.flatMap { posD($0.median) }, { SignoffFormat.number($0, digits: 2) + " tok/s" }),
        ]
        h += Charts.ratios(title: "Measured ÷ predicted (host measurement against the device plan)", rows: rows)
        return h
    }

    static func badge(_ cls: String, _ text: String) -> String { "<span class=\"badge \(cls)\">\(esc(text))</span>" }

    static func gateBadge(_ g: GateResult, _ require: Bool) -> String {
        g.fails(requireMeasured: require) ? badge("fail", "FAIL") : badge(g.status.rawValue, g.status.label)
    }

    static func esc(_ s: String) -> String { SignoffFormat.xmlEscape(s) }
}
