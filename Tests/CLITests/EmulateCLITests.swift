import AutoGLMSpecs
import Foundation
import Testing

/// Runs the built `autoglm-run` for the synth / emulate tests.
enum EmulateCLI {
    typealias Output = CLITool.Output

    static var packageRoot: URL { CLITool.packageRoot }

    static func binary() throws -> String { try CLITool.binary("autoglm-run") }

    static func run(_ arguments: [String]) throws -> Output {
        try CLITool.run("autoglm-run", arguments, currentDirectory: packageRoot)
    }

    /// Whether this machine lets a process create capped groups (root with a writable memory controller).
    static var realCgroups: Bool {
        getuid() == 0 && (FileManager.default.isWritableFile(atPath: "/sys/fs/cgroup/memory")
                          || FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers"))
    }

    /// A tiny GLM-4.1V-shaped manifest (`vocab` sets the size of the embedding and head), a workloads file and a
    /// plan, written to a fresh directory.
    static func fixtures(vocab: Int, formats: [(String, WeightFormat)], feasible: Bool = true) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-emulate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let manifest = """
        {
          "schema_version": 1, "id": "tiny-glm4v", "name": "Tiny GLM-4.1V", "architecture": "glm4v", "source": "tests",
          "modules": [
            { "name": "vision", "kind": "vision_encoder", "layers": 2, "hidden": 32, "heads": 2, "head_dim": 16,
              "mlp_hidden": 64, "mlp": "swiglu", "norm": "rms", "patch_size": 4, "temporal_patch": 2, "channels": 3,
              "patch_bias": true, "position_grid": 3, "extra_norms": 2 },
            { "name": "projector", "kind": "projector", "style": "conv_merger", "input_hidden": 32,
              "output_hidden": 64, "merge": 2, "ffn": 96 },
            { "name": "embedding", "kind": "embedding", "vocab": \(vocab), "hidden": 64 },
            { "name": "decoder", "kind": "text_decoder", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2,
              "head_dim": 16, "ffn": 96, "qkv_bias": true, "norms_per_layer": 4, "fused_gate_up": true,
              "rotary_fraction": 0.5, "rotary_interleaved": true, "max_positions": 256 },
            { "name": "head", "kind": "head", "vocab": \(vocab), "hidden": 64, "tied": false }
          ],
          "vision": { "patch_size": 4, "merge": 2, "temporal_patch": 2, "min_pixels": 64, "max_pixels": 100000 }
        }
        """
        try manifest.write(to: dir.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
        let workloads = """
        { "schema_version": 1, "workloads": [
          { "id": "tiny", "image": { "width": 24, "height": 16 }, "prompt_tokens": 5, "output_tokens": 3 } ] }
        """
        try workloads.write(to: dir.appendingPathComponent("workloads.json"), atomically: true, encoding: .utf8)
        var plan = Plan()
        plan.model = Plan.ModelRef(id: "tiny-glm4v", parameters: 0)
        plan.device = Plan.DeviceRef(id: "snapdragon-8-gen-3-12gb", appBudgetBytes: 6_500_000_000)
        plan.workload = Workload(id: "tiny", description: "", image: .init(width: 24, height: 16), promptTokens: 5,
                                 outputTokens: 3)
        plan.feasible = feasible
        plan.modules = formats.map { name, format in
            var m = Plan.Module()
            m.name = name
            m.format = format
            return m
        }
        plan.predicted.peakMemoryBytes = 1
        let encoder = JSONEncoder()
        try encoder.encode(plan).write(to: dir.appendingPathComponent("plan.json"))
        return dir
    }

    /// Writes the fixture's synthetic checkpoint (tiny.gguf) next to its plan.
    static func synthesize(_ dir: URL) throws {
        let synth = try run(["synth", "--model", dir.appendingPathComponent("model.json").path,
                             "--plan", dir.appendingPathComponent("plan.json").path, "--quiet",
                             "-o", dir.appendingPathComponent("tiny.gguf").path])
        #expect(synth.status == 0, "\(synth.stderr)")
    }

    static func emulateArguments(_ dir: URL, cap: String) -> [String] {
        ["--emulate", "phone", "--device", packageRoot.appendingPathComponent("DeviceProfiles/snapdragon-8-gen-3-12gb.json").path,
         "--plan", dir.appendingPathComponent("plan.json").path, "--model", dir.appendingPathComponent("model.json").path,
         "--checkpoint", dir.appendingPathComponent("tiny.gguf").path, "--workload", "tiny",
         "--workloads", dir.appendingPathComponent("workloads.json").path, "--memory-cap", cap,
         "--host-equivalent-cores", "1", "-o", dir.appendingPathComponent("report.json").path]
    }
}

@Suite(.serialized)
struct EmulateCLITests {
    static let formats: [(String, WeightFormat)] = [
        ("vision", .f16), ("projector", .q8_0), ("embedding", .q8_0), ("decoder", .int4g32), ("head", .q4_0),
    ]

