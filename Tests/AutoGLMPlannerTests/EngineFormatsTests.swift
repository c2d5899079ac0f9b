import Testing
import AutoGLMPlanner
import AutoGLMSpecs

@Suite("Plans restricted to the engine's formats")
struct EngineFormatsTests {
    @Test func everyChoiceIsExecutableAndRecorded() throws {
        let free = try Planner.plan(try phoneRequest())
        // Without the restriction the phone plan uses GGUF K-quants the engine does not run.
        #expect(free.plan.modules.contains { !$0.format.engineExecutes })
        let result = try Planner.plan(try phoneRequest { $0.engineFormatsOnly = true })
        #expect(result.plan.feasible)
        for module in result.plan.modules {
            #expect(module.format.engineExecutes, "\(module.name) got \(module.format.rawValue)")
        }
        #expect(result.plan.constraints.engineFormatsOnly == true)
        #expect(free.plan.constraints.engineFormatsOnly == nil)
        #expect(result.plan.predicted.peakMemoryBytes <= result.plan.device.appBudgetBytes)
    }
}
