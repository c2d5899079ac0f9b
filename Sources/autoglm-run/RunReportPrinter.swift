import AutoGLMSpecs
import Foundation

/// Prints a run report as JSON or as a readable table of measured figures next to the plan's predictions.
enum RunReportPrinter {
    static func json(_ report: RunReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    static func table(_ r: RunReport, memoryNote: String?) -> String {
        let m = r.measured, p = r.predicted
        let hasPlan = !r.plan.path.isEmpty
        var lines: [String] = []
        lines.append("checkpoint: \(r.checkpoint.path)" + (hasPlan ? "   plan: \(r.plan.path)" : "   (no plan: checkpoint formats)"))
        lines.append("host: \(r.host.cpu), \(r.host.threads) threads   build: \(r.build.commit)\(r.build.dirty ? " (dirty)" : "")")
        if m.prefillActivations == "int8" {
            lines.append("prefill activations: int8 (rounded to 8 bits per block of 32 in prefill batches)")
        }
        lines.append("prompt \(r.workload.promptTokens) tokens, up to \(r.workload.outputTokens) generated; \(m.warmups) warm-up, \(m.repeats) timed")
        lines.append("")
        lines.append(pad("figure", 26) + pad("measured", 26) + pad("predicted", 16) + "difference")
        func row(_ name: String, _ measured: String, _ predicted: String?, _ diff: String?) {
            lines.append(pad(name, 26) + pad(measured, 26) + pad(predicted ?? "–", 16) + (diff ?? ""))
        }
        func stat(_ s: Statistic?, _ f: String) -> String {
            guard let s else { return "–" }
            return String(format: "\(f) (±\(f), n=%d)", s.median, s.stddev, s.samples)
        }
        func rel(_ measured: Double, _ predicted: Double) -> String? {
            guard hasPlan, predicted != 0 else { return nil }
            return String(format: "%+.1f%%", (measured / predicted - 1) * 100)
        }
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        // A plan field left at zero carries no prediction (e.g. a plan mapped from another model keeps only formats).
        func predicted(_ value: Double, _ text: @autoclosure () -> String) -> String? {
            hasPlan && value != 0 ? text() : nil
        }
        row("load (s)", String(format: "%.3f", m.loadSeconds), nil, nil)
        row("TTFT (s)", stat(m.ttftSeconds, "%.4f"), predicted(p.ttftSeconds, String(format: "%.4f", p.ttftSeconds)),
            m.ttftSeconds.flatMap { rel($0.median, p.ttftSeconds) })
        row("prefill (tok/s)", stat(m.prefillTokensPerSecond, "%.1f"), nil, nil)
        row("decode (tok/s)", stat(m.decodeTokensPerSecond, "%.1f"),
            predicted(p.decodeTokensPerSecond, String(format: "%.2f", p.decodeTokensPerSecond)),
            m.decodeTokensPerSecond.flatMap { rel($0.median, p.decodeTokensPerSecond) })
        row("peak memory (RSS)", mib(m.peakMemoryBytes), predicted(Double(p.peakMemoryBytes), mib(p.peakMemoryBytes)),
            rel(Double(m.peakMemoryBytes), Double(p.peakMemoryBytes)))
        row("weights", mib(m.weightBytes), predicted(Double(p.weightBytes), mib(p.weightBytes)),
            rel(Double(m.weightBytes), Double(p.weightBytes)))
        row("KV cache", mib(m.kvCacheBytes), predicted(Double(p.kvCacheBytes), mib(p.kvCacheBytes)),
            rel(Double(m.kvCacheBytes), Double(p.kvCacheBytes)))
        for (module, bytes) in m.residentBytesByModule.sorted(by: { $0.key < $1.key }) {
            row("  \(module)", mib(bytes), nil, nil)
        }
        if let a = r.accuracy {
            lines.append("")
            if a.measured {
                func est(_ e: Estimate?, _ f: String) -> String {
                    guard let e else { return "–" }
                    return String(format: "\(f) ± \(f)", e.value, e.uncertainty)
                }
                lines.append("accuracy vs F32 reference (\(a.textFile ?? "text"), \(a.scoredTokens) scored tokens):")
                row("PPL reference", est(a.pplReference, "%.4f"), nil, nil)
                row("PPL plan", est(a.pplPlan, "%.4f"), nil, nil)
                row("PPL ratio", est(a.pplRatio, "%.5f"), nil, nil)
                row("accuracy loss (ratio−1)", String(format: "%.5f", a.accuracyLoss ?? 0),
                    hasPlan ? String(format: "%.5f", p.accuracyLoss) : nil,
                    hasPlan ? String(format: "%+.5f", (a.accuracyLoss ?? 0) - p.accuracyLoss) : nil)
                row("mean KL", est(a.klMean, "%.6f"), nil, nil)
                row("KL 99th percentile", String(format: "%.6f", a.klP99 ?? 0), nil, nil)
                row("top-1 agreement", est(a.top1Agreement, "%.4f"), nil, nil)
            } else {
                lines.append("accuracy: not measured (\(a.reason ?? "no reason given"))")
            }
        }
        if let memoryNote { lines.append(""); lines.append(memoryNote) }
        if let text = r.generatedText { lines.append(""); lines.append("generated: \(text)") }
        return lines.joined(separator: "\n")
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}