    @Test func synthWritesOnceThenReportsUpToDate() throws {
        let dir = try EmulateCLI.fixtures(vocab: 256, formats: Self.formats)
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["synth", "--model", dir.appendingPathComponent("model.json").path,
                    "--plan", dir.appendingPathComponent("plan.json").path,
                    "-o", dir.appendingPathComponent("tiny.gguf").path]
        let first = try EmulateCLI.run(args)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("100%"))
        let second = try EmulateCLI.run(args)
        #expect(second.status == 0)
        #expect(second.stdout.contains("up to date"))
        let bad = try EmulateCLI.run(["synth", "--model", dir.appendingPathComponent("model.json").path,
                                      "--plan", "/nonexistent/plan.json", "-o", dir.appendingPathComponent("x.gguf").path])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("error"))
    }

    @Test(.enabled(if: EmulateCLI.realCgroups, "needs root and a writable cgroup memory controller"))
    func tinyModelCompletesUnderACap() throws {
        let dir = try EmulateCLI.fixtures(vocab: 256, formats: Self.formats)
        defer { try? FileManager.default.removeItem(at: dir) }
        try EmulateCLI.synthesize(dir)
        let out = try EmulateCLI.run(EmulateCLI.emulateArguments(dir, cap: "256MiB"))
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        #expect(out.stdout.contains("completed"))
        #expect(out.stdout.contains("predicted (plan)") && out.stdout.contains("projected (device)"))
        let report = try RunReport.load(dir.appendingPathComponent("report.json").path)
        #expect(report.kind == .emulation)
        let e = try #require(report.emulation)
        #expect(e.capped && !e.oomKilled)
        #expect(e.memoryCapBytes == 256 << 20)
        #expect(e.peakBytes > 0 && e.peakBytes <= 256 << 20)
        // A tiny run can finish between two 20 ms samples; every phase seen must be one the engine marks.
        let phases = Set(e.timeline.compactMap(\.phase))
        #expect(phases.isSubset(of: ["load", "vision-encode", "prefill", "decode"]), "\(phases)")
        #expect(e.phaseAtExit == "decode")
        #expect(report.measured.stages.map(\.stage) == ["load", "vision-encode", "prefill", "decode"])
        #expect(report.measured.peakMemorySource == "cgroup")
        #expect(report.accuracy?.measured == false)
        #expect(report.accuracy?.reason == "not measured (synthetic weights)")
        let projected = try #require(report.projected)
        #expect(projected.method.contains("host efficiency"))
        #expect(projected.stages.map(\.stage) == ["vision-encode", "prefill", "decode"])
    }

    @Test(.enabled(if: EmulateCLI.realCgroups, "needs root and a writable cgroup memory controller"))
    func int8PrefillIsReportedAndProjectedAgainstTheIntegerPeak() throws {
        let dir = try EmulateCLI.fixtures(vocab: 256, formats: Self.formats)
        defer { try? FileManager.default.removeItem(at: dir) }
        try EmulateCLI.synthesize(dir)
        let out = try EmulateCLI.run(EmulateCLI.emulateArguments(dir, cap: "256MiB") + ["--activations", "int8"])
        #expect(out.status == 0, "\(out.stdout)\n\(out.stderr)")
        let report = try RunReport.load(dir.appendingPathComponent("report.json").path)
        let projected = try #require(report.projected)
        if report.measured.prefillActivations == "int8" {            // AVX-512 host: the integer kernels ran
            #expect(out.stdout.contains("prefill activations: int8"))
            #expect(projected.method.contains("prefill ran 8-bit activations: its host peak is 4x the FP32 figure"))
        } else {
            #expect(report.measured.prefillActivations == "f32")
            #expect(!projected.method.contains("8-bit"))
        }
        let bad = try EmulateCLI.run(EmulateCLI.emulateArguments(dir, cap: "256MiB") + ["--activations", "int2"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("unknown activation precision 'int2'"))
    }

    @Test(.enabled(if: EmulateCLI.realCgroups, "needs root and a writable cgroup memory controller"))
    func modelLargerThanTheCapIsOOMKilledDuringLoad() throws {
        // 2 × 1,048,576 × 64 F32 = 512 MiB of embedding and head against a 160 MiB cap.
        let dir = try EmulateCLI.fixtures(vocab: 1 << 20, formats: [("embedding", .f32), ("head", .f32)],
                                          feasible: false)
        defer { try? FileManager.default.removeItem(at: dir) }
        try EmulateCLI.synthesize(dir)
        let refused = try EmulateCLI.run(EmulateCLI.emulateArguments(dir, cap: "160MiB"))
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--force"))
        let out = try EmulateCLI.run(EmulateCLI.emulateArguments(dir, cap: "160MiB") + ["--force"])
        #expect(out.status == 3, "\(out.stdout)\n\(out.stderr)")
        #expect(out.stdout.contains("OOM-KILLED in phase 'load'"))
        let report = try RunReport.load(dir.appendingPathComponent("report.json").path)
        let e = try #require(report.emulation)
        #expect(e.oomKilled)
        #expect(e.phaseAtExit == "load")
        #expect(e.peakBytes > 100 << 20)
        #expect(report.projected == nil)
    }
}
