import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Exact search")
struct SearchTests {
    /// Enumerates every combination of item options and attention choices.
    static func bruteForce(_ space: SearchSpace) -> Candidate? {
        let r = space.request
        var best: Candidate? = nil
        let counts = space.items.map(\.options.count)
        var choice = [Int](repeating: 0, count: counts.count)
        while true {
            for s in space.scenarios.indices {
                for g in space.globals[s].indices {
                    let c = Planner.candidate(space, scenario: s, global: g, choice: choice)
                    if Planner.violates(space, c) != nil { continue }
                    if best == nil || PlanSearch.better(c, than: best!) { best = c }
                }
            }
            var k = 0
            while k < counts.count {
                choice[k] += 1
                if choice[k] < counts[k] { break }
                choice[k] = 0
                k += 1
            }
            if k == counts.count { break }
        }
        _ = r
        return best
    }

    static func smolRequest(budget: Int, maxLoss: Double? = nil, ttft: Double? = nil, decode: Double? = nil) throws
        -> PlanRequest {
        PlanRequest(model: try manifest("smollm2-135m"), device: try profile(phone), workload: try workload("chat"),
                    maxAccuracyLoss: maxLoss, maxTTFTSeconds: ttft, minDecodeTokensPerSecond: decode,
                    memoryBudgetBytes: budget, layerGroupSize: 10, memoryQuantumBytes: 64 << 10)
    }

    @Test(arguments: [
        (520_000_000, nil as Double?, nil as Double?, nil as Double?),
        (430_000_000, nil, nil, nil),
        (470_000_000, 0.05, nil, nil),
        (600_000_000, nil, 0.05, nil),
        (600_000_000, nil, nil, 400.0),
        (480_000_000, 0.06, 0.08, 300.0),
    ])
    func dynamicProgramMatchesBruteForce(budget: Int, maxLoss: Double?, ttft: Double?, decode: Double?) throws {
        let space = try SearchSpace(try Self.smolRequest(budget: budget, maxLoss: maxLoss, ttft: ttft, decode: decode))
        #expect(space.items.count == 4)
        let expected = Self.bruteForce(space)
        let found = PlanSearch(space: space).run().best
        #expect((expected == nil) == (found == nil))
        if let expected, let found {
            #expect(abs(expected.loss - found.loss) < 1e-12)
            #expect(abs(expected.latencySeconds - found.latencySeconds) < 1e-9)
            #expect(found.peakBytes <= budget)
            // The DP's totals agree with a fresh evaluation of its choice.
            let again = Planner.candidate(space, scenario: found.scenario, global: found.global, choice: found.choice)
            #expect(again.peakBytes == found.peakBytes)
            #expect(abs(again.loss - found.loss) < 1e-12)
        }
    }

    @Test func dominatedOptionsAreDropped() throws {
        let space = try SearchSpace(try phoneRequest())
        for item in space.items {
            for a in item.options {
                for b in item.options where a.format != b.format {
                    let dominated = b.weightBytes <= a.weightBytes && b.loss <= a.loss && b.decodeSeconds <= a.decodeSeconds
                    if dominated {
                        // Then a must win on prefill time somewhere.
                        let i = item.options.firstIndex { $0.format == a.format }!
                        let j = item.options.firstIndex { $0.format == b.format }!
                        let k = space.items.firstIndex { $0.name == item.name }!
                        #expect(space.scenarios.contains { $0.prefill[k][i] < $0.prefill[k][j] })
                    }
                }
            }
        }
    }

    @Test func formatsAreLegalOnTheirUnit() throws {
        let request = try phoneRequest()
        let plan = try Planner.plan(request).plan
        for m in plan.modules where m.weightBytes > 0 {
            let unit = try #require(request.device.computeUnits.first { $0.id == m.unit })
            #expect(unit.formats.contains(m.format))
        }
    }

    @Test func decoderIsSplitIntoLayerGroups() throws {
        let space = try SearchSpace(try phoneRequest())
        let groups = space.items.filter { $0.kind == .textDecoder }
        #expect(groups.count == 8)
        #expect(groups.map { $0.layers!.count } == [Int](repeating: 5, count: 8))
        // Every tensor of the model belongs to exactly one item.
        let all = try manifest("autoglm-phone-9b").tensors
        #expect(space.items.reduce(0) { $0 + $1.tensors.count } == all.count)
        let custom = try SearchSpace(try phoneRequest { $0.layerGroupSize = 4 })
        #expect(custom.items.filter { $0.kind == .textDecoder }.count == 10)
    }

    @Test func windowAndPixelSettingsFromTheManifestAreSearched() throws {
        var m = try manifest("autoglm-phone-9b")
        m.settingSensitivity = [
            SettingSensitivity(setting: "window:1024+64", loss: 0.001, source: "test figure"),
            SettingSensitivity(setting: "max_pixels:1000000", loss: 0.002, source: "test figure"),
        ]
        let request = PlanRequest(model: m, device: try profile(phone), workload: try workload("screenshot-agent"))
        let space = try SearchSpace(request)
        #expect(space.scenarios.contains { $0.maxPixels == 1_000_000 })
        #expect(space.globals[0].contains { $0.window == 1024 && $0.globalTokens == 64 })
        let plan = try Planner.plan(request).plan
        #expect(plan.feasible)
        // Cheap settings that free memory are worth taking when 4-bit weights are the alternative.
        #expect(plan.attention.window == 1024 || plan.attention.maxPixels == 1_000_000)
    }
}
