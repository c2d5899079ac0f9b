import AutoGLMSpecs
import ArgumentParser
import Foundation

/// `autoglm-run map-plan` (internal): carries a plan's embedding, decoder and head formats over to a smaller model
/// with the same module names, so the accuracy of the 9B plan's format choices can be measured on a model that is at
/// hand. Decoder layer l of an L-layer target takes the format of source layer ⌊l · L_source / L⌋. Only the accuracy
/// prediction is kept; memory and latency predictions belong to the source model and are cleared.
struct MapPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map-plan",
        abstract: "Internal: map a plan's embedding/decoder/head formats onto another model's layers.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Source plan JSON.")
    var plan: String

    @Option(name: .long, help: "Decoder layers of the target model.")
    var layers: Int

    @Option(name: .long, help: "Decoder layers of the source model (default: from the plan's decoder entries).")
    var sourceLayers: Int?

    @Option(name: .long, help: "Target model id written into the plan.")
    var modelId: String = "mapped"

    @Option(name: [.short, .customLong("output")], help: "Output plan JSON.")
    var output: String

    func run() throws {
        guard layers > 0 else { throw ValidationError("--layers must be positive, got \(layers)") }
        let source = try Plan.load(plan)
        let decoder = source.modules.filter { $0.kind == .textDecoder }
        guard !decoder.isEmpty else { throw ValidationError("plan \(plan) has no text_decoder entry") }
        let total = sourceLayers ?? ((decoder.compactMap { $0.layers?[1] }.max() ?? 0) + 1)
        guard total > 0 else { throw ValidationError("cannot tell the source plan's decoder layer count") }
        func format(ofSourceLayer l: Int) -> WeightFormat {
            (decoder.first { $0.covers(layer: l) } ?? decoder[0]).format
        }
        var mapped = source
        mapped.model = Plan.ModelRef(id: modelId, parameters: 0)
        mapped.modules = source.modules.filter { $0.kind == .embedding || $0.kind == .head }
        var start = 0
        while start < layers {
            let f = format(ofSourceLayer: start * total / layers)
            var end = start
            while end + 1 < layers && format(ofSourceLayer: (end + 1) * total / layers) == f { end += 1 }
            var m = Plan.Module()
            m.name = "decoder[\(start)-\(end)]"
            m.kind = .textDecoder
            m.layers = [start, end]
            m.format = f
            m.reason = "mapped from \(source.model.id) decoder layers \(start * total / layers)-\(end * total / layers)"
            mapped.modules.append(m)
            start = end + 1
        }
        var predicted = Plan.Prediction()
        predicted.accuracyLoss = source.predicted.accuracyLoss
        mapped.predicted = predicted
        mapped.explanation = ["Formats of \(source.model.id)'s plan for \(source.device.id) mapped onto a "
                              + "\(layers)-layer model; only the accuracy prediction (\(source.model.id)'s) is kept."]
        try FullScale.write(mapped, to: output)
    }
}
