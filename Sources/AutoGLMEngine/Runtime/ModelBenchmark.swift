import AutoGLMSpecs
import Foundation

/// One llama-bench style result: a test (pp<N> prefill or tg<N> decode) of a model in one weight format.
public struct BenchmarkRecord: Codable, Sendable, Equatable {
    public var buildCommit: String
    public var model: String
    public var architecture: String
    public var format: String
    public var weightBytes: Int
    public var parameters: Int
    public var threads: Int
    /// The matrix-kernel family that ran (`avx512` or `simd8`, see `KernelISA`).
    public var kernels: String
    public var kvCacheFormat: String
    /// How prefill multiplied the activations: "f32" or "int8" (`ActivationPrecision`, as it ran on this CPU).
    public var activations: String
    /// "pp512", "tg128", "tg128 @ d4096", ...
    public var test: String
    public var promptTokens: Int
    public var generatedTokens: Int
    /// Tokens already in the context when the test starts (llama-bench's depth; 0: an empty cache).
    public var depth: Int
    public var repeats: Int
    /// Tokens per second of every repeat.
    public var samples: [Double]
    public var mean: Double
    public var median: Double
    public var stddev: Double
    /// Seconds per token spent in each step of the forward pass (`ForwardPhase` raw values), over the timed repeats;
    /// nil unless the benchmark timed its steps.
    public var phaseSeconds: [String: Double]?

    enum CodingKeys: String, CodingKey {
        case buildCommit = "build_commit", model, architecture, format, weightBytes = "weight_bytes", parameters
        case threads, kernels, kvCacheFormat = "kv_cache_format", activations, test, promptTokens = "n_prompt"
        case generatedTokens = "n_gen", depth = "n_depth", repeats, samples, mean = "avg_ts", median = "median_ts"
        case stddev = "stddev_ts", phaseSeconds = "phase_seconds_per_token"
    }

    /// Wall seconds per token, averaged over the repeats (the time the phases divide up, plus what lies between
    /// passes: sampling the next token).
    public var secondsPerToken: Double {
        samples.isEmpty ? 0 : samples.reduce(0) { $0 + 1 / $1 } / Double(samples.count)
    }

    public init(buildCommit: String, model: String, architecture: String, format: String, weightBytes: Int,
                parameters: Int, threads: Int, kernels: String = KernelISA.active.rawValue, kvCacheFormat: String,
                activations: String = ActivationPrecision.float32.rawValue, test: String, promptTokens: Int,
                generatedTokens: Int, depth: Int = 0, samples: [Double], phaseSeconds: [String: Double]? = nil) {
        self.buildCommit = buildCommit; self.model = model; self.architecture = architecture; self.format = format
        self.weightBytes = weightBytes; self.parameters = parameters; self.threads = threads; self.kernels = kernels
        self.kvCacheFormat = kvCacheFormat; self.activations = activations; self.test = test
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens; self.depth = depth; self.samples = samples
        self.phaseSeconds = phaseSeconds
        repeats = samples.count
        let n = Double(samples.count)
        mean = samples.isEmpty ? 0 : samples.reduce(0, +) / n
        median = Statistics.median(samples)
        let m = mean
        stddev = samples.count > 1 ? (samples.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() : 0
    }
}

/// Printers for benchmark records: a Markdown table like llama-bench's and JSON.
public enum BenchmarkPrinter {
    /// One row per record; t/s is the median over the repeats ± the standard deviation.
    public static func table(_ records: [BenchmarkRecord]) -> String {
        var lines = [
            "| model | format | size | params | kernels | threads | kv | activations | test | t/s (median ± sd) |",
            "| --- | --- | ---: | ---: | --- | ---: | --- | --- | --- | ---: |",
        ]
        for r in records {
            let size = String(format: "%.2f MiB", Double(r.weightBytes) / 1_048_576)
            let params = String(format: "%.2f M", Double(r.parameters) / 1e6)
            let ts = String(format: "%.2f ± %.2f", r.median, r.stddev)
            lines.append("| \(r.model) | \(r.format) | \(size) | \(params) | \(r.kernels) | \(r.threads) | \(r.kvCacheFormat) "
                         + "| \(r.activations) | \(r.test) | \(ts) |")
        }
        if let commit = records.first?.buildCommit { lines.append("\nbuild: \(commit)") }
        let timed = records.filter { $0.phaseSeconds != nil }
        if !timed.isEmpty { lines.append("\n" + phases(timed)) }
        return lines.joined(separator: "\n")
    }

