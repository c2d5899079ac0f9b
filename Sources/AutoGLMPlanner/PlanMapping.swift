import Foundation
import AutoGLMSpecs

/// Carries a plan's embedding, decoder and head formats over to another model with the same module names (a small
/// model at hand, whose accuracy can be measured against its own F32 reference), and predicts that model's accuracy
/// loss and weight bytes from its own manifest. The source plan's memory and latency predictions belong to the source
/// model and device and are not carried.
///
/// Decoder layer l of an L-layer target takes the format of source layer ⌊l · L_source / L⌋. A format the engine
/// does not execute is replaced by the one it runs in its place (`WeightFormat.engineFormat`). Each matrix is priced in
/// the format it is stored in (`WeightFormat.stored`: 576-wide rows take int4-g64 under int4-g128), with the target's
/// sensitivity tables and the planner's additive rule (`AccuracyModel`). A tied head is priced as the output
/// projection of the table in the head's format at the table's share (the manifest's "head" figures), on top of the
/// embedding's lookup, as the planner prices a tied table; stored in a format of its own it is a second, converted
/// copy of the table and holds its bytes.
public enum PlanMapping {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    public static func map(_ source: Plan, onto manifest: ModelManifest, sourceLayers: Int? = nil,
                           modelId: String? = nil) throws -> Plan {
        guard let decoderModule = manifest.modules.first(where: { $0.kind == .textDecoder }),
              case let .textDecoder(decoderSpec) = decoderModule.body else {
            throw Error(message: "model \(manifest.id) has no text_decoder module to map the plan's decoder onto")
        }
        let decoderEntries = source.modules.filter { $0.kind == .textDecoder }
        guard let firstEntry = decoderEntries.first else {
            throw Error(message: "plan for \(source.model.id) has no text_decoder entry")
        }
        let total = sourceLayers ?? ((decoderEntries.compactMap { $0.layers?[1] }.max() ?? -1) + 1)
        guard total > 0 else {
            throw Error(message: "cannot tell the decoder layer count of \(source.model.id)'s plan: "
                        + "no entry has layers")
        }
        func format(ofSourceLayer l: Int) -> WeightFormat {
            (decoderEntries.first { $0.covers(layer: l) } ?? firstEntry).format
        }
        let accuracy = AccuracyModel(manifest: manifest)
        let modelParameters = manifest.parameters

        /// One mapped entry priced on the target: accuracy cost of `tensors` in the entry's format, and their weight
        /// bytes where the entry holds them (a tied head in the table's own format holds nothing).
        func priced(_ entry: Plan.Module, lookup: String, tensors: [ModuleTensor],
                    holdsTensors: Bool = true) throws -> Plan.Module {
            var m = entry
            m.format = entry.format.engineFormat
            if m.format != entry.format {
                m.reason = "\(entry.format.rawValue) in \(source.model.id)'s plan; the engine runs "
                    + "\(m.format.rawValue) in its place: " + entry.reason
            }
            m.parameters = holdsTensors ? tensors.reduce(0) { $0 + $1.parameters } : 0
            m.weightBytes = holdsTensors ? MemoryModel.weightBytes(tensors, format: m.format).bytes : 0
            m.predictedLatencySeconds = nil
            var cost = 0.0
            for t in tensors {
                // Vectors take the entry's figure, as in the planner (the whole model in F costs L(F)).
                let stored = t.isQuantizable ? MemoryModel.storedFormat(m.format, for: t) : m.format
                guard let c = accuracy.itemCost(module: lookup, parameters: t.parameters,
                                                modelParameters: modelParameters, format: stored) else {
                    throw Error(message: "model \(manifest.id): no accuracy figure for module '\(lookup)' in "
                                + "\(stored.rawValue) (tensor \(t.name)) in its sensitivity table or the defaults")
                }
                cost += c.loss
            }
            m.accuracyCost = Units.round(cost, 6)
            return m
        }

        var modules: [Plan.Module] = []
        let embeddingModule = manifest.modules.first { $0.kind == .embedding }
        for entry in source.modules where entry.kind == .embedding || entry.kind == .head {
            guard let target = manifest.modules.first(where: { $0.kind == entry.kind }) else {
                throw Error(message: "model \(manifest.id) has no \(entry.kind.rawValue) module for the plan's "
                            + "'\(entry.name)' entry")
            }
            var tensors = target.tensors
            var holdsTensors = true
            if case let .head(h) = target.body, h.tied, let embeddingModule, let table = embeddingModule.tensors.first {
                // The head reads the table in its format; in the embedding's stored format it is the same table.
                let embedding = source.modules.first { $0.kind == .embedding }?.format.engineFormat
                tensors = embeddingModule.tensors
                holdsTensors = entry.format.engineFormat.stored(columns: table.columns)
                    != embedding?.stored(columns: table.columns)
            }
            var m = try priced(entry, lookup: target.name, tensors: tensors, holdsTensors: holdsTensors)
            m.name = target.name
            modules.append(m)
        }
        var start = 0
        while start < decoderSpec.layers {
            let f = format(ofSourceLayer: start * total / decoderSpec.layers)
            var end = start
            while end + 1 < decoderSpec.layers && format(ofSourceLayer: (end + 1) * total / decoderSpec.layers) == f {
                end += 1
            }
            let isLast = end == decoderSpec.layers - 1
            let tensors = decoderModule.tensors.filter { t in
                if let l = t.layer { return l >= start && l <= end }
                return isLast
            }
            var m = Plan.Module()
            m.name = "\(decoderModule.name)[\(start)-\(end)]"
            m.kind = .textDecoder
            m.layers = [start, end]
            m.format = f
            m.reason = "mapped from \(source.model.id) decoder layers \(start * total / decoderSpec.layers)-"
                + "\(end * total / decoderSpec.layers)"
            modules.append(try priced(m, lookup: decoderModule.name, tensors: tensors))
            start = end + 1
        }

        // Attention settings the plan chose, priced from the target's setting table.
        var settings = [AccuracyModel.kvSetting(source.attention.kvCacheFormat)]
        if let w = source.attention.window {
            settings.append(AccuracyModel.windowSetting(window: w, global: source.attention.globalTokens))
        }
        if let b = source.attention.blockSparse { settings.append(AccuracyModel.blockSparseSetting(b)) }
        var settingLoss = 0.0
        for name in settings {
            guard let s = accuracy.setting(name) else {
                throw Error(message: "model \(manifest.id): no accuracy figure for the plan's attention setting "
                            + "'\(name)' in its setting_sensitivity table or the defaults")
            }
            settingLoss += s.loss
        }

        var mapped = source
        mapped.model = Plan.ModelRef(id: modelId ?? manifest.id, parameters: modelParameters)
        mapped.modules = modules
        var predicted = Plan.Prediction()
        predicted.weightBytes = modules.reduce(0) { $0 + $1.weightBytes }
        predicted.accuracyLoss = Units.round(modules.reduce(0) { $0 + $1.accuracyCost } + settingLoss, 6)
        mapped.predicted = predicted
        mapped.explanation = [
            "Formats of \(source.model.id)'s plan for \(source.device.id) mapped onto \(manifest.id) "
            + "(\(decoderSpec.layers) decoder layers). Accuracy and weight bytes are predicted for \(manifest.id) "
            + "from its manifest (sensitivity tables, tensors); \(source.model.id)'s own prediction was an accuracy "
            + "loss of \(String(format: "%.2f%%", source.predicted.accuracyLoss * 100)). Memory and latency "
            + "predictions of the source plan are not carried.",
        ]
        return mapped
    }
}
