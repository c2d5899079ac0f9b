// One key tile of tiled attention with online softmax, for the AVX-512 family (see AVX512Kernels.swift for the
// instruction set and why this module exists).
//
// Layout: a work item's query lanes (query row × head of one KV group) are the vector dimension wherever that
// avoids horizontal sums. The scaled queries come transposed, `qT[c · L + l]` (L = lane pitch, a multiple of 16,
// padding lanes zero); scores are written key-major, `scores[j · L + l]`, so the per-lane maximum, exponentials
// and sums of the online softmax run 16 lanes per instruction; the accumulators stay lane-major,
// `acc[l · d + c]`, so P·V is an outer product (one broadcast probability times 16 value elements).
// Keys and values arrive as Float32 rows (the engine decodes quantised cache rows once per tile).

#if arch(x86_64)
import _Builtin_intrinsics.intel

public enum AVX512Attention {
    /// Lanes per vector; the lane pitch `L` of every call is a multiple of this.
    public static let laneWidth = 16

    /// Online-softmax step over `count` keys for `lanes` query lanes.
    ///
    /// Lane l sees key j (0 ≤ j < count) iff `lo[l] ≤ j < hi[l]`; the padding lanes of the last vector holding a
    /// real lane (`lanes` up to a multiple of 16) must have `lo = hi = 0` and zero queries; lanes past it are not
    /// read or written, so a compacted set of lanes costs its own vectors, not the pitch's.
    /// On entry `maxes`, `sums` (L each) and `acc` (lanes × d) hold the running state; on exit they include the tile.
    /// `scores` (count × L) and `correction` (L) are scratch. Requires d % 16 == 0 and L % 16 == 0.
    public static func tile(qT: UnsafePointer<Float>, lanePitch L: Int, lanes: Int, headDim d: Int,
                            keys: UnsafePointer<Float>, keyStride: Int, values: UnsafePointer<Float>,
                            valueStride: Int, count: Int, lo: UnsafePointer<Int32>, hi: UnsafePointer<Int32>,
                            maxes: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                            acc: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                            correction: UnsafeMutablePointer<Float>) {
        guard count > 0, lanes > 0 else { return }
        // Lane vectors that hold real lanes (the rest of the pitch is padding).
        let used = (lanes + 15) / 16 * 16
        // S^T (count, used) = K (count, d) @ Q^T (d, used)
        var j = 0
        while j + 8 <= count {
            var v = 0
            while v + 32 <= used {
                scores8x2(qT + v, L, keys + j * keyStride, keyStride, d, scores + j * L + v); v += 32
            }
            if v < used { scores8x1(qT + v, L, keys + j * keyStride, keyStride, d, scores + j * L + v) }
            j += 8
        }
        while j < count {
            var v = 0
            while v < used { scores1x1(qT + v, L, keys + j * keyStride, d, scores + j * L + v); v += 16 }
            j += 1
        }
        // Mask, running max, exponentials and sums, 16 lanes at a time: P^T (count, used) overwrites S^T.
        var v = 0
        while v < used {
            softmaxStep(scores + v, L, count, lo + v, hi + v, maxes + v, sums + v, correction + v)
            v += 16
        }
        // acc (lanes, d) = acc · correction + P (lanes, count) @ V (count, d)
        var l = 0
        while l + 6 <= lanes {
            var c = 0
            while c + 64 <= d {
                pv6x4(scores + l, L, values + c, valueStride, count, acc + l * d + c, d, correction + l)
                c += 64
            }
            while c < d { pv6x1(scores + l, L, values + c, valueStride, count, acc + l * d + c, d, correction + l); c += 16 }
            l += 6
        }
        while l < lanes {
            var c = 0
            while c + 64 <= d {
                pv1x4(scores + l, L, values + c, valueStride, count, acc + l * d + c, correction[l])
                c += 64
            }
            while c < d { pv1x1(scores + l, L, values + c, valueStride, count, acc + l * d + c, correction[l]); c += 16 }
            l += 1
        }
    }

