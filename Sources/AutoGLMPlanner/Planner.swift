import Foundation
import AutoGLMSpecs

/// A point of the Pareto frontier (memory × accuracy × latency).
public struct FrontierPoint: Codable, Sendable, Equatable {
    public var peakMemoryBytes: Int
    public var accuracyLoss: Double
    public var ttftSeconds: Double
    public var decodeTokensPerSecond: Double
    public var latencySeconds: Double
    public var kvCacheFormat: KVCacheFormat
    /// Item name → format.
    public var formats: [String: WeightFormat]
    public var withinBudget: Bool

    enum CodingKeys: String, CodingKey {
        case peakMemoryBytes = "peak_memory_bytes", accuracyLoss = "accuracy_loss", ttftSeconds = "ttft_seconds"
        case decodeTokensPerSecond = "decode_tokens_per_second", latencySeconds = "latency_seconds"
        case kvCacheFormat = "kv_cache_format", formats, withinBudget = "within_budget"
    }
}

/// What `Planner.plan` returns: the plan, and the frontier when asked for.
public struct PlanResult: Sendable {
    public var plan: Plan
    public var frontier: [FrontierPoint]
    /// The candidate the plan was built from (for infeasible requests: the closest configuration shown).
    public var candidate: Candidate?
}

/// The planner's entry point.
public enum Planner {
    public static let generator = "autoglm-plan 1"

    /// Searches for the plan with the least accuracy loss that meets every limit (ties: least end-to-end latency).
    /// Throws `PlannerError` for requests it cannot act on; an infeasible request returns a plan with
    /// `feasible == false`, `binding_constraint` and `shortfall`.
    public static func plan(_ request: PlanRequest, frontier: Bool = false) throws -> PlanResult {
        let space = try SearchSpace(request)
        let search = PlanSearch(space: space)
        let outcome = search.run()
        var points: [FrontierPoint] = []
        if frontier {
            let relaxed = search.run(relaxed: [.memory], frontier: true)
            points = relaxed.frontier.map { point(space, $0) }
        }
        if let best = outcome.best {
            let plan = build(space, best, feasible: true)
            return PlanResult(plan: plan, frontier: points, candidate: best)
        }
        let (binding, shortfall, shown) = diagnose(space, search)
        var plan = build(space, shown, feasible: false)
        plan.bindingConstraint = binding.rawValue
        plan.shortfall = shortfall
        plan.explanation.insert("Infeasible: \(binding.rawValue) — \(shortfall).", at: 0)
        return PlanResult(plan: plan, frontier: points, candidate: shown)
    }

    // MARK: Infeasibility

    /// The candidate minimising one metric, item by item (the metrics are additive over items).
    static func minimal(_ space: SearchSpace, _ metric: PlanConstraint) -> Candidate? {
        var best: Candidate? = nil
        for (s, scenario) in space.scenarios.enumerated() {
            let globals = space.globals[s]
            guard !globals.isEmpty else { continue }
            var choice: [Int] = []
            for (k, item) in space.items.enumerated() {
                let key: (Int) -> Double = { o in
                    let option = item.options[o]
                    switch metric {
                    case .memory: return Double(option.weightBytes)
                    case .accuracy: return option.loss
                    case .ttft: return scenario.prefill[k][o]
                    case .decode: return option.decodeSeconds
                    }
                }
                choice.append(item.options.indices.min { key($0) < key($1) } ?? 0)
            }
            let gKey: (GlobalChoice) -> Double = { g in
                switch metric {
                case .memory: return Double(g.fixedBytes)
                case .accuracy: return g.lossExtra
                case .ttft: return g.ttftExtra
                case .decode: return g.decodeExtra
                }
            }
            guard let g = globals.indices.min(by: { gKey(globals[$0]) < gKey(globals[$1]) }) else { continue }
            let c = candidate(space, scenario: s, global: g, choice: choice)
            let value: (Candidate) -> Double = { c in
                switch metric {
                case .memory: return Double(c.peakBytes)
                case .accuracy: return c.loss
                case .ttft: return c.ttftSeconds
                case .decode: return c.decodeSeconds
                }
            }
            if best == nil || value(c) < value(best!) { best = c }
        }
        return best
    }

