// Scalar reference implementations that the SIMD kernels are tested against.

import Foundation

public enum ReferenceKernels {
    /// y = W·x by dequantising each row with the block types and accumulating in Double (a matrix grouped by rows
    /// has each row copied back to its blocks first).
    public static func matvec(_ w: PackedMatrix, _ x: [Float]) -> [Float] {
        var row = [Float](repeating: 0, count: w.columns)
        var y = [Float](repeating: 0, count: w.rows)
        var bytes = [UInt8](repeating: 0, count: w.rowBytes)
        for r in 0..<w.rows {
            bytes.withUnsafeMutableBytes { raw in
                let source: UnsafeRawPointer
                if let layout = w.nibbleRowGroup {
                    layout.copyRow(w.data, row: r, columns: w.columns, into: raw.baseAddress!)
                    source = UnsafeRawPointer(raw.baseAddress!)
                } else {
                    source = w.rowPointer(r)
                }
                row.withUnsafeMutableBufferPointer {
                    ReferenceDequantize.row(source, format: w.format, columns: w.columns, into: $0.baseAddress!)
                }
            }
            var s = 0.0
            for c in 0..<w.columns { s += Double(row[c]) * Double(x[c]) }
            y[r] = Float(s)
        }
        return y
    }

    /// Y (count × rows) = X (count × columns) · Wᵀ, one reference matvec per token.
    public static func matmul(_ w: PackedMatrix, _ x: [Float], count: Int) -> [Float] {
        var y: [Float] = []
        y.reserveCapacity(count * w.rows)
        for t in 0..<count { y += matvec(w, Array(x[(t * w.columns)..<((t + 1) * w.columns)])) }
        return y
    }

    public static func rmsNorm(_ x: [Float], weight: [Float]?, epsilon: Float) -> [Float] {
        let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)
        let inv = 1 / (ms + Double(epsilon)).squareRoot()
        return x.indices.map { Float(Double(x[$0]) * inv * Double(weight?[$0] ?? 1)) }
    }

    public static func layerNorm(_ x: [Float], weight: [Float]?, bias: [Float]?, epsilon: Float) -> [Float] {
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(x.count)
        let inv = 1 / (variance + Double(epsilon)).squareRoot()
        return x.indices.map { Float((Double(x[$0]) - mean) * inv * Double(weight?[$0] ?? 1) + Double(bias?[$0] ?? 0)) }
    }

    public static func softmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let e = x.map { Foundation.exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    public static func silu(_ g: Float) -> Float { Float(Double(g) / (1 + Foundation.exp(-Double(g)))) }

    public static func gelu(_ v: Float) -> Float {
        let x = Double(v)
        return Float(0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))))
    }

    /// RoPE on `heads` heads of `headDim`, rotating the first `rotaryDims` dims, angles in Double.
    public static func rope(_ x: [Float], heads: Int, headDim: Int, rotaryDims: Int, position: Int, base: Float,
                            style: RoPEStyle) -> [Float] {
        var out = x
        let half = rotaryDims / 2
        for h in 0..<heads {
            for i in 0..<half {
                let angle = Double(position) * Foundation.pow(Double(base), -2 * Double(i) / Double(rotaryDims))
                let (ia, ib) = style == .neox ? (i, i + half) : (2 * i, 2 * i + 1)
                let a = Double(x[h * headDim + ia]), b = Double(x[h * headDim + ib])
                out[h * headDim + ia] = Float(a * Foundation.cos(angle) - b * Foundation.sin(angle))
                out[h * headDim + ib] = Float(a * Foundation.sin(angle) + b * Foundation.cos(angle))
            }
        }
        return out
    }
}

extension ReferenceKernels {
    /// Y (count × rows) = X · Wᵀ with X rounded by `Int8Activations.quantize` and the weights read through their
    /// integer view: per block, scale · s · Σ u q (an exact integer sum) + offset · s · Σ q, accumulated in Double.
    public static func matmulInt8Activations(_ w: PackedMatrix, _ x: [Float], count: Int) -> [Float] {
        let n = w.columns, blocks = n / IntegerCodes.blockElements
        let a = Int8Activations.quantize(x, columns: n)
        var y = [Float](repeating: 0, count: count * w.rows)
        for t in 0..<count {
            for r in 0..<w.rows {
                var s = 0.0
                for b in 0..<blocks {
                    let block = IntegerCodes.block(w.rowPointer(r), format: w.format, block: b)
                    var dot = 0
                    for k in 0..<32 { dot += Int(block.codes[k]) * Int(a.codes[t * n + 32 * b + k]) }
                    s += Double(block.scale) * Double(a.scales[t * blocks + b]) * Double(dot)
                        + Double(block.offset) * Double(a.sums[t * blocks + b])
                }
                y[t * w.rows + r] = Float(s)
            }
        }
        return y
    }
}
