import Foundation
import AutoGLMSpecs

/// Scalar reference implementations of every attention variant, written for clarity (Double accumulation, no
/// tiling, no SIMD). The kernels are tested against these.
public enum AttentionReference {
    /// Which keys a query position may attend.
    public struct Mask: Sendable, Equatable {
        public var causal: Bool
        public var window: Int?
        public var globalTokens: Int
        public var blockSparse: Plan.BlockSparse?
        public init(causal: Bool = true, window: Int? = nil, globalTokens: Int = 0, blockSparse: Plan.BlockSparse? = nil) {
            self.causal = causal; self.window = window; self.globalTokens = globalTokens; self.blockSparse = blockSparse
        }
    }

    /// Attention of `n` queries at positions `[t − n, t)` (causal) or unpositioned (non-causal) over `t` key/value
    /// rows. q: `(n, heads*d)`, keys/values: `(t, kvHeads*d)`; returns `(n, heads*d)`.
    public static func attention(q: [Float], n: Int, heads: Int, kvHeads: Int, headDim d: Int, keys: [Float],
                                 values: [Float], t: Int, scale: Float? = nil, mask: Mask = Mask()) -> [Float] {
        let scale = Double(scale ?? 1 / Float(d).squareRoot())
        let group = heads / kvHeads
        var out = [Float](repeating: 0, count: n * heads * d)
        for h in 0..<heads {
            let kvh = h / group
            for r in 0..<n {
                let i = t - n + r
                let qRow = Array(q[(r * heads + h) * d ..< (r * heads + h + 1) * d])
                var allowed = [Bool](repeating: true, count: t)
                if mask.causal {
                    let blocks = mask.blockSparse.map {
                        selectedBlocks(q: qRow, position: i, kvHead: kvh, kvHeads: kvHeads, headDim: d, keys: keys,
                                       chunk: $0.chunk, topK: $0.topK, scale: Float(scale))
                    }
                    for p in 0..<t {
                        var ok = p <= i
                        if let w = mask.window { ok = ok && (i - p < w || p < mask.globalTokens) }
                        if let blocks, let c = mask.blockSparse?.chunk { ok = ok && blocks.contains(p / c) }
                        allowed[p] = ok
                    }
                }
                var scores = [Double](repeating: -.infinity, count: t)
                for p in 0..<t where allowed[p] {
                    var s = 0.0
                    for j in 0..<d { s += Double(qRow[j]) * Double(keys[(p * kvHeads + kvh) * d + j]) }
                    scores[p] = s * scale
                }
                let top = scores.max() ?? 0
                var sum = 0.0
                var acc = [Double](repeating: 0, count: d)
                for p in 0..<t where allowed[p] {
                    let w = exp(scores[p] - top)
                    sum += w
                    for j in 0..<d { acc[j] += w * Double(values[(p * kvHeads + kvh) * d + j]) }
                }
                for j in 0..<d { out[(r * heads + h) * d + j] = sum > 0 ? Float(acc[j] / sum) : 0 }
            }
        }
        return out
    }

