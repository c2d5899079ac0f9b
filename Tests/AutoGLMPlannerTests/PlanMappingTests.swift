import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Plan mapping onto a smaller model")
struct PlanMappingTests {
    /// The checked-in phone plan carried onto SmolLM2: 40 decoder layers onto 30, formats per layer, and accuracy and
    /// weight bytes predicted from SmolLM2's own manifest.
    @Test func phonePlanOntoSmolLM2IsPricedWithTheTargetsTables() throws {
        let source = try Plan.load(repoPath("Plans/autoglm-phone-9b.snapdragon-8-gen-3-12gb.json"))
        let target = try manifest("smollm2-135m")
        let mapped = try PlanMapping.map(source, onto: target)
        #expect(mapped.model == Plan.ModelRef(id: "smollm2-135m", parameters: target.parameters))

        // Every target layer has the format of source layer ⌊l · 40 / 30⌋, each layer exactly once.
        let decoder = mapped.modules.filter { $0.kind == .textDecoder }
        var covered: [Int] = []
        for m in decoder {
            let layers = try #require(m.layers)
            for l in layers[0]...layers[1] {
                covered.append(l)
                let sourceEntry = try #require(source.modules.first {
                    $0.kind == .textDecoder && $0.covers(layer: l * 40 / 30)
                })
                #expect(m.format == sourceEntry.format)
            }
        }
        #expect(covered == Array(0..<30))

        // Weight bytes and accuracy per entry, by hand from the target's tensors and tables.
        let accuracy = AccuracyModel(manifest: target)
        let total = Double(target.parameters)
        var expectedLoss = 0.0
        for m in mapped.modules {
            let tensors: [ModuleTensor]
            var holds = true
            if m.kind == .head {
                // SmolLM2's head is tied: priced as the table in the head's format ("head" figures), holding a copy
                // only when its stored format differs from the embedding's.
                let embeddingFormat = try #require(mapped.modules.first { $0.kind == .embedding }?.format)
                tensors = target.modules.first { $0.kind == .embedding }!.tensors
                holds = m.format.stored(columns: 576) != embeddingFormat.stored(columns: 576)
            } else {
                tensors = target.modules.first { $0.kind == m.kind }!.tensors.filter { t in
                    guard let layers = m.layers else { return true }
                    if let l = t.layer { return l >= layers[0] && l <= layers[1] }
                    return layers[1] == 29
                }
            }
            let lookup = m.kind == .textDecoder ? "decoder" : m.name
            var bytes = 0, loss = 0.0
            for t in tensors {
                let stored = t.isQuantizable ? m.format.stored(columns: t.columns) : m.format
                bytes += t.isQuantizable ? stored.bytes(rows: t.rows, columns: t.columns) : 4 * t.parameters
                loss += Double(t.parameters) / total * (try #require(accuracy.loss(module: lookup, format: stored)))
            }
            if !holds { bytes = 0 }
            #expect(m.weightBytes == bytes, "\(m.name)")
            #expect(abs(m.accuracyCost - loss) < 1e-6, "\(m.name)")
            #expect(m.predictedLatencySeconds == nil)
            expectedLoss += loss
        }
        expectedLoss += try #require(accuracy.setting(AccuracyModel.kvSetting(source.attention.kvCacheFormat))).loss
        #expect(abs(mapped.predicted.accuracyLoss - expectedLoss) < 1e-5)
        #expect(mapped.predicted.weightBytes == mapped.modules.reduce(0) { $0 + $1.weightBytes })
        // Nothing of the 9B prediction but a mention of its accuracy figure.
        #expect(mapped.predicted.peakMemoryBytes == 0 && mapped.predicted.ttftSeconds == 0)
        #expect(mapped.predicted.decodeTokensPerSecond == 0)
        #expect(mapped.predicted.accuracyLoss != source.predicted.accuracyLoss)
        #expect(mapped.explanation.joined().contains(String(format: "%.2f%%", source.predicted.accuracyLoss * 100)))
    }

    /// A tied head in the embedding's stored format is the embedding table itself: no bytes of its own; stored
    /// otherwise it is a converted copy. Either way the output projection is priced as the table in the head's format.
    @Test(arguments: [(WeightFormat.q8_0, WeightFormat.q8_0, false), (.int4g128, .int4g64, false),
                      (.int4g128, .q4_0, true), (.q8_0, .q4_1, true)])
    func tiedHeadIsPricedOnlyAsASeparateCopy(embedding: WeightFormat, head: WeightFormat, copy: Bool) throws {
        var source = try Plan.load(repoPath("Plans/autoglm-phone-9b.snapdragon-8-gen-3-12gb.json"))
        for i in source.modules.indices {
            if source.modules[i].kind == .embedding { source.modules[i].format = embedding }
            if source.modules[i].kind == .head { source.modules[i].format = head }
        }
        let target = try manifest("smollm2-135m")
        let mapped = try PlanMapping.map(source, onto: target)
        let h = try #require(mapped.modules.first { $0.kind == .head })
        let table = target.modules.first { $0.kind == .embedding }!.tensors
        if copy {
            #expect(h.weightBytes == MemoryModel.weightBytes(table, format: head).bytes)
        } else {
            #expect(h.weightBytes == 0 && h.parameters == 0)
        }
        let share = Double(table.reduce(0) { $0 + $1.parameters }) / Double(target.parameters)
        let figure = try #require(AccuracyModel(manifest: target).loss(module: "head",
                                                                       format: head.stored(columns: 576)))
        #expect(abs(h.accuracyCost - share * figure) < 1e-6)
    }

    @Test func aSettingWithoutAFigureIsAnErrorNamingIt() throws {
        var source = try Plan.load(repoPath("Plans/autoglm-phone-9b.snapdragon-8-gen-3-12gb.json"))
        source.attention.window = 333
        source.attention.globalTokens = 3
        let error = #expect(throws: PlanMapping.Error.self) {
            try PlanMapping.map(source, onto: try manifest("smollm2-135m"))
        }
        #expect(error?.message.contains("window:333+3") == true)
        #expect(error?.message.contains("smollm2-135m") == true)
    }

    @Test func aPlanWithoutDecoderEntriesIsAnError() throws {
        var source = try Plan.load(repoPath("Plans/autoglm-phone-9b.snapdragon-8-gen-3-12gb.json"))
        source.modules.removeAll { $0.kind == .textDecoder }
        #expect(throws: PlanMapping.Error.self) { try PlanMapping.map(source, onto: try manifest("smollm2-135m")) }
    }
}

