// One key tile of tiled attention with online softmax for the 8-lane family (AVX2/FMA on x86-64, NEON through
// the SIMD types elsewhere): the same algorithm and data layout as the AVX-512 tile (AVX512Attention.swift), with
// register tiles sized for 16 vector registers.
//
// Layout: a work item's query lanes (query row × head of one KV group) are the vector dimension. The scaled
// queries come transposed, `qT[c · L + l]` (L = lane pitch, a multiple of 16, padding lanes zero); scores are
// written key-major, `scores[j · L + l]`, so the mask, running maximum, exponentials and sums run 8 lanes per
// instruction; the accumulators stay lane-major, `acc[l · d + c]`, so P·V is an outer product (one broadcast
// probability times 8 value elements). Keys and values arrive as Float32 rows.

enum WideTile8 {
    /// Lanes per vector.
    static let laneWidth = 8

    /// Online-softmax step over `count` keys for `lanes` query lanes.
    ///
    /// Lane l sees key j (0 ≤ j < count) iff `lo[l] ≤ j < hi[l]`; the padding lanes of the last vector holding a
    /// real lane (`lanes` up to a multiple of 8) must have `lo = hi = 0` and zero queries; lanes past it are not read.
    /// On entry `maxes`, `sums` (L each) and `acc` (lanes × d) hold the running state; on exit they include the tile.
    /// `scores` (count × L) and `correction` (L) are scratch. Requires d % 8 == 0 and L % 8 == 0.
    static func tile(qT: UnsafePointer<Float>, lanePitch L: Int, lanes: Int, headDim d: Int,
                     keys: UnsafePointer<Float>, keyStride: Int, values: UnsafePointer<Float>, valueStride: Int,
                     count: Int, lo: UnsafePointer<Int32>, hi: UnsafePointer<Int32>,
                     maxes: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                     acc: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                     correction: UnsafeMutablePointer<Float>) {
        guard count > 0, lanes > 0 else { return }
        // Lane vectors that hold real lanes (the rest of the pitch is padding).
        let used = (lanes + 7) / 8 * 8
        // S^T (count, used) = K (count, d) @ Q^T (d, used)
        var j = 0
        while j + 6 <= count {
            var v = 0
            while v + 16 <= used { scores6x2(qT + v, L, keys + j * keyStride, keyStride, d, scores + j * L + v); v += 16 }
            if v < used { scores6x1(qT + v, L, keys + j * keyStride, keyStride, d, scores + j * L + v) }
            j += 6
        }
        while j < count {
            var v = 0
            while v < used { scores1x1(qT + v, L, keys + j * keyStride, d, scores + j * L + v); v += 8 }
            j += 1
        }
        // Mask, running max, exponentials and sums, 8 lanes at a time: P^T (count, used) overwrites S^T.
        var v = 0
        while v < used {
            softmaxStep(scores + v, L, count, lo + v, hi + v, maxes + v, sums + v, correction + v)
            v += 8
        }
        // acc (lanes, d) = acc · correction + P (lanes, count) @ V (count, d)
        var l = 0
        while l + 6 <= lanes {
            var c = 0
            while c + 16 <= d {
                pv6x2(scores + l, L, values + c, valueStride, count, acc + l * d + c, d, correction + l)
                c += 16
            }
            if c < d { pv6x1(scores + l, L, values + c, valueStride, count, acc + l * d + c, d, correction + l) }
            l += 6
        }
        while l < lanes {
            var c = 0
            while c + 32 <= d {
                pv1x4(scores + l, L, values + c, valueStride, count, acc + l * d + c, correction[l])
                c += 32
            }
            while c < d { pv1x1(scores + l, L, values + c, valueStride, count, acc + l * d + c, correction[l]); c += 8 }
            l += 1
        }
    }

    // MARK: Scores