    static func candidate(_ space: SearchSpace, scenario s: Int, global g: Int, choice: [Int]) -> Candidate {
        let global = space.globals[s][g]
        var bytes = 0, loss = 0.0, ttft = 0.0, decode = 0.0
        for (k, o) in choice.enumerated() {
            let option = space.items[k].options[o]
            bytes += option.weightBytes
            loss += option.loss
            ttft += space.scenarios[s].prefill[k][o]
            decode += option.decodeSeconds
        }
        loss += global.lossExtra + space.scenarios[s].lossExtra
        ttft += global.ttftExtra
        decode += global.decodeExtra
        return Candidate(scenario: s, global: g, choice: choice, weightBytes: bytes, peakBytes: bytes + global.fixedBytes,
                         loss: loss, ttftSeconds: ttft, decodeSeconds: decode,
                         latencySeconds: ttft + Double(space.request.workload.outputTokens) * decode)
    }

    static func formatsPhrase(_ space: SearchSpace, _ c: Candidate) -> String {
        let formats = zip(space.items, c.choice).map { $0.options[$1].format }
        if let first = formats.first, formats.allSatisfy({ $0 == first }) { return "\(first.rawValue) everywhere" }
        let distinct = Array(Set(formats.map(\.rawValue))).sorted()
        return "the smallest legal formats (\(distinct.joined(separator: ", ")))"
    }

    static func limitText(_ space: SearchSpace, _ constraint: PlanConstraint, _ c: Candidate) -> String {
        let r = space.request
        switch constraint {
        case .memory:
            let budget = r.budgetBytes
            let short = c.peakBytes - budget
            if short >= 100_000_000 {
                return "needs \(Units.gb1(c.peakBytes)), budget \(Units.gb1(budget)): \(Units.gb1(short)) short"
            }
            return "needs \(Units.gb(c.peakBytes)), budget \(Units.gb(budget)): \(Units.bytes(short)) short"
        case .accuracy:
            let limit = r.maxAccuracyLoss ?? .infinity
            return "loses \(Units.percent(c.loss)), limit \(Units.percent(limit)): " +
                "\(String(format: "%.2f", (c.loss - limit) * 100)) points over"
        case .ttft:
            let limit = r.maxTTFTSeconds ?? .infinity
            return "needs \(Units.seconds(c.ttftSeconds)) to the first token, limit \(Units.seconds(limit)): " +
                "\(Units.seconds(c.ttftSeconds - limit)) over"
        case .decode:
            let need = r.minDecodeTokensPerSecond ?? 0
            let rate = 1 / c.decodeSeconds
            return "decodes \(Units.rate(rate)), needs \(Units.rate(need)): \(Units.rate(need - rate)) short"
        }
    }

    static func violates(_ space: SearchSpace, _ c: Candidate) -> PlanConstraint? {
        let r = space.request
        if c.peakBytes > r.budgetBytes { return .memory }
        if let l = r.maxAccuracyLoss, c.loss > l + 1e-12 { return .accuracy }
        if let t = r.maxTTFTSeconds, c.ttftSeconds > t { return .ttft }
        if let d = r.minDecodeTokensPerSecond, 1 / c.decodeSeconds < d { return .decode }
        return nil
    }

    static func diagnose(_ space: SearchSpace, _ search: PlanSearch) -> (PlanConstraint, String, Candidate) {
        let r = space.request
        var active: [PlanConstraint] = [.memory]
        if r.maxAccuracyLoss != nil { active.append(.accuracy) }
        if r.maxTTFTSeconds != nil { active.append(.ttft) }
        if r.minDecodeTokensPerSecond != nil { active.append(.decode) }
        // A limit that cannot be met even by the configuration best for it alone.
        for constraint in active {
            if let c = minimal(space, constraint), violates(space, c) == constraint {
                return (constraint, limitText(space, constraint, c) + " even at " + formatsPhrase(space, c), c)
            }
        }
        // Limits that only conflict together: relax one at a time.
        for constraint in active {
            if let c = search.run(relaxed: [constraint], closest: constraint).closest {
                return (constraint, limitText(space, constraint, c) + " at best within the other limits", c)
            }
        }
        let c = minimal(space, .memory) ?? candidate(space, scenario: 0, global: 0,
                                                       choice: [Int](repeating: 0, count: space.items.count))
        let names = active.map(\.rawValue).joined(separator: " + ")
        return (active.first ?? .memory, "no plan meets \(names) together; relaxing any single limit is not enough", c)
    }

