import Foundation
import Testing
import AutoGLMSpecs

/// `autoglm-run measure-formats` on the real SmolLM2 checkpoint, small enough to take seconds.
@Suite("autoglm-run measure-formats")
struct MeasureFormatsCLITests {
    static func run(_ arguments: [String]) throws -> CLITool.Output { try CLITool.run("autoglm-run", arguments) }

    @Test("realModel: the tied head in Q8_0 is exact, in Q4_0 it costs, and the manifest gets measured entries")
    func realModelMeasuresTheHeadAndUpdatesTheManifest() throws {
        let model = try MeasureAttentionCLITests.checkpoint()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("measure-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let shipped = CLITool.packageRoot.appendingPathComponent("Models/smollm2-135m.json").path
        let manifest = dir.appendingPathComponent("smollm2-135m.json").path
        try FileManager.default.copyItem(atPath: shipped, toPath: manifest)
        let results = dir.appendingPathComponent("formats.json").path
        let r = try Self.run(["measure-formats", "--checkpoint", model, "--modules", "head", "--formats", "q8_0,q4_0",
                              "--context", "128", "--max-tokens", "256", "--manifest", manifest, "-o", results,
                              "--threads", "2"])
        #expect(r.status == 0, "stderr: \(r.stderr)")

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: results))) as? [String: Any]
        let rows = try #require(json?["measurements"] as? [[String: Any]])
        #expect(rows.count == 2)
        // The shipped table is Q8_0: the head in Q8_0 reproduces the reference bit for bit.
        #expect(rows[0]["format"] as? String == "q8_0")
        #expect(rows[0]["kl_mean"] as? Double == 0 && rows[0]["ppl_ratio"] as? Double == 1)
        #expect(rows[0]["scored_tokens"] as? Int == 2 * 63)
        // Re-quantised to Q4_0 it loses: KL well above zero, fewer top-1 agreements.
        let kl = try #require(rows[1]["kl_mean"] as? Double)
        #expect(kl > 0.01 && kl < 1)
        #expect((rows[1]["top1_agreement"] as? Double ?? 1) < 0.95)
        let share = try #require(rows[1]["parameter_share"] as? Double)
        #expect(abs(share - 49152.0 * 576 / 134_515_008) < 1e-9)

        let loaded = try ModelManifest.load(manifest)
        let entry = try #require(loaded.sensitivity.first { $0.module == "head" && $0.format == .q4_0 })
        let ratio = try #require(rows[1]["ppl_ratio"] as? Double)
        let error = try #require(rows[1]["ppl_ratio_standard_error"] as? Double)
        #expect(entry.measured && entry.source.hasPrefix("measured: autoglm-run measure-formats"))
        // The ratio where it is resolved (beyond two standard errors of 1), else exp(KL) − 1; over the share.
        let resolved = abs(ratio - 1) > 2 * error
        let loss = resolved ? max(0, ratio - 1) : expm1(kl)
        #expect(abs(entry.loss - loss / share) < 1e-5 * max(1, entry.loss))
        #expect(entry.source.contains(resolved ? "(ratio − 1) / parameter share" : "(exp(KL) − 1), the ratio being"))
        // Entries not measured are kept as they were.
        let before = try ModelManifest.load(shipped)
        for e in before.sensitivity where !(e.module == "head" && [.q8_0, .q4_0].contains(e.format)) {
            #expect(loaded.sensitivity.contains(e))
        }
    }

    @Test(arguments: [
        (["--formats", "q4_k"], "q4_k is planned but not executed by the engine"),
        (["--formats", "q5_0"], "unknown format 'q5_0'"),
        (["--modules", "vision"], "unknown module 'vision'"),
        (["--context", "256", "--max-tokens", "128"], "--max-tokens must be at least --context"),
    ])
    func badOptionsAreRefused(arguments: [String], message: String) throws {
        let r = try Self.run(["measure-formats", "--checkpoint", "x.gguf", "--no-manifest"] + arguments)
        #expect(r.status == 64)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }
}