    /// S^T rows j ..< j + 6 for 16 lanes: 12 accumulators, two query vectors and one broadcast key element live.
    @inline(never) static func scores6x2(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ ldk: Int,
                                         _ d: Int, _ s: UnsafeMutablePointer<Float>) {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8(), a4 = F8(), a5 = F8()
        var b0 = F8(), b1 = F8(), b2 = F8(), b3 = F8(), b4 = F8(), b5 = F8()
        let k1 = k + ldk, k2 = k + 2 * ldk, k3 = k + 3 * ldk, k4 = k + 4 * ldk, k5 = k + 5 * ldk
        for c in 0..<d {
            let q0 = load8(qT + c * L), q1 = load8(qT + c * L + 8)
            var x = F8(repeating: k[c]); a0 = a0.addingProduct(q0, x); b0 = b0.addingProduct(q1, x)
            x = F8(repeating: k1[c]); a1 = a1.addingProduct(q0, x); b1 = b1.addingProduct(q1, x)
            x = F8(repeating: k2[c]); a2 = a2.addingProduct(q0, x); b2 = b2.addingProduct(q1, x)
            x = F8(repeating: k3[c]); a3 = a3.addingProduct(q0, x); b3 = b3.addingProduct(q1, x)
            x = F8(repeating: k4[c]); a4 = a4.addingProduct(q0, x); b4 = b4.addingProduct(q1, x)
            x = F8(repeating: k5[c]); a5 = a5.addingProduct(q0, x); b5 = b5.addingProduct(q1, x)
        }
        store8(a0, s); store8(b0, s + 8); store8(a1, s + L); store8(b1, s + L + 8)
        store8(a2, s + 2 * L); store8(b2, s + 2 * L + 8); store8(a3, s + 3 * L); store8(b3, s + 3 * L + 8)
        store8(a4, s + 4 * L); store8(b4, s + 4 * L + 8); store8(a5, s + 5 * L); store8(b5, s + 5 * L + 8)
    }

    /// S^T rows j ..< j + 6 for 8 lanes.
    @inline(never) static func scores6x1(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ ldk: Int,
                                         _ d: Int, _ s: UnsafeMutablePointer<Float>) {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8(), a4 = F8(), a5 = F8()
        let k1 = k + ldk, k2 = k + 2 * ldk, k3 = k + 3 * ldk, k4 = k + 4 * ldk, k5 = k + 5 * ldk
        for c in 0..<d {
            let q0 = load8(qT + c * L)
            a0 = a0.addingProduct(q0, F8(repeating: k[c])); a1 = a1.addingProduct(q0, F8(repeating: k1[c]))
            a2 = a2.addingProduct(q0, F8(repeating: k2[c])); a3 = a3.addingProduct(q0, F8(repeating: k3[c]))
            a4 = a4.addingProduct(q0, F8(repeating: k4[c])); a5 = a5.addingProduct(q0, F8(repeating: k5[c]))
        }
        store8(a0, s); store8(a1, s + L); store8(a2, s + 2 * L); store8(a3, s + 3 * L)
        store8(a4, s + 4 * L); store8(a5, s + 5 * L)
    }

    /// One S^T row for 8 lanes (two accumulators over c, added at the end).
    @inline(never) static func scores1x1(_ qT: UnsafePointer<Float>, _ L: Int, _ k: UnsafePointer<Float>, _ d: Int,
                                         _ s: UnsafeMutablePointer<Float>) {
        var a = F8(), b = F8()
        var c = 0
        while c + 2 <= d {
            a = a.addingProduct(load8(qT + c * L), F8(repeating: k[c]))
            b = b.addingProduct(load8(qT + (c + 1) * L), F8(repeating: k[c + 1]))
            c += 2
        }
        if c < d { a = a.addingProduct(load8(qT + c * L), F8(repeating: k[c])) }
        store8(a + b, s)
    }

    // MARK: Online softmax