    /// Where a token's time goes, one row per record that timed its steps: µs per token of each `ForwardPhase` with
    /// its share of the forward pass, the pass's total and the wall time per token.
    public static func phases(_ records: [BenchmarkRecord]) -> String {
        let names = ForwardPhase.allCases.map(\.rawValue)
        var lines = ["µs per token (share of the forward pass):",
                     "| format | test | " + names.joined(separator: " | ") + " | forward | wall |",
                     "| --- | --- |" + String(repeating: " ---: |", count: names.count + 2)]
        for r in records {
            guard let p = r.phaseSeconds else { continue }
            let forward = names.reduce(0) { $0 + (p[$1] ?? 0) }
            let cells = names.map { name -> String in
                let v = p[name] ?? 0
                return String(format: "%.1f (%.0f%%)", v * 1e6, forward > 0 ? 100 * v / forward : 0)
            }
            let int8 = r.activations != ActivationPrecision.float32.rawValue
            let label = r.format + (int8 ? " (\(r.activations) activations)" : "")
            lines.append("| \(label) | \(r.test) | " + cells.joined(separator: " | ")
                         + String(format: " | %.1f | %.1f |", forward * 1e6, r.secondsPerToken * 1e6))
        }
        return lines.joined(separator: "\n")
    }

    public static func json(_ records: [BenchmarkRecord]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(records), as: UTF8.self)
    }
}

/// Measures prefill (pp) and decode (tg) throughput of a model, llama-bench style: pp<N> runs N prompt tokens in
/// one pass; tg<N> generates N tokens one at a time. Both start from an empty cache, or with `depth` tokens
/// already in it (prefilled before the clock starts: decode deep in a long agent history reads a long KV cache).
/// Each test runs `warmups` untimed times, then `repeats` timed times.
public struct ModelBenchmark {
    public var promptTokens: Int = 512
    public var generatedTokens: Int = 128
    public var repeats: Int = 5
    public var warmups: Int = 1
    public var kvCacheFormat: KVCacheFormat = .f32
    public var depth: Int = 0
    /// Also time each step of the timed passes (`PhaseClock`) and put the seconds per token in the records.
    public var phases: Bool = false

    public init(promptTokens: Int = 512, generatedTokens: Int = 128, repeats: Int = 5, warmups: Int = 1,
                kvCacheFormat: KVCacheFormat = .f32, depth: Int = 0, phases: Bool = false) {
        self.promptTokens = promptTokens; self.generatedTokens = generatedTokens
        self.repeats = repeats; self.warmups = warmups; self.kvCacheFormat = kvCacheFormat; self.depth = depth
        self.phases = phases
    }

