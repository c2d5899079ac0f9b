import Foundation

/// KV cache element formats.
public enum KVCacheFormat: String, Codable, CaseIterable, Sendable {
    case f32, f16, int8, int4
    /// Bytes per cached element including group scales (INT8: f16 scale per 32; INT4: f16 scale + min per 32).
    public var bytesPerElement: Double {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .int8: return 1 + 2.0 / 32
        case .int4: return 0.5 + 4.0 / 32
        }
    }
}

/// How attention is computed.
public enum AttentionKernel: String, Codable, CaseIterable, Sendable {
    /// The full tokens × tokens score matrix is formed.
    case materialised
    /// Tiles with an online softmax: scratch O(tokens · tile), no score matrix.
    case tiled
}

/// A versioned plan: what format each module uses, the attention settings, every prediction and every reason.
public struct Plan: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int = Plan.currentSchemaVersion
    public var generator: String = ""
    public var model: ModelRef = .init()
    public var device: DeviceRef = .init()
    public var workload: Workload = Workload(id: "", description: "", image: nil, promptTokens: 1, outputTokens: 0)
    public var constraints: Constraints = .init()
    public var feasible: Bool = false
    public var modules: [Module] = []
    public var attention: Attention = .init()
    public var predicted: Prediction = .init()
    public var bindingConstraint: String?
    public var shortfall: String?
    /// One sentence per decision, in the order they were made.
    public var explanation: [String] = []

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version", generator, model, device, workload, constraints, feasible, modules
        case attention, predicted, bindingConstraint = "binding_constraint", shortfall, explanation
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion,
                                     expected: "plan schema version \(Self.currentSchemaVersion)") {
            $0 == Self.currentSchemaVersion
        }
        generator = try c.decodeIfPresent(String.self, forKey: .generator) ?? ""
        model = try c.decode(ModelRef.self, forKey: .model)
        device = try c.decode(DeviceRef.self, forKey: .device)
        workload = try c.decode(Workload.self, forKey: .workload)
        constraints = try c.decodeIfPresent(Constraints.self, forKey: .constraints) ?? .init()
        feasible = try c.decode(Bool.self, forKey: .feasible)
        modules = try c.decode([Module].self, forKey: .modules)
        attention = try c.decode(Attention.self, forKey: .attention)
        predicted = try c.decode(Prediction.self, forKey: .predicted)
        bindingConstraint = try c.decodeIfPresent(String.self, forKey: .bindingConstraint)
        shortfall = try c.decodeIfPresent(String.self, forKey: .shortfall)
        explanation = try c.decodeIfPresent([String].self, forKey: .explanation) ?? []
        for (i, m) in modules.enumerated() {
            if m.weightBytes < 0 {
                throw FieldValidationError(field: "modules[\(i)].weight_bytes", expected: "a non-negative byte count",
                                           found: "\(m.weightBytes)")
            }
            if let r = m.layers, r.count != 2 || r[0] > r[1] || r[0] < 0 {
                throw FieldValidationError(field: "modules[\(i)].layers", expected: "[first, last] with first ≤ last",
                                           found: "\(r)")
            }
        }
    }

    public struct ModelRef: Codable, Sendable, Equatable {
        public var id: String = ""
        public var parameters: Int = 0
        public init() {}
        public init(id: String, parameters: Int) { self.id = id; self.parameters = parameters }
    }

    public struct DeviceRef: Codable, Sendable, Equatable {
        public var id: String = ""
        public var appBudgetBytes: Int = 0
        enum CodingKeys: String, CodingKey { case id, appBudgetBytes = "app_budget_bytes" }
        public init() {}
        public init(id: String, appBudgetBytes: Int) { self.id = id; self.appBudgetBytes = appBudgetBytes }
    }

    /// The limits the plan was searched under.
    public struct Constraints: Codable, Sendable, Equatable {
        public var maxAccuracyLoss: Double?
        public var maxTTFTSeconds: Double?
        public var minDecodeTokensPerSecond: Double?
        public var memoryBudgetBytes: Int?
        public var pins: [String] = []
        /// Set when the search offered only formats the project's engine executes.
        public var engineFormatsOnly: Bool?
        enum CodingKeys: String, CodingKey {
            case maxAccuracyLoss = "max_accuracy_loss", maxTTFTSeconds = "max_ttft_seconds"
            case minDecodeTokensPerSecond = "min_decode_tokens_per_second"
            case memoryBudgetBytes = "memory_budget_bytes", pins, engineFormatsOnly = "engine_formats_only"
        }
        public init() {}
    }

    /// One module, or one group of decoder layers, and its chosen format.
    public struct Module: Codable, Sendable, Equatable {
        public var name: String = ""
        public var kind: ModuleKind = .textDecoder
        /// For per-layer-group entries: [first, last] layer indices, inclusive.
        public var layers: [Int]?
        public var parameters: Int = 0
        public var format: WeightFormat = .f16
        public var weightBytes: Int = 0
        /// Compute unit that runs it (a profile's compute unit id).
        public var unit: String = ""
        /// The arithmetic the latency model priced its matrix work at on `unit` (int8 or int4 for quantised formats
        /// on a unit with integer figures: weights and activations multiplied as integers); nil in plans written
        /// before it was recorded and for entries without weights.
        public var computePrecision: ComputePrecision?
        public var predictedLatencySeconds: Double?
        public var accuracyCost: Double = 0
        public var reason: String = ""

        enum CodingKeys: String, CodingKey {
            case name, kind, layers, parameters, format, weightBytes = "weight_bytes", unit
            case computePrecision = "compute_precision"
            case predictedLatencySeconds = "predicted_latency_seconds", accuracyCost = "accuracy_cost", reason
        }
        public init() {}

        /// The manifest module this entry belongs to (the part of `name` before any layer suffix).
        public var moduleName: String {
            if let i = name.firstIndex(of: "[") { return String(name[..<i]) }
            return name
        }

        public func covers(layer: Int?) -> Bool {
            guard let layers else { return true }
            guard let layer else { return false }
            return layer >= layers[0] && layer <= layers[1]
        }
    }

    public struct BlockSparse: Codable, Sendable, Equatable {
        public var chunk: Int
        public var topK: Int
        enum CodingKeys: String, CodingKey { case chunk, topK = "top_k" }
        public init(chunk: Int, topK: Int) { self.chunk = chunk; self.topK = topK }
    }

    /// Attention settings.
    public struct Attention: Codable, Sendable, Equatable {
        public var kvCacheFormat: KVCacheFormat = .f16
        /// Kernel for the decoder's prefill.
        public var kernel: AttentionKernel = .tiled
        /// Kernel for the vision encoder.
        public var visionKernel: AttentionKernel = .tiled
        /// Sliding window in tokens (nil = full attention).
        public var window: Int?
        /// Tokens at the start that every query attends to (and that stay in the cache) under a window.
        public var globalTokens: Int = 0
        /// Decoder tokens per image after the pixel budget.
        public var imageTokens: Int = 0
        /// Pixel budget for the image (the image-token knob); nil = the model's default.
        public var maxPixels: Int?
        public var blockSparse: BlockSparse?
        /// The attention time calibration the decoder's attention was priced with (a host's calibrate-attention
        /// file, as named to the planner); nil: the device profile's roofline.
        public var timeCalibration: String?
        public var reason: String = ""

        enum CodingKeys: String, CodingKey {
            case kvCacheFormat = "kv_cache_format", kernel, visionKernel = "vision_kernel", window
            case globalTokens = "global_tokens", imageTokens = "image_tokens", maxPixels = "max_pixels"
            case blockSparse = "block_sparse", timeCalibration = "time_calibration", reason
        }
        public init() {}
    }

    /// One stage's predicted time and activation memory.
    public struct StagePrediction: Codable, Sendable, Equatable {
        public var stage: String
        public var seconds: Double
        public var activationBytes: Int
        public var unit: String
        public var bound: String
        enum CodingKeys: String, CodingKey {
            case stage, seconds, activationBytes = "activation_bytes", unit, bound
        }
        public init(stage: String, seconds: Double, activationBytes: Int, unit: String, bound: String) {
            self.stage = stage; self.seconds = seconds; self.activationBytes = activationBytes
            self.unit = unit; self.bound = bound
        }
    }

    /// Every predicted figure. Field names are shared with a run report's `measured` block.
    public struct Prediction: Codable, Sendable, Equatable {
        public var peakMemoryBytes: Int = 0
        public var weightBytes: Int = 0
        public var kvCacheBytes: Int = 0
        public var activationPeakBytes: Int = 0
        public var runtimeOverheadBytes: Int = 0
        /// The tokenizer's resident bytes (parsed vocabulary and tables); absent in plans written before it was
        /// priced (0).
        public var tokenizerBytes: Int = 0
        public var ttftSeconds: Double = 0
        public var decodeTokensPerSecond: Double = 0
        public var accuracyLoss: Double = 0
        public var stages: [StagePrediction] = []

        enum CodingKeys: String, CodingKey {
            case peakMemoryBytes = "peak_memory_bytes", weightBytes = "weight_bytes", kvCacheBytes = "kv_cache_bytes"
            case activationPeakBytes = "activation_peak_bytes", runtimeOverheadBytes = "runtime_overhead_bytes"
            case tokenizerBytes = "tokenizer_bytes"
            case ttftSeconds = "ttft_seconds", decodeTokensPerSecond = "decode_tokens_per_second"
            case accuracyLoss = "accuracy_loss", stages
        }
        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            peakMemoryBytes = try c.decode(Int.self, forKey: .peakMemoryBytes)
            weightBytes = try c.decode(Int.self, forKey: .weightBytes)
            kvCacheBytes = try c.decode(Int.self, forKey: .kvCacheBytes)
            activationPeakBytes = try c.decode(Int.self, forKey: .activationPeakBytes)
            runtimeOverheadBytes = try c.decode(Int.self, forKey: .runtimeOverheadBytes)
            tokenizerBytes = try c.decodeIfPresent(Int.self, forKey: .tokenizerBytes) ?? 0
            ttftSeconds = try c.decode(Double.self, forKey: .ttftSeconds)
            decodeTokensPerSecond = try c.decode(Double.self, forKey: .decodeTokensPerSecond)
            accuracyLoss = try c.decode(Double.self, forKey: .accuracyLoss)
            stages = try c.decode([StagePrediction].self, forKey: .stages)
        }
    }

    public static func load(_ path: String) throws -> Plan { try SpecLoader.load(Plan.self, from: path) }

    /// The format the plan assigns to a tensor: the entry for its module covering its layer.
    /// Vectors (norms, biases) are always F32 and get nil.
    public func format(for tensor: ModuleTensor) -> WeightFormat? {
        guard tensor.isQuantizable else { return nil }
        return modules.first { $0.moduleName == tensor.module && $0.covers(layer: tensor.layer) }?.format
            ?? modules.first { $0.moduleName == tensor.module }?.format
    }
}