    // MARK: Scores

    /// S^T rows j ..< j + 8 for 32 lanes: 16 accumulators, two query vectors and eight broadcast key elements per c.
    @inline(never) static func scores8x2(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ ldk: Int,
                                         _ d: Int, _ s: UnsafeMutablePointer<Float>) {
        var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16(), a4 = V16(), a5 = V16(), a6 = V16(), a7 = V16()
        var b0 = V16(), b1 = V16(), b2 = V16(), b3 = V16(), b4 = V16(), b5 = V16(), b6 = V16(), b7 = V16()
        let k1 = k + ldk, k2 = k + 2 * ldk, k3 = k + 3 * ldk, k4 = k + 4 * ldk, k5 = k + 5 * ldk
        let k6 = k + 6 * ldk, k7 = k + 7 * ldk
        for c in 0..<d {
            let q0 = load16(qT + c * L), q1 = load16(qT + c * L + 16)
            var x = V16(repeating: k[c]); a0 = a0.addingProduct(q0, x); b0 = b0.addingProduct(q1, x)
            x = V16(repeating: k1[c]); a1 = a1.addingProduct(q0, x); b1 = b1.addingProduct(q1, x)
            x = V16(repeating: k2[c]); a2 = a2.addingProduct(q0, x); b2 = b2.addingProduct(q1, x)
            x = V16(repeating: k3[c]); a3 = a3.addingProduct(q0, x); b3 = b3.addingProduct(q1, x)
            x = V16(repeating: k4[c]); a4 = a4.addingProduct(q0, x); b4 = b4.addingProduct(q1, x)
            x = V16(repeating: k5[c]); a5 = a5.addingProduct(q0, x); b5 = b5.addingProduct(q1, x)
            x = V16(repeating: k6[c]); a6 = a6.addingProduct(q0, x); b6 = b6.addingProduct(q1, x)
            x = V16(repeating: k7[c]); a7 = a7.addingProduct(q0, x); b7 = b7.addingProduct(q1, x)
        }
        store16(a0, s); store16(b0, s + 16); store16(a1, s + L); store16(b1, s + L + 16)
        store16(a2, s + 2 * L); store16(b2, s + 2 * L + 16); store16(a3, s + 3 * L); store16(b3, s + 3 * L + 16)
        store16(a4, s + 4 * L); store16(b4, s + 4 * L + 16); store16(a5, s + 5 * L); store16(b5, s + 5 * L + 16)
        store16(a6, s + 6 * L); store16(b6, s + 6 * L + 16); store16(a7, s + 7 * L); store16(b7, s + 7 * L + 16)
    }

    /// S^T rows j ..< j + 8 for 16 lanes.
    @inline(never) static func scores8x1(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ ldk: Int,
                                         _ d: Int, _ s: UnsafeMutablePointer<Float>) {
        var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16(), a4 = V16(), a5 = V16(), a6 = V16(), a7 = V16()
        let k1 = k + ldk, k2 = k + 2 * ldk, k3 = k + 3 * ldk, k4 = k + 4 * ldk, k5 = k + 5 * ldk
        let k6 = k + 6 * ldk, k7 = k + 7 * ldk
        for c in 0..<d {
            let q0 = load16(qT + c * L)
            a0 = a0.addingProduct(q0, V16(repeating: k[c])); a1 = a1.addingProduct(q0, V16(repeating: k1[c]))
            a2 = a2.addingProduct(q0, V16(repeating: k2[c])); a3 = a3.addingProduct(q0, V16(repeating: k3[c]))
            a4 = a4.addingProduct(q0, V16(repeating: k4[c])); a5 = a5.addingProduct(q0, V16(repeating: k5[c]))
            a6 = a6.addingProduct(q0, V16(repeating: k6[c])); a7 = a7.addingProduct(q0, V16(repeating: k7[c]))
        }
        store16(a0, s); store16(a1, s + L); store16(a2, s + 2 * L); store16(a3, s + 3 * L)
        store16(a4, s + 4 * L); store16(a5, s + 5 * L); store16(a6, s + 6 * L); store16(a7, s + 7 * L)
    }

