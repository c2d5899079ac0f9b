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
/// (accuracy loss, decode seconds, prefill seconds) that no other label in the bucket dominates, so the time limits,
/// which are additive over items too, are enforced exactly rather than by a penalty. Labels that cannot meet a limit
/// even with the cheapest remaining options are pruned. After the last item each attention choice (KV precision,
/// window, kernels) and pixel budget adds its fixed memory, time and loss, and the best label wins: least accuracy
/// loss, ties broken by end-to-end latency, then memory. The search is exhaustive up to the memory quantum: it can only
/// miss a solution whose exact total lies within one quantum per item of the budget.
public struct PlanSearch: Sendable {
    public var space: SearchSpace

    public init(space: SearchSpace) { self.space = space }

    struct Label {
        var loss: Double
        var decode: Double
        var ttft: Double
        var bytes: Int
        var parent: Int32
        var option: Int16
    }

    public struct Outcome: Sendable {
        public var best: Candidate?
        /// Pareto-optimal candidates over (peak memory, accuracy loss, latency), by memory.
        public var frontier: [Candidate]
    }

    /// Runs the search. `relaxed` constraints are ignored; `frontier` collects the Pareto set of all candidates that
    /// meet the other limits (memory only bounded by the device's total memory when relaxed).
    public func run(relaxed: Set<PlanConstraint> = [], frontier wantFrontier: Bool = false) -> Outcome {
        let request = space.request
        let memoryLimit = relaxed.contains(.memory) ? request.device.memory.totalBytes.value * 4 : request.budgetBytes
        let lossLimit = relaxed.contains(.accuracy) ? Double.infinity : (request.maxAccuracyLoss ?? .infinity)
        let ttftLimit = relaxed.contains(.ttft) ? Double.infinity : (request.maxTTFTSeconds ?? .infinity)
        let decodeLimit = relaxed.contains(.decode) ? Double.infinity
            : (request.minDecodeTokensPerSecond.map { 1 / $0 } ?? .infinity)
        let outputs = Double(request.workload.outputTokens)
        let eps = 1e-12

        var best: Candidate? = nil
        var pool: [Candidate] = []
        for (s, scenario) in space.scenarios.enumerated() {
            let globals = space.globals[s]
            guard !globals.isEmpty else { continue }
            let minFixed = globals.map(\.fixedBytes).min() ?? 0
            let minTTFT = globals.map(\.ttftExtra).min() ?? 0
            let minDecode = globals.map(\.decodeExtra).min() ?? 0
            let minLoss = globals.map(\.lossExtra).min() ?? 0
            let stages = dynamicProgram(scenario: s,
                                        bytesLimit: memoryLimit - minFixed,
                                        lossLimit: lossLimit - minLoss - scenario.lossExtra,
                                        ttftLimit: ttftLimit - minTTFT, decodeLimit: decodeLimit - minDecode)
            guard let final = stages.last else { continue }
            for (g, global) in globals.enumerated() {
                for (index, label) in final.enumerated() {
                    let peak = label.bytes + global.fixedBytes
                    let loss = label.loss + global.lossExtra + scenario.lossExtra
                    let ttft = label.ttft + global.ttftExtra
                    let decode = label.decode + global.decodeExtra
                    if peak > memoryLimit || loss > lossLimit + eps || ttft > ttftLimit || decode > decodeLimit { continue }
                    let latency = ttft + outputs * decode
                    let candidate = Candidate(scenario: s, global: g, choice: [Int(index)], weightBytes: label.bytes,
                                              peakBytes: peak, loss: loss, ttftSeconds: ttft, decodeSeconds: decode,
                                              latencySeconds: latency)
                    if best == nil || Self.better(candidate, than: best!) {
                        best = backtrack(candidate, stages: stages, index: index)
                    }
                    if wantFrontier { pool.append(backtrack(candidate, stages: stages, index: index)) }
                }
            }
        }
        return Outcome(best: best, frontier: wantFrontier ? Self.pareto(pool) : [])
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
    func dynamicProgram(scenario s: Int, bytesLimit: Int, lossLimit: Double, ttftLimit: Double,
                        decodeLimit: Double) -> [[Label]] {
        let items = space.items
        let prefill = space.scenarios[s].prefill
        let quantum = space.request.memoryQuantumBytes
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
        var stages: [[Label]] = [[Label(loss: 0, decode: 0, ttft: 0, bytes: 0, parent: -1, option: -1)]]
        stages.reserveCapacity(n + 1)
        var buckets = [[Label]](repeating: [], count: bucketCount)
        var touched: [Int] = []
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
                    let new = Label(loss: loss, decode: decode, ttft: ttft, bytes: bytes, parent: Int32(p), option: Int16(o))
                    Self.insert(new, into: &buckets[bucket], touched: &touched, bucket: bucket)
                }
            }
            // Flatten in bucket order, dropping labels dominated by a label in a lower bucket.
            touched.sort()
            var flat: [Label] = []
            var frontier: [Label] = []
            for b in touched {
                for label in buckets[b] where !frontier.contains(where: { Self.dominates($0, label) }) {
                    flat.append(label)
                }
                for label in buckets[b] where !frontier.contains(where: { Self.dominates($0, label) }) {
                    frontier.removeAll { Self.dominates(label, $0) }
                    frontier.append(label)
                }
            }
            stages.append(flat)
            if flat.isEmpty { return stages }
        }
        return stages
    }

    @inline(__always)
    static func dominates(_ a: Label, _ b: Label) -> Bool {
        a.loss <= b.loss + 1e-15 && a.decode <= b.decode && a.ttft <= b.ttft
    }

    static func insert(_ label: Label, into bucket: inout [Label], touched: inout [Int], bucket index: Int) {
        if bucket.isEmpty { touched.append(index); bucket.append(label); return }
        for existing in bucket where dominates(existing, label) { return }
        bucket.removeAll { dominates(label, $0) }
        bucket.append(label)
    }

    /// Pareto filter over (peak bytes, loss, latency); sorted by peak bytes.
    static func pareto(_ pool: [Candidate]) -> [Candidate] {
        let sorted = pool.sorted { a, b in
            if a.peakBytes != b.peakBytes { return a.peakBytes < b.peakBytes }
            if abs(a.loss - b.loss) > 1e-15 { return a.loss < b.loss }
            return a.latencySeconds < b.latencySeconds
        }
        var out: [Candidate] = []
        for c in sorted where !out.contains(where: { $0.loss <= c.loss + 1e-15 && $0.latencySeconds <= c.latencySeconds }) {
            out.append(c)
        }
        return out
    }
}
