import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

/// Every checked-in plan under Plans/ must be exactly what the planner produces now (`make plans` regenerates them).
@Suite("Checked-in plans")
struct PlanDriftTests {
    static var planPaths: [String] {
        let dir = repoPath("Plans")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { dir + "/" + $0 }
    }

    /// Rebuilds the request a plan was made from: its profile, model, workload, limits, pins and layer groups.
    static func request(for plan: Plan) throws -> PlanRequest {
        let device = try DeviceProfile.load(repoPath("DeviceProfiles/\(plan.device.id).json"))
        let model = try ManifestDerivation.load(repoPath("Models/\(plan.model.id).json"))
        let workload = try WorkloadCatalog.load(repoPath("Models/workloads.json"))
            .workload(named: plan.workload.id, file: "Models/workloads.json")
        let groups = plan.modules.first { $0.kind == .textDecoder && $0.layers != nil }?.layers.map { $0[1] - $0[0] + 1 }
        let budget = plan.constraints.memoryBudgetBytes
        var request = PlanRequest(model: model, device: device, workload: workload,
                           maxAccuracyLoss: plan.constraints.maxAccuracyLoss,
                           maxTTFTSeconds: plan.constraints.maxTTFTSeconds,
                           minDecodeTokensPerSecond: plan.constraints.minDecodeTokensPerSecond,
                           memoryBudgetBytes: budget == device.memory.appBudgetBytes.value ? nil : budget,
                           pins: try plan.constraints.pins.map { try FormatPin(parsing: $0) }, layerGroupSize: groups)
        request.engineFormatsOnly = plan.constraints.engineFormatsOnly ?? false
        request.attentionCalibration = try plan.attention.timeCalibration.map {
            AttentionCalibrationFile(path: $0, calibration: try AttentionCalibrationFile.load(repoPath($0)).calibration)
        }
        return request
    }

    @Test func thePhonePlanIsCheckedIn() {
        #expect(Self.planPaths.contains { $0.hasSuffix("Plans/autoglm-phone-9b.\(phone).json") })
    }

    @Test(arguments: planPaths)
    func checkedInPlanMatchesThePlanner(path: String) throws {
        let stored = try Data(contentsOf: URL(fileURLWithPath: path))
        let plan = try SpecLoader.decode(Plan.self, from: stored, file: path)
        let fresh = try SpecLoader.encode(try Planner.plan(try Self.request(for: plan)).plan)
        if fresh != stored {
            Issue.record("\(path) drifted from the planner's output; run `make plans` and review the diff")
        }
    }
}