    /// One S^T row for 16 lanes (four accumulators over c, added at the end).
    @inline(never) static func scores1x1(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ d: Int,
                                         _ s: UnsafeMutablePointer<Float>) {
        var a = V16(), b = V16()
        var c = 0
        while c + 2 <= d {
            a = a.addingProduct(load16(qT + c * L), V16(repeating: k[c]))
            b = b.addingProduct(load16(qT + (c + 1) * L), V16(repeating: k[c + 1]))
            c += 2
        }
        if c < d { a = a.addingProduct(load16(qT + c * L), V16(repeating: k[c])) }
        store16(a + b, s)
    }

    // MARK: Online softmax

    /// For 16 lanes (column `p` of the (count, L) score block): masks keys outside [lo, hi), raises the running max,
    /// replaces each score by e^(s − max) (0 where masked), rescales the running sum and adds the tile's; writes the
    /// factor e^(old max − new max) the accumulators need (0 while a lane has seen no key).
    /// Masks are all-ones / all-zeros integer lanes made with shifts and bitwise operations: SIMD comparisons and
    /// `pointwiseMax` / `clamped` on SIMD16 were lowered lane by lane here.
    @inline(never) static func softmaxStep(_ p: UnsafeMutablePointer<Float>, _ L: Int, _ count: Int,
                                           _ lo: UnsafePointer<Int32>, _ hi: UnsafePointer<Int32>,
                                           _ maxes: UnsafeMutablePointer<Float>, _ sums: UnsafeMutablePointer<Float>,
                                           _ correction: UnsafeMutablePointer<Float>) {
        let lo16 = UnsafeRawPointer(lo).loadUnaligned(as: SIMD16<Int32>.self)
        let hi16 = UnsafeRawPointer(hi).loadUnaligned(as: SIMD16<Int32>.self)
        let minusInfinity = V16(repeating: -.infinity)
        var tileMax = minusInfinity
        for j in 0..<count {
            let s = select(minusInfinity, where: outside(j, lo16, hi16), else: load16(p + j * L))
            store16(s, p + j * L)
            tileMax = vmax(tileMax, s)
        }
        let oldMax = load16(maxes)
        let newMax = vmax(oldMax, tileMax)
        store16(newMax, maxes)
        // A lane that has seen no key keeps −∞; its shift only has to be finite (its scores are all masked).
        let shift = vmax(newMax, V16(repeating: -.greatestFiniteMagnitude))
        let factor = keep(exp16(oldMax - shift), where: isFinite(oldMax))
        store16(factor, correction)
        var sum = V16()
        for j in 0..<count {
            let e = keep(exp16(load16(p + j * L) - shift), where: ~outside(j, lo16, hi16))
            store16(e, p + j * L)
            sum += e
        }
        store16(load16(sums) * factor + sum, sums)
    }

    /// All ones in lanes where j ∉ [lo, hi): the sign of (j − lo) | ~(j − hi), spread over the lane.
    @inline(__always) static func outside(_ j: Int, _ lo: SIMD16<Int32>, _ hi: SIMD16<Int32>) -> SIMD16<Int32> {
        let position = SIMD16<Int32>(repeating: Int32(j))
        return ((position &- lo) | ~(position &- hi)) &>> 31
    }

    /// All ones in lanes that are not −∞ (every other value reaching here is finite).
    @inline(__always) static func isFinite(_ x: V16) -> SIMD16<Int32> {
        let bits = unsafeBitCast(x, to: SIMD16<Int32>.self) ^ unsafeBitCast(V16(repeating: -.infinity), to: SIMD16<Int32>.self)
        return (bits | (0 &- bits)) &>> 31
    }

    @inline(__always) static func keep(_ x: V16, where mask: SIMD16<Int32>) -> V16 {
        unsafeBitCast(unsafeBitCast(x, to: SIMD16<Int32>.self) & mask, to: V16.self)
    }

