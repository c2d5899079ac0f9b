import AutoGLMSpecs
import Foundation
import Testing

/// Runs the built `autoglm-run` executable.
enum RunCLI {
    typealias Output = CLITool.Output

    static var packageRoot: URL { CLITool.packageRoot }

    static var smolLM2: String {
        if let env = ProcessInfo.processInfo.environment["AUTOGLM_SMOLLM2"], !env.isEmpty { return env }
        return packageRoot.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    /// The records of `bench --json` on `model` (one timed repeat, no warm-up, 2 threads) with `arguments` added.
    static func benchRecords(_ model: String, _ arguments: [String]) throws -> [[String: Any]] {
        let out = try run(["bench", "--checkpoint", model, "--repeats", "1", "--warmup", "0", "--threads", "2",
                           "--json"] + arguments)
        #expect(out.status == 0, "stderr: \(out.stderr)")
        return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] ?? []
    }

    static func requireSmolLM2() throws -> String {
        guard FileManager.default.fileExists(atPath: smolLM2) else {
            Issue.record("SmolLM2 checkpoint not found at \(smolLM2): run `make models` or set AUTOGLM_SMOLLM2")
            throw CocoaError(.fileNoSuchFile)
        }
        return smolLM2
    }

    static func binary() throws -> String { try CLITool.binary("autoglm-run") }

