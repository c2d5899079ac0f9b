import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Memory cost model")
struct MemoryModelTests {
    let matrix = ModuleTensor(name: "m", module: "decoder", rows: 4096, columns: 4096, layer: 0, role: .matrix)

    @Test(arguments: [
        (WeightFormat.f32, 4096 * 4096 * 4), (.f16, 4096 * 4096 * 2), (.bf16, 4096 * 4096 * 2),
        (.int8, 4096 * 4096 + 4096 * 4), (.q8_0, 4096 * 128 * 34), (.q4_0, 4096 * 128 * 18),
        (.q4_1, 4096 * 128 * 20), (.int4g32, 4096 * 128 * 20), (.int4g64, 4096 * 64 * 36),
        (.int4g128, 4096 * 32 * 68), (.q4K, 4096 * 16 * 144), (.q6K, 4096 * 16 * 210),
    ])
    func matrixBytesPerFormat(format: WeightFormat, expected: Int) {
        #expect(MemoryModel.tensorBytes(matrix, format: format) == expected)
    }

    @Test func vectorsStayF32AndOddRowsFallBackToF16() {
        let norm = ModuleTensor(name: "n", module: "decoder", rows: 1, columns: 4096, layer: 0, role: .vector)
        #expect(MemoryModel.storedFormat(.q4_0, for: norm) == .f32)
        #expect(MemoryModel.tensorBytes(norm, format: .q4_0) == 4096 * 4)
        // GLM-4.1V's patch embedding has 3 · 2 · 14 · 14 = 1176 columns: not a multiple of 32.
        let patch = ModuleTensor(name: "v.patch_embd.weight", module: "vision", rows: 1536, columns: 1176, role: .matrix)
        let (bytes, fallbacks) = MemoryModel.weightBytes([patch, matrix], format: .q4_0)
        #expect(fallbacks.map(\.name) == ["v.patch_embd.weight"])
        #expect(bytes == 1536 * 1176 * 2 + 4096 * 128 * 18)
    }

    @Test func kvCacheBytesPerTokenForGLM() throws {
        let d = try #require(try manifest("autoglm-phone-9b").textDecoder)
        // facts: 40 layers · 2 · 2 KV heads · 128 · 2 B = 40,960 B per token at 16 bits.
        #expect(MemoryModel.kvCacheBytes(d, format: .f16, tokens: 1) == 40_960)
        #expect(MemoryModel.kvCacheBytes(d, format: .f16, tokens: 1000) == 40_960_000)
        #expect(MemoryModel.kvCacheBytes(d, format: .int8, tokens: 1000) == Int((20_480 * 1.0625 * 1000).rounded(.up)))
    }

    @Test func materialisedVisionScoresForAScreenshot() throws {
        let v = try #require(try manifest("autoglm-phone-9b").visionEncoder)
        // facts: 13,416² × 2 B × 12 heads ≈ 4.0 GiB per layer when attention is materialised.
        let scores = MemoryModel.scoreBytes(queries: 13_416, keys: 13_416, heads: v.heads, kernel: .materialised,
                                            elementBytes: 2)
        #expect(scores == 13_416 * 13_416 * 12 * 2)
        #expect(abs(Double(scores) / 1_073_741_824 - 4.02) < 0.01)
        let tiled = MemoryModel.visionActivation(v, patches: 13_416, kernel: .tiled, elementBytes: 2)
        let materialised = MemoryModel.visionActivation(v, patches: 13_416, kernel: .materialised, elementBytes: 2)
        #expect(materialised > scores)
        #expect(tiled < scores / 4)
    }

    @Test func activationPeakIsTheMaximumOverStages() throws {
        let space = try SearchSpace(try phoneRequest())
        for (s, list) in space.globals.enumerated() {
            for g in list {
                #expect(g.activationPeak == g.stages.map(\.bytes).max())
                #expect(g.fixedBytes == g.kvBytes + g.activationPeak + g.tokenizerBytes
                        + space.request.device.runtimeOverheadBytes.value)
                #expect(g.tokenizerBytes == MemoryModel.tokenizerBytes(vocab: 151_552))
                #expect(g.stages.map(\.name).contains("logits"))
                #expect(space.scenarios[s].patches > 0)
            }
        }
    }

    @Test func logitsBuffer() {
        #expect(MemoryModel.logitsBytes(vocab: 151_552, tokens: 512) == 151_552 * 512 * 4)
    }
}