    // MARK: Plan assembly

    static func point(_ space: SearchSpace, _ c: Candidate) -> FrontierPoint {
        var formats: [String: WeightFormat] = [:]
        for (k, o) in c.choice.enumerated() { formats[space.items[k].name] = space.items[k].options[o].format }
        return FrontierPoint(peakMemoryBytes: c.peakBytes, accuracyLoss: Units.round(c.loss, 6),
                             ttftSeconds: Units.round(c.ttftSeconds, 4),
                             decodeTokensPerSecond: Units.round(1 / c.decodeSeconds, 3),
                             latencySeconds: Units.round(c.latencySeconds, 4),
                             kvCacheFormat: space.globals[c.scenario][c.global].kv, formats: formats,
                             withinBudget: c.peakBytes <= space.request.budgetBytes)
    }

    static func build(_ space: SearchSpace, _ c: Candidate, feasible: Bool) -> Plan {
        let r = space.request
        let scenario = space.scenarios[c.scenario]
        let global = space.globals[c.scenario][c.global]
        var plan = Plan()
        plan.generator = generator
        plan.model = .init(id: r.model.id, parameters: r.model.parameters)
        plan.device = .init(id: r.device.id, appBudgetBytes: r.device.memory.appBudgetBytes.value)
        plan.workload = r.workload
        var constraints = Plan.Constraints()
        constraints.maxAccuracyLoss = r.maxAccuracyLoss
        constraints.maxTTFTSeconds = r.maxTTFTSeconds
        constraints.minDecodeTokensPerSecond = r.minDecodeTokensPerSecond
        constraints.memoryBudgetBytes = r.budgetBytes
        constraints.pins = r.pins.map(\.description)
        constraints.engineFormatsOnly = r.engineFormatsOnly ? true : nil
        plan.constraints = constraints
        plan.feasible = feasible

        var explanation: [String] = []
        let outputs = Double(r.workload.outputTokens)
        for module in r.model.modules {
            let indices = space.items.indices.filter { space.items[$0].module == module.name }
            if indices.isEmpty {
                var m = Plan.Module()
                m.name = module.name
                m.kind = module.kind
                m.parameters = 0
                let embeddingFormat = space.items.indices.first { space.items[$0].kind == .embedding }
                    .map { space.items[$0].options[c.choice[$0]].format } ?? .f32
                m.format = embeddingFormat
                m.unit = ""
                m.reason = "\(module.name): tied to the embedding table — no weights of its own"
                plan.modules.append(m)
                explanation.append(m.reason)
                continue
            }
            for k in indices {
                let item = space.items[k]
                let option = item.options[c.choice[k]]
                var m = Plan.Module()
                m.name = item.name
                m.kind = item.kind
                m.layers = item.layers.map { [$0.lowerBound, $0.upperBound] }
                m.parameters = item.parameters
                m.format = option.format
                m.weightBytes = option.weightBytes
                m.unit = option.unit
                m.computePrecision = option.unitRef.precision(for: option.format)
                m.predictedLatencySeconds = Units.round(scenario.prefill[k][c.choice[k]] + outputs * option.decodeSeconds, 4)
                m.accuracyCost = Units.round(option.loss, 6)
                m.reason = reason(space, c, item: k)
                plan.modules.append(m)
                explanation.append(m.reason)
            }
        }

        var attention = Plan.Attention()
        attention.kvCacheFormat = global.kv
        attention.kernel = global.decoderKernel
        attention.visionKernel = global.visionKernel
        attention.window = global.window
        attention.globalTokens = global.globalTokens
        attention.blockSparse = global.blockSparse
        attention.imageTokens = scenario.imageTokens
        attention.maxPixels = scenario.maxPixels
        attention.timeCalibration = appliedCalibration(space)
        let attentionReasons = attentionReasons(space, c)
        attention.reason = attentionReasons.joined(separator: "; ")
        plan.attention = attention
        explanation.append(contentsOf: attentionReasons)

        var p = Plan.Prediction()
        p.peakMemoryBytes = c.peakBytes
        p.weightBytes = c.weightBytes
        p.kvCacheBytes = global.kvBytes
        p.activationPeakBytes = global.activationPeak
        p.runtimeOverheadBytes = r.device.runtimeOverheadBytes.value
        p.tokenizerBytes = global.tokenizerBytes
        p.ttftSeconds = Units.round(c.ttftSeconds, 4)
        p.decodeTokensPerSecond = Units.round(1 / c.decodeSeconds, 3)
        p.accuracyLoss = Units.round(c.loss, 6)
        p.stages = stages(space, c)
        plan.predicted = p
        explanation.append("Totals: peak \(Units.gb(c.peakBytes)) of \(Units.gb(r.budgetBytes)) (weights " +
            "\(Units.gb(c.weightBytes)), KV \(Units.bytes(global.kvBytes)), activations " +
            "\(Units.bytes(global.activationPeak)), tokenizer \(Units.bytes(global.tokenizerBytes)), runtime " +
            "\(Units.bytes(r.device.runtimeOverheadBytes.value))); " +
            "TTFT \(Units.seconds(c.ttftSeconds)); decode \(Units.rate(1 / c.decodeSeconds)); accuracy loss " +
            "\(Units.percent(c.loss)) (share-weighted sum of module losses plus attention settings).")
        let unexecutable = WeightFormat.allCases.filter { space.latency.unit(for: $0) == nil }
        if !unexecutable.isEmpty {
            explanation.append("Not offered: \(unexecutable.map(\.rawValue).joined(separator: ", ")) — no compute unit of " +
                "\(r.device.id) lists them in its formats.")
        }
        plan.explanation = explanation
        return plan
    }

