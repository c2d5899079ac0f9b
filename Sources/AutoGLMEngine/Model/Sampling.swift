import Foundation

/// How the next token is chosen from the logits.
public struct SamplingSettings: Sendable, Equatable {
    /// 0 picks the most likely token (greedy).
    public var temperature: Float
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `topP` (1 keeps all).
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingSettings()

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else {
            throw ModelError.invalidSetting(name: "temperature", expected: "a finite value ≥ 0", got: "\(temperature)")
        }
        guard topP > 0, topP <= 1 else {
            throw ModelError.invalidSetting(name: "top-p", expected: "a value in (0, 1]", got: "\(topP)")
        }
    }
}

/// Picks tokens from logits; holds its random state and a reusable candidate buffer.
public struct Sampler: Sendable {
    public let settings: SamplingSettings
    private var rng: SplitMix64
    private var candidates: [(token: Int32, p: Float)] = []

    public init(_ settings: SamplingSettings) {
        self.settings = settings
        rng = SplitMix64(seed: settings.seed)
    }

    /// Index of the largest logit (the first on ties).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        var value = -Float.infinity
        for i in 0..<logits.count where logits[i] > value { value = logits[i]; best = i }
        return Int32(best)
    }

    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if settings.temperature == 0 { return Self.argmax(logits) }
        // Softmax at the temperature, then nucleus truncation and a draw.
        var maxLogit = -Float.infinity
        for v in logits where v > maxLogit { maxLogit = v }
        candidates.removeAll(keepingCapacity: true)
        var total: Float = 0
        let invT = 1 / settings.temperature
        for (i, v) in logits.enumerated() {
            let p = Foundation.exp((v - maxLogit) * invT)
            total += p
            candidates.append((Int32(i), p))
        }
        candidates.sort { $0.p > $1.p }
        var kept = candidates.count
        if settings.topP < 1 {
            var cumulative: Float = 0
            for (i, c) in candidates.enumerated() {
                cumulative += c.p / total
                if cumulative >= settings.topP { kept = i + 1; break }
            }
        }
        let mass = candidates[0..<kept].reduce(Float(0)) { $0 + $1.p }
        let u = Float(Double(rng.next() >> 11) / Double(1 << 53)) * mass
        var running: Float = 0
        for c in candidates[0..<kept] {
            running += c.p
            if u < running { return c.token }
        }
        return candidates[kept - 1].token
    }
}
