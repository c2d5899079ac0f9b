import Foundation
import AutoGLMSpecs

extension WeightFormat {
    /// Parses a format name: every raw value, plus the aliases fp16, fp32, bfloat16, half, float, int4 (g128).
    public static func parse(_ text: String) -> WeightFormat? {
        let key = text.lowercased().trimmingCharacters(in: .whitespaces)
        if let f = WeightFormat(rawValue: key) { return f }
        switch key {
        case "fp16", "half", "float16": return .f16
        case "fp32", "float", "float32": return .f32
        case "bfloat16": return .bf16
        case "q4_k_m", "q4k": return .q4K
        case "q6k": return .q6K
        case "int4": return .int4g128
        case "llm.int8", "llm_int8": return .llmInt8
        case "gptq": return .gptqInt4g128
        default: return nil
        }
    }
}

/// A `--pin 'MODULE_GLOB=FORMAT'`: every planning item whose name matches the glob gets the format.
/// Items are modules ("vision", "head") and decoder layer groups ("decoder[0-4]"); a glob naming a module
/// ("decoder") covers all of its groups.
public struct FormatPin: Sendable, Equatable, CustomStringConvertible {
    public var glob: String
    public var format: WeightFormat

    public init(glob: String, format: WeightFormat) { self.glob = glob; self.format = format }

    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].trimmingCharacters(in: .whitespaces).isEmpty else {
            throw PlannerError.invalidPin(pin: text, expected: "MODULE_GLOB=FORMAT, e.g. '*=fp16' or 'vision=q8_0'")
        }
        guard let format = WeightFormat.parse(String(parts[1])) else {
            throw PlannerError.invalidPin(pin: text, expected: "a format, one of fp16, fp32, "
                + WeightFormat.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self.glob = parts[0].trimmingCharacters(in: .whitespaces)
        self.format = format
    }

    public var description: String { "\(glob)=\(format.rawValue)" }

    func matches(item: String, module: String) -> Bool { globMatches(glob, item) || globMatches(glob, module) }
}

/// Everything a search needs: model, device, workload, limits, pins and search granularity.
public struct PlanRequest: Sendable {
    public var model: ModelManifest
    public var device: DeviceProfile
    public var workload: Workload
    /// Relative perplexity increase allowed (0.03 = 3%); nil = no limit.
    public var maxAccuracyLoss: Double?
    public var maxTTFTSeconds: Double?
    public var minDecodeTokensPerSecond: Double?
    /// Memory cap; nil = the device's app budget.
    public var memoryBudgetBytes: Int?
    public var pins: [FormatPin]
    /// Decoder layers per format group; nil = split into at most 8 groups (40 layers → 8 groups of 5).
    public var layerGroupSize: Int?
    /// Tokens per decoder prefill chunk.
    public var prefillChunk: Int
    /// Positions whose logits the prefill computes (1: the last prompt position, as generation needs).
    public var logitsTokens: Int
    /// Per-module accuracy factors (default 1).
    public var moduleFactors: [String: Double]
    /// Granularity of the memory axis of the search.
    public var memoryQuantumBytes: Int
    /// Offer only the weight formats this project's engine executes (for plans that will be run under emulation).
    public var engineFormatsOnly: Bool = false
    /// The device's measured attention times (a host's `calibrate-attention` file): when its fits are for this
    /// model's decoder layer, attention is priced as the engine runs it on that host (`AttentionCostModel`).
    public var attentionCalibration: AttentionCalibrationFile?

    public init(model: ModelManifest, device: DeviceProfile, workload: Workload, maxAccuracyLoss: Double? = nil,
                maxTTFTSeconds: Double? = nil, minDecodeTokensPerSecond: Double? = nil, memoryBudgetBytes: Int? = nil,
                pins: [FormatPin] = [], layerGroupSize: Int? = nil, prefillChunk: Int = 512, logitsTokens: Int = 1,
                moduleFactors: [String: Double] = [:], memoryQuantumBytes: Int = 1 << 20) {
        self.model = model; self.device = device; self.workload = workload
        self.maxAccuracyLoss = maxAccuracyLoss; self.maxTTFTSeconds = maxTTFTSeconds
        self.minDecodeTokensPerSecond = minDecodeTokensPerSecond; self.memoryBudgetBytes = memoryBudgetBytes
        self.pins = pins; self.layerGroupSize = layerGroupSize; self.prefillChunk = prefillChunk
        self.logitsTokens = logitsTokens; self.moduleFactors = moduleFactors; self.memoryQuantumBytes = memoryQuantumBytes
    }

    public var budgetBytes: Int { memoryBudgetBytes ?? device.memory.appBudgetBytes.value }

    func validate() throws {
        if let l = maxAccuracyLoss, !(l >= 0 && l.isFinite) {
            throw PlannerError.invalidConstraint(name: "max accuracy loss", expected: "a non-negative fraction", found: "\(l)")
        }
        if let t = maxTTFTSeconds, !(t > 0 && t.isFinite) {
            throw PlannerError.invalidConstraint(name: "max TTFT", expected: "a positive number of seconds", found: "\(t)")
        }
        if let r = minDecodeTokensPerSecond, !(r > 0 && r.isFinite) {
            throw PlannerError.invalidConstraint(name: "min decode rate", expected: "a positive rate in tokens/s", found: "\(r)")
        }
        if let b = memoryBudgetBytes, b <= 0 {
            throw PlannerError.invalidConstraint(name: "memory budget", expected: "a positive byte count", found: "\(b)")
        }
        if let g = layerGroupSize, g <= 0 {
            throw PlannerError.invalidConstraint(name: "layer group size", expected: "a positive layer count", found: "\(g)")
        }
        if prefillChunk <= 0 || logitsTokens <= 0 || memoryQuantumBytes <= 0 {
            throw PlannerError.invalidConstraint(name: "search settings", expected: "positive chunk, logits tokens and quantum",
                                                 found: "\(prefillChunk), \(logitsTokens), \(memoryQuantumBytes)")
        }
    }
}