@Suite("Latency cost model")
struct LatencyModelTests {
    @Test func decodeIsBandwidthBoundOnThePhone() throws {
        let device = try profile(phone)
        let model = LatencyModel(device: device)
        let cpu = try #require(device.computeUnits.first { $0.id == "cpu" })
        // 5 GB of weights per token at 76.8 GB/s · 0.7 · 0.8 sustained.
        let t = model.decodeSeconds(weightBytes: 5e9, parameters: 9e9, unit: cpu, format: .q4_0)
        #expect(abs(t - 5e9 / (76.8e9 * 0.7 * 0.8)) < 1e-12)
    }

    /// A format with its own measured matvec efficiency streams at that rate; the others at the profile's.
    @Test func decodeTakesTheFormatsOwnMatvecEfficiency() throws {
        let host = try profile("host")
        let model = LatencyModel(device: host)
        let cpu = try #require(host.computeUnits.first)
        let bandwidth = host.memory.bandwidthBytesPerSecond.value, sustained = host.sustainedFactor.value
        let g32 = try #require(host.matvecBandwidthByFormat[.int4g32]?.value)
        #expect(g32 < 0.7 && g32 < model.etaMatvec)           // 4-bit codes unpack slower than the median format
        let t = model.decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .int4g32)
        #expect(abs(t - 1e8 / (bandwidth * g32 * sustained)) < 1e-12)
        var bare = host
        bare.matvecBandwidthByFormat = [:]
        let u = LatencyModel(device: bare).decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .int4g32)
        #expect(abs(u - 1e8 / (bandwidth * model.etaMatvec * sustained)) < 1e-12)
        #expect(try profile(phone).matvecBandwidthByFormat.isEmpty)
    }

    /// Each matrix × vector call pays the profile's fixed cost for its format; formats without a figure pay none.
    @Test func decodeAddsTheFixedCostOfEachCall() throws {
        var host = try profile("host")
        host.matvecCallSecondsByFormat = [.int4g32: Sourced(5e-6, source: "test")]
        let model = LatencyModel(device: host)
        let cpu = try #require(host.computeUnits.first)
        let sustained = host.sustainedFactor.value
        let none = model.decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .int4g32)
        let calls = model.decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .int4g32, calls: 120)
        #expect(abs(calls - none - 120 * 5e-6 / sustained) < 1e-15)
        let q8 = model.decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .q8_0)
        #expect(model.decodeSeconds(weightBytes: 1e8, parameters: 1, unit: cpu, format: .q8_0, calls: 120) == q8)

        // The search charges 4 calls per decoder layer and one per head matrix.
        let request = PlanRequest(model: try manifest("smollm2-135m"), device: host, workload: try workload("chat"))
        let space = try SearchSpace(request)
        var decoderItems = 0
        for item in space.items where item.kind == .textDecoder {
            decoderItems += 1
            let layers = Set(item.tensors.compactMap(\.layer)).count
            #expect(SearchSpace.decodeCalls(item) == 4 * layers && layers > 0)
            for option in item.options {
                let bytes = Double(option.weightBytes)
                let perCall = option.format == .int4g32 ? 5e-6 : 0
                let expected = model.decodeSeconds(weightBytes: bytes, parameters: Double(item.matrixParameters),
                                                   unit: cpu, format: option.format)
                    + Double(4 * layers) * perCall / sustained
                #expect(abs(option.decodeSeconds - expected) < 1e-15, "\(option.format)")
            }
        }
        #expect(decoderItems > 0)
    }

    @Test func prefillIsComputeBound() throws {
        let device = try profile(phone)
        let model = LatencyModel(device: device)
        let npu = try #require(device.computeUnits.first { $0.id == "npu" })
        let flops = 2 * 8e9 * 1000
        let t = model.matmulSeconds(flops: flops, bytes: 4.5e9, unit: npu, format: .int4g128)
        #expect(abs(t - flops / (45e12 * 0.4)) < 1e-9)
        #expect(model.unit(for: .int4g128)?.id == "npu")
        #expect(model.unit(for: .q4K)?.id == "cpu")
        #expect(model.unit(for: .nf4) == nil)
    }

    @Test func tensorParallelChargesTwoAllReducesPerLayerOverPCIe() throws {
        let device = try SpecLoader.decode(DeviceProfile.self, from: Data(serverProfileJSON.utf8), file: "server.json")
        let model = LatencyModel(device: device)
        let gpu = try #require(device.computeUnits.first)
        #expect(model.tensorParallel(gpu) == 2)
        // 40 layers · 2 all-reduces · 4096 · 2 B, ring factor 2·(2−1)/2 = 1, over 25 GB/s, plus 80 latencies.
        let t = model.allReduceSeconds(layers: 40, hidden: 4096, tokens: 1, parallel: 2)
        #expect(abs(t - (80.0 * 8192 / 25e9 + 80 * 1e-5)) < 1e-12)
        #expect(model.allReduceSeconds(layers: 40, hidden: 4096, tokens: 1, parallel: 1) == 0)
        // Both GPUs stream weights: bandwidth doubles.
        #expect(model.bandwidth(gpu) == 2 * 1008e9)

        let request = PlanRequest(model: try manifest("glm-4-9b"), device: device, workload: try workload("chat"))
        let space = try SearchSpace(request)
        #expect(space.tensorParallel == 2)
        let result = try Planner.plan(request)
        #expect(result.plan.feasible)
        let global = space.globals[0][0]
        #expect(global.allReduceDecodeSeconds > 0)
        #expect(global.allReducePrefillSeconds > 0)
    }
}