    /// For 8 lanes (column `p` of the (count, L) score block): masks keys outside [lo, hi), raises the running max,
    /// replaces each score by e^(s − max) (0 where masked), rescales the running sum and adds the tile's; writes the
    /// factor e^(old max − new max) the accumulators need (0 while a lane has seen no key). Masks are all-ones /
    /// all-zeros integer lanes made with shifts and bitwise operations.
    @inline(never) static func softmaxStep(_ p: UnsafeMutablePointer<Float>, _ L: Int, _ count: Int,
                                           _ lo: UnsafePointer<Int32>, _ hi: UnsafePointer<Int32>,
                                           _ maxes: UnsafeMutablePointer<Float>, _ sums: UnsafeMutablePointer<Float>,
                                           _ correction: UnsafeMutablePointer<Float>) {
        let lo8 = UnsafeRawPointer(lo).loadUnaligned(as: SIMD8<Int32>.self)
        let hi8 = UnsafeRawPointer(hi).loadUnaligned(as: SIMD8<Int32>.self)
        let minusInfinity = F8(repeating: -.infinity)
        var tileMax = minusInfinity
        for j in 0..<count {
            let s = select(minusInfinity, where: outside(j, lo8, hi8), else: load8(p + j * L))
            store8(s, p + j * L)
            tileMax = vmax(tileMax, s)
        }
        let oldMax = load8(maxes)
        let newMax = vmax(oldMax, tileMax)
        store8(newMax, maxes)
        // A lane that has seen no key keeps −∞; its shift only has to be finite (its scores are all masked).
        let shift = vmax(newMax, F8(repeating: -.greatestFiniteMagnitude))
        let factor = keep(expF8(oldMax - shift), where: isFinite(oldMax))
        store8(factor, correction)
        var sum = F8()
        for j in 0..<count {
            let e = keep(expF8(load8(p + j * L) - shift), where: ~outside(j, lo8, hi8))
            store8(e, p + j * L)
            sum += e
        }
        store8(load8(sums) * factor + sum, sums)
    }

    /// All ones in lanes where j ∉ [lo, hi): the sign of (j − lo) | ~(j − hi), spread over the lane.
    @inline(__always) static func outside(_ j: Int, _ lo: SIMD8<Int32>, _ hi: SIMD8<Int32>) -> SIMD8<Int32> {
        let position = SIMD8<Int32>(repeating: Int32(j))
        return ((position &- lo) | ~(position &- hi)) &>> 31
    }

    /// All ones in lanes that are not −∞ (every other value reaching here is finite).
    @inline(__always) static func isFinite(_ x: F8) -> SIMD8<Int32> {
        let bits = unsafeBitCast(x, to: SIMD8<Int32>.self) ^ unsafeBitCast(F8(repeating: -.infinity), to: SIMD8<Int32>.self)
        return (bits | (0 &- bits)) &>> 31
    }

