// The integer matmul for prefill with 8-bit activations (the engine's IntegerCodes.swift explains the arithmetic).
//
// Weights come as an integer panel: 32 rows, and per block of 32 columns their unsigned codes grouped four columns
// at a time, `[group g (8)][row i (32)][column 4g ..< 4g + 4]` (1,024 bytes: two vectors of 16 rows per group),
// then the 32 rows' scales and the 32 rows' offsets as Float32 (256 bytes). One `vpdpbusd` multiplies a vector of
// 16 rows' four codes with one token's four activation codes broadcast to every lane and adds the four products
// into each row's 32-bit sum, so a block is 8 such steps per 16 rows and token, then one conversion and two
// multiply-adds fold the block's integer sum into the Float32 result with the row and token scales:
//
//     y += scale_w · (s · Σ u q) + offset_w · (s · Σ q)
//
// Against the Float32 panel tile (32 multiply-adds per 16 rows, token and block) that is 11 instructions: a
// 32 × 576 panel over 480 tokens ran at 171 G multiply-adds/s on one core against 59 for the Float32 tile.

#if arch(x86_64)
import _Builtin_intrinsics.intel

typealias I16 = SIMD16<Int32>

extension AVX512Kernels {
    /// Bytes of one block of 32 columns of an integer panel: codes, then row scales and row offsets.
    public static let int8PanelBlockBytes = 32 * 32 + 2 * 32 * 4

    /// Rounds rows `tokens` of `x` (`n` floats each, n a multiple of 32) to 8 bits per block of 32: codes at
    /// `codes + t · n`, per block the scale max |x| / 127 at `scales + t · n/32 + b` and scale · Σ codes at `sums`.
    /// Bit for bit the engine's `Int8Activations.quantize` (x times the inverse scale, rounded to nearest even).
    public static func quantizeActivations(_ x: UnsafePointer<Float>, columns n: Int, tokens: Range<Int>,
                                           codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                                           sums: UnsafeMutablePointer<Float>) {
        let blocks = n / 32
        let magnitude = SIMD16<UInt32>(repeating: 0x7FFF_FFFF)
        for t in tokens {
            for b in 0..<blocks {
                let p = x + t * n + 32 * b
                let lo = load16(p), hi = load16(p + 16)
                let a1 = unsafeBitCast(unsafeBitCast(lo, to: SIMD16<UInt32>.self) & magnitude, to: V16.self)
                let a2 = unsafeBitCast(unsafeBitCast(hi, to: SIMD16<UInt32>.self) & magnitude, to: V16.self)
                let amax = laneMax(a1, a2)                // max |x| over the block
                let d = amax / 127
                let inverse: Float = d != 0 ? 1 / d : 0
                let scale = V16(repeating: inverse)
                let q0 = _mm512_cvtps_epi32(lo * scale), q1 = _mm512_cvtps_epi32(hi * scale)
                let out = UnsafeMutableRawPointer(codes + t * n + 32 * b)
                out.storeBytes(of: _mm512_cvtepi32_epi8(q0), as: __m128i.self)
                out.storeBytes(of: _mm512_cvtepi32_epi8(q1), toByteOffset: 16, as: __m128i.self)
                let sum = laneSum(unsafeBitCast(q0, to: I16.self) &+ unsafeBitCast(q1, to: I16.self))
                scales[t * blocks + b] = d
                sums[t * blocks + b] = d * Float(sum)
            }
        }
    }

    /// Largest lane of max(a, b), by halves with the max instructions (the intrinsic's reduction compiled to a loop
    /// over the lanes through the stack, and the standard library's `pointwiseMax` to generic calls).
    @inline(__always) static func laneMax(_ a: V16, _ b: V16) -> Float {
        let m = _mm512_max_ps(a, b)
        let h = _mm256_max_ps(m.lowHalf, m.highHalf)
        let q = _mm_max_ps(h.lowHalf, h.highHalf)
        return max(max(q[0], q[1]), max(q[2], q[3]))
    }

    /// Sum of the lanes, by halves.
    @inline(__always) static func laneSum(_ v: I16) -> Int32 {
        let a = v.lowHalf &+ v.highHalf
        let b = a.lowHalf &+ a.highHalf
        let c = b.lowHalf &+ b.highHalf
        return c[0] &+ c[1]
    }

