@testable import AutoGLMSignoff
import AutoGLMSpecs
import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite struct ReportOutputTests {
    func result() throws -> (SignoffResult, [RunReport], Plan) {
        let fx = try Fixture()
        defer { fx.remove() }
        let good = try fx.passingReport()
        var bad = good
        bad.plan.deviceId = "second-phone"
        bad.emulation?.peakBytes = 7_000_000_000
        bad.accuracy?.measured = false
        bad.accuracy?.reason = "synthetic <weights> & no reference"
        var policy = SignoffPolicy()
        policy.maxKLMean = 0.05
        let r = GateEvaluator.evaluate([(path: "a.json", report: good), (path: "b.json", report: bad)], policy: policy)
        return (r, [good, bad], Fixture.plan())
    }

    @Test func junitHasOneSuitePerReportAndOneCasePerGate() throws {
        let (result, _, _) = try result()
        let xml = JUnitReport.render(result, timestamp: "2026-11-23T05:00:00Z")
        let doc = try XMLDocument(xmlString: xml, options: [])
        let root = try #require(doc.rootElement())
        #expect(root.name == "testsuites")
        let suites = root.elements(forName: "testsuite")
        #expect(suites.count == 2)
        let gateCount = result.evaluations[0].gates.count
        for (suite, evaluation) in zip(suites, result.evaluations) {
            let cases = suite.elements(forName: "testcase")
            #expect(cases.count == gateCount)
            #expect(suite.attribute(forName: "tests")?.stringValue == "\(gateCount)")
            let failures = cases.flatMap { $0.elements(forName: "failure") }
            #expect(suite.attribute(forName: "failures")?.stringValue == "\(failures.count)")
            #expect(failures.count == evaluation.failures(requireMeasured: false).count)
            let skipped = cases.flatMap { $0.elements(forName: "skipped") }
            #expect(suite.attribute(forName: "skipped")?.stringValue == "\(skipped.count)")
            // Children in schema order: properties, testcase*, system-out, system-err.
            let order = (suite.children ?? []).compactMap(\.name)
            #expect(order.first == "properties")
            #expect(Array(order.suffix(2)) == ["system-out", "system-err"])
            for c in cases {
                #expect(c.attribute(forName: "name")?.stringValue?.isEmpty == false)
                #expect(c.attribute(forName: "classname") != nil)
            }
        }
        let failure = try #require(suites[1].elements(forName: "testcase")
            .first { $0.attribute(forName: "name")?.stringValue == "peak_memory" }?.elements(forName: "failure").first)
        #expect(failure.attribute(forName: "message")?.stringValue?.contains("exceeds") == true)
        // Escaped text survives the round trip.
        #expect(xml.contains("synthetic &lt;weights&gt; &amp; no reference"))
        #expect(root.attribute(forName: "failures")?.stringValue == "1")
    }

    @Test func markdownAndTextNameFailures() throws {
        let (result, _, _) = try result()
        let md = SummaryReport.markdown(result)
        #expect(md.hasPrefix("# Sign-off: FAIL"))
        #expect(md.contains("| a.json | snapdragon-8-gen-3-12gb | **PASS** |"))
        #expect(md.contains("Peak memory 7.00 GB exceeds the limit ≤ 6.50 GB"))
        let text = SummaryReport.text(result)
        #expect(text.contains("reason: Peak memory 7.00 GB exceeds"))
        #expect(text.contains("sign-off: FAIL (1 of 2 reports pass)"))
    }

    @Test func everyOutputSaysWhenPrefillRoundedItsActivations() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var int8 = try fx.passingReport()
        int8.measured.prefillActivations = "int8"
        var plain = try fx.passingReport()
        plain.measured.prefillActivations = "f32"
        let result = GateEvaluator.evaluate([(path: "a8.json", report: int8), (path: "f32.json", report: plain)],
                                            policy: SignoffPolicy())
        #expect(result.evaluations.map(\.prefillActivations) == ["int8", "f32"])
        let note = "(prefill activations int8)"
        #expect(SummaryReport.text(result).components(separatedBy: note).count == 2)
        #expect(SummaryReport.markdown(result).components(separatedBy: note).count == 2)
        let html = HTMLReport.render(result, reports: [(report: int8, plan: nil), (report: plain, plan: nil)], build: nil)
        #expect(html.components(separatedBy: note).count == 2)
        let junit = JUnitReport.render(result)
        #expect(junit.contains("<property name=\"prefill_activations\" value=\"int8\"/>"))
        #expect(junit.contains("<property name=\"prefill_activations\" value=\"f32\"/>"))
        // The signed record's evaluations carry it; records written before it decode with nil.
        let data = try JSONEncoder().encode(result)
        #expect(try JSONDecoder().decode(SignoffResult.self, from: data) == result)
        var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        object["evaluations"] = (object["evaluations"] as? [[String: Any]])?.map {
            $0.filter { $0.key != "prefill_activations" }
        }
        let older = try JSONDecoder().decode(SignoffResult.self, from: JSONSerialization.data(withJSONObject: object))
        #expect(older.evaluations.allSatisfy { $0.prefillActivations == nil && $0.arithmeticNote.isEmpty })
    }

    @Test func htmlIsSelfContainedWithCharts() throws {
        let (result, reports, plan) = try result()
        let html = HTMLReport.render(result, reports: reports.map { (report: $0, plan: plan) }, build: nil,
                                     createdAt: "2026-11-23T05:00:00Z")
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") || !html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http://"))
        #expect(!html.contains("https://"))
        // Four charts per report.
        #expect(html.components(separatedBy: "<svg").count - 1 == 8)
        #expect(html.contains("Memory over time"))
        #expect(html.contains(">cap 6.50 GB<"))
        #expect(html.contains("Memory by module"))
        #expect(html.contains("Latency by stage"))
        #expect(html.contains("Measured ÷ predicted"))
        // Every inline SVG is well-formed XML.
        var rest = Substring(html)
        while let start = rest.range(of: "<svg"), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            let svg = String(rest[start.lowerBound..<end.upperBound])
            #expect(throws: Never.self) { _ = try XMLDocument(xmlString: svg, options: []) }
            rest = rest[end.upperBound...]
        }
    }

    @Test func chartsSayWhenThereIsNoData() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var r = try fx.passingReport()
        r.emulation = nil
        r.measured.stages = []
        r.predicted.stages = []
        let result = GateEvaluator.evaluate([(path: "a.json", report: r)], policy: SignoffPolicy())
        let html = HTMLReport.render(result, reports: [(report: r, plan: nil)], build: nil)
        #expect(html.contains("No memory timeline in this report"))
        #expect(html.contains("No per-stage latency in the report."))
    }
}

@Suite struct ChartTests {
    @Test func oomIsMarkedOnTheTimeline() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var r = try fx.passingReport()
        let clean = HTMLReport.render(
            GateEvaluator.evaluate([(path: "a.json", report: r)], policy: SignoffPolicy()), reports: [(report: r, plan: nil)],
            build: nil)
        #expect(!clean.contains("OOM kill"))
        r.emulation?.oomKilled = true
        let html = HTMLReport.render(
            GateEvaluator.evaluate([(path: "a.json", report: r)], policy: SignoffPolicy()), reports: [(report: r, plan: nil)],
            build: nil)
        #expect(html.contains(">OOM kill</text>"))
    }

    @Test func ticksAreRoundAndCoverTheRange() {
        #expect(Charts.ticks(max: 20, count: 8) == [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20])
        #expect(Charts.ticks(max: 7_100_000_000) == [0, 2e9, 4e9, 6e9, 8e9])
        #expect(Charts.ticks(max: 0) == [0, 1])
    }
}
