import AutoGLMPlanner
import AutoGLMSpecs
import ArgumentParser
import Foundation

/// `autoglm-run map-plan` (internal): carries a plan's embedding, decoder and head formats over to a smaller model
/// with the same module names, so the accuracy of the 9B plan's format choices can be measured on a model that is at
/// hand. The mapped plan predicts that model's accuracy loss and weight bytes from its own manifest
/// (`PlanMapping`); the source plan's memory and latency predictions are not carried.
struct MapPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map-plan",
        abstract: "Internal: map a plan's embedding/decoder/head formats onto another model's layers.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "Source plan JSON.")
    var plan: String

    @Option(name: .long, help: "Target model manifest (Models/*.json): its layers, tensors and sensitivity tables.")
    var model: String

    @Option(name: .long, help: "Decoder layers of the source model (default: from the plan's decoder entries).")
    var sourceLayers: Int?

    @Option(name: .long, help: "Target model id written into the plan (default: the manifest's id).")
    var modelId: String?

    @Option(name: [.short, .customLong("output")], help: "Output plan JSON.")
    var output: String

    func validate() throws {
        if let sourceLayers, sourceLayers <= 0 {
            throw ValidationError("--source-layers must be positive, got \(sourceLayers)")
        }
    }

    func run() throws {
        let source = try Plan.load(plan)
        let manifest = try ModelManifest.load(model)
        let mapped: Plan
        do {
            mapped = try PlanMapping.map(source, onto: manifest, sourceLayers: sourceLayers, modelId: modelId)
        } catch let e as PlanMapping.Error {
            throw PlanMapping.Error(message: "\(plan) onto \(model): \(e.message)")
        }
        try FullScale.write(mapped, to: output)
    }
}
