// Element-wise and reduction helpers for the forward pass (SIMD, Float32).
// All functions take raw pointers and a count; `out` may alias an input unless stated otherwise.

import Foundation

/// Which dimensions RoPE rotates together.
public enum RoPEStyle: String, Sendable, Codable {
    /// Pairs (i, i + rotaryDims/2) for i < rotaryDims/2 (GPT-NeoX, Llama in Hugging Face layout).
    case neox
    /// Pairs (2i, 2i + 1) for i < rotaryDims/2 (GPT-J, GLM).
    case interleaved
}

public enum VectorOps {
    // MARK: reductions and BLAS-1

    /// Σ x[i].
    public static func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var a0 = F8(), a1 = F8()
        var i = 0
        while i + 16 <= n { a0 += load8(x + i); a1 += load8(x + i + 8); i += 16 }
        while i + 8 <= n { a0 += load8(x + i); i += 8 }
        var s = hsum(a0 + a1)
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ a[i]·b[i].
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        RowDot.f32(a, b, n)
    }

    /// y[i] += alpha·x[i].
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        let a = F8(repeating: alpha)
        var i = 0
        while i + 8 <= n { store8(load8(y + i).addingProduct(load8(x + i), a), y + i); i += 8 }
        while i < n { y[i] += alpha * x[i]; i += 1 }
    }

    /// out[i] = a[i] + b[i].
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        var i = 0
        while i + 8 <= n { store8(load8(a + i) + load8(b + i), out + i); i += 8 }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// out[i] = a[i] · b[i].
    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           count n: Int) {
        var i = 0
        while i + 8 <= n { store8(load8(a + i) * load8(b + i), out + i); i += 8 }
        while i < n { out[i] = a[i] * b[i]; i += 1 }
    }

    /// x[i] *= s.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by s: Float, count n: Int) {
        let v = F8(repeating: s)
        var i = 0
        while i + 8 <= n { store8(load8(x + i) * v, x + i); i += 8 }
        while i < n { x[i] *= s; i += 1 }
    }

    // MARK: normalisation

    /// out = x / sqrt(mean(x²) + eps) · weight (weight nil: no scaling).
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, epsilon: Float,
                               into out: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        let ss = RowDot.f32(x, x, n)
        let inv = 1 / (ss / Float(n) + epsilon).squareRoot()
        let v = F8(repeating: inv)
        var i = 0
        if let weight {
            while i + 8 <= n { store8(load8(x + i) * v * load8(weight + i), out + i); i += 8 }
            while i < n { out[i] = x[i] * inv * weight[i]; i += 1 }
        } else {
            while i + 8 <= n { store8(load8(x + i) * v, out + i); i += 8 }
            while i < n { out[i] = x[i] * inv; i += 1 }
        }
    }

    /// out = (x − mean) / sqrt(var + eps) · weight + bias (nil weight: 1, nil bias: 0). Two-pass variance.
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                                 epsilon: Float, into out: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        let mean = sum(x, count: n) / Float(n)
        let m = F8(repeating: mean)
        var acc = F8()
        var i = 0
        while i + 8 <= n { let d = load8(x + i) - m; acc = acc.addingProduct(d, d); i += 8 }
        var ss = hsum(acc)
        while i < n { let d = x[i] - mean; ss += d * d; i += 1 }
        let inv = 1 / (ss / Float(n) + epsilon).squareRoot()
        let v = F8(repeating: inv)
        i = 0
        while i + 8 <= n {
            var r = (load8(x + i) - m) * v
            if let weight { r *= load8(weight + i) }
            if let bias { r += load8(bias + i) }
            store8(r, out + i)
            i += 8
        }
        while i < n {
            var r = (x[i] - mean) * inv
            if let weight { r *= weight[i] }
            if let bias { r += bias[i] }
            out[i] = r
            i += 1
        }
    }

    // MARK: activations

    /// In-place numerically stable softmax: x = exp(x − max) / Σ exp(x − max).
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        var mv = F8(repeating: -.infinity)
        var i = 0
        while i + 8 <= n { mv = pointwiseMax(mv, load8(x + i)); i += 8 }
        var mx = hmax(mv)
        while i < n { mx = Swift.max(mx, x[i]); i += 1 }
        if mx == -.infinity { mx = 0 }
        let m = F8(repeating: mx)
        var acc = F8()
        i = 0
        while i + 8 <= n { let e = FastMath.exp(load8(x + i) - m); store8(e, x + i); acc += e; i += 8 }
        var total = hsum(acc)
        while i < n { let e = FastMath.exp(x[i] - mx); x[i] = e; total += e; i += 1 }
        scale(x, by: 1 / total, count: n)
    }

    /// SwiGLU: out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^−g).
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let g = load8(gate + i)
            store8(g / (1 + FastMath.exp(-g)) * load8(up + i), out + i)
            i += 8
        }
        while i < n { let g = gate[i]; out[i] = g / (1 + FastMath.exp(-g)) * up[i]; i += 1 }
    }

    /// out[i] = silu(x[i]).
    public static func silu(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { let g = load8(x + i); store8(g / (1 + FastMath.exp(-g)), out + i); i += 8 }
        while i < n { let g = x[i]; out[i] = g / (1 + FastMath.exp(-g)); i += 1 }
    }

    /// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    public static func gelu(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        let c = F8(repeating: 0.7978845608028654)
        let k = F8(repeating: 0.044715)
        var i = 0
        while i + 8 <= n {
            let v = load8(x + i)
            let u = c * v * (1 + k * v * v)
            // 0.5·(1 + tanh(u)) = 1 / (1 + e^(−2u))
            store8(v / (1 + FastMath.exp(-2 * u)), out + i)
            i += 8
        }
        while i < n {
            let v = x[i]
            let u = 0.7978845608028654 * v * (1 + 0.044715 * v * v)
            out[i] = v / (1 + FastMath.exp(-2 * u))
            i += 1
        }
    }

    /// GELU with the GELU-tanh output combined with `up`: out = gelu(gate) · up (GeGLU).
    public static func geluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, count n: Int) {
        gelu(gate, into: out, count: n)
        mul(out, up, into: out, count: n)
    }

    // MARK: rotary position embedding

    /// Fills cos[i], sin[i] for i < rotaryDims/2 with the angle position · base^(−2i/rotaryDims), in Double.
    public static func ropeCosSin(position: Int, rotaryDims: Int, base: Float,
                                  cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let half = rotaryDims / 2
        for i in 0..<half {
            let freq = Foundation.pow(Double(base), -2 * Double(i) / Double(rotaryDims))
            let angle = Double(position) * freq
            c[i] = Float(Foundation.cos(angle))
            s[i] = Float(Foundation.sin(angle))
        }
    }

    /// Rotates the first `rotaryDims` dimensions of each of `heads` heads (each `headDim` floats, contiguous) with
    /// the angles in `cos`/`sin` (rotaryDims/2 entries, see `ropeCosSin`). Dimensions ≥ rotaryDims are unchanged.
    /// A pair (a, b) becomes (a·cos − b·sin, a·sin + b·cos).
    public static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, rotaryDims: Int,
                            cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>, style: RoPEStyle) {
        let half = rotaryDims / 2
        for h in 0..<heads {
            let v = x + h * headDim
            switch style {
            case .neox:
                var i = 0
                while i + 8 <= half {
                    let a = load8(v + i), b = load8(v + half + i)
                    let cv = load8(c + i), sv = load8(s + i)
                    store8(a * cv - b * sv, v + i)
                    store8(a * sv + b * cv, v + half + i)
                    i += 8
                }
                while i < half {
                    let a = v[i], b = v[half + i]
                    v[i] = a * c[i] - b * s[i]
                    v[half + i] = a * s[i] + b * c[i]
                    i += 1
                }
            case .interleaved:
                var i = 0
                while i + 8 <= half {
                    // 8 pairs = 16 floats: even lanes are a, odd lanes are b.
                    let pairs = load16(v + 2 * i)
                    let a = pairs.evenHalf, b = pairs.oddHalf
                    let cv = load8(c + i), sv = load8(s + i)
                    var r = SIMD16<Float>()
                    r.evenHalf = a * cv - b * sv
                    r.oddHalf = a * sv + b * cv
                    store16(r, v + 2 * i)
                    i += 8
                }
                while i < half {
                    let a = v[2 * i], b = v[2 * i + 1]
                    v[2 * i] = a * c[i] - b * s[i]
                    v[2 * i + 1] = a * s[i] + b * c[i]
                    i += 1
                }
            }
        }
    }

    /// Convenience: computes the angles for `position` and applies `rope`.
    public static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, rotaryDims: Int,
                            position: Int, base: Float, style: RoPEStyle) {
        let half = max(rotaryDims / 2, 1)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * half) { buf in
            let c = buf.baseAddress!, s = c + half
            ropeCosSin(position: position, rotaryDims: rotaryDims, base: base, cos: c, sin: s)
            rope(x, heads: heads, headDim: headDim, rotaryDims: rotaryDims, cos: c, sin: s, style: style)
        }
    }

    // MARK: conversions

    /// Widens IEEE half floats to Float32 (vcvtph2ps).
    public static func f16ToF32(_ src: UnsafePointer<Float16>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        let raw = UnsafeRawPointer(src)
        var i = 0
        while i + 16 <= n {
            store8(loadHalf8(raw + 2 * i), out + i)
            store8(loadHalf8(raw + 2 * i + 16), out + i + 8)
            i += 16
        }
        while i + 8 <= n { store8(loadHalf8(raw + 2 * i), out + i); i += 8 }
        while i < n { out[i] = Float(src[i]); i += 1 }
    }

    /// Narrows Float32 to IEEE half, rounding to nearest even (vcvtps2ph); out-of-range values become ±infinity.
    public static func f32ToF16(_ src: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float16>, count n: Int) {
        let raw = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 8 <= n { raw.storeBytes(of: SIMD8<Float16>(load8(src + i)), toByteOffset: 2 * i, as: SIMD8<Float16>.self); i += 8 }
        while i < n { out[i] = Float16(src[i]); i += 1 }
    }

    /// Widens bfloat16 bit patterns to Float32.
    public static func bf16ToF32(_ src: UnsafePointer<UInt16>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        let raw = UnsafeRawPointer(src)
        var i = 0
        while i + 8 <= n { store8(loadBF16x8(raw + 2 * i), out + i); i += 8 }
        while i < n { out[i] = BF16.toFloat(src[i]); i += 1 }
    }
}

