// Dot products of one packed weight row with a Float32 activation vector (the matvec inner loops).
// Activations stay Float32; quantised weights are widened to Float32 in registers and combined with FMA.

enum RowDot {
    @inline(__always) static func f32(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            a0 = a0.addingProduct(load8(w + i), load8(x + i))
            a1 = a1.addingProduct(load8(w + i + 8), load8(x + i + 8))
            a2 = a2.addingProduct(load8(w + i + 16), load8(x + i + 16))
            a3 = a3.addingProduct(load8(w + i + 24), load8(x + i + 24))
            i += 32
        }
        while i + 8 <= n { a0 = a0.addingProduct(load8(w + i), load8(x + i)); i += 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += w[i] * x[i]; i += 1 }
        return s
    }

    @inline(__always) static func f16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            a0 = a0.addingProduct(loadHalf8(w + 2 * i), load8(x + i))
            a1 = a1.addingProduct(loadHalf8(w + 2 * i + 16), load8(x + i + 8))
            a2 = a2.addingProduct(loadHalf8(w + 2 * i + 32), load8(x + i + 16))
            a3 = a3.addingProduct(loadHalf8(w + 2 * i + 48), load8(x + i + 24))
            i += 32
        }
        while i + 8 <= n { a0 = a0.addingProduct(loadHalf8(w + 2 * i), load8(x + i)); i += 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += f16Scalar(w, 2 * i) * x[i]; i += 1 }
        return s
    }

    @inline(__always) static func bf16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            a0 = a0.addingProduct(loadBF16x8(w + 2 * i), load8(x + i))
            a1 = a1.addingProduct(loadBF16x8(w + 2 * i + 16), load8(x + i + 8))
            a2 = a2.addingProduct(loadBF16x8(w + 2 * i + 32), load8(x + i + 16))
            a3 = a3.addingProduct(loadBF16x8(w + 2 * i + 48), load8(x + i + 24))
            i += 32
        }
        while i + 8 <= n { a0 = a0.addingProduct(loadBF16x8(w + 2 * i), load8(x + i)); i += 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += BF16.toFloat(w.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) * x[i]; i += 1 }
        return s
    }

    /// Q8_0: Σ_b d_b · Σ_i q_i x_i.
    @inline(__always) static func q8_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = F8()
        var b = 0
        let blocks = n / 32
        while b < blocks {
            let p = w + b * 34
            let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<Int8>.self)
            let xb = x + b * 32
            var s0 = floats(q.lowHalf.lowHalf) * load8(xb)
            var s1 = floats(q.lowHalf.highHalf) * load8(xb + 8)
            s0 = s0.addingProduct(floats(q.highHalf.lowHalf), load8(xb + 16))
            s1 = s1.addingProduct(floats(q.highHalf.highHalf), load8(xb + 24))
            let d = F8(repeating: f16Scalar(p))
            acc = acc.addingProduct(s0 + s1, d)
            b += 1
        }
        return hsum(acc)
    }

    /// Q4_0: Σ_b d_b · Σ_i (q_i − 8) x_i.
    @inline(__always) static func q4_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = F8()
        var b = 0
        let blocks = n / 32
        while b < blocks {
            let p = w + b * 18
            let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
            let lo = unsafeBitCast(q & 0x0F, to: SIMD16<Int8>.self) &- 8
            let hi = unsafeBitCast(q &>> 4, to: SIMD16<Int8>.self) &- 8
            let xb = x + b * 32
            var s0 = floats(lo.lowHalf) * load8(xb)
            var s1 = floats(lo.highHalf) * load8(xb + 8)
            s0 = s0.addingProduct(floats(hi.lowHalf), load8(xb + 16))
            s1 = s1.addingProduct(floats(hi.highHalf), load8(xb + 24))
            let d = F8(repeating: f16Scalar(p))
            acc = acc.addingProduct(s0 + s1, d)
            b += 1
        }
        return hsum(acc)
    }

    /// Q4_1 and INT4-gN: Σ_g d_g · Σ_i q_i x_i + m_g · S_g, where `xsum[g]` = S_g = Σ_{i∈g} x_i.
    @inline(__always) static func q4Min(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                        _ n: Int, group: Int, blockBytes: Int) -> Float {
        var acc = F8()
        var mins: Float = 0
        let half = group / 2
        let groups = n / group
        var g = 0
        while g < groups {
            let p = w + g * blockBytes
            let xb = x + g * group
            var s0 = F8(), s1 = F8()
            var k = 0
            while k < half {
                let q = p.loadUnaligned(fromByteOffset: 4 + k, as: SIMD16<UInt8>.self)
                let lo = q & 0x0F
                let hi = q &>> 4
                s0 = s0.addingProduct(floats(lo.lowHalf), load8(xb + k))
                s1 = s1.addingProduct(floats(lo.highHalf), load8(xb + k + 8))
                s0 = s0.addingProduct(floats(hi.lowHalf), load8(xb + half + k))
                s1 = s1.addingProduct(floats(hi.highHalf), load8(xb + half + k + 8))
                k += 16
            }
            let d = F8(repeating: f16Scalar(p))
            mins = mins.addingProduct(f16Scalar(p, 2), xsum[g])
            acc = acc.addingProduct(s0 + s1, d)
            g += 1
        }
        return hsum(acc) + mins
    }

    /// INT8 per-channel: scale · Σ_i q_i x_i.
    @inline(__always) static func int8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let scale = Float(bitPattern: w.loadUnaligned(as: UInt32.self))
        let q = w + Int8RowLayout.weightOffset
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            let v = q.loadUnaligned(fromByteOffset: i, as: SIMD32<Int8>.self)
            a0 = a0.addingProduct(floats(v.lowHalf.lowHalf), load8(x + i))
            a1 = a1.addingProduct(floats(v.lowHalf.highHalf), load8(x + i + 8))
            a2 = a2.addingProduct(floats(v.highHalf.lowHalf), load8(x + i + 16))
            a3 = a3.addingProduct(floats(v.highHalf.highHalf), load8(x + i + 24))
            i += 32
        }
        while i + 8 <= n { a0 = a0.addingProduct(floats(q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)), load8(x + i)); i += 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += Float(q.load(fromByteOffset: i, as: Int8.self)) * x[i]; i += 1 }
        return s * scale
    }
}