    static func run(_ arguments: [String]) throws -> Output {
        try CLITool.run("autoglm-run", arguments)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

@Suite("autoglm-run run, convert and bench", .serialized)
struct RunCLITests {
    @Test func realModelChatRunReportsParisAndAccuracy() throws {
        let model = try RunCLI.requireSmolLM2()
        let dir = try RunCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reportPath = dir.appendingPathComponent("report.json").path
        let out = try RunCLI.run(["--checkpoint", model, "--chat", "What is the capital of France?",
                                  "--max-tokens", "16", "--repeats", "1", "--warmup", "0", "--threads", "2",
                                  "--eval-tokens", "512", "--eval-context", "256", "-o", reportPath])
        #expect(out.status == 0, "stderr: \(out.stderr)")
        let report = try RunReport.load(reportPath)
        #expect(report.generatedText?.contains("Paris") == true)
        #expect(out.stdout.contains("Paris"))
        #expect(report.measured.loadSeconds > 0)
        #expect((report.measured.decodeTokensPerSecond?.median ?? 0) > 0)
        #expect((report.measured.prefillTokensPerSecond?.median ?? 0) > 0)
        #expect(report.measured.residentBytesByModule["decoder"] ?? 0 > 0)
        #expect(report.measured.residentBytesByModule["embedding"] == 49152 * 576 / 32 * 34)
        // Peak RSS close to the weights read plus KV cache and scratch: above the weights, within 96 MiB of them
        // (the remainder is the Swift runtime, Foundation and code).
        let weights = report.measured.weightBytes
        #expect(report.measured.peakMemoryBytes > weights)
        #expect(report.measured.peakMemoryBytes < weights + report.measured.kvCacheBytes + 96 << 20)
        // What the process held before loading is recorded, and the table's note adds it to the expectation.
        let before = try #require(report.measured.residentBeforeLoadBytes)
        #expect(before > 1 << 20 && before < report.measured.peakMemoryBytes - weights)
        #expect(out.stdout.contains("before loading (code, libraries, runtime) + weights"))
        let accuracy = try #require(report.accuracy)
        #expect(accuracy.measured)
        #expect(accuracy.scoredTokens == 254)
        #expect((accuracy.klMean?.value ?? 1) < 0.001)   // the checkpoint's own weights against their F32 expansion
        #expect(report.build.commit != "")
    }

    @Test func realModelInt8ActivationsStillAnswerParisAndReportTheirCost() throws {
        let model = try RunCLI.requireSmolLM2()
        let out = try RunCLI.run(["--checkpoint", model, "--chat", "What is the capital of France?",
                                  "--max-tokens", "16", "--repeats", "1", "--warmup", "0", "--threads", "2",
                                  "--activations", "int8", "--eval-tokens", "512", "--eval-context", "256", "--json"])
        #expect(out.status == 0, "stderr: \(out.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(out.stdout.utf8))
        #expect(report.generatedText?.contains("Paris") == true, "\(report.generatedText ?? "")")
        let ran = try #require(report.measured.prefillActivations)
        let accuracy = try #require(report.accuracy)
        if ran == "int8" {
            // The rounding's own cost against the same weights in F32: small, and not zero.
            #expect((accuracy.klMean?.value ?? 1) > 1e-4 && (accuracy.klMean?.value ?? 1) < 0.02)
        } else {
            #expect(ran == "f32")                           // no integer kernels on this CPU
        }
        let bad = try RunCLI.run(["--checkpoint", model, "--prompt", "Hello", "--activations", "fp8"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown activation precision 'fp8'"))
    }

    @Test func realModelTooFewEvaluationTokensIsReportedNotSummarised() throws {
        let model = try RunCLI.requireSmolLM2()
        let out = try RunCLI.run(["--checkpoint", model, "--prompt", "Hello", "--max-tokens", "2", "--repeats", "1",
                                  "--warmup", "0", "--eval-tokens", "64", "--eval-context", "64", "--json"])
        #expect(out.status == 0, "stderr: \(out.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(out.stdout.utf8))
        #expect(report.accuracy?.measured == false)
        #expect(report.accuracy?.reason?.contains("at least 100 scored tokens") == true)
    }

    @Test func realModelConvertWritesLoadableCheckpoints() throws {
        let model = try RunCLI.requireSmolLM2()
        let dir = try RunCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for format in ["f16", "q8_0"] {
            let path = dir.appendingPathComponent("smol-\(format).gguf").path
            let out = try RunCLI.run(["convert", "--checkpoint", model, "--to", format, "-o", path])
            #expect(out.status == 0, "stderr: \(out.stderr)")
            let run = try RunCLI.run(["--checkpoint", path, "--chat", "What is the capital of France?",
                                      "--max-tokens", "12", "--repeats", "1", "--warmup", "0", "--eval-tokens", "0",
                                      "--json"])
            #expect(run.status == 0, "stderr: \(run.stderr)")
            let report = try JSONDecoder().decode(RunReport.self, from: Data(run.stdout.utf8))
            #expect(report.generatedText?.contains("Paris") == true, "\(format): \(report.generatedText ?? "")")
        }
    }

    /// The phone plan carried onto SmolLM2 predicts SmolLM2's own weight bytes, which the engine then holds exactly.
    @Test func realModelMappedPlanPredictsTheWeightsTheEngineHolds() throws {
        let model = try RunCLI.requireSmolLM2()
        let dir = try RunCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let planPath = dir.appendingPathComponent("mapped.json").path
        let phonePlan = RunCLI.packageRoot
            .appendingPathComponent("Plans/autoglm-phone-9b.snapdragon-8-gen-3-12gb.json").path
        let manifest = RunCLI.packageRoot.appendingPathComponent("Models/smollm2-135m.json").path
        let map = try RunCLI.run(["map-plan", "--plan", phonePlan, "--model", manifest, "-o", planPath])
        #expect(map.status == 0, "stderr: \(map.stderr)")
        let plan = try Plan.load(planPath)
        #expect(plan.model.id == "smollm2-135m")
        #expect(plan.predicted.accuracyLoss > 0)
        let out = try RunCLI.run(["--checkpoint", model, "--plan", planPath, "--prompt", "Hello", "--max-tokens", "2",
                                  "--repeats", "1", "--warmup", "0", "--eval-tokens", "0", "--json"])
        #expect(out.status == 0, "stderr: \(out.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(out.stdout.utf8))
        #expect(report.measured.weightBytes == plan.predicted.weightBytes)
        #expect(report.predicted.accuracyLoss == plan.predicted.accuracyLoss)

        let badManifest = dir.appendingPathComponent("broken.json").path
        try "{\"schema_version\": 1}".write(toFile: badManifest, atomically: true, encoding: .utf8)
        let bad = try RunCLI.run(["map-plan", "--plan", phonePlan, "--model", badManifest, "-o", planPath])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("broken.json"))
    }

    /// Latency, KV-cache and peak predictions are set beside a run only when it runs the plan's workload.
    @Test func realModelPlanWorkloadRunsThePlansLengthsAndOtherRunsDropItsLatencyPredictions() throws {
        let model = try RunCLI.requireSmolLM2()
        let dir = try RunCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The host plan with a short workload: 96 prompt tokens, 8 output tokens.
        var plan = try Plan.load(RunCLI.packageRoot.appendingPathComponent("Plans/smollm2-135m.host.json").path)
        plan.workload = Workload(id: "short", description: "test", image: nil, promptTokens: 96, outputTokens: 8)
        let planPath = dir.appendingPathComponent("short.json").path
        try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: planPath))
        let common = ["--checkpoint", model, "--plan", planPath, "--repeats", "1", "--warmup", "0", "--eval-tokens", "0"]

        let out = try RunCLI.run(common + ["--plan-workload", "--json"])
        #expect(out.status == 0, "stderr: \(out.stderr)")
        let report = try JSONDecoder().decode(RunReport.self, from: Data(out.stdout.utf8))
        #expect(report.workload.id == "short")
        #expect(report.workload.promptTokens == 96 && report.workload.outputTokens == 8)
        // Every output token is generated (end-of-generation does not stop the plan's workload).
        #expect(report.measured.stages.first { $0.stage == "decode" }?.tokens == 7)
        #expect(report.predicted == plan.predicted)

        let other = try RunCLI.run(common + ["--prompt", "The capital of France is", "--max-tokens", "4"])
        #expect(other.status == 0, "stderr: \(other.stderr)")
        #expect(other.stdout.contains("are for its workload 'short' (96 prompt + 8 output tokens)"))
        #expect(other.stdout.contains("not compared"))
        let otherJSON = try RunCLI.run(common + ["--prompt", "The capital of France is", "--max-tokens", "4", "--json"])
        let r2 = try JSONDecoder().decode(RunReport.self, from: Data(otherJSON.stdout.utf8))
        #expect(r2.predicted.ttftSeconds == 0 && r2.predicted.decodeTokensPerSecond == 0)
        #expect(r2.predicted.kvCacheBytes == 0 && r2.predicted.peakMemoryBytes == 0)
        #expect(r2.predicted.weightBytes == plan.predicted.weightBytes)
        #expect(r2.workload.id == "prompt")

        // A prompt longer than the evaluation text repeats the text.
        let shortText = dir.appendingPathComponent("short.txt").path
        try "The capital of France is Paris.".write(toFile: shortText, atomically: true, encoding: .utf8)
        let repeated = try RunCLI.run(common + ["--plan-workload", "--eval-text", shortText, "--json"])
        #expect(repeated.status == 0, "stderr: \(repeated.stderr)")
        let r3 = try JSONDecoder().decode(RunReport.self, from: Data(repeated.stdout.utf8))
        #expect(r3.workload.promptTokens == 96)

        for (arguments, message) in [
            (["--plan-workload"], "--plan-workload needs --plan"),
            (["--plan", planPath, "--plan-workload", "--max-tokens", "3"], "drop --prompt, --chat and --max-tokens"),
        ] {
            let bad = try RunCLI.run(["--checkpoint", model] + arguments)
            #expect(bad.status != 0)
            #expect(bad.stderr.contains(message), "stderr: \(bad.stderr)")
        }
    }

    @Test func badArgumentsFailWithAMessage() throws {
        let missing = try RunCLI.run(["--checkpoint", "/nonexistent/model.gguf", "--max-tokens", "1"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/model.gguf"))
        let badFormat = try RunCLI.run(["convert", "--checkpoint", "x.gguf", "--to", "q3_k", "-o", "y.gguf"])
        #expect(badFormat.status != 0)
        #expect(badFormat.stderr.contains("--to must be one of"))
        let both = try RunCLI.run(["--checkpoint", "x.gguf", "--prompt", "a", "--chat", "b"])
        #expect(both.status != 0)
    }

    @Test func realModelBenchAtDepthNamesTheTestsAndRecordsTheDepth() throws {
        let model = try RunCLI.requireSmolLM2()
        let records = try RunCLI.benchRecords(model, ["--formats", "checkpoint", "--prompt-tokens", "8",
                                                      "--gen-tokens", "2", "--depth", "1100"])
        #expect(records.map { $0["test"] as? String } == ["pp8 @ d1100", "tg2 @ d1100"])
        #expect(records.allSatisfy { $0["n_depth"] as? Int == 1_100 })
        let negative = try RunCLI.run(["bench", "--checkpoint", model, "--depth=-1"])
        #expect(negative.status != 0)
        #expect(negative.stderr.contains("--depth must be 0 or more"))
    }

    @Test func realModelBenchPrintsRecordsPerFormat() throws {
        let model = try RunCLI.requireSmolLM2()
        let records = try RunCLI.benchRecords(model, ["--formats", "checkpoint,int4-g32", "--prompt-tokens", "16",
                                                      "--gen-tokens", "4"])
        #expect(records.count == 4)
        #expect(records.map { $0["test"] as? String } == ["pp16", "tg4", "pp16", "tg4"])
        #expect(records.allSatisfy { ($0["avg_ts"] as? Double ?? 0) > 0 })
    }

    @Test func realModelBenchPhasesGoToTheJSONRecords() throws {
        let model = try RunCLI.requireSmolLM2()
        let records = try RunCLI.benchRecords(model, ["--formats", "checkpoint", "--prompt-tokens", "8",
                                                      "--gen-tokens", "2", "--phases"])
        #expect(records.count == 2)
        for record in records {
            let phases = record["phase_seconds_per_token"] as? [String: Double]
            #expect(phases?.count == 11 && phases?["attention"] != nil && phases?["head"] != nil)
        }
        let table = try RunCLI.run(["bench", "--checkpoint", model, "--formats", "checkpoint", "--repeats", "1",
                                    "--warmup", "0", "--prompt-tokens", "8", "--gen-tokens", "2", "--phases"])
        #expect(table.status == 0)
        #expect(table.stdout.contains("µs per token (share of the forward pass)"))
    }

    @Test func realModelBenchInt8ActivationsAreRecorded() throws {
        let model = try RunCLI.requireSmolLM2()
        let records = try RunCLI.benchRecords(model, ["--formats", "checkpoint", "--activations", "f32,int8",
                                                      "--prompt-tokens", "64", "--gen-tokens", "2"])
        #expect(records.count == 4)
        // int8 runs where the AVX-512 kernels do; elsewhere the record says f32, as it ran.
        let int8 = records.first?["kernels"] as? String == "avx512" ? "int8" : "f32"
        #expect(records.map { $0["activations"] as? String } == ["f32", "f32", int8, int8])
        let bad = try RunCLI.run(["bench", "--checkpoint", model, "--formats", "checkpoint", "--activations", "int4"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown activation precision 'int4' (known: f32, int8)"))
    }

    @Test func realModelActivationsFromThePlanFollowItsComputePrecision() throws {
        let model = try RunCLI.requireSmolLM2()
        let dir = try RunCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let hostPlan = RunCLI.packageRoot.appendingPathComponent("Plans/smollm2-135m.host.json")
        // The host plan with its decoder in `format`, priced at `precision` arithmetic.
        func variant(_ format: String, _ precision: String) throws -> String {
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: hostPlan)) as? [String: Any])
            json["modules"] = (json["modules"] as? [[String: Any]])?.map { m -> [String: Any] in
                guard m["kind"] as? String == "text_decoder" else { return m }
                var m = m
                m["format"] = format
                m["compute_precision"] = precision
                return m
            }
            let path = dir.appendingPathComponent("plan-\(format).json").path
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
            return path
        }
        let integerPlan = try variant("q4_0", "int4")
        let floatPlan = try variant("f32", "f32")
        func ran(_ extra: [String]) throws -> String? {
            let out = try RunCLI.run(["--checkpoint", model, "--prompt", "The capital of France is", "--max-tokens", "2",
                                      "--repeats", "1", "--warmup", "0", "--eval-tokens", "0", "--json"] + extra)
            #expect(out.status == 0, "stderr: \(out.stderr)")
            return try JSONDecoder().decode(RunReport.self, from: Data(out.stdout.utf8)).measured.prefillActivations
        }
        // What int8 becomes on this CPU (int8 with the AVX-512 kernels, else f32) is what the integer plan gets.
        let int8Here = try ran(["--activations", "int8"])
        #expect(try ran(["--plan", integerPlan, "--activations", "plan"]) == int8Here)
        #expect(try ran(["--plan", floatPlan, "--activations", "plan"]) == "f32")
        let missing = try RunCLI.run(["--checkpoint", model, "--prompt", "Hi", "--activations", "plan"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("--activations plan needs --plan"))
    }
}