    static func stages(_ space: SearchSpace, _ c: Candidate) -> [Plan.StagePrediction] {
        let scenario = space.scenarios[c.scenario]
        let global = space.globals[c.scenario][c.global]
        var out: [Plan.StagePrediction] = []
        let activation = Dictionary(global.stages.map { ($0.name, $0.bytes) }, uniquingKeysWith: { a, _ in a })
        func sum(_ kinds: Set<ModuleKind>, _ f: (Int, Int) -> Double) -> Double {
            var s = 0.0
            for (k, item) in space.items.enumerated() where kinds.contains(item.kind) { s += f(k, c.choice[k]) }
            return s
        }
        func unit(_ kinds: Set<ModuleKind>) -> String {
            let units = Set(space.items.indices.filter { kinds.contains(space.items[$0].kind) }
                .map { space.items[$0].options[c.choice[$0]].unit })
            return units.sorted().joined(separator: "+")
        }
        let attentionUnit = space.latency.attentionUnit?.id ?? ""
        if scenario.patches > 0, space.request.model.visionEncoder != nil {
            let linear = sum([.visionEncoder]) { scenario.prefill[$0][$1] }
            let seconds = linear + global.visionAttentionSeconds
            out.append(.init(stage: "vision_encode", seconds: Units.round(seconds, 4),
                             activationBytes: activation["vision_encode"] ?? 0,
                             unit: unit([.visionEncoder]) + (attentionUnit.isEmpty ? "" : " (attention: \(attentionUnit))"),
                             bound: global.visionAttentionSeconds > linear ? "attention compute" : "matmul compute"))
            out.append(.init(stage: "projector", seconds: Units.round(sum([.projector]) { scenario.prefill[$0][$1] }, 4),
                             activationBytes: activation["projector"] ?? 0, unit: unit([.projector]),
                             bound: "matmul compute"))
        }
        let linear = sum([.textDecoder, .crossModal, .embedding]) { scenario.prefill[$0][$1] }
        out.append(.init(stage: "decoder_prefill",
                         seconds: Units.round(linear + global.decoderAttentionSeconds + global.allReducePrefillSeconds, 4),
                         activationBytes: activation["decoder_prefill"] ?? 0, unit: unit([.textDecoder]),
                         bound: global.decoderAttentionSeconds > linear ? "attention compute" : "matmul compute"))
        out.append(.init(stage: "logits", seconds: Units.round(sum([.head]) { scenario.prefill[$0][$1] }, 4),
                         activationBytes: activation["logits"] ?? 0, unit: unit([.head]), bound: "matmul compute"))
        let weightsDecode = sum([.textDecoder, .crossModal, .embedding, .head]) { space.items[$0].options[$1].decodeSeconds }
        out.append(.init(stage: "decode_token", seconds: Units.round(c.decodeSeconds, 6),
                         activationBytes: 0, unit: unit([.textDecoder]),
                         bound: weightsDecode >= global.kvDecodeSeconds ? "memory bandwidth (weights)"
                            : "memory bandwidth (KV cache)"))
        return out
    }

