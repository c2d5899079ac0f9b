import Foundation
import AutoGLMSpecs

/// One planning item: a whole module, or one group of decoder layers, with the formats it may take.
public struct PlanItem: Sendable {
    public var name: String
    public var module: String
    public var kind: ModuleKind
    public var layers: ClosedRange<Int>?
    public var tensors: [ModuleTensor]
    /// All parameters of the item (vectors included).
    public var parameters: Int
    /// Parameters of its matrices (the ones multiplied per token).
    public var matrixParameters: Int
    public var options: [ItemOption]
}

/// One legal format for an item, with its costs.
public struct ItemOption: Sendable {
    public var format: WeightFormat
    /// The compute unit that executes it (fastest unit whose `formats` list it).
    public var unit: String
    public var weightBytes: Int
    /// Matrices the format cannot store (row length not a multiple of its block), each "name as stored-format"
    /// (a smaller INT4 group, else F16).
    public var fallbacks: [String]
    /// Weighted accuracy cost (share · factor · L).
    public var loss: Double
    public var lossSource: String
    /// Seconds per decoded token.
    public var decodeSeconds: Double
    /// Prefill seconds per token the item processes (its multiplier comes from the scenario).
    var prefillFLOPsPerToken: Double
    var unitRef: DeviceProfile.ComputeUnit
}

/// A pixel budget and the token counts that follow from it.
public struct Scenario: Sendable {
    public var maxPixels: Int?
    public var patches: Int
    public var imageTokens: Int
    /// Prompt tokens + image tokens (what prefill processes).
    public var contextTokens: Int
    /// Context + output tokens (what the KV cache must hold at the end).
    public var totalTokens: Int
    public var lossExtra: Double
    public var lossSource: String?
    /// Prefill seconds per item and option.
    var prefill: [[Double]]
}

/// The attention settings of one search point, with their costs.
public struct GlobalChoice: Sendable {
    public var kv: KVCacheFormat
    public var window: Int?
    public var globalTokens: Int
    /// MoBA block-sparse selection of the decoder (never together with a window: the engine needs the full cache).
    public var blockSparse: Plan.BlockSparse?
    public var decoderKernel: AttentionKernel
    /// The decoder's attention costs from `AttentionCostModel` (nil for a model without a text decoder).
    public var decoderAttention: DecoderAttentionCosts?
    public var visionKernel: AttentionKernel
    public var kvBytes: Int
    public var cachedTokens: Int
    public var stages: [(name: String, bytes: Int)]
    public var activationPeak: Int
    /// The tokenizer's parsed vocabulary and tables (`MemoryModel.tokenizerBytes`).
    public var tokenizerBytes: Int
    /// KV + activation peak + tokenizer + runtime overhead.
    public var fixedBytes: Int
    public var ttftExtra: Double
    public var decodeExtra: Double
    public var lossExtra: Double
    public var visionAttentionSeconds: Double
    public var decoderAttentionSeconds: Double
    public var allReducePrefillSeconds: Double
    public var allReduceDecodeSeconds: Double
    public var kvDecodeSeconds: Double
}

/// Builds the items, options, scenarios and attention choices for a request.
public struct SearchSpace: Sendable {
    public var request: PlanRequest
    public var accuracy: AccuracyModel
    public var latency: LatencyModel
    /// Prices every decoder attention setting (the model `autoglm-run bench-attention` checks).
    public var attentionCosts: AttentionCostModel
    public var items: [PlanItem]
    public var scenarios: [Scenario]
    /// Attention choices per scenario.
    public var globals: [[GlobalChoice]]
    /// Bytes of activations per element.
    public var activationElementBytes: Int
    public var tensorParallel: Int