@Suite("Accuracy cost model")
struct AccuracyModelTests {
    @Test func everyDefaultCarriesASource() {
        for e in AccuracyModel.defaultFormatTable { #expect(!e.source.isEmpty && e.loss >= 0) }
        for e in AccuracyModel.defaultSettingTable { #expect(!e.source.isEmpty && e.loss >= 0) }
        // Every weight format has a default figure.
        for f in WeightFormat.allCases { #expect(AccuracyModel.defaultFormatTable.contains { $0.format == f }) }
    }

    @Test func publishedAnchors() throws {
        // The built-in defaults, without the manifest's own table.
        var m = try manifest("autoglm-phone-9b")
        m.sensitivity = []
        let model = AccuracyModel(manifest: m)
        #expect(model.loss(module: "decoder", format: .q8_0) == 0.000425)
        #expect(abs((model.loss(module: "decoder", format: .q4K) ?? 0) - (6.500529 / 6.233160 - 1)) < 1e-6)
        #expect((model.loss(module: "decoder", format: .q6K) ?? 1) < (model.loss(module: "decoder", format: .q4K) ?? 0))
    }

    @Test func manifestEntriesOverrideDefaults() throws {
        var m = try manifest("autoglm-phone-9b")
        m.sensitivity = [FormatSensitivity(module: "vision", format: .q4_0, loss: 0.2, source: "test", measured: true)]
        let model = AccuracyModel(manifest: m)
        #expect(model.loss(module: "vision", format: .q4_0) == 0.2)
        #expect(model.loss(module: "decoder", format: .q4_0) == 0.074920)
    }

    @Test func uniformFormatCostsThePublishedFigure() throws {
        // Parameter-share weighting: every module in q8_0 costs q8_0's whole-model figure (plus the KV setting).
        // With the built-in defaults (one figure per format for every module).
        let result = try Planner.plan(try phoneRequest { $0.pins = [FormatPin(glob: "*", format: .q8_0)]
            $0.memoryBudgetBytes = 20_000_000_000
            $0.model.sensitivity = [] })
        let kvLoss = AccuracyModel.defaultSettingTable.first { $0.setting == "kv:\(result.plan.attention.kvCacheFormat.rawValue)" }?.loss ?? 0
        #expect(abs(result.plan.predicted.accuracyLoss - (0.000425 + kvLoss)) < 2e-6)
    }
}
