import AutoGLMProcess
import Foundation
import Testing
import AutoGLMSpecs

/// The package root, found from this file's location.
private let root: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The built `autoglm-plan`: next to the running test bundle, else under `<root>/.build/<config>/`.
private func planBinary() throws -> String {
    var candidates: [String] = []
    if let exe = Bundle.main.executablePath { candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().path) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path)
    var bundle = Bundle.main.bundleURL
    for _ in 0..<3 {
        candidates.append(bundle.path)
        bundle.deleteLastPathComponent()
    }
    candidates += ["debug", "release"].map { root + "/.build/" + $0 }
    for dir in candidates {
        let path = dir + "/autoglm-plan"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    throw CLIError.missing("autoglm-plan not found next to the test bundle or under .build/{debug,release}; run `swift build`")
}

private enum CLIError: Error { case missing(String) }

private struct Run {
    var status: Int32
    var reason: Process.TerminationReason
    var stdout: String
    var stderr: String
}

private func runPlan(_ arguments: [String]) throws -> Run {
    let r = try CapturedProcess.run(try planBinary(), arguments, currentDirectory: root)
    return Run(status: r.status, reason: r.uncaughtSignal ? .uncaughtSignal : .exit,
               stdout: r.stdoutText, stderr: r.stderrText)
}

private let phoneArgs = ["--device", "DeviceProfiles/snapdragon-8-gen-3-12gb.json",
                         "--model", "Models/autoglm-phone-9b.json", "--workload", "screenshot-agent"]

