import Foundation

/// What one scored position contributes: the negative log-likelihood of the true next token under the reference
/// and under the planned run, the KL divergence KL(reference ‖ plan) of the two next-token distributions, and
/// whether both runs rank the same token first.
public struct TokenComparison: Sendable, Equatable {
    public var referenceNLL: Double
    public var planNLL: Double
    public var klDivergence: Double
    public var sameTop1: Bool

    public init(referenceNLL: Double, planNLL: Double, klDivergence: Double, sameTop1: Bool) {
        self.referenceNLL = referenceNLL; self.planNLL = planNLL
        self.klDivergence = klDivergence; self.sameTop1 = sameTop1
    }

    /// Compares two logit vectors of `vocab` entries (kept in Float) for the true next token `target`.
    /// Log-softmax, NLL and KL are computed in Double. Returns nil when a logit is not finite.
    public static func compare(reference: UnsafePointer<Float>, plan: UnsafePointer<Float>, vocab: Int,
                               target: Int) -> TokenComparison? {
        guard vocab > 0, target >= 0, target < vocab else { return nil }
        var refMax = -Double.infinity, planMax = -Double.infinity
        var refArg = 0, planArg = 0
        for i in 0..<vocab {
            let r = Double(reference[i]), p = Double(plan[i])
            guard r.isFinite, p.isFinite else { return nil }
            if r > refMax { refMax = r; refArg = i }
            if p > planMax { planMax = p; planArg = i }
        }
        var refSum = 0.0, planSum = 0.0
        for i in 0..<vocab {
            refSum += Foundation.exp(Double(reference[i]) - refMax)
            planSum += Foundation.exp(Double(plan[i]) - planMax)
        }
        let refLogZ = refMax + Foundation.log(refSum)
        let planLogZ = planMax + Foundation.log(planSum)
        // KL(P‖Q) = Σ p_i (log p_i − log q_i)
        var kl = 0.0
        for i in 0..<vocab {
            let logP = Double(reference[i]) - refLogZ
            let logQ = Double(plan[i]) - planLogZ
            kl += Foundation.exp(logP) * (logP - logQ)
        }
        return TokenComparison(referenceNLL: refLogZ - Double(reference[target]),
                               planNLL: planLogZ - Double(plan[target]),
                               klDivergence: Swift.max(0, kl), sameTop1: refArg == planArg)
    }
}