    @inline(__always) static func select(_ a: V16, where mask: SIMD16<Int32>, else b: V16) -> V16 {
        let ai = unsafeBitCast(a, to: SIMD16<Int32>.self), bi = unsafeBitCast(b, to: SIMD16<Int32>.self)
        return unsafeBitCast((ai & mask) | (bi & ~mask), to: V16.self)
    }

    @inline(__always) static func vmax(_ a: V16, _ b: V16) -> V16 {
        _mm512_max_ps(a, b)
    }

    @inline(__always) static func vmin(_ a: V16, _ b: V16) -> V16 {
        _mm512_min_ps(a, b)
    }

    /// e^x for 16 lanes: range reduction by ln 2 and a degree-5 polynomial (the engine's 8-lane exp, same
    /// constants and clamps, so both kernel families round alike).
    @inline(__always) static func exp16(_ input: V16) -> V16 {
        let x = vmin(vmax(input, V16(repeating: -87.3)), V16(repeating: 88.3))
        let magic = V16(repeating: 12_582_912)
        let t = x * 1.442_695_04 + magic
        let n = t - magic
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
        var q = V16(repeating: 1.987_569_15e-4)
        q = q * r + 1.398_199_95e-3
        q = q * r + 8.333_451_9e-3
        q = q * r + 4.166_579_59e-2
        q = q * r + 1.666_666_55e-1
        q = q * r + 5.000_000_12e-1
        let y = q * r * r + r + 1
        let exponent = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: V16.self)
    }

    // MARK: P · V

    /// Lanes l ..< l + 6, 64 value columns: 24 accumulators, four value vectors and six broadcast probabilities per key.
    @inline(never) static func pv6x4(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ d: Int,
                                     _ factor: UnsafePointer<Float>) {
        let a1p = acc + d, a2p = acc + 2 * d, a3p = acc + 3 * d, a4p = acc + 4 * d, a5p = acc + 5 * d
        var f = V16(repeating: factor[0])
        var c00 = load16(acc) * f, c01 = load16(acc + 16) * f, c02 = load16(acc + 32) * f, c03 = load16(acc + 48) * f
        f = V16(repeating: factor[1])
        var c10 = load16(a1p) * f, c11 = load16(a1p + 16) * f, c12 = load16(a1p + 32) * f, c13 = load16(a1p + 48) * f
        f = V16(repeating: factor[2])
        var c20 = load16(a2p) * f, c21 = load16(a2p + 16) * f, c22 = load16(a2p + 32) * f, c23 = load16(a2p + 48) * f
        f = V16(repeating: factor[3])
        var c30 = load16(a3p) * f, c31 = load16(a3p + 16) * f, c32 = load16(a3p + 32) * f, c33 = load16(a3p + 48) * f
        f = V16(repeating: factor[4])
        var c40 = load16(a4p) * f, c41 = load16(a4p + 16) * f, c42 = load16(a4p + 32) * f, c43 = load16(a4p + 48) * f
        f = V16(repeating: factor[5])
        var c50 = load16(a5p) * f, c51 = load16(a5p + 16) * f, c52 = load16(a5p + 32) * f, c53 = load16(a5p + 48) * f
        for j in 0..<count {
            let row = v + j * ldv, pj = p + j * L
            let v0 = load16(row), v1 = load16(row + 16), v2 = load16(row + 32), v3 = load16(row + 48)
            var w = V16(repeating: pj[0])
            c00 = c00.addingProduct(w, v0); c01 = c01.addingProduct(w, v1)
            c02 = c02.addingProduct(w, v2); c03 = c03.addingProduct(w, v3)
            w = V16(repeating: pj[1])
            c10 = c10.addingProduct(w, v0); c11 = c11.addingProduct(w, v1)
            c12 = c12.addingProduct(w, v2); c13 = c13.addingProduct(w, v3)
            w = V16(repeating: pj[2])
            c20 = c20.addingProduct(w, v0); c21 = c21.addingProduct(w, v1)
            c22 = c22.addingProduct(w, v2); c23 = c23.addingProduct(w, v3)
            w = V16(repeating: pj[3])
            c30 = c30.addingProduct(w, v0); c31 = c31.addingProduct(w, v1)
            c32 = c32.addingProduct(w, v2); c33 = c33.addingProduct(w, v3)
            w = V16(repeating: pj[4])
            c40 = c40.addingProduct(w, v0); c41 = c41.addingProduct(w, v1)
            c42 = c42.addingProduct(w, v2); c43 = c43.addingProduct(w, v3)
            w = V16(repeating: pj[5])
            c50 = c50.addingProduct(w, v0); c51 = c51.addingProduct(w, v1)
            c52 = c52.addingProduct(w, v2); c53 = c53.addingProduct(w, v3)
        }
        store16(c00, acc); store16(c01, acc + 16); store16(c02, acc + 32); store16(c03, acc + 48)
        store16(c10, a1p); store16(c11, a1p + 16); store16(c12, a1p + 32); store16(c13, a1p + 48)
        store16(c20, a2p); store16(c21, a2p + 16); store16(c22, a2p + 32); store16(c23, a2p + 48)
        store16(c30, a3p); store16(c31, a3p + 16); store16(c32, a3p + 32); store16(c33, a3p + 48)
        store16(c40, a4p); store16(c41, a4p + 16); store16(c42, a4p + 32); store16(c43, a4p + 48)
        store16(c50, a5p); store16(c51, a5p + 16); store16(c52, a5p + 32); store16(c53, a5p + 48)
    }

    /// Lanes l ..< l + 6, 16 value columns.
    @inline(never) static func pv6x1(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ d: Int,
                                     _ factor: UnsafePointer<Float>) {
        var c0 = load16(acc) * factor[0], c1 = load16(acc + d) * factor[1], c2 = load16(acc + 2 * d) * factor[2]
        var c3 = load16(acc + 3 * d) * factor[3], c4 = load16(acc + 4 * d) * factor[4]
        var c5 = load16(acc + 5 * d) * factor[5]
        for j in 0..<count {
            let x = load16(v + j * ldv), pj = p + j * L
            c0 = c0.addingProduct(V16(repeating: pj[0]), x); c1 = c1.addingProduct(V16(repeating: pj[1]), x)
            c2 = c2.addingProduct(V16(repeating: pj[2]), x); c3 = c3.addingProduct(V16(repeating: pj[3]), x)
            c4 = c4.addingProduct(V16(repeating: pj[4]), x); c5 = c5.addingProduct(V16(repeating: pj[5]), x)
        }
        store16(c0, acc); store16(c1, acc + d); store16(c2, acc + 2 * d); store16(c3, acc + 3 * d)
        store16(c4, acc + 4 * d); store16(c5, acc + 5 * d)
    }

    /// One lane, 64 value columns.
    @inline(never) static func pv1x4(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ factor: Float) {
        var c0 = load16(acc) * factor, c1 = load16(acc + 16) * factor
        var c2 = load16(acc + 32) * factor, c3 = load16(acc + 48) * factor
        for j in 0..<count {
            let row = v + j * ldv, w = V16(repeating: p[j * L])
            c0 = c0.addingProduct(w, load16(row)); c1 = c1.addingProduct(w, load16(row + 16))
            c2 = c2.addingProduct(w, load16(row + 32)); c3 = c3.addingProduct(w, load16(row + 48))
        }
        store16(c0, acc); store16(c1, acc + 16); store16(c2, acc + 32); store16(c3, acc + 48)
    }

    /// One lane, 16 value columns.
    @inline(never) static func pv1x1(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ factor: Float) {
        var c0 = load16(acc) * factor
        for j in 0..<count { c0 = c0.addingProduct(V16(repeating: p[j * L]), load16(v + j * ldv)) }
        store16(c0, acc)
    }
}

@inline(__always) func store16(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}
#endif