    @inline(__always) static func keep(_ x: F8, where mask: SIMD8<Int32>) -> F8 {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<Int32>.self) & mask, to: F8.self)
    }

    @inline(__always) static func select(_ a: F8, where mask: SIMD8<Int32>, else b: F8) -> F8 {
        let ai = unsafeBitCast(a, to: SIMD8<Int32>.self), bi = unsafeBitCast(b, to: SIMD8<Int32>.self)
        return unsafeBitCast((ai & mask) | (bi & ~mask), to: F8.self)
    }

    // MARK: P · V

    /// Lanes l ..< l + 6, 16 value columns: 12 accumulators, two value vectors and one broadcast probability live.
    @inline(never) static func pv6x2(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ d: Int,
                                     _ factor: UnsafePointer<Float>) {
        let a1p = acc + d, a2p = acc + 2 * d, a3p = acc + 3 * d, a4p = acc + 4 * d, a5p = acc + 5 * d
        var c00 = load8(acc) * factor[0], c01 = load8(acc + 8) * factor[0]
        var c10 = load8(a1p) * factor[1], c11 = load8(a1p + 8) * factor[1]
        var c20 = load8(a2p) * factor[2], c21 = load8(a2p + 8) * factor[2]
        var c30 = load8(a3p) * factor[3], c31 = load8(a3p + 8) * factor[3]
        var c40 = load8(a4p) * factor[4], c41 = load8(a4p + 8) * factor[4]
        var c50 = load8(a5p) * factor[5], c51 = load8(a5p + 8) * factor[5]
        for j in 0..<count {
            let row = v + j * ldv, pj = p + j * L
            let v0 = load8(row), v1 = load8(row + 8)
            var w = F8(repeating: pj[0]); c00 = c00.addingProduct(w, v0); c01 = c01.addingProduct(w, v1)
            w = F8(repeating: pj[1]); c10 = c10.addingProduct(w, v0); c11 = c11.addingProduct(w, v1)
            w = F8(repeating: pj[2]); c20 = c20.addingProduct(w, v0); c21 = c21.addingProduct(w, v1)
            w = F8(repeating: pj[3]); c30 = c30.addingProduct(w, v0); c31 = c31.addingProduct(w, v1)
            w = F8(repeating: pj[4]); c40 = c40.addingProduct(w, v0); c41 = c41.addingProduct(w, v1)
            w = F8(repeating: pj[5]); c50 = c50.addingProduct(w, v0); c51 = c51.addingProduct(w, v1)
        }
        store8(c00, acc); store8(c01, acc + 8); store8(c10, a1p); store8(c11, a1p + 8)
        store8(c20, a2p); store8(c21, a2p + 8); store8(c30, a3p); store8(c31, a3p + 8)
        store8(c40, a4p); store8(c41, a4p + 8); store8(c50, a5p); store8(c51, a5p + 8)
    }

    /// Lanes l ..< l + 6, 8 value columns.
    @inline(never) static func pv6x1(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ d: Int,
                                     _ factor: UnsafePointer<Float>) {
        var c0 = load8(acc) * factor[0], c1 = load8(acc + d) * factor[1], c2 = load8(acc + 2 * d) * factor[2]
        var c3 = load8(acc + 3 * d) * factor[3], c4 = load8(acc + 4 * d) * factor[4]
        var c5 = load8(acc + 5 * d) * factor[5]
        for j in 0..<count {
            let x = load8(v + j * ldv), pj = p + j * L
            c0 = c0.addingProduct(F8(repeating: pj[0]), x); c1 = c1.addingProduct(F8(repeating: pj[1]), x)
            c2 = c2.addingProduct(F8(repeating: pj[2]), x); c3 = c3.addingProduct(F8(repeating: pj[3]), x)
            c4 = c4.addingProduct(F8(repeating: pj[4]), x); c5 = c5.addingProduct(F8(repeating: pj[5]), x)
        }
        store8(c0, acc); store8(c1, acc + d); store8(c2, acc + 2 * d); store8(c3, acc + 3 * d)
        store8(c4, acc + 4 * d); store8(c5, acc + 5 * d)
    }

    /// One lane, 32 value columns.
    @inline(never) static func pv1x4(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ factor: Float) {
        var c0 = load8(acc) * factor, c1 = load8(acc + 8) * factor
        var c2 = load8(acc + 16) * factor, c3 = load8(acc + 24) * factor
        for j in 0..<count {
            let row = v + j * ldv, w = F8(repeating: p[j * L])
            c0 = c0.addingProduct(w, load8(row)); c1 = c1.addingProduct(w, load8(row + 8))
            c2 = c2.addingProduct(w, load8(row + 16)); c3 = c3.addingProduct(w, load8(row + 24))
        }
        store8(c0, acc); store8(c1, acc + 8); store8(c2, acc + 16); store8(c3, acc + 24)
    }

    /// One lane, 8 value columns.
    @inline(never) static func pv1x1(_ p: UnsafePointer<Float>, _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                                     _ count: Int, _ acc: UnsafeMutablePointer<Float>, _ factor: Float) {
        var c0 = load8(acc) * factor
        for j in 0..<count { c0 = c0.addingProduct(F8(repeating: p[j * L]), load8(v + j * ldv)) }
        store8(c0, acc)
    }
}