    /// The MoBA selection for one query: its own block, plus the `topK − 1` earlier blocks whose mean key has the
    /// highest score against the (scaled) query; ties go to the earlier block.
    public static func selectedBlocks(q: [Float], position i: Int, kvHead: Int, kvHeads: Int, headDim d: Int,
                                      keys: [Float], chunk: Int, topK: Int, scale: Float) -> Set<Int> {
        let own = i / chunk
        var scored: [(block: Int, score: Double)] = []
        for b in 0..<own {
            var mean = [Double](repeating: 0, count: d)
            for p in (b * chunk)..<((b + 1) * chunk) {
                for j in 0..<d { mean[j] += Double(keys[(p * kvHeads + kvHead) * d + j]) }
            }
            var s = 0.0
            for j in 0..<d { s += Double(q[j] * scale) * (mean[j] / Double(chunk)) }
            scored.append((b, s))
        }
        scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.block < $1.block }
        var result: Set<Int> = [own]
        for entry in scored.prefix(max(0, topK - 1)) { result.insert(entry.block) }
        return result
    }

    /// What the cache stores for one row: the row encoded in `format` and decoded again (`headDim` = row length).
    public static func roundTrip(_ row: [Float], format: KVCacheFormat) -> [Float] {
        let d = row.count
        let group = 32
        switch format {
        case .f32: return row
        case .f16: return row.map { Float(Float16($0)) }
        case .int8:
            var y = row
            for start in stride(from: 0, to: d, by: group) {
                let end = min(d, start + group)
                let maxAbs = row[start..<end].map { abs($0) }.max() ?? 0
                let scale = Float(Float16(maxAbs / 127))
                for j in start..<end {
                    let q = scale > 0 ? max(-127, min(127, (row[j] * (1 / scale)).rounded(.toNearestOrEven))) : 0
                    y[j] = scale * q
                }
            }
            return y
        case .int4:
            var y = row
            for start in stride(from: 0, to: d, by: group) {
                let end = min(d, start + group)
                let lo = row[start..<end].min() ?? 0, hi = row[start..<end].max() ?? 0
                let minimum = Float(Float16(lo))
                let scale = Float(Float16((hi - minimum) / 15))
                for j in start..<end {
                    let q = scale > 0 ? max(0, min(15, ((row[j] - minimum) * (1 / scale)).rounded(.toNearestOrEven))) : 0
                    y[j] = minimum + scale * q
                }
            }
            return y
        }
    }

    /// Largest absolute round-trip error the format allows for a row: half a quantisation step per group
    /// (plus the f16 rounding of the group's minimum for INT4, and f16 rounding of values for F16).
    public static func roundTripBound(_ row: [Float], format: KVCacheFormat) -> [Float] {
        let d = row.count
        switch format {
        case .f32: return [Float](repeating: 0, count: d)
        case .f16: return row.map { abs($0) * Float(Float16.ulpOfOne) / 2 + 1e-7 }
        case .int8, .int4:
            var bound = [Float](repeating: 0, count: d)
            for start in stride(from: 0, to: d, by: 32) {
                let end = min(d, start + 32)
                let lo = row[start..<end].min() ?? 0, hi = row[start..<end].max() ?? 0
                let bound0: Float
                if format == .int8 {
                    bound0 = Float(Float16(max(abs(lo), abs(hi)) / 127)) / 2 * 1.001
                } else {
                    // The group minimum is stored in f16, which can cost up to half an f16 ulp of it.
                    bound0 = Float(Float16((hi - Float(Float16(lo))) / 15)) / 2 * 1.001 + abs(lo) * 0x1p-11
                }
                for j in start..<end { bound[j] = bound0 + 1e-7 }
            }
            return bound
        }
    }
}

extension AttentionReference {
    /// Scalar reference of `CrossModalGatedAttention.apply`.
    public static func crossModalGated(_ block: CrossModalGatedAttention, text: [Float], tokens n: Int,
                                       image: [Float], imageTokens m: Int) -> [Float] {
        let (hidden, context, heads, d) = (block.hidden, block.context, block.heads, block.headDim)
        let inner = heads * d
        func project(_ x: [Float], rows: Int, _ w: [Float], out: Int, in k: Int) -> [Float] {
            var y = [Float](repeating: 0, count: rows * out)
            for r in 0..<rows {
                for o in 0..<out {
                    var s = 0.0
                    for i in 0..<k { s += Double(x[r * k + i]) * Double(w[o * k + i]) }
                    y[r * out + o] = Float(s)
                }
            }
            return y
        }
        let q = project(text, rows: n, block.wq, out: inner, in: hidden)
        let k = project(image, rows: m, block.wk, out: inner, in: context)
        let v = project(image, rows: m, block.wv, out: inner, in: context)
        let attended = attention(q: q, n: n, heads: heads, kvHeads: heads, headDim: d, keys: k, values: v, t: m,
                                 mask: Mask(causal: false))
        let cross = project(attended, rows: n, block.wo, out: hidden, in: inner)
        var mean = [Double](repeating: 0, count: context)
        for t in 0..<m { for c in 0..<context { mean[c] += Double(image[t * context + c]) } }
        var out = [Float](repeating: 0, count: n * hidden)
        for t in 0..<n {
            for c in 0..<hidden {
                var z = Double(block.gateBias[c])
                let row = c * (hidden + context)
                for i in 0..<hidden { z += Double(block.gateWeight[row + i]) * Double(text[t * hidden + i]) }
                for i in 0..<context { z += Double(block.gateWeight[row + hidden + i]) * mean[i] / Double(m) }
                let g = 1 / (1 + exp(-z))
                out[t * hidden + c] = Float((1 - g) * Double(text[t * hidden + c]) + g * Double(cross[t * hidden + c]))
            }
        }
        return out
    }
}