    /// Y[t, 0 ..< rows] = panel rows · X[t] for `tokens` tokens from their 8-bit codes (`codes + t · 32·blocks`),
    /// scales and scaled sums (`blocks` per token); outputs `ldy` floats apart per token. A partial panel (the
    /// matrix's last rows, zero-padded) runs in full tiles into a buffer and only its valid rows are written.
    public static func int8PanelMatmul(_ panel: UnsafeRawPointer, blocks: Int, codes: UnsafePointer<Int8>,
                                       scales: UnsafePointer<Float>, sums: UnsafePointer<Float>, tokens: Int,
                                       _ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Int) {
        let a = Int8Tokens(codes: UnsafeRawPointer(codes), scales: scales, sums: sums, blocks: blocks)
        if rows == 32 {
            int8PanelTokens(panel, a, 0..<tokens, y, ldy)
            return
        }
        partialPanel(tokens: tokens, step: 6, rows: rows, y, ldy: ldy) { t, m, tmp in
            int8PanelTokens(panel, a, t..<(t + m), tmp, 32)
        }
    }

    /// One batch's rounded activations.
    struct Int8Tokens {
        let codes: UnsafeRawPointer
        let scales: UnsafePointer<Float>
        let sums: UnsafePointer<Float>
        let blocks: Int
        /// Bytes (codes) per token.
        var stride: Int { 32 * blocks }
    }

    /// Tokens `range` of `a` against one full panel; token `range.lowerBound + j` goes to `y + j · ldy`.
    static func int8PanelTokens(_ panel: UnsafeRawPointer, _ a: Int8Tokens, _ range: Range<Int>,
                                _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var t = range.lowerBound
        while t + 6 <= range.upperBound { int8Panel32x6(panel, a, t, y + (t - range.lowerBound) * ldy, ldy); t += 6 }
        while t < range.upperBound { int8Panel32x1(panel, a, t, y + (t - range.lowerBound) * ldy); t += 1 }
    }

    /// acc += Σ over each lane's four bytes of `w` (unsigned) times the four bytes of `x` (signed).
    @inline(__always) static func dot4(_ acc: I16, _ w: __m512i, _ x: Int32) -> I16 {
        unsafeBitCast(_mm512_dpbusd_epi32(unsafeBitCast(acc, to: __m512i.self), w,
                                          unsafeBitCast(I16(repeating: x), to: __m512i.self)), to: I16.self)
    }

    /// f += scale_w · (s · Σ u q) + offset_w · (s · Σ q) for one token's block sums `acc` of 16 rows.
    @inline(__always) static func fold(_ f: inout V16, _ acc: I16, _ scale: V16, _ offset: V16, _ s: Float,
                                       _ sum: Float) {
        let products = _mm512_cvtepi32_ps(unsafeBitCast(acc, to: __m512i.self))
        f = f.addingProduct(products * V16(repeating: s), scale).addingProduct(offset, V16(repeating: sum))
    }

