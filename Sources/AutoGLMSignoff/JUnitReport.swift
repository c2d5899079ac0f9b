import Foundation

/// JUnit XML for CI: one `<testsuite>` per run report, one `<testcase>` per gate. A failing gate carries a
/// `<failure>`; a gate without a limit, or not measured and not required, is `<skipped>`. The layout follows the
/// common (Jenkins / Ant) JUnit schema: `testsuites > testsuite > (properties?, testcase*, system-out?, system-err?)`.
public enum JUnitReport {
    public static func render(_ result: SignoffResult, timestamp: String = SignoffFormat.timestamp()) -> String {
        let require = result.policy.requireMeasured
        // The schema's timestamp is an ISO 8601 date-time without a zone designator.
        let stamp = timestamp.hasSuffix("Z") ? String(timestamp.dropLast()) : timestamp
        func counts(_ gates: [GateResult]) -> (tests: Int, failures: Int, skipped: Int) {
            let failures = gates.filter { $0.fails(requireMeasured: require) }.count
            let skipped = gates.filter { !$0.fails(requireMeasured: require) && $0.status != .pass }.count
            return (gates.count, failures, skipped)
        }
        let all = counts(result.evaluations.flatMap(\.gates))
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites name=\"autoglm-signoff\" tests=\"\(all.tests)\" failures=\"\(all.failures)\" errors=\"0\""
        x += " time=\"0\">\n"
        for (i, e) in result.evaluations.enumerated() {
            let c = counts(e.gates)
            let name = suiteName(e)
            x += "  <testsuite name=\"\(esc(name))\" tests=\"\(c.tests)\" failures=\"\(c.failures)\" errors=\"0\""
            x += " skipped=\"\(c.skipped)\" time=\"0\" timestamp=\"\(esc(stamp))\" hostname=\"localhost\" id=\"\(i)\""
            x += " package=\"autoglm.signoff\">\n"
            x += "    <properties>\n"
            for (k, v) in [("report", e.reportPath), ("device", e.deviceId), ("model", e.modelId),
                           ("workload", e.workloadId), ("build", e.buildCommit), ("kind", e.kind.rawValue),
                           ("prefill_activations", e.prefillActivations ?? "f32"), ("verdict", e.verdict.rawValue)] {
                x += "      <property name=\"\(k)\" value=\"\(esc(v))\"/>\n"
            }
            x += "    </properties>\n"
            for g in e.gates {
                x += "    <testcase name=\"\(esc(g.id))\" classname=\"signoff.\(esc(classSafe(name)))\" time=\"0\">\n"
                if g.fails(requireMeasured: require) {
                    let type = g.status == .notMeasured ? "NotMeasured" : "GateFailure"
                    x += "      <failure message=\"\(esc(g.reason))\" type=\"\(type)\">\(esc(details(g)))</failure>\n"
                } else if g.status != .pass {
                    x += "      <skipped message=\"\(esc(g.status.label.lowercased() + ": " + g.reason))\"/>\n"
                }
                x += "      <system-out>\(esc(details(g)))</system-out>\n"
                x += "    </testcase>\n"
            }
            x += "    <system-out>\(esc("verdict: \(e.verdict.label)"))</system-out>\n"
            x += "    <system-err></system-err>\n"
            x += "  </testsuite>\n"
        }
        x += "</testsuites>\n"
        return x
    }

    static func suiteName(_ e: ReportEvaluation) -> String {
        let file = URL(fileURLWithPath: e.reportPath).lastPathComponent
        return "\(e.deviceId.isEmpty ? "unknown-device" : e.deviceId) (\(file))"
    }

    static func classSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }

    /// Multi-line details of one gate.
    static func details(_ g: GateResult) -> String {
        var lines = ["\(g.title): \(g.status.label)", g.reason]
        lines.append("measured: \(g.measured.map(g.unit.format) ?? "not measured")")
        if let p = g.predicted { lines.append("predicted: \(g.unit.format(p))") }
        if let l = g.limit { lines.append("limit: \(g.comparison.symbol) \(g.unit.format(l)) (\(g.limitSource ?? ""))") }
        if let m = g.margin { lines.append("margin: \(g.unit.format(m))") }
        if let b = g.basis { lines.append("basis: \(b)") }
        return lines.joined(separator: "\n")
    }

    static func esc(_ s: String) -> String { SignoffFormat.xmlEscape(s) }
}

