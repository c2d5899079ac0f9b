import Foundation

/// The steps of a decoder forward pass whose wall time a `PhaseClock` accounts separately.
public enum ForwardPhase: String, CaseIterable, Codable, Sendable {
    /// Token embedding lookup.
    case embedding
    /// The pre-attention, pre-MLP and final RMSNorms.
    case norms
    /// Q, K and V projections with their biases (decode: this layer's K/V prefetch too).
    case qkv
    /// Rotary positions of q and k and the K/V cache append.
    case ropeAndCache = "rope_cache"
    /// softmax(q Kᵀ / √d) V over the cache.
    case attention
    /// The attention output projection.
    case output
    /// Post-norms (GLM-4) and the residual adds.
    case residual
    /// Gate and up projections.
    case gateUp = "gate_up"
    /// SiLU(gate) · up.
    case activation
    /// The down projection.
    case down
    /// The output head (logits).
    case head

    /// Position in `allCases` (the clock's slot).
    @inline(__always) var slot: Int {
        switch self {
        case .embedding: 0
        case .norms: 1
        case .qkv: 2
        case .ropeAndCache: 3
        case .attention: 4
        case .output: 5
        case .residual: 6
        case .gateUp: 7
        case .activation: 8
        case .down: 9
        case .head: 10
        }
    }
}

/// Accumulates where a forward pass spends its wall time: `start()` at the beginning of a pass, then after each step
/// `lap(phase)` charges the time since the previous mark to that step. Costs one monotonic clock read per step
/// (about 20 ns; some 400 per SmolLM2 decode token), only while a session holds a clock.
public final class PhaseClock: @unchecked Sendable {
    private var seconds = [Double](repeating: 0, count: ForwardPhase.allCases.count)
    private var mark = 0.0

    public init() {}

    /// Starts timing a pass: the next lap counts from now.
    @inline(__always) public func start() { mark = Clock.now() }

    /// Charges the time since the previous mark to `phase`.
    @inline(__always) public func lap(_ phase: ForwardPhase) {
        let now = Clock.now()
        seconds[phase.slot] += now - mark
        mark = now
    }

    /// Seconds charged to each phase since creation or the last `reset()`.
    public var totals: [ForwardPhase: Double] {
        Dictionary(uniqueKeysWithValues: ForwardPhase.allCases.enumerated().map { ($1, seconds[$0]) })
    }

    /// Seconds charged to all phases.
    public var total: Double { seconds.reduce(0, +) }

    public func reset() { seconds = [Double](repeating: 0, count: seconds.count) }
}
