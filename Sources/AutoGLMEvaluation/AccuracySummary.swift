import AutoGLMSpecs
import Foundation

/// Summary statistics of a planned run against its reference, each with one standard error.
///
/// - PPL = exp(mean NLL); its error follows from the standard error of the mean NLL (delta method).
/// - The PPL ratio is exp(mean(NLL_plan − NLL_ref)) over the same tokens; its error comes from the standard error
///   of the paired log-PPL difference, which is much smaller than either PPL's own error.
/// - Mean KL with the standard error of the mean; the 99th percentile of the per-token KL.
/// - Top-1 agreement as a binomial proportion with error sqrt(p(1 − p)/n).
public struct AccuracySummary: Sendable, Equatable {
    public static let minimumScoredTokens = 100

    public var scoredTokens: Int
    public var pplReference: Estimate
    public var pplPlan: Estimate
    public var pplRatio: Estimate
    public var logPPLDifference: Estimate
    public var klMean: Estimate
    public var klP99: Double
    public var klMax: Double
    public var top1Agreement: Estimate

    /// PPL ratio − 1, the same quantity as a plan's predicted `accuracy_loss`.
    public var accuracyLoss: Double { pplRatio.value - 1 }

    /// Summarises per-token comparisons; throws `EvaluationError.tooFewScoredTokens` under 100 tokens.
    public init(_ tokens: [TokenComparison]) throws {
        let n = tokens.count
        guard n >= Self.minimumScoredTokens else {
            throw EvaluationError.tooFewScoredTokens(scored: n, minimum: Self.minimumScoredTokens)
        }
        scoredTokens = n
        let ref = MeanAndError(tokens.map(\.referenceNLL))
        let plan = MeanAndError(tokens.map(\.planNLL))
        let diff = MeanAndError(tokens.map { $0.planNLL - $0.referenceNLL })
        let kl = MeanAndError(tokens.map(\.klDivergence))
        let refValue = Foundation.exp(ref.mean), planValue = Foundation.exp(plan.mean)
        pplReference = Estimate(refValue, refValue * ref.standardError)
        pplPlan = Estimate(planValue, planValue * plan.standardError)
        let ratio = Foundation.exp(diff.mean)
        pplRatio = Estimate(ratio, ratio * diff.standardError)
        logPPLDifference = Estimate(diff.mean, diff.standardError)
        klMean = Estimate(kl.mean, kl.standardError)
        let sortedKL = tokens.map(\.klDivergence).sorted()
        klP99 = Self.percentile(sortedKL, 0.99)
        klMax = sortedKL.last ?? 0
        let p = Double(tokens.filter(\.sameTop1).count) / Double(n)
        top1Agreement = Estimate(p, (p * (1 - p) / Double(n)).squareRoot())
    }

    /// Linear interpolation between closest ranks of an ascending array.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let position = q * Double(sorted.count - 1)
        let lo = Int(position.rounded(.down)), hi = Swift.min(lo + 1, sorted.count - 1)
        let t = position - Double(lo)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * t
    }

    /// The report block for a run report.
    public func reportBlock(textFile: String?) -> RunReport.Accuracy {
        var a = RunReport.Accuracy()
        a.measured = true
        a.textFile = textFile
        a.scoredTokens = scoredTokens
        a.pplReference = pplReference
        a.pplPlan = pplPlan
        a.pplRatio = pplRatio
        a.klMean = klMean
        a.klP99 = klP99
        a.top1Agreement = top1Agreement
        a.accuracyLoss = accuracyLoss
        return a
    }
}

/// Sample mean and its standard error (sample standard deviation / √n).
struct MeanAndError {
    var mean: Double
    var standardError: Double
    init(_ values: [Double]) {
        let n = Double(values.count)
        mean = values.reduce(0, +) / n
        let m = mean
        let variance = values.count > 1 ? values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1) : 0
        standardError = (variance / n).squareRoot()
    }
}
