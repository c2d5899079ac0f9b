import AutoGLMPlanner
import AutoGLMSpecs
import Foundation

/// Human-readable tables for a plan.
enum PlanReport {
    static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let n = s.count
        if n >= width { return s }
        let fill = String(repeating: " ", count: width - n)
        return right ? fill + s : s + fill
    }

    static func table(_ plan: Plan, device: DeviceProfile, model: ModelManifest) -> String {
        var lines: [String] = []
        let budget = plan.constraints.memoryBudgetBytes ?? plan.device.appBudgetBytes
        lines.append("\(model.name) on \(device.name)")
        lines.append("workload \(plan.workload.id): \(plan.workload.description)")
        let memory = device.memory
        lines.append("memory: \(Units.gb(memory.totalBytes.value)) total, OS reserve \(Units.gb(memory.osReserveBytes.value)), " +
                     "app budget \(Units.gb(memory.appBudgetBytes.value))" +
                     (budget != memory.appBudgetBytes.value ? ", planned against \(Units.gb(budget))" : ""))
        lines.append("")
        let header = [pad("module", 16), pad("format", 15), pad("unit", 5), pad("weights", 10, right: true),
                      pad("budget", 7, right: true), pad("latency", 10, right: true), pad("accuracy", 9, right: true)]
        lines.append(header.joined(separator: "  "))
        lines.append(String(repeating: "-", count: 82))
        for m in plan.modules {
            let share = budget > 0 ? Double(m.weightBytes) / Double(budget) : 0
            lines.append([pad(m.name, 16), pad(m.format.rawValue, 15), pad(m.unit, 5),
                          pad(Units.bytes(m.weightBytes), 10, right: true),
                          pad(Units.percent(share, digits: 1), 7, right: true),
                          pad(m.predictedLatencySeconds.map(Units.seconds) ?? "-", 10, right: true),
                          pad(Units.percent(m.accuracyCost, digits: 3), 9, right: true)].joined(separator: "  "))
        }
        let p = plan.predicted
        let a = plan.attention
        lines.append("")
        lines.append("attention: KV \(a.kvCacheFormat.rawValue), decoder \(a.kernel.rawValue), vision \(a.visionKernel.rawValue), " +
                     (a.window.map { "window \($0) + \(a.globalTokens) global" }
                        ?? a.blockSparse.map { "block-sparse \($0.chunk)-token blocks, top \($0.topK)" }
                        ?? "full attention") +
                     ", \(Units.count(a.imageTokens)) image tokens")
        lines.append("")
        lines.append("totals against limits:")
        func row(_ name: String, _ value: String, _ limit: String, _ ok: Bool?) -> String {
            let verdict = ok.map { $0 ? "ok" : "OVER" } ?? ""
            return "  " + pad(name, 14) + pad(value, 12, right: true) + "   " + pad(limit, 24) + verdict
        }
        lines.append(row("peak memory", Units.gb(p.peakMemoryBytes), "budget \(Units.gb(budget))",
                         p.peakMemoryBytes <= budget))
        lines.append("  " + pad("", 14) + "weights \(Units.gb(p.weightBytes)) + KV \(Units.bytes(p.kvCacheBytes)) + " +
                     "activations \(Units.bytes(p.activationPeakBytes)) + " +
                     "tokenizer \(Units.bytes(p.tokenizerBytes)) + runtime \(Units.bytes(p.runtimeOverheadBytes))")
        let ttftLimit = plan.constraints.maxTTFTSeconds
        lines.append(row("TTFT", Units.seconds(p.ttftSeconds), ttftLimit.map { "limit \(Units.seconds($0))" } ?? "no limit",
                         ttftLimit.map { p.ttftSeconds <= $0 }))
        let decodeLimit = plan.constraints.minDecodeTokensPerSecond
        lines.append(row("decode", Units.rate(p.decodeTokensPerSecond),
                         decodeLimit.map { "needs \(Units.rate($0))" } ?? "no limit",
                         decodeLimit.map { p.decodeTokensPerSecond >= $0 }))
        let lossLimit = plan.constraints.maxAccuracyLoss
        lines.append(row("accuracy loss", Units.percent(p.accuracyLoss),
                         lossLimit.map { "limit \(Units.percent($0))" } ?? "no limit",
                         lossLimit.map { p.accuracyLoss <= $0 + 1e-9 }))
        lines.append("")
        if plan.feasible {
            lines.append("FEASIBLE")
        } else {
            lines.append("INFEASIBLE — binding constraint: \(plan.bindingConstraint ?? "?"); \(plan.shortfall ?? "")")
        }
        return lines.joined(separator: "\n")
    }

    static func explanation(_ plan: Plan) -> String {
        (["", "why:"] + plan.explanation.map { "  - " + $0 }).joined(separator: "\n")
    }

    static func frontier(_ points: [FrontierPoint], budget: Int) -> String {
        var lines = ["", "Pareto frontier (memory × accuracy × latency), \(points.count) points:"]
        lines.append("  " + [pad("peak", 10, right: true), pad("loss", 9, right: true), pad("TTFT", 9, right: true),
                             pad("decode", 12, right: true), pad("KV", 5), "formats"].joined(separator: "  "))
        // At most 30 rows: every in-budget point up to 15, then over-budget points spread evenly.
        let inside = points.filter(\.withinBudget)
        let outside = points.filter { !$0.withinBudget }
        var shown = Array(inside.prefix(15))
        let room = 30 - shown.count
        if outside.count <= room {
            shown += outside
        } else if room > 0 {
            for i in 0..<room { shown.append(outside[i * (outside.count - 1) / max(1, room - 1)]) }
        }
        if shown.count < points.count { lines[1] += " (\(shown.count) shown; --json lists all)" }
        for p in shown {
            var counts: [String: Int] = [:]
            for f in p.formats.values { counts[f.rawValue, default: 0] += 1 }
            let mix = counts.sorted { $0.key < $1.key }.map { "\($0.value)×\($0.key)" }.joined(separator: " ")
            lines.append("  " + [pad(Units.gb(p.peakMemoryBytes), 10, right: true),
                                 pad(Units.percent(p.accuracyLoss), 9, right: true),
                                 pad(Units.seconds(p.ttftSeconds), 9, right: true),
                                 pad(Units.rate(p.decodeTokensPerSecond), 12, right: true),
                                 pad(p.kvCacheFormat.rawValue, 5), mix + (p.withinBudget ? "" : "  (over budget)")]
                .joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }
}