/// Vectorised elementary functions.
public enum FastMath {
    static let expHigh: Float = 88.3762626647949
    static let expLow: Float = -87.3365447504
    /// e^x for 8 lanes with relative error of a few ulp over the normal range; returns +infinity above 88.376
    /// and 0 below −87.34 (no subnormal results).
    @inline(__always) public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let xc = pointwiseMin(pointwiseMax(x, F8(repeating: expLow)), F8(repeating: expHigh))
        // n = round(x / ln 2) via the 1.5·2^23 trick; r = x − n·ln 2 with ln 2 split in two parts.
        let magic = F8(repeating: 12582912)
        let shifted = magic.addingProduct(xc, F8(repeating: 1.44269504088896341))
        let nf = shifted - magic
        var r = xc.addingProduct(nf, F8(repeating: -0.693359375))
        r = r.addingProduct(nf, F8(repeating: 2.12194440e-4))
        // e^r on |r| ≤ ln2/2: 1 + r + r²·P(r), P a degree-5 polynomial.
        var p = F8(repeating: 1.9875691500e-4)
        p = F8(repeating: 1.3981999507e-3).addingProduct(p, r)
        p = F8(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = F8(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = F8(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = F8(repeating: 5.0000001201e-1).addingProduct(p, r)
        let e = (r.addingProduct(p, r * r)) + 1
        // Scale by 2^n through the exponent bits (n is in the low mantissa bits of `shifted`).
        let n = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((n &+ 127) &<< 23, to: F8.self)
        var result = e * scale
        result.replace(with: F8(repeating: .infinity), where: x .> expHigh)
        result.replace(with: F8(), where: x .< expLow)
        return result
    }

    /// Scalar form of `exp(_: SIMD8<Float>)`.
    @inline(__always) public static func exp(_ x: Float) -> Float {
        exp(F8(repeating: x))[0]
    }
}
