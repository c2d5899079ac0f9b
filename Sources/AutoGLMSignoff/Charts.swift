import Foundation

/// Inline SVG charts for the HTML report. Each returns a complete `<svg>` element sized in CSS pixels.
enum Charts {
    struct Series {
        var label: String
        var color: String
        var values: [Double?]
        /// Optional (low, high) whiskers per value.
        var ranges: [(Double, Double)?] = []
    }

    static let palette = (predicted: "#8c96a8", measured: "#2f6fde", projected: "#e39b2d", cap: "#d33a3a",
                          budget: "#e3862d", line: "#2f6fde", grid: "#e4e7ec", text: "#333a45")

    /// "Nice" tick values covering [0, maxValue].
    static func ticks(max maxValue: Double, count: Int = 5) -> [Double] {
        guard maxValue > 0, maxValue.isFinite else { return [0, 1] }
        let raw = maxValue / Double(count)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var out: [Double] = []
        var v = 0.0
        while v < maxValue + step * 0.999 && out.count < 20 { out.append(v); v += step }
        return out
    }

    static func e(_ s: String) -> String { SignoffFormat.xmlEscape(s) }
    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func empty(_ title: String, _ message: String, width: Int = 560, height: Int = 90) -> String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" role="img" aria-label="\(e(title))">
        <text x="8" y="20" class="ct">\(e(title))</text>
        <rect x="8" y="32" width="\(width - 16)" height="\(height - 40)" fill="#f6f7f9" stroke="#e4e7ec"/>
        <text x="\(width / 2)" y="\(32 + (height - 40) / 2 + 4)" text-anchor="middle" class="note">\(e(message))</text>
        </svg>
        """
    }

    /// A memory timeline with the cap, the budget and the predicted peak as horizontal lines, and phases shaded.
    static func timeline(
        title: String, points: [(t: Double, bytes: Double, phase: String?)], cap: Double?, budget: Double?,
        predictedPeak: Double?, oomKilled: Bool = false, width: Int = 1100, height: Int = 300
    ) -> String {
        guard points.count >= 2 else { return empty(title, "No memory timeline in this report (not run under emulation).") }
        let left = 70.0, right = 150.0, top = 34.0, bottom = 40.0
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        let t0 = points.map(\.t).min() ?? 0, t1 = max(points.map(\.t).max() ?? 1, t0 + 1e-9)
        let yMax = ([points.map(\.bytes).max() ?? 0, cap ?? 0, budget ?? 0, predictedPeak ?? 0].max() ?? 1) * 1.08
        let yt = ticks(max: yMax)
        let top_ = yt.last ?? yMax
        func x(_ t: Double) -> Double { left + (t - t0) / (t1 - t0) * w }
        func y(_ b: Double) -> Double { top + h - b / top_ * h }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        s += "<text x=\"8\" y=\"20\" class=\"ct\">\(e(title))</text>\n"
        // Phase bands.
        var bands: [(phase: String, start: Double, end: Double)] = []
        for p in points {
            let phase = p.phase ?? ""
            if let last = bands.last, last.phase == phase { bands[bands.count - 1].end = p.t } else {
                if !bands.isEmpty { bands[bands.count - 1].end = p.t }
                bands.append((phase, p.t, p.t))
            }
        }
        for (i, b) in bands.enumerated() where !b.phase.isEmpty {
            let x0 = x(b.start), x1 = max(x(b.end), x0 + 1)
            s += "<rect x=\"\(f(x0))\" y=\"\(f(top))\" width=\"\(f(x1 - x0))\" height=\"\(f(h))\" fill=\"\(i % 2 == 0 ? "#f3f6fb" : "#eaf0f8")\"/>\n"
            if x1 - x0 > 40 {
                s += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(top + 14))\" text-anchor=\"middle\" class=\"phase\">\(e(b.phase))</text>\n"
            }
        }
        for v in yt {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + w))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"\(palette.grid)\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" class=\"ax\">\(e(SignoffFormat.bytes(v)))</text>\n"
        }
        let timeTicks = ticks(max: t1 - t0, count: 8)
        let step = timeTicks.count > 1 ? timeTicks[1] - timeTicks[0] : 1
        let digits = step >= 1 && step == step.rounded() ? 0 : (step * 10 == (step * 10).rounded() ? 1 : 2)
        for v in timeTicks where t0 + v <= t1 + 1e-9 {
            s += "<text x=\"\(f(x(t0 + v)))\" y=\"\(f(top + h + 16))\" text-anchor=\"middle\" class=\"ax\">\(e(SignoffFormat.number(v, digits: digits))) s</text>\n"
        }
        s += "<text x=\"\(f(left + w / 2))\" y=\"\(height - 6)\" text-anchor=\"middle\" class=\"ax\">time since start</text>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"none\" stroke=\"#c9ced6\"/>\n"
        // Area and line.
        let poly = points.map { "\(f(x($0.t))),\(f(y($0.bytes)))" }.joined(separator: " ")
        s += "<polygon points=\"\(f(x(points[0].t))),\(f(y(0))) \(poly) \(f(x(points[points.count - 1].t))),\(f(y(0)))\" fill=\"\(palette.line)\" fill-opacity=\"0.15\"/>\n"
        s += "<polyline points=\"\(poly)\" fill=\"none\" stroke=\"\(palette.line)\" stroke-width=\"2\"/>\n"
        func hline(_ v: Double?, _ color: String, _ label: String, dash: String) {
            guard let v, v > 0 else { return }
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + w))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"\(dash)\"/>\n"
            s += "<text x=\"\(f(left + w + 12))\" y=\"\(f(y(v) + 4))\" class=\"lbl\" fill=\"\(color)\">\(e(label)) \(e(SignoffFormat.bytes(v)))</text>\n"
        }
        hline(cap, palette.cap, "cap", dash: "8 4")
        if budget != cap { hline(budget, palette.budget, "budget", dash: "3 3") }
        hline(predictedPeak, palette.predicted, "predicted", dash: "2 4")
        if let peak = points.max(by: { $0.bytes < $1.bytes }) {
            s += "<circle cx=\"\(f(x(peak.t)))\" cy=\"\(f(y(peak.bytes)))\" r=\"4\" fill=\"\(palette.line)\"/>\n"
            let anchor = x(peak.t) > left + w - 120 ? "end" : "start"
            let dx = anchor == "end" ? -8.0 : 8.0
            s += "<text x=\"\(f(x(peak.t) + dx))\" y=\"\(f(max(y(peak.bytes) - 8, top + 26)))\" text-anchor=\"\(anchor)\" class=\"lbl\" fill=\"\(palette.line)\">sampled max \(e(SignoffFormat.bytes(peak.bytes)))</text>\n"
        }
        if oomKilled, let last = points.last {
            let cx = x(last.t), cy = y(last.bytes)
            s += "<path d=\"M\(f(cx - 6)),\(f(cy - 6)) L\(f(cx + 6)),\(f(cy + 6)) M\(f(cx - 6)),\(f(cy + 6)) L\(f(cx + 6)),\(f(cy - 6))\" stroke=\"\(palette.cap)\" stroke-width=\"3\"/>\n"
            s += "<text x=\"\(f(cx - 10))\" y=\"\(f(min(cy + 36, top + h - 6)))\" text-anchor=\"end\" class=\"lbl\" fill=\"\(palette.cap)\">OOM kill</text>\n"
        }
        s += "</svg>"
        return s
    }

    /// Horizontal grouped bars: one row per category, one bar per series, a legend at the top.
    static func groupedBars(
        title: String, categories: [String], series: [Series], format: (Double) -> String, width: Int = 1100,
        emptyMessage: String
    ) -> String {
        let all = series.flatMap { $0.values.compactMap { $0 } } + series.flatMap { $0.ranges.compactMap { $0?.1 } }
        guard !categories.isEmpty, let maxV = all.max(), maxV > 0 else { return empty(title, emptyMessage) }
        let left = 190.0, right = 130.0, top = 54.0, bar = 14.0, gap = 3.0, groupGap = 12.0
        let groupH = Double(series.count) * (bar + gap) - gap
        let h = Double(categories.count) * (groupH + groupGap)
        let height = Int(top + h + 30)
        let w = Double(width) - left - right
        let xt = ticks(max: maxV)
        let xMax = xt.last ?? maxV
        func x(_ v: Double) -> Double { left + v / xMax * w }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        s += "<text x=\"8\" y=\"20\" class=\"ct\">\(e(title))</text>\n"
        var lx = left
        for se in series {
            s += "<rect x=\"\(f(lx))\" y=\"30\" width=\"12\" height=\"12\" fill=\"\(se.color)\"/>"
            s += "<text x=\"\(f(lx + 16))\" y=\"40\" class=\"ax\">\(e(se.label))</text>\n"
            lx += 26 + Double(se.label.count) * 7
        }
        for v in xt {
            s += "<line x1=\"\(f(x(v)))\" x2=\"\(f(x(v)))\" y1=\"\(f(top - 4))\" y2=\"\(f(top + h))\" stroke=\"\(palette.grid)\"/>\n"
            s += "<text x=\"\(f(x(v)))\" y=\"\(f(top + h + 16))\" text-anchor=\"middle\" class=\"ax\">\(e(format(v)))</text>\n"
        }
        for (ci, cat) in categories.enumerated() {
            let gy = top + Double(ci) * (groupH + groupGap)
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(gy + groupH / 2 + 4))\" text-anchor=\"end\" class=\"cat\">\(e(cat))</text>\n"
            for (si, se) in series.enumerated() {
                let by = gy + Double(si) * (bar + gap)
                guard ci < se.values.count, let v = se.values[ci] else {
                    s += "<text x=\"\(f(left + 4))\" y=\"\(f(by + bar - 3))\" class=\"note\">no \(e(se.label.components(separatedBy: " (")[0])) figure</text>\n"
                    continue
                }
                s += "<rect x=\"\(f(left))\" y=\"\(f(by))\" width=\"\(f(max(x(v) - left, 1)))\" height=\"\(f(bar))\" fill=\"\(se.color)\"><title>\(e(se.label)) \(e(cat)): \(e(format(v)))</title></rect>\n"
                var labelX = x(v) + 4
                if ci < se.ranges.count, let r = se.ranges[ci], r.1 > r.0 {
                    let cy = by + bar / 2
                    s += "<line x1=\"\(f(x(r.0)))\" x2=\"\(f(x(r.1)))\" y1=\"\(f(cy))\" y2=\"\(f(cy))\" stroke=\"#1b2430\" stroke-width=\"1.5\"/>"
                    s += "<line x1=\"\(f(x(r.0)))\" x2=\"\(f(x(r.0)))\" y1=\"\(f(by + 2))\" y2=\"\(f(by + bar - 2))\" stroke=\"#1b2430\"/>"
                    s += "<line x1=\"\(f(x(r.1)))\" x2=\"\(f(x(r.1)))\" y1=\"\(f(by + 2))\" y2=\"\(f(by + bar - 2))\" stroke=\"#1b2430\"/>\n"
                    labelX = max(labelX, x(r.1) + 4)
                }
                s += "<text x=\"\(f(labelX))\" y=\"\(f(by + bar - 3))\" class=\"val\">\(e(format(v)))</text>\n"
            }
        }
        s += "</svg>"
        return s
    }

    /// Measured ÷ predicted per figure on a shared axis with a reference line at 1 (exact prediction).
    static func ratios(
        title: String, rows: [(label: String, predicted: Double?, measured: Double?, format: (Double) -> String)],
        width: Int = 1100
    ) -> String {
        let usable = rows.filter { ($0.predicted ?? 0) > 0 && ($0.measured ?? 0) > 0 }
        guard !usable.isEmpty else { return empty(title, "No figure has both a prediction and a measurement.") }
        let left = 190.0, right = 330.0, top = 36.0, rowH = 26.0
        let h = Double(rows.count) * rowH
        let height = Int(top + h + 34)
        let w = Double(width) - left - right
        let observed = usable.compactMap { r -> Double? in
            guard let m = r.measured, let p = r.predicted else { return nil }
            return m / p
        }
        let maxR = max(2, (observed.max() ?? 1) * 1.1)
        let xt = ticks(max: maxR)
        let xMax = xt.last ?? maxR
        func x(_ v: Double) -> Double { left + v / xMax * w }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(e(title))\">\n"
        s += "<text x=\"8\" y=\"20\" class=\"ct\">\(e(title))</text>\n"
        for v in xt {
            s += "<line x1=\"\(f(x(v)))\" x2=\"\(f(x(v)))\" y1=\"\(f(top - 4))\" y2=\"\(f(top + h))\" stroke=\"\(palette.grid)\"/>\n"
            s += "<text x=\"\(f(x(v)))\" y=\"\(f(top + h + 16))\" text-anchor=\"middle\" class=\"ax\">\(e(SignoffFormat.number(v, digits: v == floor(v) ? 0 : 1)))×</text>\n"
        }
        s += "<text x=\"\(f(left + w / 2))\" y=\"\(height - 4)\" text-anchor=\"middle\" class=\"ax\">measured ÷ predicted (1× = exact)</text>\n"
        for (i, r) in rows.enumerated() {
            let cy = top + Double(i) * rowH + rowH / 2
            s += "<text x=\"\(f(left - 8))\" y=\"\(f(cy + 4))\" text-anchor=\"end\" class=\"cat\">\(e(r.label))</text>\n"
            let pText = r.predicted.map(r.format) ?? "—", mText = r.measured.map(r.format) ?? "—"
            guard let p = r.predicted, let m = r.measured, p > 0, m > 0 else {
                s += "<text x=\"\(f(left + 4))\" y=\"\(f(cy + 4))\" class=\"note\">not comparable (predicted \(e(pText)), measured \(e(mText)))</text>\n"
                continue
            }
            let ratio = m / p
            let color = abs(ratio - 1) <= 0.25 ? "#2e9e5b" : (abs(ratio - 1) <= 0.5 ? "#e39b2d" : "#d33a3a")
            s += "<rect x=\"\(f(left))\" y=\"\(f(cy - 7))\" width=\"\(f(max(x(ratio) - left, 1)))\" height=\"14\" fill=\"\(color)\" fill-opacity=\"0.8\"/>\n"
            s += "<text x=\"\(f(left + w + 8))\" y=\"\(f(cy + 4))\" class=\"val\">\(e(SignoffFormat.number(ratio, digits: 2)))×  predicted \(e(pText)), measured \(e(mText))</text>\n"
        }
        s += "<line x1=\"\(f(x(1)))\" x2=\"\(f(x(1)))\" y1=\"\(f(top - 6))\" y2=\"\(f(top + h))\" stroke=\"#1b2430\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\n"
        s += "</svg>"
        return s
    }
}