    public init(_ request: PlanRequest) throws {
        try request.validate()
        self.request = request
        let model = request.model
        let accuracy = AccuracyModel(manifest: model, moduleFactors: request.moduleFactors)
        let latency = LatencyModel(device: request.device)
        self.accuracy = accuracy
        self.latency = latency
        let attentionUnit = latency.attentionUnit
        let activationElementBytes = attentionUnit?.kind == .cpu || attentionUnit == nil ? 4 : 2
        let tensorParallel = attentionUnit.map { latency.tensorParallel($0) } ?? 1
        self.activationElementBytes = activationElementBytes
        self.tensorParallel = tensorParallel

        // Items.
        var items: [PlanItem] = []
        let totalParameters = max(1, model.parameters)
        for module in model.modules {
            let tensors = module.tensors
            guard tensors.contains(where: { $0.isQuantizable }) else { continue }
            if case let .textDecoder(spec) = module.body {
                let size = request.layerGroupSize ?? Int((Double(spec.layers) / 8).rounded(.up))
                var first = 0
                while first < spec.layers {
                    let last = min(spec.layers - 1, first + size - 1)
                    let isLast = last == spec.layers - 1
                    let group = tensors.filter { t in
                        if let l = t.layer { return l >= first && l <= last }
                        return isLast
                    }
                    items.append(Self.makeItem(name: "\(module.name)[\(first)-\(last)]", module: module,
                                               layers: first...last, tensors: group))
                    first = last + 1
                }
            } else {
                items.append(Self.makeItem(name: module.name, module: module, layers: nil, tensors: tensors))
            }
        }

        // Options per item: formats legal on a unit, with an accuracy figure, within pins.
        let pins = request.pins
        for pin in pins where !items.contains(where: { pin.matches(item: $0.name, module: $0.module) }) {
            throw PlannerError.pinMatchesNothing(pin: pin.description, modules: model.modules.map(\.name))
        }
        for pin in pins where latency.unit(for: pin.format) == nil {
            throw PlannerError.pinnedFormatIllegal(pin: pin.description, format: pin.format, device: request.device.id)
        }
        let decoder = model.textDecoder
        // A tied head reads the embedding table: the table's format is also the head's, at the table's share.
        let tiedHead = model.modules.first { m in
            if case let .head(h) = m.body { return h.tied }
            return false
        }
        for i in items.indices {
            let item = items[i]
            let pinned = pins.last { $0.matches(item: item.name, module: item.module) }?.format
            var options: [ItemOption] = []
            for format in WeightFormat.allCases {
                if let pinned, format != pinned { continue }
                if request.engineFormatsOnly && !format.engineExecutes && pinned == nil { continue }
                guard let unit = latency.unit(for: format) else { continue }
                guard var (loss, entry) = accuracy.itemCost(module: item.module, parameters: item.parameters,
                                                            modelParameters: totalParameters, format: format)
                else { continue }
                if item.kind == .embedding, let tiedHead {
                    guard let head = accuracy.itemCost(module: tiedHead.name, parameters: item.parameters,
                                                       modelParameters: totalParameters, format: format)
                    else { continue }
                    loss += head.loss
                    entry.source += "; as the tied \(tiedHead.name): " + head.entry.source
                }
                let (bytes, fallbacks) = MemoryModel.weightBytes(item.tensors, format: format)
                let decode: Double
                switch item.kind {
                case .textDecoder, .head, .crossModal:
                    decode = latency.decodeSeconds(weightBytes: Double(bytes), parameters: Double(item.matrixParameters),
                                                   unit: unit, format: format, calls: Self.decodeCalls(item))
                case .embedding:
                    // A row per token; a tied table is also the head, read whole for each token's logits.
                    let rows = max(1, item.tensors.first?.rows ?? 1)
                    decode = latency.decodeSeconds(weightBytes: Double(bytes) / Double(rows), parameters: 0,
                                                   unit: unit, format: format)
                        + (tiedHead == nil ? 0 : latency.decodeSeconds(
                            weightBytes: Double(bytes), parameters: Double(item.matrixParameters), unit: unit,
                            format: format, calls: 1))
                case .visionEncoder, .audioEncoder, .projector:
                    decode = 0
                }
                let flopsPerToken = item.kind == .embedding && tiedHead == nil ? 0 : 2 * Double(item.matrixParameters)
                let stored = fallbacks.map { "\($0.name) as \(MemoryModel.storedFormat(format, for: $0).rawValue)" }
                options.append(ItemOption(format: format, unit: unit.id, weightBytes: bytes, fallbacks: stored,
                                          loss: loss, lossSource: entry.source,
                                          decodeSeconds: decode, prefillFLOPsPerToken: flopsPerToken, unitRef: unit))
            }
            if options.isEmpty { throw PlannerError.noLegalFormat(module: item.name, device: request.device.id) }
            items[i].options = options
        }

        // Scenarios: the model's default pixel limit plus every budget with an accuracy figure.
        var scenarios: [Scenario] = []
        let workload = request.workload
        var budgets: [Int?] = [nil]
        if model.vision != nil && workload.image != nil {
            for p in accuracy.pixelOptions where p < (model.vision?.maxPixels ?? Int.max) { budgets.append(p) }
        }
        for budget in budgets {
            let patches = workload.imagePatches(model.vision, maxPixels: budget)
            let imageTokens = workload.imageTokens(model.vision, maxPixels: budget)
            let context = workload.promptTokens + imageTokens
            var loss = 0.0
            var source: String? = nil
            if let budget, let s = accuracy.setting(AccuracyModel.pixelSetting(budget)) { loss = s.loss; source = s.source }
            var prefill: [[Double]] = []
            for item in items {
                let tokens: Int
                switch item.kind {
                case .visionEncoder: tokens = patches
                case .projector: tokens = item.tensors.contains { $0.name.hasPrefix("mm.") }
                    ? imageTokens : 0
                case .audioEncoder: tokens = 0
                case .embedding: tokens = tiedHead == nil ? 0 : min(request.logitsTokens, context)   // tied: logits
                case .textDecoder, .crossModal: tokens = context
                case .head: tokens = min(request.logitsTokens, context)
                }
                prefill.append(item.options.map { o in
                    tokens == 0 ? 0 : latency.matmulSeconds(flops: o.prefillFLOPsPerToken * Double(tokens),
                                                            bytes: Double(o.weightBytes), unit: o.unitRef, format: o.format)
                })
            }
            scenarios.append(Scenario(maxPixels: budget, patches: patches, imageTokens: imageTokens,
                                      contextTokens: context, totalTokens: context + workload.outputTokens,
                                      lossExtra: loss, lossSource: source, prefill: prefill))
        }
        // Drop options another option of the same item matches or beats on every axis (bytes, loss, decode time,
        // prefill time in every scenario): they can never be part of a better plan, so the search stays exact.
        for k in items.indices {
            let options = items[k].options
            var keep: [Int] = []
            for i in options.indices {
                let dominated = options.indices.contains { j in
                    guard j != i else { return false }
                    let a = options[j], b = options[i]
                    let noWorse = a.weightBytes <= b.weightBytes && a.loss <= b.loss && a.decodeSeconds <= b.decodeSeconds
                        && scenarios.allSatisfy { $0.prefill[k][j] <= $0.prefill[k][i] }
                    guard noWorse else { return false }
                    let strictly = a.weightBytes < b.weightBytes || a.loss < b.loss || a.decodeSeconds < b.decodeSeconds
                        || scenarios.contains { $0.prefill[k][j] < $0.prefill[k][i] }
                    return strictly || j < i
                }
                if !dominated { keep.append(i) }
            }
            items[k].options = keep.map { options[$0] }
            for s in scenarios.indices { scenarios[s].prefill[k] = keep.map { scenarios[s].prefill[k][$0] } }
        }
        self.items = items
        self.scenarios = scenarios

        // Attention choices per scenario: KV precision × pattern (full, each window, each measured block-sparse
        // setting) × decoder kernel × vision kernel. A pattern is offered only where it changes something: a window
        // shorter than the sequence, block selection that leaves some earlier block out.
        var globals: [[GlobalChoice]] = []
        let costs = AttentionCostModel(request: request, accuracy: accuracy)
        self.attentionCosts = costs
        let kvFormats = KVCacheFormat.allCases.filter { accuracy.setting(AccuracyModel.kvSetting($0)) != nil }
        var patterns: [(window: Int?, global: Int, blockSparse: Plan.BlockSparse?)] = [(nil, 0, nil)]
        for w in accuracy.windowOptions { patterns.append((w.window, w.global, nil)) }
        for b in accuracy.blockSparseOptions { patterns.append((nil, 0, b)) }
        for scenario in scenarios {
            // The vision kernel only matters when an image is encoded.
            let visionKernels: [AttentionKernel] = model.visionEncoder != nil && scenario.patches > 0
                ? [.tiled, .materialised] : [.tiled]
            let chunk = min(request.prefillChunk, max(1, scenario.contextTokens))
            var list: [GlobalChoice] = []
            for kv in kvFormats {
                for pattern in patterns {
                    if let window = pattern.window, window + pattern.global >= scenario.totalTokens { continue }
                    if let b = pattern.blockSparse, b.chunk * b.topK >= scenario.totalTokens { continue }
                    for decoderKernel in [AttentionKernel.tiled, .materialised]
                    where costs.calibrates(kv: kv, kernel: decoderKernel) {
                        let setting = AttentionSettingSpec(
                            name: Self.settingName(kv: kv, window: pattern.window, globalTokens: pattern.global,
                                                   blockSparse: pattern.blockSparse, kernel: decoderKernel),
                            kv: kv, kernel: decoderKernel, window: pattern.window,
                            globalTokens: pattern.window == nil ? 0 : pattern.global, blockSparse: pattern.blockSparse)
                        let attention = decoder.map {
                            costs.decoderCosts(setting, decoder: $0, contextTokens: scenario.contextTokens,
                                               totalTokens: scenario.totalTokens, chunk: chunk)
                        }
                        // A setting without an accuracy figure for every part is not offered.
                        if let attention, attention.loss == nil { continue }
                        for visionKernel in visionKernels {
                            list.append(Self.globalChoice(request: request, latency: latency, scenario: scenario,
                                                          decoder: decoder, setting: setting, attention: attention,
                                                          visionKernel: visionKernel,
                                                          elementBytes: activationElementBytes,
                                                          tensorParallel: tensorParallel))
                        }
                    }
                }
            }
            globals.append(list)
        }
        self.globals = globals
    }

