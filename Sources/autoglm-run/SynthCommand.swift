import AutoGLMEngine
import AutoGLMSpecs
import ArgumentParser
import Foundation

/// `autoglm-run synth`: a full-size checkpoint of a manifest's architecture with seeded random weights in a plan's
/// formats, for running and emulating the plan at scale when the real weights are not at hand.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic checkpoint (every tensor of the architecture, in the plan's formats).",
        discussion: """
            Matrices are written directly in their packed format with random codes (standard deviation about 0.02); \
            norms are 1, biases small. The file records general.synthetic = true, the seed and the plan's SHA-256; \
            an existing file with the same plan hash and seed is kept unless --overwrite is given. \
            Accuracy cannot be measured on such weights.
            """
    )

    @Option(name: .long, help: "Model manifest JSON.")
    var model: String

    @Option(name: .long, help: "Plan JSON whose per-module formats to use.")
    var plan: String

    @Option(name: [.short, .customLong("output")], help: "Output GGUF path.")
    var output: String

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Rewrite the file even if it matches.")
    var overwrite = false

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func run() throws {
        do {
            let manifest = try ModelManifest.load(model)
            let thePlan = try Plan.load(plan)
            let hash = try FullScale.sha256(file: plan)
            if !overwrite, let existing = try? GGUFFile(path: output),
               (try? existing.string(SyntheticCheckpoint.planHashKey)) == hash,
               (try? existing.int(SyntheticCheckpoint.seedKey)).flatMap({ $0 }).map({ UInt64(truncatingIfNeeded: $0) }) == seed {
                if !quiet { print("synth: \(output) is up to date (plan \(hash.prefix(12)), seed \(seed))") }
                return
            }
            let entries = try SyntheticCheckpoint.entries(manifest: manifest, plan: thePlan)
            let total = entries.reduce(0) { $0 + $1.byteCount }
            if !quiet {
                print("synth: writing \(manifest.id) (\(entries.count) tensors, "
                      + String(format: "%.2f GB", Double(total) / 1e9) + ") to \(output)")
            }
            let dir = (output as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let start = Date()
            var lastReport = 0.0
            try SyntheticCheckpoint.write(manifest: manifest, plan: thePlan, planSHA256: hash, seed: seed,
                                          to: output) { done, all in
                guard !quiet else { return }
                let t = Date().timeIntervalSince(start)
                if t - lastReport >= 2 || done == all {
                    lastReport = t
                    let rate = t > 0 ? Double(done) / t / 1e6 : 0
                    let line = String(format: "synth: %6.2f / %.2f GB (%3.0f%%) %.0f MB/s\n", Double(done) / 1e9,
                                      Double(all) / 1e9, 100 * Double(done) / Double(max(all, 1)), rate)
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("autoglm-run synth: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}