/// Plain-text and Markdown summaries.
public enum SummaryReport {
    /// Terminal text: one line per gate with status, measured, predicted, limit and margin; failures listed last.
    public static func text(_ result: SignoffResult) -> String {
        let require = result.policy.requireMeasured
        var out = ""
        for e in result.evaluations {
            out += "\(e.verdict.label)  \(e.reportPath)\n"
            out += "      device \(e.deviceId), model \(e.modelId), workload \(e.workloadId), build \(e.buildCommit)"
                + e.arithmeticNote + "\n"
            for g in e.gates {
                let status = g.fails(requireMeasured: require) && g.status == .notMeasured ? "FAIL (not measured)"
                    : g.status.label
                out += "  \(pad(status, 20)) \(pad(g.id, 24)) " + figures(g) + "\n"
            }
            for g in e.failures(requireMeasured: require) {
                out += "  reason: \(g.reason)\n"
            }
        }
        out += "sign-off: \(result.verdict.label) (\(result.evaluations.filter { $0.verdict == .pass }.count)"
        out += " of \(result.evaluations.count) reports pass)\n"
        return out
    }

    static func figures(_ g: GateResult) -> String {
        var parts = ["measured " + (g.measured.map(g.unit.format) ?? "—")]
        if let p = g.predicted { parts.append("predicted " + g.unit.format(p)) }
        parts.append("limit " + (g.limit.map { "\(g.comparison.symbol) " + g.unit.format($0) } ?? "—"))
        if let m = g.margin { parts.append("margin " + g.unit.format(m)) }
        return parts.joined(separator: ", ")
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    public static func markdown(_ result: SignoffResult, build: BuildInfo? = nil) -> String {
        let require = result.policy.requireMeasured
        var md = "# Sign-off: \(result.verdict.label)\n\n"
        if let build {
            if build.source == "unknown" {
                md += "Build commit unknown. "
            } else {
                md += "Build `\(build.commit)`" + (build.dirty == true ? " (uncommitted changes)" : "")
                    + " (from \(build.source == "env" ? BuildInfo.environmentVariable : "git")). "
            }
        }
        md += "\(result.evaluations.filter { $0.verdict == .pass }.count) of \(result.evaluations.count) run reports pass.\n\n"
        // Matrix: reports × gates.
        if let first = result.evaluations.first {
            md += "| Report | Device | Verdict | " + first.gates.map { "`\($0.id)`" }.joined(separator: " | ") + " |\n"
            md += "|---|---|---|" + String(repeating: "---|", count: first.gates.count) + "\n"
            for e in result.evaluations {
                let cells = e.gates.map { g -> String in
                    g.fails(requireMeasured: require) ? "**FAIL**" : (g.status == .pass ? "pass" : g.status.label.lowercased())
                }
                md += "| \(SignoffFormat.markdownCell(URL(fileURLWithPath: e.reportPath).lastPathComponent)) | "
                md += "\(SignoffFormat.markdownCell(e.deviceId)) | **\(e.verdict.label)** | " + cells.joined(separator: " | ") + " |\n"
            }
            md += "\n"
        }
        for e in result.evaluations {
            md += "## \(SignoffFormat.markdownCell(e.deviceId)): \(e.verdict.label)\n\n"
            md += "Report `\(e.reportPath)` (\(e.kind.rawValue)); model `\(e.modelId)`, workload `\(e.workloadId)`,"
            md += " engine build `\(e.buildCommit)`\(e.arithmeticNote).\n\n"
            md += "| Gate | Status | Measured | Predicted | Limit | Margin | Basis |\n|---|---|---|---|---|---|---|\n"
            for g in e.gates {
                let status = g.fails(requireMeasured: require) ? "**FAIL**" : g.status.label
                md += "| \(SignoffFormat.markdownCell(g.title)) | \(status) | \(g.measured.map(g.unit.format) ?? "—") | "
                md += "\(g.predicted.map(g.unit.format) ?? "—") | "
                md += (g.limit.map { "\(g.comparison.symbol) \(g.unit.format($0))" } ?? "—") + " | "
                md += "\(g.margin.map(g.unit.format) ?? "—") | \(SignoffFormat.markdownCell(g.basis ?? "—")) |\n"
            }
            let failures = e.failures(requireMeasured: require)
            if !failures.isEmpty {
                md += "\nFailures:\n\n" + failures.map { "- \(SignoffFormat.markdownCell($0.reason))" }.joined(separator: "\n") + "\n"
            }
            md += "\n"
        }
        return md
    }
}
