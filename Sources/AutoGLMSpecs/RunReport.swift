import Foundation

/// A value with its spread over repeats.
public struct Statistic: Codable, Sendable, Equatable {
    public var median: Double
    public var mean: Double
    public var stddev: Double
    public var min: Double
    public var max: Double
    public var samples: Int

    public init(_ values: [Double]) {
        let sorted = values.sorted()
        samples = sorted.count
        guard !sorted.isEmpty else { median = .nan; mean = .nan; stddev = .nan; min = .nan; max = .nan; return }
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        mean = sorted.reduce(0, +) / Double(n)
        let m = mean
        stddev = n > 1 ? (sorted.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)).squareRoot() : 0
        min = sorted[0]
        max = sorted[n - 1]
    }
}

/// A measured estimate with its uncertainty (one standard error unless stated).
public struct Estimate: Codable, Sendable, Equatable {
    public var value: Double
    public var uncertainty: Double
    public init(_ value: Double, _ uncertainty: Double) { self.value = value; self.uncertainty = uncertainty }
}

/// What one run of a plan measured, side by side with what the plan predicted.
public struct RunReport: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public enum Kind: String, Codable, Sendable { case engine, emulation }

    public var schemaVersion: Int = RunReport.currentSchemaVersion
    public var kind: Kind = .engine
    public var createdAt: String = ""
    public var build: Build = .init()
    public var plan: PlanRef = .init()
    public var checkpoint: Checkpoint = .init()
    public var host: Host = .init()
    public var workload: WorkloadShape = .init()
    /// The plan's predictions, copied verbatim.
    public var predicted: Plan.Prediction = .init()
    /// What this run measured on this host.
    public var measured: Measured = .init()
    /// Host measurements mapped to the device; never a measurement.
    public var projected: Projection?
    public var accuracy: Accuracy?
    public var emulation: Emulation?
    public var generatedText: String?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", kind, createdAt = "created_at", build, plan, checkpoint, host
        case workload, predicted, measured, projected, accuracy, emulation, generatedText = "generated_text"
    }

    public init() {}

    public static func load(_ path: String) throws -> RunReport { try SpecLoader.load(RunReport.self, from: path) }

    public struct Build: Codable, Sendable, Equatable {
        public var commit: String = "unknown"
        public var dirty: Bool = false
        public var configuration: String = ""
        public init() {}
    }

    public struct PlanRef: Codable, Sendable, Equatable {
        public var path: String = ""
        public var sha256: String = ""
        public var modelId: String = ""
        public var deviceId: String = ""
        public var appBudgetBytes: Int = 0
        public var constraints: Plan.Constraints = .init()
        enum CodingKeys: String, CodingKey {
            case path, sha256, modelId = "model_id", deviceId = "device_id", appBudgetBytes = "app_budget_bytes"
            case constraints
        }
        public init() {}
    }

    public struct Checkpoint: Codable, Sendable, Equatable {
        public var path: String = ""
        public var sha256: String?
        public var bytes: Int = 0
        public var synthetic: Bool = false
        public init() {}
    }

    public struct Host: Codable, Sendable, Equatable {
        public var cpu: String = ""
        public var cores: Int = 0
        public var threads: Int = 0
        public var memoryBytes: Int = 0
        enum CodingKeys: String, CodingKey { case cpu, cores, threads, memoryBytes = "memory_bytes" }
        public init() {}
    }

    public struct WorkloadShape: Codable, Sendable, Equatable {
        public var id: String = ""
        public var promptTokens: Int = 0
        public var imageTokens: Int = 0
        public var outputTokens: Int = 0
        enum CodingKeys: String, CodingKey {
            case id, promptTokens = "prompt_tokens", imageTokens = "image_tokens", outputTokens = "output_tokens"
        }
        public init() {}
    }

    public struct StageMeasurement: Codable, Sendable, Equatable {
        public var stage: String
        public var seconds: Statistic
        public var tokens: Int
        public init(stage: String, seconds: Statistic, tokens: Int) {
            self.stage = stage; self.seconds = seconds; self.tokens = tokens
        }
    }

    /// Measured figures; names follow `Plan.Prediction` where the quantity is the same.
    public struct Measured: Codable, Sendable, Equatable {
        public var loadSeconds: Double = 0
        public var ttftSeconds: Statistic?
        public var prefillTokensPerSecond: Statistic?
        public var decodeTokensPerSecond: Statistic?
        public var peakMemoryBytes: Int = 0
        /// "rss" (VmHWM of the engine process) or "cgroup" (the kernel's peak for the group).
        public var peakMemorySource: String = "rss"
        public var weightBytes: Int = 0
        public var kvCacheBytes: Int = 0
        public var residentBytesByModule: [String: Int] = [:]
        public var stages: [StageMeasurement] = []
        public var repeats: Int = 0
        public var warmups: Int = 0
        /// How prefill multiplied the activations on this host: "f32", or "int8" (rounded to 8 bits per block of 32
        /// in prefill batches; decode stays f32); absent in reports written before the choice existed.
        public var prefillActivations: String?
        /// Resident set of the engine process before the checkpoint was loaded (code, libraries, runtime), beside
        /// which the peak is read; absent in reports written before it was recorded and under emulation.
        public var residentBeforeLoadBytes: Int?

        enum CodingKeys: String, CodingKey {
            case prefillActivations = "prefill_activations", residentBeforeLoadBytes = "resident_before_load_bytes"
            case loadSeconds = "load_seconds", ttftSeconds = "ttft_seconds"
            case prefillTokensPerSecond = "prefill_tokens_per_second"
            case decodeTokensPerSecond = "decode_tokens_per_second", peakMemoryBytes = "peak_memory_bytes"
            case peakMemorySource = "peak_memory_source", weightBytes = "weight_bytes", kvCacheBytes = "kv_cache_bytes"
            case residentBytesByModule = "resident_bytes_by_module", stages, repeats, warmups
        }
        public init() {}
    }

    /// Host figures mapped to the device through the calibrated roofline; labelled with the method.
    public struct Projection: Codable, Sendable, Equatable {
        public var method: String = ""
        public var deviceId: String = ""
        public var ttftSeconds: Double = 0
        public var decodeTokensPerSecond: Double = 0
        public var stages: [Plan.StagePrediction] = []
        enum CodingKeys: String, CodingKey {
            case method, deviceId = "device_id", ttftSeconds = "ttft_seconds"
            case decodeTokensPerSecond = "decode_tokens_per_second", stages
        }
        public init() {}
    }

    /// Accuracy against a full-precision reference run, or the reason it was not measured.
    public struct Accuracy: Codable, Sendable, Equatable {
        public var measured: Bool = false
        public var reason: String?
        public var textFile: String?
        public var scoredTokens: Int = 0
        public var pplReference: Estimate?
        public var pplPlan: Estimate?
        public var pplRatio: Estimate?
        public var klMean: Estimate?
        public var klP99: Double?
        public var top1Agreement: Estimate?
        /// PPL ratio − 1: the same quantity as the plan's `accuracy_loss`.
        public var accuracyLoss: Double?

        enum CodingKeys: String, CodingKey {
            case measured, reason, textFile = "text_file", scoredTokens = "scored_tokens"
            case pplReference = "ppl_reference", pplPlan = "ppl_plan", pplRatio = "ppl_ratio", klMean = "kl_mean"
            case klP99 = "kl_p99", top1Agreement = "top1_agreement", accuracyLoss = "accuracy_loss"
        }
        public init() {}
    }

    public struct TimelinePoint: Codable, Sendable, Equatable {
        public var seconds: Double
        public var bytes: Int
        public var phase: String?
        public init(seconds: Double, bytes: Int, phase: String?) {
            self.seconds = seconds; self.bytes = bytes; self.phase = phase
        }
    }

    /// The emulation's view from the cgroup.
    public struct Emulation: Codable, Sendable, Equatable {
        public var capped: Bool = true
        public var cgroupVersion: String = ""
        public var memoryCapBytes: Int = 0
        public var cpuQuotaCores: Double?
        public var cpus: String?
        public var oomKilled: Bool = false
        public var phaseAtExit: String?
        public var exitStatus: Int32?
        public var signal: Int32?
        public var peakBytes: Int = 0
        public var peakSource: String = ""
        public var anonBytesAtPeak: Int?
        public var fileBytesAtPeak: Int?
        public var timeline: [TimelinePoint] = []
        public var wallSeconds: Double = 0

        enum CodingKeys: String, CodingKey {
            case capped, cgroupVersion = "cgroup_version", memoryCapBytes = "memory_cap_bytes"
            case cpuQuotaCores = "cpu_quota_cores", cpus, oomKilled = "oom_killed", phaseAtExit = "phase_at_exit"
            case exitStatus = "exit_status", signal, peakBytes = "peak_bytes", peakSource = "peak_source"
            case anonBytesAtPeak = "anon_bytes_at_peak", fileBytesAtPeak = "file_bytes_at_peak", timeline
            case wallSeconds = "wall_seconds"
        }
        public init() {}
    }
}
