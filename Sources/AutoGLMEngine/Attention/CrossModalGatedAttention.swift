import Dispatch
import Foundation
import AutoGLMSpecs

/// Gated cross-modal attention: text states attend to image tokens, and a learned per-channel gate mixes the result
/// into the text stream.
///
/// For text states h `(n, hidden)` and image tokens I `(m, context)`:
/// - CrossAttn(h, I) = o_proj(softmax(q kᵀ / √d) v) with q = Wq h, k = Wk I, v = Wv I (per head, non-causal);
/// - g = σ(Wg [h; mean(I)] + bg), one gate per hidden channel and text token;
/// - output = (1 − g) · h + g · CrossAttn(h, I).
/// Weights are F32, row-major `(out, in)`.
public struct CrossModalGatedAttention: Sendable {
    public let hidden: Int
    public let context: Int
    public let heads: Int
    public let headDim: Int
    /// `(heads*headDim, hidden)`
    public let wq: [Float]
    /// `(heads*headDim, context)`
    public let wk: [Float]
    /// `(heads*headDim, context)`
    public let wv: [Float]
    /// `(hidden, heads*headDim)`
    public let wo: [Float]
    /// `(hidden, hidden + context)`
    public let gateWeight: [Float]
    /// `(hidden)`
    public let gateBias: [Float]

    public init(hidden: Int, context: Int, heads: Int, headDim: Int, wq: [Float], wk: [Float], wv: [Float],
                wo: [Float], gateWeight: [Float], gateBias: [Float]) throws {
        for (name, value) in [("hidden", hidden), ("context", context), ("heads", heads), ("headDim", headDim)]
        where value <= 0 {
            throw AttentionError.invalidParameter(name: name, expected: "> 0", got: value)
        }
        let inner = heads * headDim
        let shapes: [(String, Int, Int)] = [
            ("wq", inner * hidden, wq.count), ("wk", inner * context, wk.count), ("wv", inner * context, wv.count),
            ("wo", hidden * inner, wo.count), ("gateWeight", hidden * (hidden + context), gateWeight.count),
            ("gateBias", hidden, gateBias.count),
        ]
        for (name, expected, got) in shapes where expected != got {
            throw AttentionError.weightShape(name: name, expected: expected, got: got)
        }
        self.hidden = hidden; self.context = context; self.heads = heads; self.headDim = headDim
        self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo; self.gateWeight = gateWeight; self.gateBias = gateBias
    }

    /// Applies the block to `n` text states (`(n, hidden)`) given `m` image tokens (`(m, context)`); returns `(n, hidden)`.
    public func apply(text: [Float], tokens n: Int, image: [Float], imageTokens m: Int,
                      kernel: AttentionKernel = .tiled, threads: Int = Attention.defaultThreads) throws -> [Float] {
        guard n >= 0 else { throw AttentionError.invalidParameter(name: "tokens", expected: ">= 0", got: n) }
        guard m > 0 else { throw AttentionError.invalidParameter(name: "imageTokens", expected: "> 0", got: m) }
        guard text.count == n * hidden else {
            throw AttentionError.weightShape(name: "text", expected: n * hidden, got: text.count)
        }
        guard image.count == m * context else {
            throw AttentionError.weightShape(name: "image", expected: m * context, got: image.count)
        }
        guard n > 0 else { return [] }
        let inner = heads * headDim
        let q = Self.project(text, rows: n, weight: wq, out: inner, in: hidden, threads: threads)
        let k = Self.project(image, rows: m, weight: wk, out: inner, in: context, threads: threads)
        let v = Self.project(image, rows: m, weight: wv, out: inner, in: context, threads: threads)
        var attended = [Float](repeating: 0, count: n * inner)
        try Attention.full(q: q, k: k, v: v, n: n, m: m, heads: heads, kvHeads: heads, headDim: headDim,
                           out: &attended, kernel: kernel, threads: threads)
        let cross = Self.project(attended, rows: n, weight: wo, out: hidden, in: inner, threads: threads)

        // Gate input per token: [h_t; mean(I)].
        var meanImage = [Float](repeating: 0, count: context)
        for t in 0..<m { for c in 0..<context { meanImage[c] += image[t * context + c] } }
        for c in 0..<context { meanImage[c] /= Float(m) }
        var gateInput = [Float](repeating: 0, count: n * (hidden + context))
        for t in 0..<n {
            let base = t * (hidden + context)
            for c in 0..<hidden { gateInput[base + c] = text[t * hidden + c] }
            for c in 0..<context { gateInput[base + hidden + c] = meanImage[c] }
        }
        let logits = Self.project(gateInput, rows: n, weight: gateWeight, out: hidden, in: hidden + context,
                                  threads: threads)
        var out = [Float](repeating: 0, count: n * hidden)
        for t in 0..<n {
            for c in 0..<hidden {
                let i = t * hidden + c
                let g = 1 / (1 + expf(-(logits[i] + gateBias[c])))
                out[i] = (1 - g) * text[i] + g * cross[i]
            }
        }
        return out
    }

    /// y `(rows, out)` = x `(rows, in)` · Wᵀ, W `(out, in)`; parallel over output rows.
    static func project(_ x: [Float], rows: Int, weight: [Float], out: Int, in inner: Int, threads: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * out)
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    let xa = UInt(bitPattern: xp.baseAddress), wa = UInt(bitPattern: wp.baseAddress)
                    let ya = UInt(bitPattern: yp.baseAddress)
                    let workers = max(1, min(threads, out))
                    let per = (out + workers - 1) / workers
                    let body: @Sendable (Int) -> Void = { w in
                        let x = UnsafePointer<Float>(bitPattern: xa)!, wt = UnsafePointer<Float>(bitPattern: wa)!
                        let y = UnsafeMutablePointer<Float>(bitPattern: ya)!
                        for o in (w * per)..<min(out, (w + 1) * per) {
                            for r in 0..<rows {
                                y[r * out + o] = AttentionMath.dotF32(x + r * inner, wt + o * inner, inner)
                            }
                        }
                    }
                    if workers == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: body) }
                }
            }
        }
        return y
    }
}