    /// A readable name for a search setting ("int8 tiled, window 512+4").
    static func settingName(kv: KVCacheFormat, window: Int?, globalTokens: Int, blockSparse: Plan.BlockSparse?,
                            kernel: AttentionKernel) -> String {
        var name = "\(kv.rawValue) \(kernel.rawValue)"
        if let window { name += ", window \(window)+\(globalTokens)" }
        if let b = blockSparse { name += ", block-sparse \(b.chunk)/\(b.topK)" }
        return name
    }

    /// Matrix × vector calls an item makes per decoded token: 4 per decoder layer
    /// (`LatencyModel.decodeCallsPerDecoderLayer`), one per matrix elsewhere (a head, a cross-modal block).
    static func decodeCalls(_ item: PlanItem) -> Int {
        switch item.kind {
        case .textDecoder:
            return max(1, Set(item.tensors.compactMap(\.layer)).count) * LatencyModel.decodeCallsPerDecoderLayer
        default:
            return item.tensors.filter { $0.isQuantizable }.count
        }
    }

    static func makeItem(name: String, module: ModuleSpec, layers: ClosedRange<Int>?, tensors: [ModuleTensor]) -> PlanItem {
        PlanItem(name: name, module: module.name, kind: module.kind, layers: layers, tensors: tensors,
                 parameters: tensors.reduce(0) { $0 + $1.parameters },
                 matrixParameters: tensors.filter { $0.isQuantizable }.reduce(0) { $0 + $1.parameters }, options: [])
    }

