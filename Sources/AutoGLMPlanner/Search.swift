import Foundation
import AutoGLMSpecs

/// The limits a search point must meet.
public enum PlanConstraint: String, Sendable, CaseIterable, Codable {
    case memory, accuracy, ttft, decode
}

/// A complete search point: one option per item, one scenario, one attention choice, and its totals.
public struct Candidate: Sendable, Equatable {
    public var scenario: Int
    public var global: Int
    public var choice: [Int]
    public var weightBytes: Int
    public var peakBytes: Int
    public var loss: Double
    public var ttftSeconds: Double
    /// Seconds per decoded token.
    public var decodeSeconds: Double
    /// End-to-end latency for the workload: TTFT + output tokens · decode time (the tie-breaker).
    public var latencySeconds: Double
}

/// Exact multiple-choice knapsack over the items.
///
/// Dynamic programming over the items in order, with the state the memory used so far discretised to
/// `memoryQuantumBytes` (bucket = ⌈bytes / quantum⌉ of the exact running sum). Each bucket keeps every label
/// (exact bytes, accuracy loss, decode seconds, prefill seconds) that no other label dominates, so the time limits,
/// which are additive over items too, are enforced exactly rather than by a penalty; when no time limit is set the
/// two times collapse into the end-to-end latency and labels of lower buckets prune higher ones through a staircase. Labels that cannot meet a limit
/// even with the cheapest remaining options are pruned. After the last item each attention choice (KV precision,
/// window, kernels) and pixel budget adds its fixed memory, time and loss, and the best label wins: least accuracy
/// loss, ties broken by end-to-end latency, then memory. Only dominated partial plans are dropped, so the result is
/// the exact optimum (checked against brute-force enumeration in the tests).
public struct PlanSearch: Sendable {
    public var space: SearchSpace

    public init(space: SearchSpace) { self.space = space }

    struct Label {
        var loss: Double
        var decode: Double
        var ttft: Double
        /// ttft + output tokens · decode: the tie-breaker, and the only time axis when no time limit is set.
        var latency: Double
        var bytes: Int
        var parent: Int32
        var option: Int16
    }

    /// Labels on (loss, latency) that no other dominates: loss ascending, latency strictly descending.
    struct Staircase {
        var loss: [Double] = []
        var latency: [Double] = []

        /// Index of the last step with loss ≤ l, or -1.
        func lastAtMost(_ l: Double) -> Int {
            var lo = 0, hi = loss.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if loss[mid] <= l + 1e-15 { lo = mid + 1 } else { hi = mid }
            }
            return lo - 1
        }

        func dominated(_ l: Double, _ t: Double) -> Bool {
            let i = lastAtMost(l)
            return i >= 0 && latency[i] <= t
        }

        mutating func insert(_ l: Double, _ t: Double) {
            if dominated(l, t) { return }
            let i = lastAtMost(l) + 1
            var j = i
            while j < loss.count && latency[j] >= t { j += 1 }
            loss.replaceSubrange(i..<j, with: [l])
            latency.replaceSubrange(i..<j, with: [t])
        }

