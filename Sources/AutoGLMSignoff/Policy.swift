import AutoGLMSpecs
import Foundation

/// Which latency figures the latency gates compare: the host measurement or its projection onto the device.
public enum LatencyBasis: String, Codable, Sendable, CaseIterable {
    /// `measured` in the run report: what this host measured (under the emulator's caps for emulation runs).
    case measured
    /// `projected` in the run report: host figures mapped to the device by a model; labelled as such, never a measurement.
    case projected
}

/// The limits a build must meet to be signed off. Every limit is optional; an absent limit falls back to the plan's
/// own constraint where the plan has one (accuracy loss, TTFT, decode rate, memory budget), else the gate reports
/// "no limit" and does not fail.
///
/// File keys (JSON, snake_case): `schema_version`, `max_accuracy_loss`, `max_kl_mean`, `min_top1_agreement`,
/// `min_decode_tokens_per_second`, `max_ttft_seconds`, `max_peak_budget_fraction`, `max_memory_prediction_error`,
/// `max_latency_prediction_error`, `forbid_oom`, `require_measured`, `latency_basis`.
public struct SignoffPolicy: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int = SignoffPolicy.currentSchemaVersion
    /// Largest PPL ratio − 1 against the full-precision reference (the plan's `accuracy_loss`).
    public var maxAccuracyLoss: Double?
    /// Largest mean KL divergence (nats per token) against the reference.
    public var maxKLMean: Double?
    /// Smallest top-1 agreement with the reference, in [0, 1].
    public var minTop1Agreement: Double?
    /// Smallest decode rate, tokens per second.
    public var minDecodeTokensPerSecond: Double?
    /// Largest time to first token, seconds.
    public var maxTTFTSeconds: Double?
    /// Largest peak memory as a fraction of the app budget (1 = the whole budget).
    public var maxPeakBudgetFraction: Double = 1
    /// Largest |predicted − measured| / measured for peak memory.
    public var maxMemoryPredictionError: Double?
    /// Largest |predicted − measured| / measured for TTFT and for decode rate.
    public var maxLatencyPredictionError: Double?
    /// An out-of-memory kill under emulation fails the sign-off.
    public var forbidOOM: Bool = true
    /// A gate whose figure the run did not measure fails (otherwise it is reported as "not measured" and passes).
    public var requireMeasured: Bool = false
    /// Which latency figures the TTFT and decode gates use.
    public var latencyBasis: LatencyBasis = .measured

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version"
        case maxAccuracyLoss = "max_accuracy_loss", maxKLMean = "max_kl_mean", minTop1Agreement = "min_top1_agreement"
        case minDecodeTokensPerSecond = "min_decode_tokens_per_second", maxTTFTSeconds = "max_ttft_seconds"
        case maxPeakBudgetFraction = "max_peak_budget_fraction"
        case maxMemoryPredictionError = "max_memory_prediction_error"
        case maxLatencyPredictionError = "max_latency_prediction_error"
        case forbidOOM = "forbid_oom", requireMeasured = "require_measured", latencyBasis = "latency_basis"
    }

    /// The default policy: every limit from the plan, peak within the app budget, no OOM.
    public init() {}

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(
            Int.self, forKey: .schemaVersion, default: Self.currentSchemaVersion,
            expected: "policy schema version \(Self.currentSchemaVersion)"
        ) { $0 == Self.currentSchemaVersion }
        maxAccuracyLoss = try Self.optional(c, .maxAccuracyLoss, "a finite number ≥ 0") { $0.isFinite && $0 >= 0 }
        maxKLMean = try Self.optional(c, .maxKLMean, "a finite number ≥ 0 (nats)") { $0.isFinite && $0 >= 0 }
        minTop1Agreement = try Self.optional(c, .minTop1Agreement, "a fraction in [0, 1]") { $0 >= 0 && $0 <= 1 }
        minDecodeTokensPerSecond = try Self.optional(c, .minDecodeTokensPerSecond, "a finite number > 0") {
            $0.isFinite && $0 > 0
        }
        maxTTFTSeconds = try Self.optional(c, .maxTTFTSeconds, "a finite number > 0 (seconds)") { $0.isFinite && $0 > 0 }
        maxPeakBudgetFraction = try c.decode(
            Double.self, forKey: .maxPeakBudgetFraction, default: 1, expected: "a fraction in (0, 1]"
        ) { $0 > 0 && $0 <= 1 }
        maxMemoryPredictionError = try Self.optional(c, .maxMemoryPredictionError, "a finite number ≥ 0") {
            $0.isFinite && $0 >= 0
        }
        maxLatencyPredictionError = try Self.optional(c, .maxLatencyPredictionError, "a finite number ≥ 0") {
            $0.isFinite && $0 >= 0
        }
        forbidOOM = try c.decode(Bool.self, forKey: .forbidOOM, default: true)
        requireMeasured = try c.decode(Bool.self, forKey: .requireMeasured, default: false)
        latencyBasis = try c.decode(LatencyBasis.self, forKey: .latencyBasis, default: .measured)
    }

    private static func optional(
        _ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys, _ expected: String, _ check: (Double) -> Bool
    ) throws -> Double? {
        guard let value = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
        guard check(value) else { throw FieldValidationError(c.codingPath, key, expected: expected, found: "\(value)") }
        return value
    }

    /// Loads a policy file; errors name the file and the field.
    public static func load(_ path: String) throws -> SignoffPolicy {
        try SignoffError.wrapping { try SpecLoader.load(SignoffPolicy.self, from: path) }
    }
}