    static func globalChoice(request: PlanRequest, latency: LatencyModel, scenario: Scenario, decoder: TextDecoderSpec?,
                             setting: AttentionSettingSpec, attention: DecoderAttentionCosts?,
                             visionKernel: AttentionKernel, elementBytes: Int, tensorParallel: Int) -> GlobalChoice {
        let model = request.model
        let chunk = min(request.prefillChunk, max(1, scenario.contextTokens))
        var stages: [(String, Int)] = []
        var kvBytes = 0, cached = 0
        var visionSeconds = 0.0, decoderSeconds = 0.0
        var arPrefill = 0.0, arDecode = 0.0, kvDecode = 0.0
        if let v = model.visionEncoder, scenario.patches > 0 {
            stages.append(("vision_encode", MemoryModel.visionActivation(v, patches: scenario.patches, kernel: visionKernel,
                                                                         elementBytes: elementBytes)))
            let scoreTraffic = visionKernel == .materialised
                ? 2 * Double(v.layers) * Double(MemoryModel.scoreBytes(queries: scenario.patches, keys: scenario.patches,
                                                                        heads: v.heads, kernel: .materialised,
                                                                        elementBytes: elementBytes)) : 0
            visionSeconds = latency.attentionSeconds(flops: v.attentionFLOPs(patches: scenario.patches), bytes: scoreTraffic)
        }
        for module in model.modules {
            if case let .projector(spec) = module.body, scenario.patches > 0, spec.style == .convMerger {
                stages.append(("projector", MemoryModel.projectorActivation(spec, patches: scenario.patches,
                                                                            elementBytes: elementBytes)))
            }
        }
        if let d = decoder, let attention {
            // KV, attention time and the kernel's scratch come from the attention cost model.
            cached = attention.cachedTokens
            kvBytes = attention.kvBytes
            stages.append(("decoder_prefill", MemoryModel.decoderActivation(d, chunk: chunk,
                                                                             positions: scenario.totalTokens,
                                                                             attentionScratch: attention.prefill.scratchBytes,
                                                                             elementBytes: elementBytes)))
            decoderSeconds = attention.prefillSeconds
            kvDecode = attention.decodeSeconds
            arPrefill = latency.allReduceSeconds(layers: d.layers, hidden: d.hidden, tokens: scenario.contextTokens,
                                                 parallel: tensorParallel)
            arDecode = latency.allReduceSeconds(layers: d.layers, hidden: d.hidden, tokens: 1, parallel: tensorParallel)
        }
        var tokenizer = 0
        if let head = model.modules.lazy.compactMap({ m -> Int? in
            if case let .head(h) = m.body { return h.vocab }
            if case let .embedding(e) = m.body { return e.vocab }
            return nil
        }).first {
            stages.append(("logits", MemoryModel.logitsBytes(vocab: head, tokens: min(request.logitsTokens,
                                                                                      max(1, scenario.contextTokens)))))
            tokenizer = MemoryModel.tokenizerBytes(vocab: head)
        }
        let peak = stages.map(\.1).max() ?? 0
        let overhead = request.device.runtimeOverheadBytes.value
        return GlobalChoice(kv: setting.kv, window: setting.window, globalTokens: setting.globalTokens,
                            blockSparse: setting.blockSparse, decoderKernel: setting.kernel,
                            decoderAttention: attention, visionKernel: visionKernel, kvBytes: kvBytes,
                            cachedTokens: cached, stages: stages, activationPeak: peak, tokenizerBytes: tokenizer,
                            fixedBytes: kvBytes + peak + tokenizer + overhead,
                            ttftExtra: visionSeconds + decoderSeconds + arPrefill,
                            decodeExtra: kvDecode + arDecode, lossExtra: attention?.loss ?? 0,
                            visionAttentionSeconds: visionSeconds, decoderAttentionSeconds: decoderSeconds,
                            allReducePrefillSeconds: arPrefill, allReduceDecodeSeconds: arDecode,
                            kvDecodeSeconds: kvDecode)
    }
}