        mutating func removeAll() { loss.removeAll(keepingCapacity: true); latency.removeAll(keepingCapacity: true) }
    }

    public struct Outcome: Sendable {
        public var best: Candidate?
        /// Pareto-optimal candidates over (peak memory, accuracy loss, latency), by memory.
        public var frontier: [Candidate]
        /// The candidate with the least value of the metric asked for in `run(closest:)`.
        public var closest: Candidate?
    }

    /// Runs the search. `relaxed` constraints are ignored (memory is then bounded by four times the device's total
    /// memory); `frontier` collects the Pareto set over (peak memory, loss, latency) of every candidate meeting the
    /// other limits; `closest` also returns the candidate with the least value of that metric.
    public func run(relaxed: Set<PlanConstraint> = [], frontier wantFrontier: Bool = false,
                    closest: PlanConstraint? = nil) -> Outcome {
        let request = space.request
        let memoryLimit = relaxed.contains(.memory) ? request.device.memory.totalBytes.value * 4 : request.budgetBytes
        let lossLimit = relaxed.contains(.accuracy) ? Double.infinity : (request.maxAccuracyLoss ?? .infinity)
        let ttftLimit = relaxed.contains(.ttft) ? Double.infinity : (request.maxTTFTSeconds ?? .infinity)
        let decodeLimit = relaxed.contains(.decode) ? Double.infinity
            : (request.minDecodeTokensPerSecond.map { 1 / $0 } ?? .infinity)
        let outputs = Double(request.workload.outputTokens)
        let eps = 1e-12
        // A coarser memory axis when memory is relaxed: the frontier spans the whole range.
        let quantum = relaxed.contains(.memory) ? max(request.memoryQuantumBytes, 4 << 20) : request.memoryQuantumBytes

        var best: (Candidate, Int)? = nil
        var near: (Candidate, Int)? = nil
        var pool: [(Candidate, Int)] = []
        var allStages: [[[Label]]] = []
        func metric(_ c: Candidate, _ m: PlanConstraint) -> Double {
            switch m {
            case .memory: return Double(c.peakBytes)
            case .accuracy: return c.loss
            case .ttft: return c.ttftSeconds
            case .decode: return c.decodeSeconds
            }
        }
        for (s, scenario) in space.scenarios.enumerated() {
            let globals = space.globals[s]
            let minFixed = globals.map(\.fixedBytes).min() ?? 0
            let minTTFT = globals.map(\.ttftExtra).min() ?? 0
            let minDecode = globals.map(\.decodeExtra).min() ?? 0
            let minLoss = globals.map(\.lossExtra).min() ?? 0
            let stages = globals.isEmpty ? [] : dynamicProgram(
                scenario: s, quantum: quantum, bytesLimit: memoryLimit - minFixed,
                lossLimit: lossLimit - minLoss - scenario.lossExtra, ttftLimit: ttftLimit - minTTFT,
                decodeLimit: decodeLimit - minDecode)
            allStages.append(stages)
            guard stages.count == space.items.count + 1, let final = stages.last else { continue }
            for (g, global) in globals.enumerated() {
                for (index, label) in final.enumerated() {
                    let peak = label.bytes + global.fixedBytes
                    let loss = label.loss + global.lossExtra + scenario.lossExtra
                    let ttft = label.ttft + global.ttftExtra
                    let decode = label.decode + global.decodeExtra
                    if peak > memoryLimit || loss > lossLimit + eps || ttft > ttftLimit || decode > decodeLimit { continue }
                    let candidate = Candidate(scenario: s, global: g, choice: [], weightBytes: label.bytes,
                                              peakBytes: peak, loss: loss, ttftSeconds: ttft, decodeSeconds: decode,
                                              latencySeconds: ttft + outputs * decode)
                    if best == nil || Self.better(candidate, than: best!.0) { best = (candidate, index) }
                    if let m = closest {
                        if near == nil || metric(candidate, m) < metric(near!.0, m) - 1e-12
                            || (abs(metric(candidate, m) - metric(near!.0, m)) <= 1e-12 && Self.better(candidate, than: near!.0)) {
                            near = (candidate, index)
                        }
                    }
                    if wantFrontier { pool.append((candidate, index)) }
                }
            }
        }
        func complete(_ pair: (Candidate, Int)) -> Candidate {
            backtrack(pair.0, stages: allStages[pair.0.scenario], index: pair.1)
        }
        var frontier: [Candidate] = []
        if wantFrontier {
            let kept = Self.pareto(pool.map(\.0))
            var index: [String: Int] = [:]
            for (c, i) in pool { index["\(c.scenario)/\(c.global)/\(c.weightBytes)/\(c.loss)/\(c.latencySeconds)"] = i }
            for c in kept {
                if let i = index["\(c.scenario)/\(c.global)/\(c.weightBytes)/\(c.loss)/\(c.latencySeconds)"] {
                    frontier.append(complete((c, i)))
                }
            }
        }
        return Outcome(best: best.map(complete), frontier: frontier, closest: near.map(complete))
    }

    static func better(_ a: Candidate, than b: Candidate) -> Bool {
        if abs(a.loss - b.loss) > 1e-12 { return a.loss < b.loss }
        if abs(a.latencySeconds - b.latencySeconds) > 1e-12 { return a.latencySeconds < b.latencySeconds }
        return a.peakBytes < b.peakBytes
    }

    func backtrack(_ candidate: Candidate, stages: [[Label]], index: Int) -> Candidate {
        var choice = [Int](repeating: 0, count: space.items.count)
        var i = index
        for k in stride(from: stages.count - 1, through: 1, by: -1) {
            let label = stages[k][i]
            choice[k - 1] = Int(label.option)
            i = Int(label.parent)
        }
        var c = candidate
        c.choice = choice
        return c
    }

    /// stages[k] holds the labels after k items (stages[0] is the empty plan).
    func dynamicProgram(scenario s: Int, quantum: Int, bytesLimit: Int, lossLimit: Double, ttftLimit: Double,
                        decodeLimit: Double) -> [[Label]] {
        let items = space.items
        let prefill = space.scenarios[s].prefill
        let n = items.count
        // Cheapest remaining cost per resource after item k (suffix sums of per-item minima).
        var remBytes = [Int](repeating: 0, count: n + 1)
        var remLoss = [Double](repeating: 0, count: n + 1)
        var remTTFT = [Double](repeating: 0, count: n + 1)
        var remDecode = [Double](repeating: 0, count: n + 1)
        for k in stride(from: n - 1, through: 0, by: -1) {
            let o = items[k].options
            remBytes[k] = remBytes[k + 1] + (o.map(\.weightBytes).min() ?? 0)
            remLoss[k] = remLoss[k + 1] + (o.map(\.loss).min() ?? 0)
            remTTFT[k] = remTTFT[k + 1] + (prefill[k].min() ?? 0)
            remDecode[k] = remDecode[k + 1] + (o.map(\.decodeSeconds).min() ?? 0)
        }
        if bytesLimit < remBytes[0] || lossLimit < remLoss[0] - 1e-12 || ttftLimit < remTTFT[0] || decodeLimit < remDecode[0] {
            return []
        }
        let bucketCount = max(1, bytesLimit / quantum + 2)
        let outputs = Double(space.request.workload.outputTokens)
        let planar = ttftLimit.isInfinite && decodeLimit.isInfinite
        var stages: [[Label]] = [[Label(loss: 0, decode: 0, ttft: 0, latency: 0, bytes: 0, parent: -1, option: -1)]]
        stages.reserveCapacity(n + 1)
        var buckets = [[Label]](repeating: [], count: bucketCount)
        var touched: [Int] = []
        var staircase = Staircase()
        for k in 0..<n {
            let options = items[k].options
            let times = prefill[k]
            for b in touched { buckets[b].removeAll(keepingCapacity: true) }
            touched.removeAll(keepingCapacity: true)
            let previous = stages[k]
            for (p, label) in previous.enumerated() {
                for (o, option) in options.enumerated() {
                    let bytes = label.bytes + option.weightBytes
                    if bytes + remBytes[k + 1] > bytesLimit { continue }
                    let loss = label.loss + option.loss
                    if loss + remLoss[k + 1] > lossLimit + 1e-12 { continue }
                    let ttft = label.ttft + times[o]
                    if ttft + remTTFT[k + 1] > ttftLimit { continue }
                    let decode = label.decode + option.decodeSeconds
                    if decode + remDecode[k + 1] > decodeLimit { continue }
                    let bucket = (bytes + quantum - 1) / quantum
                    let new = Label(loss: loss, decode: decode, ttft: ttft, latency: ttft + outputs * decode, bytes: bytes,
                                    parent: Int32(p), option: Int16(o))
                    Self.insert(new, into: &buckets[bucket], touched: &touched, bucket: bucket, planar: planar)
                }
            }
            // Flatten in bucket order, dropping labels dominated by a label in a lower bucket.
            touched.sort()
            var flat: [Label] = []
            if planar {
                staircase.removeAll()
                for b in touched {
                    for label in buckets[b] where !staircase.dominated(label.loss, label.latency) { flat.append(label) }
                    for label in buckets[b] { staircase.insert(label.loss, label.latency) }
                }
            } else {
                // Three axes: each bucket keeps its own non-dominated labels (no cross-bucket pass, whose cost
                // grows with the square of the label count).
                for b in touched { flat.append(contentsOf: buckets[b]) }
            }
            stages.append(flat)
            if flat.isEmpty { return stages }
        }
        return stages
    }

    /// Dominance on (bytes, loss, latency) when no time limit is set, else on (bytes, loss, decode, ttft), which also
    /// orders latency since latency is a non-negative combination of the two. Exact bytes take part, so no plan is
    /// lost to the bucketing: buckets only group labels (a label in a lower bucket always has fewer bytes).
    @inline(__always)
    static func dominates(_ a: Label, _ b: Label, planar: Bool) -> Bool {
        if planar { return a.bytes <= b.bytes && a.loss <= b.loss + 1e-15 && a.latency <= b.latency }
        return a.bytes <= b.bytes && a.loss <= b.loss + 1e-15 && a.decode <= b.decode && a.ttft <= b.ttft
    }

    static func insert(_ label: Label, into bucket: inout [Label], touched: inout [Int], bucket index: Int, planar: Bool) {
        if bucket.isEmpty { touched.append(index); bucket.append(label); return }
        for existing in bucket where dominates(existing, label, planar: planar) { return }
        bucket.removeAll { dominates(label, $0, planar: planar) }
        bucket.append(label)
    }

    /// Pareto filter over (peak bytes, loss, latency), sorted by peak bytes. To keep the frontier readable it is an
    /// ε-Pareto set: a point is dropped when a point with no more memory is within `lossSlack` of its loss and within
    /// `latencySlack` (relative) of its latency.
    static let lossSlack = 2e-3
    static let latencySlack = 0.10

    static func pareto(_ pool: [Candidate]) -> [Candidate] {
        let sorted = pool.sorted { a, b in
            if a.peakBytes != b.peakBytes { return a.peakBytes < b.peakBytes }
            if abs(a.loss - b.loss) > 1e-15 { return a.loss < b.loss }
            return a.latencySeconds < b.latencySeconds
        }
        var out: [Candidate] = []
        var stairs = Staircase()
        for c in sorted where !stairs.dominated(c.loss + lossSlack, c.latencySeconds * (1 + latencySlack)) {
            out.append(c)
            stairs.insert(c.loss, c.latencySeconds)
        }
        return out
    }
}