@Suite("Tied tables in the planner")
struct TiedTableTests {
    /// SmolLM2's table is both the input lookup and the output projection: each format costs both figures.
    @Test func aTiedEmbeddingCostsTheLookupAndTheHead() throws {
        let model = try manifest("smollm2-135m")
        let request = PlanRequest(model: model, device: try profile("host"), workload: try workload("chat"))
        let space = try SearchSpace(request)
        let item = try #require(space.items.first { $0.kind == .embedding })
        let accuracy = AccuracyModel(manifest: model)
        let share = Double(item.parameters) / Double(model.parameters)
        #expect(item.options.count >= 4)
        for option in item.options {
            let expected = share * (try #require(accuracy.loss(module: "embedding", format: option.format))
                                    + (try #require(accuracy.loss(module: "head", format: option.format))))
            #expect(abs(option.loss - expected) < 1e-12, "\(option.format)")
            #expect(option.lossSource.contains("as the tied head"))
        }
        #expect(item.options.contains { $0.format == .q4_0 && $0.loss > 0.05 })
        #expect(!space.items.contains { $0.kind == .head })
    }

    /// Each decoded token reads one row of a tied table for its input and the whole table for its logits.
    @Test func aTiedEmbeddingIsReadWholeForEachTokensLogits() throws {
        let model = try manifest("smollm2-135m")
        let request = PlanRequest(model: model, device: try profile("host"), workload: try workload("chat"))
        let space = try SearchSpace(request)
        let k = try #require(space.items.firstIndex { $0.kind == .embedding })
        let latency = LatencyModel(device: request.device)
        let cpu = try #require(request.device.computeUnits.first)
        for (o, option) in space.items[k].options.enumerated() {
            let bytes = Double(option.weightBytes), rows = Double(space.items[k].tensors[0].rows)
            let expected = latency.decodeSeconds(weightBytes: bytes / rows, parameters: 0, unit: cpu,
                                                 format: option.format)
                + latency.decodeSeconds(weightBytes: bytes, parameters: Double(space.items[k].matrixParameters),
                                        unit: cpu, format: option.format, calls: 1)
            #expect(abs(option.decodeSeconds - expected) < 1e-12, "\(option.format)")
            // Prefill computes the logits of the last prompt token through it.
            let logits = latency.matmulSeconds(flops: 2 * Double(space.items[k].matrixParameters), bytes: bytes,
                                               unit: cpu, format: option.format)
            #expect(abs(space.scenarios[0].prefill[k][o] - logits) < 1e-12, "\(option.format)")
        }
    }
}