    /// 32 rows × 6 tokens: per block, 12 integer sums (two row vectors per token) over 8 column groups, then
    /// folded into 12 Float32 accumulators.
    @inline(never) static func int8Panel32x6(_ panel: UnsafeRawPointer, _ a: Int8Tokens, _ t: Int,
                                              _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var f00 = V16(), f01 = V16(), f10 = V16(), f11 = V16(), f20 = V16(), f21 = V16()
        var f30 = V16(), f31 = V16(), f40 = V16(), f41 = V16(), f50 = V16(), f51 = V16()
        let stride = a.stride
        for b in 0..<a.blocks {
            let block = panel + b * int8PanelBlockBytes
            let x = a.codes + t * stride + 32 * b
            var a00 = I16(), a01 = I16(), a10 = I16(), a11 = I16(), a20 = I16(), a21 = I16()
            var a30 = I16(), a31 = I16(), a40 = I16(), a41 = I16(), a50 = I16(), a51 = I16()
            for g in 0..<8 {
                let w0 = (block + 128 * g).loadUnaligned(as: __m512i.self)
                let w1 = (block + 128 * g + 64).loadUnaligned(as: __m512i.self)
                var q = x.loadUnaligned(fromByteOffset: 4 * g, as: Int32.self)
                a00 = dot4(a00, w0, q); a01 = dot4(a01, w1, q)
                q = x.loadUnaligned(fromByteOffset: stride + 4 * g, as: Int32.self)
                a10 = dot4(a10, w0, q); a11 = dot4(a11, w1, q)
                q = x.loadUnaligned(fromByteOffset: 2 * stride + 4 * g, as: Int32.self)
                a20 = dot4(a20, w0, q); a21 = dot4(a21, w1, q)
                q = x.loadUnaligned(fromByteOffset: 3 * stride + 4 * g, as: Int32.self)
                a30 = dot4(a30, w0, q); a31 = dot4(a31, w1, q)
                q = x.loadUnaligned(fromByteOffset: 4 * stride + 4 * g, as: Int32.self)
                a40 = dot4(a40, w0, q); a41 = dot4(a41, w1, q)
                q = x.loadUnaligned(fromByteOffset: 5 * stride + 4 * g, as: Int32.self)
                a50 = dot4(a50, w0, q); a51 = dot4(a51, w1, q)
            }
            let rowScales = (block + 1024).assumingMemoryBound(to: Float.self)
            let s0 = load16(rowScales), s1 = load16(rowScales + 16)
            let o0 = load16(rowScales + 32), o1 = load16(rowScales + 48)
            let ts = a.scales + t * a.blocks + b, tq = a.sums + t * a.blocks + b
            let l = a.blocks
            fold(&f00, a00, s0, o0, ts[0], tq[0]); fold(&f01, a01, s1, o1, ts[0], tq[0])
            fold(&f10, a10, s0, o0, ts[l], tq[l]); fold(&f11, a11, s1, o1, ts[l], tq[l])
            fold(&f20, a20, s0, o0, ts[2 * l], tq[2 * l]); fold(&f21, a21, s1, o1, ts[2 * l], tq[2 * l])
            fold(&f30, a30, s0, o0, ts[3 * l], tq[3 * l]); fold(&f31, a31, s1, o1, ts[3 * l], tq[3 * l])
            fold(&f40, a40, s0, o0, ts[4 * l], tq[4 * l]); fold(&f41, a41, s1, o1, ts[4 * l], tq[4 * l])
            fold(&f50, a50, s0, o0, ts[5 * l], tq[5 * l]); fold(&f51, a51, s1, o1, ts[5 * l], tq[5 * l])
        }
        store16(f00, y); store16(f01, y + 16); store16(f10, y + ldy); store16(f11, y + ldy + 16)
        store16(f20, y + 2 * ldy); store16(f21, y + 2 * ldy + 16); store16(f30, y + 3 * ldy)
        store16(f31, y + 3 * ldy + 16); store16(f40, y + 4 * ldy); store16(f41, y + 4 * ldy + 16)
        store16(f50, y + 5 * ldy); store16(f51, y + 5 * ldy + 16)
    }

    /// 32 rows × 1 token (the tokens past the last whole tile of 6).
    @inline(never) static func int8Panel32x1(_ panel: UnsafeRawPointer, _ a: Int8Tokens, _ t: Int,
                                              _ y: UnsafeMutablePointer<Float>) {
        var f0 = V16(), f1 = V16()
        for b in 0..<a.blocks {
            let block = panel + b * int8PanelBlockBytes
            let x = a.codes + t * a.stride + 32 * b
            var a0 = I16(), a1 = I16()
            for g in 0..<8 {
                let q = x.loadUnaligned(fromByteOffset: 4 * g, as: Int32.self)
                a0 = dot4(a0, (block + 128 * g).loadUnaligned(as: __m512i.self), q)
                a1 = dot4(a1, (block + 128 * g + 64).loadUnaligned(as: __m512i.self), q)
            }
            let rowScales = (block + 1024).assumingMemoryBound(to: Float.self)
            let s = a.scales[t * a.blocks + b], sum = a.sums[t * a.blocks + b]
            fold(&f0, a0, load16(rowScales), load16(rowScales + 32), s, sum)
            fold(&f1, a1, load16(rowScales + 16), load16(rowScales + 48), s, sum)
        }
        store16(f0, y); store16(f1, y + 16)
    }
}
#endif
