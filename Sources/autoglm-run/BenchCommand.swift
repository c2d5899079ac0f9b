import ArgumentParser
import AutoGLMEngine
import AutoGLMSpecs
import Foundation

/// `autoglm-run bench`: llama-bench style prefill (pp) and decode (tg) throughput per weight format.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure pp512 / tg128 tokens per second for a checkpoint converted on the fly to each format.")

    @Option(help: "GGUF checkpoint.")
    var checkpoint: String

    @Option(help: "Comma-separated formats (checkpoint = as stored).")
    var formats: String = "f32,f16,q8_0,q4_0,q4_1,int8,int4-g32,int4-g128"

    @Option(help: "Timed repeats per test.")
    var repeats: Int = 5

    @Option(help: "Untimed runs before the timed ones.")
    var warmup: Int = 1

    @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens of the pp test.")
    var promptTokens: Int = 512

    @Option(name: .customLong("gen-tokens"), help: "Generated tokens of the tg test.")
    var genTokens: Int = 128

    @Option(help: "Tokens already in the context before each test (decode deep in a long history); 0: empty.")
    var depth: Int = 0

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("kv-cache"), help: "KV cache format: f32, f16, int8, int4.")
    var kvCache: String = "f16"

    @Option(help: "Comma-separated prefill activation precisions: f32 (exact), int8 (rounded to 8 bits per block of 32, as llama.cpp's quantised kernels; AVX-512 only, quantised formats only). Each format runs with each (int8 only for quantised formats).")
    var activations: String = "f32"

    @Flag(help: "Also time each step of the forward pass (embedding, norms, projections, attention, activation, head) and print where a token's time goes (one clock read per step).")
    var phases = false

    @Flag(help: "Print JSON records.")
    var json = false

    func run() throws {
        guard let kv = KVCacheFormat(rawValue: kvCache) else {
            throw ValidationError("--kv-cache must be one of f32, f16, int8, int4, got '\(kvCache)'")
        }
        var policies: [(String, WeightFormatPolicy)] = []
        for name in formatNames(formats) {
            if name == "checkpoint" { policies.append((name, .checkpoint)); continue }
            policies.append((name, .uniform(try packedFormat(named: name, alsoKnown: ["checkpoint"]))))
        }
        let precisions = try formatNames(activations).map(activationPrecision(named:))
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if depth < 0 { throw ValidationError("--depth must be 0 or more, got \(depth)") }
        do {
            let file = try GGUFFile(path: checkpoint)
            let pool = ComputePool(threadCount: threads)
            let bench = ModelBenchmark(promptTokens: promptTokens, generatedTokens: genTokens, repeats: repeats,
                                       warmups: warmup, kvCacheFormat: kv, depth: depth, phases: phases)
            let commit = currentBuild().commit
            let name = (checkpoint as NSString).lastPathComponent
            var records: [BenchmarkRecord] = []
            for (label, policy) in policies {
                for precision in precisions {
                    // Float formats have no integer view: an int8 row would repeat the f32 one.
                    if precision == .int8, case let .uniform(format) = policy, !format.isQuantized { continue }
                    let model = try DecoderModel.load(gguf: file, policy: policy, activations: precision)
                    let r = try bench.run(model: model, modelName: name, label: label, buildCommit: commit, pool: pool)
                    records += r
                    if json { continue }
                    for x in r {
                        let line = String(format: "%@ %@ %@: %.2f ± %.2f tok/s\n", label, x.activations, x.test, x.mean,
                                          x.stddev)
                        FileHandle.standardError.write(Data(line.utf8))
                    }
                }
            }
            print(json ? try BenchmarkPrinter.json(records) : BenchmarkPrinter.table(records))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

/// The names in a comma-separated `--formats` list, trimmed and lowercased.
func formatNames(_ list: String) -> [String] {
    list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
}

/// The prefill activation precision called `name` (f32 or int8).
func activationPrecision(named name: String) throws -> ActivationPrecision {
    guard let precision = ActivationPrecision(rawValue: name) else {
        let known = ActivationPrecision.allCases.map(\.rawValue).joined(separator: ", ")
        throw ValidationError("unknown activation precision '\(name)' (known: \(known))")
    }
    return precision
}

/// `--activations` of a run under a plan: f32, int8, or `plan`: int8 when the plan priced its text decoder at an
/// integer rate (`Plan.Module.computePrecision` int8 or int4: weights and activations multiplied as integers, as
/// the device's integer figures assume), else f32.
func activationPrecision(named name: String, plan: Plan?) throws -> ActivationPrecision {
    guard name == "plan" else { return try activationPrecision(named: name) }
    guard let plan else { throw ValidationError("--activations plan needs --plan") }
    let integer = plan.modules.contains {
        $0.kind == .textDecoder && ($0.computePrecision == .int8 || $0.computePrecision == .int4)
    }
    return integer ? .int8 : .float32
}

/// The weight format called `name`; the error lists the known names, `alsoKnown` (other values the option takes)
/// first.
func packedFormat(named name: String, alsoKnown: [String] = []) throws -> PackedFormat {
    guard let format = PackedFormat(rawValue: name) else {
        let known = alsoKnown + PackedFormat.allCases.map(\.rawValue)
        throw ValidationError("unknown format '\(name)' (known: \(known.joined(separator: ", ")))")
    }
    return format
}