    /// Why an item got its format: the next more accurate option, and the limit it would break.
    static func reason(_ space: SearchSpace, _ c: Candidate, item k: Int) -> String {
        let item = space.items[k]
        let option = item.options[c.choice[k]]
        var text = "\(item.name): \(option.format.rawValue) on \(option.unit), \(Units.bytes(option.weightBytes)), " +
            "accuracy cost \(Units.percent(option.loss, digits: 3))"
        let pinned = space.request.pins.last { $0.matches(item: item.name, module: item.module) }
        if let pinned {
            text += " — pinned by --pin '\(pinned)'"
        } else {
            let better = item.options.indices.filter { item.options[$0].loss < option.loss - 1e-15 }
            if let alt = better.min(by: { item.options[$0].weightBytes < item.options[$1].weightBytes }) {
                var choice = c.choice
                choice[k] = alt
                let swapped = candidate(space, scenario: c.scenario, global: c.global, choice: choice)
                let altName = item.options[alt].format.rawValue
                if let broken = violates(space, swapped) {
                    text += " — \(altName) (more accurate) " + limitText(space, broken, swapped)
                } else if space.request.pins.isEmpty {
                    text += " — \(altName) would also fit, but the search found a more accurate mix elsewhere"
                }
            } else {
                text += " — the most accurate format a unit of this device executes"
            }
        }
        if !option.fallbacks.isEmpty {
            text += "; \(option.fallbacks.count) tensor(s) stored otherwise because \(option.format.rawValue) cannot " +
                "store their row length: \(option.fallbacks.prefix(3).joined(separator: ", "))"
        }
        return text
    }

    /// The choice of the same scenario with the same KV precision and kernels as `global` but another attention
    /// pattern (window / block-sparse), or another decoder kernel.
    static func sibling(_ globals: [GlobalChoice], of global: GlobalChoice, window: Int?, globalTokens: Int,
                        blockSparse: Plan.BlockSparse?, decoderKernel: AttentionKernel? = nil) -> Int? {
        globals.indices.first {
            let g = globals[$0]
            return g.kv == global.kv && g.visionKernel == global.visionKernel
                && g.decoderKernel == (decoderKernel ?? global.decoderKernel) && g.window == window
                && g.globalTokens == globalTokens && g.blockSparse == blockSparse
        }
    }

    /// The attention time calibration the search priced attention with (nil: none given, or not for this decoder).
    static func appliedCalibration(_ space: SearchSpace) -> String? {
        space.attentionCosts.calibration == nil ? nil : space.request.attentionCalibration?.path
    }