private func scratch(_ text: String, _ name: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-plan-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("autoglm-plan CLI")
struct PlanCLITests {
    @Test func phonePlanIsFeasibleWithTablesAndReasons() throws {
        let run = try runPlan(phoneArgs + ["--explain"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("FEASIBLE"))
        #expect(run.stdout.contains("peak memory"))
        #expect(run.stdout.contains("decoder[0-4]"))
        #expect(run.stdout.contains("vision: tiled attention"))
    }

    /// SmolLM2's manifest whose only attention figure is a measured block-sparse one: under a TTFT limit that full
    /// attention cannot meet on the long-context workload, the plan takes block-sparse attention and says why
    /// (priced on the profile's roofline, as the limit was chosen for those figures).
    @Test func blockSparseChoiceIsShownAndExplained() throws {
        let text = try String(contentsOfFile: root + "/Models/smollm2-135m.json", encoding: .utf8)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        json["setting_sensitivity"] = [["setting": "block-sparse:256/4", "loss": 0.004,
                                        "source": "measured: test figure", "measured": true]]
        let model = try scratch(String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self),
                                "smollm2-moba.json")
        let args = ["--device", "DeviceProfiles/host.json", "--model", model, "--workload", "long-context",
                    "--max-ttft", "100s", "--attention-calibration", "none"]
        let run = try runPlan(args + ["--explain"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("block-sparse 256-token blocks, top 4"))
        #expect(run.stdout.contains("block-sparse attention (MoBA), 256-token blocks, top 4"))
        #expect(run.stdout.contains("accuracy cost 0.400% (measured: test figure) — full attention needs"))
        let jsonRun = try runPlan(args + ["--json"])
        let plan = try SpecLoader.decode(Plan.self, from: Data(jsonRun.stdout.utf8), file: "stdout")
        #expect(plan.attention.blockSparse == Plan.BlockSparse(chunk: 256, topK: 4))
        #expect(jsonRun.stdout.contains("\"block_sparse\""))
    }

    @Test func jsonOutputIsAPlan() throws {
        let run = try runPlan(phoneArgs + ["--json"])
        #expect(run.status == 0)
        let plan = try SpecLoader.decode(Plan.self, from: Data(run.stdout.utf8), file: "stdout")
        #expect(plan.feasible)
        #expect(plan.predicted.peakMemoryBytes <= plan.device.appBudgetBytes)
        #expect(plan.modules.allSatisfy { !$0.reason.isEmpty })
    }

    @Test func writesThePlanFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString).json").path
        let run = try runPlan(phoneArgs + ["-o", path, "--quiet"])
        #expect(run.status == 0)
        #expect(run.stdout.isEmpty)
        let plan = try Plan.load(path)
        #expect(plan.device.id == "snapdragon-8-gen-3-12gb")
    }

    @Test func pinningFP16IsInfeasibleWithExitOne() throws {
        let run = try runPlan(phoneArgs + ["--pin", "*=fp16"])
        #expect(run.status == 1)
        #expect(run.reason == .exit)
        #expect(run.stdout.contains("INFEASIBLE"))
        #expect(run.stderr.contains("infeasible: memory: needs"))
        #expect(run.stderr.contains("short even at f16 everywhere"))
    }

    @Test func paretoFrontier() throws {
        let run = try runPlan(phoneArgs + ["--pareto"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("Pareto frontier"))
        #expect(run.stdout.contains("(over budget)"))
    }

    @Test func limitsThatCanBeMet() throws {
        let run = try runPlan(phoneArgs + ["--max-ttft", "60s", "--min-decode", "8", "--max-accuracy-loss", "8%"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("limit 60.00 s"))
    }

    static let validDevice = try? String(contentsOfFile: root + "/DeviceProfiles/snapdragon-8-gen-3-12gb.json",
                                         encoding: .utf8)
    static let validModel = try? String(contentsOfFile: root + "/Models/autoglm-phone-9b.json", encoding: .utf8)

    /// (what to break, file kind, text transform, field named in the message)
    static let badInputs: [(String, String, String, String)] = [
        ("invalid JSON", "device", "{ \"schema_version\": 1, ", "invalid JSON"),
        ("unknown field", "device", "UNKNOWN", "colour"),
        ("negative memory", "device", "NEGATIVE", "app_budget_bytes"),
        ("zero layers", "model", "ZERO_LAYERS", "layers"),
        ("heads not divisible by KV heads", "model", "KV_HEADS", "kv_heads"),
    ]

    @Test(arguments: badInputs)
    func badInputIsOneLineAndExitTwo(name: String, kind: String, transform: String, field: String) throws {
        var device = try #require(Self.validDevice)
        var model = try #require(Self.validModel)
        switch transform {
        case "UNKNOWN": device = device.replacingOccurrences(of: "\"kind\": \"phone\",", with: "\"kind\": \"phone\", \"colour\": 1,")
        case "NEGATIVE": device = device.replacingOccurrences(of: "\"value\": 6500000000", with: "\"value\": -6500000000")
        case "ZERO_LAYERS": model = model.replacingOccurrences(of: "\"layers\": 40", with: "\"layers\": 0")
        case "KV_HEADS": model = model.replacingOccurrences(of: "\"kv_heads\": 2", with: "\"kv_heads\": 3")
        default: device = transform
        }
        let devicePath = try scratch(device, "device.json")
        let modelPath = try scratch(model, "model.json")
        let run = try runPlan(["--device", devicePath, "--model", modelPath])
        #expect(run.reason == .exit, "\(name): the tool must exit, not trap")
        #expect(run.status == 2, "\(name): \(run.stderr)")
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(name): \(run.stderr)")
        let path = kind == "device" ? devicePath : modelPath
        #expect(run.stderr.contains(path), "\(name): \(run.stderr)")
        #expect(run.stderr.contains(field), "\(name): \(run.stderr)")
        if transform != "{ \"schema_version\": 1, " { #expect(run.stderr.contains("expected") || run.stderr.contains("allowed")) }
    }

    @Test func badArgumentsExitTwo() throws {
        for args in [phoneArgs + ["--pin", "vision"], phoneArgs + ["--max-ttft", "soon"], phoneArgs + ["--workload", "nope"],
                     ["--model", "Models/autoglm-phone-9b.json"], phoneArgs + ["--pin", "audio=q4_0"]] {
            let run = try runPlan(args)
            #expect(run.status == 2, "\(args): \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(args): \(run.stderr)")
        }
    }

    // MARK: The host's attention time calibration

    private static let hostArgs = ["--device", "DeviceProfiles/host-simd8.json", "--model", "Models/smollm2-135m.json",
                                   "--workload", "chat"]

    @Test func aHostPlanIsPricedWithTheHostsOwnAttentionCalibration() throws {
        let run = try runPlan(Self.hostArgs + ["--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.isEmpty)
        let plan = try SpecLoader.decode(Plan.self, from: Data(run.stdout.utf8), file: "stdout")
        #expect(plan.attention.timeCalibration == "DeviceProfiles/measurements/host-simd8.attention-calibration.json")
        let none = try runPlan(Self.hostArgs + ["--json", "--attention-calibration", "none"])
        #expect(none.status == 0, "stderr: \(none.stderr)")
        let roofline = try SpecLoader.decode(Plan.self, from: Data(none.stdout.utf8), file: "stdout")
        #expect(roofline.attention.timeCalibration == nil)
        // The engine reads this host's K/V slower than the roofline prices it.
        #expect(plan.predicted.decodeTokensPerSecond < roofline.predicted.decodeTokensPerSecond)
    }

    @Test func aNamedCalibrationOfAnotherMachineOrLayerIsRefused() throws {
        let other = "DeviceProfiles/measurements/host.attention-calibration.json"
        let run = try runPlan(Self.hostArgs + ["--attention-calibration", other])
        #expect(run.status == 2)
        #expect(run.stderr.contains(other) && run.stderr.contains("avx512 kernels, the profile simd8"), "\(run.stderr)")
        let own = "DeviceProfiles/measurements/host-simd8.attention-calibration.json"
        let nine = try runPlan(["--device", "DeviceProfiles/host-simd8.json", "--model", "Models/autoglm-phone-9b.json",
                                "--workload", "chat", "--attention-calibration", own])
        #expect(nine.status == 2)
        #expect(nine.stderr.contains("decoder fits are for layers of 9/3/64"), "\(nine.stderr)")
        #expect(nine.stderr.contains("decoder layer, 32/2/128 heads"), "\(nine.stderr)")
        let missing = try runPlan(Self.hostArgs + ["--attention-calibration", "/nonexistent/calibration.json"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/calibration.json"))
    }

    /// A host profile whose calibration beside it was measured with another kernel family: a warning, and the plan
    /// is priced on the roofline.
    @Test func aStaleCalibrationBesideTheProfileIsPassedOverWithAWarning() throws {
        let profileText = try String(contentsOfFile: root + "/DeviceProfiles/host-simd8.json", encoding: .utf8)
        let profilePath = try scratch(profileText, "host-simd8.json")
        let measurements = (profilePath as NSString).deletingLastPathComponent + "/measurements"
        try FileManager.default.createDirectory(atPath: measurements, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: root + "/DeviceProfiles/measurements/host.attention-calibration.json",
                                         toPath: measurements + "/host-simd8.attention-calibration.json")
        let run = try runPlan(["--device", profilePath, "--model", "Models/smollm2-135m.json", "--workload", "chat",
                               "--json", "--quiet"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("warning: attention priced on the roofline, not calibrated"), "\(run.stderr)")
        #expect(run.stderr.contains("avx512 kernels, the profile simd8"))
        // --quiet prints no plan, but the warning still.
        #expect(run.stdout.isEmpty)
        let plain = try runPlan(["--device", profilePath, "--model", "Models/smollm2-135m.json", "--workload", "chat",
                                 "--json"])
        let plan = try SpecLoader.decode(Plan.self, from: Data(plain.stdout.utf8), file: "stdout")
        #expect(plan.attention.timeCalibration == nil)
    }
}
