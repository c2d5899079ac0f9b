import Foundation
import Testing
import AutoGLMSpecs

/// `autoglm-run measure-attention` on the real SmolLM2 checkpoint, small enough to take seconds.
@Suite("autoglm-run measure-attention")
struct MeasureAttentionCLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func checkpoint() throws -> String {
        let path = ProcessInfo.processInfo.environment["AUTOGLM_SMOLLM2"]
            ?? root.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            struct Missing: Error, CustomStringConvertible {
                let path: String
                var description: String { "SmolLM2 checkpoint not found at \(path); run `make models` or set AUTOGLM_SMOLLM2" }
            }
            throw Missing(path: path)
        }
        return path
    }

    static func run(_ arguments: [String]) throws -> CLITool.Output {
        try CLITool.run("autoglm-run", arguments)
    }

    @Test("realModel: an INT8 KV measurement is written as a measured setting_sensitivity entry")
    func realModelMeasuresAndUpdatesManifest() throws {
        let model = try Self.checkpoint()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("measure-attention-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let manifest = dir.appendingPathComponent("smollm2-135m.json").path
        try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("Models/smollm2-135m.json").path,
                                         toPath: manifest)
        let results = dir.appendingPathComponent("accuracy.json").path
        let r = try Self.run(["measure-attention", "--checkpoint", model, "--context", "256", "--settings",
                              "kv:int8,window:64+4", "--manifest", manifest, "-o", results, "--threads", "2"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let loaded = try ModelManifest.load(manifest)
        for name in ["kv:int8", "window:64+4"] {
            let entry = try #require(loaded.settingSensitivity.first { $0.setting == name })
            #expect(entry.measured && entry.source.hasPrefix("measured: autoglm-run measure-attention"))
            #expect(entry.loss >= 0 && entry.loss.isFinite)
        }
        // Entries not measured are kept as they were.
        let before = try ModelManifest.load(Self.root.appendingPathComponent("Models/smollm2-135m.json").path)
        for e in before.settingSensitivity where !["kv:int8", "window:64+4"].contains(e.setting) {
            #expect(loaded.settingSensitivity.contains(e))
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: results))) as? [String: Any]
        let settings = try #require(json?["settings"] as? [[String: Any]])
        #expect(settings.count == 2)
        let kl = settings.compactMap { $0["kl_mean"] as? Double }
        #expect(kl.count == 2 && kl.allSatisfy { $0 >= 0 && $0.isFinite })
        // A 64-token window at 256 tokens of context loses more than INT8 keys and values do.
        #expect(kl[1] > kl[0])
    }

    @Test("an unknown setting is rejected before anything is loaded")
    func badSetting() throws {
        let r = try Self.run(["measure-attention", "--checkpoint", "/nonexistent.gguf", "--settings", "kv:int3"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("kv:int3"))
    }
}