    /// Runs pp and tg on `model`; `label` names the format in the records.
    public func run(model: DecoderModel, modelName: String, label: String, buildCommit: String,
                    pool: ComputePool) throws -> [BenchmarkRecord] {
        guard repeats >= 1, warmups >= 0, promptTokens >= 1, generatedTokens >= 1, depth >= 0 else {
            throw ModelError.invalidSetting(name: "benchmark", expected: "repeats ≥ 1, warm-ups ≥ 0, pp/tg ≥ 1, depth ≥ 0",
                                            got: "repeats \(repeats), warm-ups \(warmups), pp \(promptTokens), tg \(generatedTokens), depth \(depth)")
        }
        let session = try InferenceSession(model: model, capacity: depth + max(promptTokens, generatedTokens) + 1,
                                           batch: max(promptTokens, min(depth, 512)),  // the context in 512s
                                           attention: AttentionSettings(kvCacheFormat: kvCacheFormat), pool: pool)
        // Deterministic pseudo-random prompt, like llama-bench's random tokens.
        var rng = SplitMix64(seed: 0x5EED)
        let vocab = model.config.vocab
        let prompt = (0..<promptTokens).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(vocab)) }
        let context = (0..<depth).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(vocab)) }
        /// An empty cache, or one holding the `depth` context tokens.
        func startAtDepth() throws {
            session.reset()
            if !context.isEmpty { _ = try session.forward(context) }
        }
        // Timed passes only (not the warm-ups, not the context before a test): seconds per token of each step.
        let clock = phases ? PhaseClock() : nil
        func perToken(_ tokens: Int) -> [String: Double]? {
            guard let clock else { return nil }
            defer { clock.reset() }
            return Dictionary(uniqueKeysWithValues: clock.totals.map { ($0.key.rawValue, $0.value / Double(tokens)) })
        }
        /// The context before a test, untimed; then the step clock on for a timed repeat.
        func prepare(repeat i: Int) throws {
            session.phaseClock = nil
            try startAtDepth()
            session.phaseClock = i >= warmups ? clock : nil
        }
        var pp: [Double] = []
        for i in 0..<(warmups + repeats) {
            try prepare(repeat: i)
            let start = Clock.now()
            _ = try session.forward(prompt)
            let seconds = Clock.now() - start
            if i >= warmups { pp.append(Double(promptTokens) / seconds) }
        }
        let ppPhases = perToken(promptTokens * repeats)
        var tg: [Double] = []
        var token: [Int32] = [prompt[0]]
        for i in 0..<(warmups + repeats) {
            try prepare(repeat: i)
            let start = Clock.now()
            for _ in 0..<generatedTokens {
                let logits = try token.withUnsafeBufferPointer { try session.forward($0, logitsFrom: 0) }
                token[0] = Sampler.argmax(logits)
            }
            let seconds = Clock.now() - start
            if i >= warmups { tg.append(Double(generatedTokens) / seconds) }
        }
        let tgPhases = perToken(generatedTokens * repeats)
        let parameters = model.parameterCount
        func record(_ test: String, _ p: Int, _ g: Int, _ s: [Double], _ phases: [String: Double]?) -> BenchmarkRecord {
            BenchmarkRecord(buildCommit: buildCommit, model: modelName, architecture: model.config.architecture,
                            format: label, weightBytes: model.weightBytes, parameters: parameters,
                            threads: pool.threadCount, kvCacheFormat: kvCacheFormat.rawValue,
                            activations: model.prefillActivations.rawValue, test: test,
                            promptTokens: p, generatedTokens: g, depth: depth, samples: s, phaseSeconds: phases)
        }
        let at = depth > 0 ? " @ d\(depth)" : ""
        return [record("pp\(promptTokens)\(at)", promptTokens, 0, pp, ppPhases),
                record("tg\(generatedTokens)\(at)", 0, generatedTokens, tg, tgPhases)]
    }
}

extension DecoderModel {
    /// Parameters of the loaded tensors (the embedding counted once when the head is tied).
    public var parameterCount: Int {
        let c = config
        var total = c.vocab * c.hidden + c.hidden
        if !tiedHead { total += c.vocab * c.hidden }
        for b in blocks {
            switch b.attention.projections {
            case let .separate(q, k, v): total += q.weight.rows * q.weight.columns + k.weight.rows * k.weight.columns
                + v.weight.rows * v.weight.columns + (q.bias?.count ?? 0) + (k.bias?.count ?? 0) + (v.bias?.count ?? 0)
            case let .fused(qkv): total += qkv.weight.rows * qkv.weight.columns + (qkv.bias?.count ?? 0)
            }
            total += b.attention.output.weight.rows * b.attention.output.weight.columns
            switch b.feedForward.gateUp {
            case let .separate(g, u): total += g.weight.rows * g.weight.columns + u.weight.rows * u.weight.columns
            case let .fused(gu): total += gu.weight.rows * gu.weight.columns
            }
            total += b.feedForward.down.weight.rows * b.feedForward.down.weight.columns
            total += 2 * c.hidden + (b.attention.postNorm == nil ? 0 : c.hidden) + (b.feedForward.postNorm == nil ? 0 : c.hidden)
        }
        return total
    }
}
