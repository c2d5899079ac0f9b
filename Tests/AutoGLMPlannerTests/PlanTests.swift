import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Plans")
struct PlanTests {
    @Test func phonePlanFitsItsBudgetAndExplainsEveryChoice() throws {
        let request = try phoneRequest()
        let plan = try Planner.plan(request).plan
        #expect(plan.feasible)
        #expect(plan.bindingConstraint == nil && plan.shortfall == nil)
        #expect(plan.predicted.peakMemoryBytes <= request.device.memory.appBudgetBytes.value)
        #expect(plan.predicted.peakMemoryBytes == plan.predicted.weightBytes + plan.predicted.kvCacheBytes
                + plan.predicted.activationPeakBytes + plan.predicted.tokenizerBytes
                + plan.predicted.runtimeOverheadBytes)
        #expect(plan.predicted.tokenizerBytes == 151_552 * MemoryModel.tokenizerBytesPerEntry)
        // Weights counted exactly per tensor as stored.
        let model = request.model
        var bytes = 0
        for t in model.tensors {
            let format = plan.format(for: t).map { MemoryModel.storedFormat($0, for: t) } ?? .f32
            bytes += format.bytes(rows: t.rows, columns: t.columns)
        }
        #expect(bytes == plan.predicted.weightBytes)
        #expect(plan.modules.reduce(0) { $0 + $1.weightBytes } == plan.predicted.weightBytes)
        for m in plan.modules { #expect(!m.reason.isEmpty) }
        #expect(!plan.attention.reason.isEmpty)
        #expect(plan.attention.visionKernel == .tiled)
        #expect(plan.attention.reason.contains("vision: tiled attention — materialised scores for"))
        #expect(plan.modules.first { $0.name == "vision" }?.reason.contains("v.patch_embd.weight") == true)
        #expect(plan.explanation.count >= plan.modules.count + 3)
        #expect(plan.predicted.decodeTokensPerSecond > 0 && plan.predicted.ttftSeconds > 0)
        #expect(plan.predicted.stages.map(\.stage) == ["vision_encode", "projector", "decoder_prefill", "logits",
                                                        "decode_token"])
        // KV for the workload's full context: prompt + image tokens + output.
        let context = request.workload.promptTokens + plan.attention.imageTokens + request.workload.outputTokens
        let decoder = try #require(model.textDecoder)
        #expect(plan.predicted.kvCacheBytes == MemoryModel.kvCacheBytes(decoder, format: plan.attention.kvCacheFormat,
                                                                        tokens: context))
    }

    @Test func pinningFP16EverywhereIsInfeasibleWithAShortfall() throws {
        let result = try Planner.plan(try phoneRequest { $0.pins = [try FormatPin(parsing: "*=fp16")] })
        let plan = result.plan
        #expect(!plan.feasible)
        #expect(plan.bindingConstraint == "memory")
        let shortfall = try #require(plan.shortfall)
        #expect(shortfall.hasPrefix("needs 2"))
        #expect(shortfall.contains("budget 6.5 GB"))
        #expect(shortfall.contains("short even at f16 everywhere"))
        #expect(plan.modules.filter { $0.weightBytes > 0 }.allSatisfy { $0.format == .f16 })
    }

    @Test func accuracyLimitBelowWhatFitsNamesMemory() throws {
        let plan = try Planner.plan(try phoneRequest { $0.maxAccuracyLoss = 0.03 }).plan
        #expect(!plan.feasible)
        #expect(plan.bindingConstraint == "memory")
        #expect(plan.predicted.accuracyLoss <= 0.03)
        #expect(plan.predicted.peakMemoryBytes > 6_500_000_000)
    }

    @Test func ttftLimitBeyondReachNamesTTFT() throws {
        let plan = try Planner.plan(try phoneRequest { $0.maxTTFTSeconds = 0.5 }).plan
        #expect(!plan.feasible)
        #expect(plan.bindingConstraint == "ttft")
        #expect(plan.shortfall?.contains("limit 500.0 ms") == true)
    }

    @Test func limitsAreMetWhenFeasible() throws {
        let plan = try Planner.plan(try phoneRequest { $0.maxTTFTSeconds = 60; $0.minDecodeTokensPerSecond = 8 }).plan
        #expect(plan.feasible)
        #expect(plan.predicted.ttftSeconds <= 60)
        #expect(plan.predicted.decodeTokensPerSecond >= 8)
    }

    @Test func plansAreDeterministic() throws {
        let a = try SpecLoader.encode(try Planner.plan(try phoneRequest()).plan)
        let b = try SpecLoader.encode(try Planner.plan(try phoneRequest()).plan)
        #expect(a == b)
        let decoded = try SpecLoader.decode(Plan.self, from: a, file: "plan.json")
        #expect(try SpecLoader.encode(decoded) == a)
        let text = String(decoding: a, as: UTF8.self)
        for key in ["\"schema_version\"", "\"app_budget_bytes\"", "\"kv_cache_format\"", "\"global_tokens\"",
                    "\"image_tokens\"", "\"peak_memory_bytes\"", "\"accuracy_loss\"", "\"weight_bytes\""] {
            #expect(text.contains(key))
        }
    }

    @Test func frontierIsParetoAndContainsThePlan() throws {
        let result = try Planner.plan(try phoneRequest(), frontier: true)
        let points = result.frontier
        #expect(points.count > 3)
        #expect(points.contains { $0.withinBudget })
        #expect(points.contains { !$0.withinBudget })
        for (i, p) in points.enumerated() {
            for q in points[..<i] {
                #expect(!(q.peakMemoryBytes <= p.peakMemoryBytes && q.accuracyLoss <= p.accuracyLoss
                          && q.latencySeconds <= p.latencySeconds && q != p))
            }
        }
        // No in-budget frontier point is more accurate than the plan.
        let best = points.filter(\.withinBudget).map(\.accuracyLoss).min() ?? 1
        #expect(best >= result.plan.predicted.accuracyLoss - 1e-9)
        #expect(best <= result.plan.predicted.accuracyLoss + PlanSearch.lossSlack + 1e-9)
    }

    @Test func badPinsAreErrors() throws {
        #expect(throws: PlannerError.self) { try FormatPin(parsing: "vision") }
        #expect(throws: PlannerError.self) { try FormatPin(parsing: "vision=q3_k") }
        #expect(try FormatPin(parsing: "*=fp32").format == .f32)
        #expect(try FormatPin(parsing: "decoder=BF16").format == .bf16)
        #expect(throws: PlannerError.self) {
            try Planner.plan(try phoneRequest { $0.pins = [FormatPin(glob: "audio", format: .f16)] })
        }
        #expect(throws: PlannerError.self) {
            try Planner.plan(try phoneRequest { $0.pins = [FormatPin(glob: "*", format: .nf4)] })
        }
    }
}
