import AutoGLMProcess
import AutoGLMSpecs
import Foundation

/// The package root, found from this file's location.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

let deviceId = "snapdragon-8-gen-3-12gb"

/// A temporary folder holding a plan, a device profile, a checkpoint and run reports that refer to them.
struct Fixture {
    let dir: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-signoff-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: packageRoot + "/DeviceProfiles/\(deviceId).json", toPath: dir + "/device.json")
        var bytes = [UInt8](repeating: 0, count: 4096)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/weights.bin"))
        try SpecLoader.encode(Fixture.plan()).write(to: URL(fileURLWithPath: dir + "/plan.json"))
    }

    func path(_ name: String) -> String { dir + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    static func plan() -> Plan {
        var p = Plan()
        p.generator = "fixture"
        p.model = .init(id: "autoglm-phone-9b", parameters: 9_000_000_000)
        p.device = .init(id: deviceId, appBudgetBytes: 6_500_000_000)
        p.workload = Workload(id: "screenshot-agent", description: "fixture", image: nil, promptTokens: 300, outputTokens: 64)
        p.constraints.maxAccuracyLoss = 0.05
        p.constraints.maxTTFTSeconds = 8
        p.constraints.minDecodeTokensPerSecond = 5
        p.feasible = true
        var modules: [Plan.Module] = []
        for (name, bytes) in [("vision_encoder", 420_000_000), ("text_decoder[0-19]", 2_100_000_000),
                              ("text_decoder[20-39]", 2_300_000_000), ("lm_head", 600_000_000)] {
            var m = Plan.Module()
            m.name = name
            m.weightBytes = bytes
            m.kind = name.hasPrefix("vision") ? .visionEncoder : .textDecoder
            modules.append(m)
        }
        p.modules = modules
        p.predicted = prediction()
        return p
    }

    static func prediction() -> Plan.Prediction {
        var pr = Plan.Prediction()
        pr.peakMemoryBytes = 5_900_000_000
        pr.weightBytes = 5_420_000_000
        pr.kvCacheBytes = 180_000_000
        pr.activationPeakBytes = 150_000_000
        pr.runtimeOverheadBytes = 150_000_000
        pr.ttftSeconds = 4.2
        pr.decodeTokensPerSecond = 9.5
        pr.accuracyLoss = 0.021
        pr.stages = [
            .init(stage: "vision_encode", seconds: 1.6, activationBytes: 90_000_000, unit: "gpu", bound: "compute"),
            .init(stage: "prefill", seconds: 2.6, activationBytes: 150_000_000, unit: "cpu", bound: "compute"),
            .init(stage: "decode_token", seconds: 0.105, activationBytes: 2_000_000, unit: "cpu", bound: "bandwidth"),
        ]
        return pr
    }

    /// A report that passes the plan's own constraints.
    func passingReport() throws -> RunReport {
        var r = RunReport()
        r.kind = .emulation
        r.createdAt = "2026-11-23T05:00:00Z"
        r.build.commit = "0123456789abcdef0123456789abcdef01234567"
        r.build.configuration = "release"
        r.plan.path = "plan.json"
        r.plan.sha256 = try sha256(path("plan.json"))
        r.plan.modelId = "autoglm-phone-9b"
        r.plan.deviceId = deviceId
        r.plan.appBudgetBytes = 6_500_000_000
        r.plan.constraints = Fixture.plan().constraints
        r.checkpoint.path = "weights.bin"
        r.checkpoint.sha256 = try sha256(path("weights.bin"))
        r.checkpoint.bytes = 4096
        r.host.cpu = "x86_64 test host"
        r.host.cores = 2
        r.host.threads = 2
        r.workload.id = "screenshot-agent"
        r.workload.promptTokens = 300
        r.workload.imageTokens = 1024
        r.workload.outputTokens = 64
        r.predicted = Fixture.prediction()
        r.measured.loadSeconds = 3.1
        r.measured.ttftSeconds = Statistic([5.1, 5.3, 5.2])
        r.measured.prefillTokensPerSecond = Statistic([250, 260, 255])
        r.measured.decodeTokensPerSecond = Statistic([7.9, 8.1, 8.0])
        r.measured.peakMemoryBytes = 5_700_000_000
        r.measured.weightBytes = 5_430_000_000
        r.measured.kvCacheBytes = 180_000_000
        r.measured.residentBytesByModule = [
            "vision_encoder": 421_000_000, "text_decoder": 4_402_000_000, "lm_head": 601_000_000,
        ]
        r.measured.stages = [
            .init(stage: "vision_encode", seconds: Statistic([1.9, 2.0, 2.1]), tokens: 1024),
            .init(stage: "prefill", seconds: Statistic([3.1, 3.2, 3.3]), tokens: 1324),
            .init(stage: "decode_token", seconds: Statistic([0.12, 0.125, 0.13]), tokens: 64),
        ]
        r.measured.repeats = 3
        r.measured.warmups = 1
        var acc = RunReport.Accuracy()
        acc.measured = true
        acc.textFile = "eval.txt"
        acc.scoredTokens = 2048
        acc.pplReference = Estimate(8.10, 0.05)
        acc.pplPlan = Estimate(8.27, 0.05)
        acc.pplRatio = Estimate(1.021, 0.004)
        acc.accuracyLoss = 0.021
        acc.klMean = Estimate(0.031, 0.002)
        acc.klP99 = 0.4
        acc.top1Agreement = Estimate(0.93, 0.006)
        r.accuracy = acc
        var em = RunReport.Emulation()
        em.cgroupVersion = "v2"
        em.memoryCapBytes = 6_500_000_000
        em.cpuQuotaCores = 2
        em.peakBytes = 5_750_000_000
        em.peakSource = "memory.peak"
        em.exitStatus = 0
        em.wallSeconds = 20
        var timeline: [RunReport.TimelinePoint] = []
        for i in 0...80 {
            let t = Double(i) * 0.25
            let phase = t < 3 ? "load" : (t < 8 ? "prefill" : "decode")
            let bytes = t < 3 ? 5_200_000_000 * t / 3 : (t < 8 ? 5_200_000_000 + 550_000_000 * sin((t - 3) / 5 * .pi / 2)
                                                               : 5_600_000_000 + 5_000_000 * (t - 8))
            timeline.append(.init(seconds: t, bytes: Int(bytes), phase: phase))
        }
        em.timeline = timeline
        r.emulation = em
        return r
    }

    /// Writes `report` as `name` in the fixture folder and returns its path.
    @discardableResult
    func write(_ report: RunReport, as name: String) throws -> String {
        let p = path(name)
        try SpecLoader.encode(report).write(to: URL(fileURLWithPath: p))
        return p
    }

    func write(text: String, as name: String) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}

func sha256(_ path: String) throws -> String {
    let r = try CapturedProcess.run("/usr/bin/env", ["sha256sum", path])
    return r.stdoutText.split(separator: " ").first.map(String.init) ?? ""
}
