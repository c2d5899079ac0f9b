import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Attention settings in the search")
struct AttentionSearchTests {
    static let measuredSource = "measured: test figure, KL against full attention"

    /// SmolLM2's manifest with its attention table replaced by `settings`.
    static func smol(_ settings: [SettingSensitivity]) throws -> ModelManifest {
        var m = try manifest("smollm2-135m")
        m.settingSensitivity = settings
        return m
    }

    static func longContext(prompt: Int = 32_768, output: Int = 64) -> Workload {
        Workload(id: "long-test", description: "long-context test workload", image: nil, promptTokens: prompt,
                 outputTokens: output)
    }

    static func request(_ model: ModelManifest, workload: Workload, ttft: Double? = nil) throws -> PlanRequest {
        PlanRequest(model: model, device: try profile(phone), workload: workload, maxTTFTSeconds: ttft,
                    layerGroupSize: 10, memoryQuantumBytes: 64 << 10)
    }

    static let moba = Plan.BlockSparse(chunk: 256, topK: 4)
    static let measuredMoBA = SettingSensitivity(setting: "block-sparse:256/4", loss: 0.004, source: Self.measuredSource,
                                                 measured: true)

    @Test func searchCostsAreTheAttentionCostModelsPredictions() throws {
        let model = try Self.smol([
            SettingSensitivity(setting: "kv:int8", loss: 0.0008, source: Self.measuredSource, measured: true),
            SettingSensitivity(setting: "window:512+4", loss: 0.008, source: Self.measuredSource, measured: true),
            Self.measuredMoBA,
        ])
        let request = try Self.request(model, workload: Self.longContext(prompt: 4000, output: 100))
        let space = try SearchSpace(request)
        let d = try #require(model.textDecoder)
        let shape = AttentionLayerShape(d)
        // An independent instance: the attention unit of the phone is its NPU, whose profile lists no cores, so one
        // worker per query head, with the work spread evenly (the device's runtime, not the engine's partition).
        #expect(LatencyModel(device: request.device).attentionUnit?.id == "npu")
        let costs = AttentionCostModel(device: request.device, accuracy: AccuracyModel(manifest: model),
                                       threads: d.heads, busiestWorker: false)
        let sustained = request.device.sustainedFactor.value
        let scenario = space.scenarios[0]
        let globals = space.globals[0]
        #expect(globals.contains { $0.window == 512 } && globals.contains { $0.blockSparse == Self.moba })
        for g in globals {
            let a = try #require(g.decoderAttention)
            let s = a.setting
            #expect(s.kv == g.kv)
            #expect(s.kernel == g.decoderKernel)
            #expect(s.window == g.window)
            #expect(s.blockSparse == g.blockSparse)
            let prefill = costs.predict(s, shape: shape, mode: .prefill, length: scenario.contextTokens)
            let decode = costs.predict(s, shape: shape, mode: .decode, length: scenario.totalTokens)
            #expect(g.decoderAttentionSeconds == prefill.seconds * Double(d.layers))
            #expect(g.kvDecodeSeconds == decode.seconds * Double(d.layers) / sustained)
            #expect(g.lossExtra == decode.loss)
            // The window's ring plus one staged 512-token prefill chunk; otherwise the whole sequence.
            let staged = g.window == nil ? 0 : costs.predict(s, shape: shape, mode: .prefill, length: 512).kvBytes
            #expect(g.kvBytes == (decode.kvBytes + staged) * d.layers)
            #expect(g.cachedTokens == (g.window == nil ? 4100 : 512 + 4 + 1 + 512))
            let stage = try #require(g.stages.first { $0.name == "decoder_prefill" })
            #expect(stage.bytes == MemoryModel.decoderActivation(d, chunk: 512, positions: scenario.totalTokens,
                                                                  attentionScratch: prefill.scratchBytes,
                                                                  elementBytes: space.activationElementBytes))
        }
        // Accuracy adds the measured figures of the parts.
        let int8MoBA = try #require(globals.first { $0.kv == .int8 && $0.blockSparse == Self.moba })
        #expect(abs(int8MoBA.lossExtra - (0.0008 + 0.004)) < 1e-15)
    }

    @Test func attentionTimeScalesWithTheUnitsOfTheProfile() throws {
        // Two GPUs: attention compute is both GPUs' F16 peak at the profile's attention efficiency.
        let device = try SpecLoader.decode(DeviceProfile.self, from: Data(serverProfileJSON.utf8), file: "server.json")
        let model = try manifest("glm-4-9b")
        let request = PlanRequest(model: model, device: device, workload: try workload("chat"))
        let space = try SearchSpace(request)
        let d = try #require(model.textDecoder)
        let full = try #require(space.globals[0].first {
            $0.kv == .f16 && $0.window == nil && $0.blockSparse == nil && $0.decoderKernel == .tiled
        })
        let n = Double(space.scenarios[0].contextTokens)
        let flops = 4 * Double(d.heads * d.headDim) * n * (n + 1) / 2 * Double(d.layers)
        let expected = flops / (2 * 165e12 * 0.5)
        #expect(abs(full.decoderAttentionSeconds - expected) / expected < 1e-12)
        // Decode reads the KV cache of every layer over both GPUs' bandwidth at the matvec efficiency.
        let total = space.scenarios[0].totalTokens
        let kvRead = Double(total * 2 * d.kvHeads * d.headDim * 2 * d.layers)
        let decodeExpected = max(kvRead / (2 * 1008e9 * 0.8), 4 * Double(d.heads * d.headDim) * Double(total)
                                 * Double(d.layers) / (2 * 165e12 * 0.5))
        #expect(abs(full.kvDecodeSeconds - decodeExpected) / decodeExpected < 1e-12)
    }

    @Test func blockSparseIsChosenWhenTheTTFTLimitBinds() throws {
        let model = try Self.smol([Self.measuredMoBA])
        let workload = Self.longContext()
        let open = try Self.request(model, workload: workload)
        let space = try SearchSpace(open)
        let globals = space.globals[0]
        let fullTTFT = try #require(globals.filter { $0.blockSparse == nil }.map(\.ttftExtra).min())
        let mobaTTFT = try #require(globals.filter { $0.blockSparse == Self.moba }.map(\.ttftExtra).min())
        // The cost model prices the engine's block-sparse work (whole vectors over blocks few lanes chose, the block
        // scores), not only the pairs each query sees: about 3.5× less than full attention at 32K tokens.
        #expect(mobaTTFT < fullTTFT / 3)
        // Without limits full attention wins: it is the most accurate.
        let unconstrained = try Planner.plan(open).plan
        #expect(unconstrained.attention.blockSparse == nil)
        #expect(unconstrained.explanation.contains { $0.hasPrefix("block-sparse 256/4 offered") })
        // A TTFT limit that no full-attention plan meets, even with the fastest formats.
        let fastestLinear = space.scenarios[0].prefill.reduce(0) { $0 + ($1.min() ?? 0) }
        let limit = fastestLinear + (fullTTFT + mobaTTFT) / 2
        let request = try Self.request(model, workload: workload, ttft: limit)
        let result = try Planner.plan(request)
        let plan = result.plan
        #expect(plan.feasible)
        #expect(plan.attention.blockSparse == Self.moba)
        #expect(plan.predicted.ttftSeconds <= limit)
        #expect(plan.attention.reason.contains("block-sparse attention (MoBA), 256-token blocks, top 4"))
        #expect(plan.attention.reason.contains(Self.measuredSource))
        #expect(plan.attention.reason.contains("full attention needs"))
        // The choice survives the plan file.
        let decoded = try SpecLoader.decode(Plan.self, from: try SpecLoader.encode(plan), file: "plan.json")
        #expect(decoded.attention.blockSparse == Self.moba)
        // And it is the exact optimum.
        let limited = try SearchSpace(request)
        let expected = try #require(SearchTests.bruteForce(limited))
        let found = try #require(result.candidate)
        #expect(abs(expected.loss - found.loss) < 1e-12)
        #expect(abs(expected.latencySeconds - found.latencySeconds) < 1e-9)
    }

    @Test func blockSparseWithoutAMeasuredFigureIsNotOffered() throws {
        let estimate = SettingSensitivity(setting: "block-sparse:256/4", loss: 0.001, source: "estimate: test",
                                          measured: false)
        let model = try Self.smol([estimate])
        let request = try Self.request(model, workload: Self.longContext())
        let space = try SearchSpace(request)
        #expect(space.accuracy.blockSparseOptions.isEmpty)
        #expect(space.globals.allSatisfy { $0.allSatisfy { $0.blockSparse == nil } })
        let plan = try Planner.plan(request).plan
        #expect(plan.attention.blockSparse == nil)
        #expect(plan.explanation.contains { $0.hasPrefix("block-sparse 256/4 not offered") && $0.contains("is an estimate") })
        // Nor a setting with no figure at all, nor the published estimates of the 9B manifest.
        let none = try SearchSpace(try Self.request(try Self.smol([]), workload: Self.longContext()))
        #expect(none.globals.allSatisfy { $0.allSatisfy { $0.blockSparse == nil } })
        let phoneSpace = try SearchSpace(try phoneRequest { $0.workload = try workload("long-context") })
        #expect(!phoneSpace.accuracy.blockSparseEntries.isEmpty)
        #expect(phoneSpace.globals.allSatisfy { $0.allSatisfy { $0.blockSparse == nil } })
    }

    @Test func blockSparseIsOfferedOnlyWhereSelectionLeavesBlocksOut() throws {
        // The checked-in manifest's measured settings (256/2 and 128/4) select 512 tokens.
        let model = try manifest("smollm2-135m")
        let chat = try SearchSpace(try Self.request(model, workload: try workload("chat")))
        let offered = Set(chat.globals[0].compactMap(\.blockSparse).map { "\($0.chunk)/\($0.topK)" })
        #expect(offered == ["256/2", "128/4"])
        let short = try SearchSpace(try Self.request(model, workload: Self.longContext(prompt: 400, output: 100)))
        #expect(short.globals[0].allSatisfy { $0.blockSparse == nil })
        // Measured on this model, MoBA without training costs too much to be worth it when nothing binds.
        let plan = try Planner.plan(try Self.request(model, workload: try workload("chat"))).plan
        #expect(plan.attention.blockSparse == nil)
    }

    @Test(arguments: [
        (4_000, nil as Double?, nil as Plan.BlockSparse?),
        (32_768, 5.0, moba),
    ])
    func searchWithBlockSparseMatchesBruteForce(prompt: Int, ttft: Double?, chosen: Plan.BlockSparse?) throws {
        let model = try Self.smol([
            SettingSensitivity(setting: "kv:int8", loss: 0.0008, source: Self.measuredSource, measured: true),
            SettingSensitivity(setting: "window:1024+4", loss: 0.02, source: Self.measuredSource, measured: true),
            Self.measuredMoBA,
            SettingSensitivity(setting: "block-sparse:512/2", loss: 0.01, source: Self.measuredSource, measured: true),
        ])
        let space = try SearchSpace(try Self.request(model, workload: Self.longContext(prompt: prompt), ttft: ttft))
        let expected = SearchTests.bruteForce(space)
        let found = PlanSearch(space: space).run().best
        #expect(expected != nil && found != nil)
        if let expected, let found {
            #expect(space.globals[found.scenario][found.global].blockSparse == chosen)
            #expect(abs(expected.loss - found.loss) < 1e-12)
            #expect(abs(expected.latencySeconds - found.latencySeconds) < 1e-9)
        }
    }
}