    static func attentionReasons(_ space: SearchSpace, _ c: Candidate) -> [String] {
        let r = space.request
        let scenario = space.scenarios[c.scenario]
        let globals = space.globals[c.scenario]
        let global = globals[c.global]
        var out: [String] = []
        let e = space.activationElementBytes
        // KV precision.
        let kvLoss = space.accuracy.setting(AccuracyModel.kvSetting(global.kv))?.loss ?? 0
        var kvText = "KV cache \(global.kv.rawValue): \(Units.bytes(global.kvBytes)) for \(Units.count(global.cachedTokens)) " +
            "tokens, accuracy cost \(Units.percent(kvLoss, digits: 3))"
        let moreAccurate = globals.indices.filter {
            globals[$0].window == global.window && globals[$0].globalTokens == global.globalTokens &&
                globals[$0].blockSparse == global.blockSparse && globals[$0].decoderKernel == global.decoderKernel &&
                globals[$0].visionKernel == global.visionKernel && globals[$0].lossExtra < global.lossExtra - 1e-15
        }
        if let alt = moreAccurate.min(by: { globals[$0].kvBytes < globals[$1].kvBytes }) {
            let swapped = candidate(space, scenario: c.scenario, global: alt, choice: c.choice)
            if let broken = violates(space, swapped) {
                kvText += " — \(globals[alt].kv.rawValue) " + limitText(space, broken, swapped)
            }
        } else {
            kvText += " — lossless"
        }
        out.append(kvText)
        // Kernels.
        if let v = r.model.visionEncoder, scenario.patches > 0 {
            let scores = MemoryModel.scoreBytes(queries: scenario.patches, keys: scenario.patches, heads: v.heads,
                                                kernel: .materialised, elementBytes: e)
            if global.visionKernel == .tiled {
                out.append("vision: tiled attention — materialised scores for \(Units.count(scenario.patches)) patches " +
                           "would need \(Units.gib(scores)) per layer")
            } else {
                out.append("vision: materialised attention — scores for \(Units.count(scenario.patches)) patches take " +
                           "\(Units.gib(scores)) per layer and fit")
            }
        }
        if r.model.textDecoder != nil, let own = global.decoderAttention {
            let chunk = min(r.prefillChunk, max(1, scenario.contextTokens))
            let other: AttentionKernel = global.decoderKernel == .tiled ? .materialised : .tiled
            let alt = sibling(globals, of: global, window: global.window, globalTokens: global.globalTokens,
                              blockSparse: global.blockSparse, decoderKernel: other)
                .flatMap { globals[$0].decoderAttention }
            var text = "decoder: \(global.decoderKernel.rawValue) attention over \(Units.count(chunk))-token prefill " +
                "chunks, scratch \(Units.bytes(own.prefill.scratchBytes)) per layer, prefill attention " +
                "\(Units.seconds(own.prefillSeconds))"
            if let alt {
                text += " — \(other.rawValue): scratch \(Units.bytes(alt.prefill.scratchBytes)) per layer, prefill " +
                    "attention \(Units.seconds(alt.prefillSeconds))"
            }
            var how = "attention cost model, \(space.attentionCosts.threads) workers on " +
                "\(space.latency.attentionUnit?.id ?? "no unit")"
            if let path = appliedCalibration(space) {
                how += "; times corrected by \(path), measured with the engine on the profile's machine: its work " +
                    "partition (a call lasts as long as its busiest worker) and decode K/V read from memory"
                let costs = space.attentionCosts
                let unmeasured = KVCacheFormat.allCases.flatMap { kv in
                    [AttentionKernel.tiled, .materialised].filter { !costs.calibrates(kv: kv, kernel: $0) }
                        .map { "\(kv.rawValue) \($0.rawValue)" }
                }
                if !unmeasured.isEmpty {
                    how += "; not offered, as the calibration did not measure them: "
                        + unmeasured.joined(separator: ", ")
                }
            }
            out.append(text + " (\(how))")
        }
        // Attention pattern: full, sliding window or block-sparse.
        let full = sibling(globals, of: global, window: nil, globalTokens: 0, blockSparse: nil)
        func whyNotFull() -> String {
            guard let full, full != c.global else { return "" }
            let swapped = candidate(space, scenario: c.scenario, global: full, choice: c.choice)
            if let broken = violates(space, swapped) { return " — full attention " + limitText(space, broken, swapped) }
            return " — full attention would also meet the limits, but this setting frees room for a more accurate mix"
        }
        if let w = global.window {
            let s = space.accuracy.setting(AccuracyModel.windowSetting(window: w, global: global.globalTokens))
            out.append("sliding window \(Units.count(w)) + \(global.globalTokens) global tokens: KV holds " +
                       "\(Units.count(global.cachedTokens)) of \(Units.count(scenario.totalTokens)) tokens, accuracy cost " +
                       "\(Units.percent(s?.loss ?? 0, digits: 3)) (\(s?.source ?? ""))" + whyNotFull())
        } else if let b = global.blockSparse, let own = global.decoderAttention {
            let s = space.accuracy.setting(AccuracyModel.blockSparseSetting(b))
            let visible = AttentionCostModel.visibleKeys(own.setting, position: scenario.totalTokens - 1)
            var text = "block-sparse attention (MoBA), \(Units.count(b.chunk))-token blocks, top \(b.topK): the last " +
                "token attends \(Units.count(visible)) of \(Units.count(scenario.totalTokens)) keys; decoder attention " +
                "prefill \(Units.seconds(own.prefillSeconds)), decode \(Units.seconds(own.decodeSeconds)) per token"
            if let full, let f = globals[full].decoderAttention {
                text += " (full attention: \(Units.seconds(f.prefillSeconds)), \(Units.seconds(f.decodeSeconds)))"
            }
            text += "; accuracy cost \(Units.percent(s?.loss ?? 0, digits: 3)) (\(s?.source ?? ""))"
            out.append(text + whyNotFull())
        } else {
            var text = "full attention over \(Units.count(scenario.totalTokens)) tokens — "
            let noneOffered = space.accuracy.windowOptions.isEmpty && space.accuracy.blockSparseOptions.isEmpty
            text += noneOffered ? "no sliding-window or measured block-sparse setting has an accuracy figure in the manifest"
                : "the most accurate setting"
            out.append(text)
        }
        // Block-sparse settings the manifest names but the search did not offer, and measured ones not taken.
        let entries = space.accuracy.blockSparseEntries
        let estimates = entries.filter { !$0.entry.measured }.map { "\($0.blockSparse.chunk)/\($0.blockSparse.topK)" }
        if !estimates.isEmpty {
            out.append("block-sparse \(estimates.joined(separator: ", ")) not offered: the manifest's " +
                       (estimates.count == 1 ? "figure is an estimate, not a measurement"
                            : "figures are estimates, not measurements") +
                       " on this model (autoglm-run measure-attention measures them)")
        }
        for (b, entry) in entries where entry.measured {
            let name = "block-sparse \(b.chunk)/\(b.topK)"
            if b.chunk * b.topK >= scenario.totalTokens {
                out.append("\(name) not offered: \(b.topK) blocks of \(Units.count(b.chunk)) tokens cover all " +
                           "\(Units.count(scenario.totalTokens)) tokens, so it would select everything")
            } else if global.blockSparse != b, let alt = sibling(globals, of: global, window: nil, globalTokens: 0,
                                                                  blockSparse: b) {
                let swapped = candidate(space, scenario: c.scenario, global: alt, choice: c.choice)
                out.append("\(name) offered (measured accuracy cost \(Units.percent(entry.loss, digits: 3))), not taken: " +
                           (violates(space, swapped).map { limitText(space, $0, swapped) }
                                ?? "it loses more accuracy than the chosen plan"))
            }
        }
        // Image tokens.
        if r.workload.image != nil, r.model.vision != nil {
            let budget = scenario.maxPixels.map { "max_pixels \(Units.count($0)) (\(scenario.lossSource ?? "no figure"))" }
                ?? "the model's own max_pixels \(Units.count(r.model.vision?.maxPixels ?? 0))"
            out.append("image: \(Units.count(scenario.patches)) patches → \(Units.count(scenario.imageTokens)) tokens " +
                       "under \(budget)")
        }
        return out
    }
}
