// Matrix kernels for x86-64 CPUs with AVX-512 (the Zen 4 / Sapphire Rapids feature set: F, BW, DQ, VL, VBMI, VNNI,
// BF16 and GFNI). This module is compiled for that instruction set (Package.swift); the engine calls into it only
// after `CPUFeatures` has confirmed at run time that the CPU has every one of those features, so nothing here runs
// on other processors. On other architectures the module is empty.
//
// Every product in this file keeps the activations in full Float32: weights are widened to Float32 and multiplied
// with fused multiply-adds (AVX512Int8.swift holds the prefill kernels with 8-bit activations, used only when asked
// for). The 4-bit codes become floats with one permute from a 16-entry constant table per 16 codes (the permute reads
// only the low four bits of each lane, so the low nibbles need no mask and the high ones one shift), which replaces
// the mask and the integer-to-float conversion of the 8-lane kernels. (A per-block table with the scale folded in was
// tried: the compiler expands a constant vector times a broadcast into a chain of scalar operations, several times
// slower.)
//
// The helpers are `@inline(__always)` and the kernels live in this one file so that the SIMD conversions are
// specialised and inlined into the loops.
// The per-format row loops share a shape on purpose, as the 8-lane ones in the engine's SIMDKernels.swift do: each
// is a separate non-inlined function whose loads and conversions the compiler can schedule for that layout. The
// small helpers (f16 widening, horizontal sums) repeat the engine's because this module is compiled for another
// instruction set and cannot inline code from the engine, which depends on it.

#if arch(x86_64)
import _Builtin_intrinsics.intel

typealias V16 = SIMD16<Float>

// MARK: - Helpers

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}

/// 16 halfs widened (vcvtph2ps zmm). The intrinsic, not `V16(SIMD16<Float16>)`: the standard library leaves that
/// conversion out of line (a call, `vzeroupper` and the accumulators spilled per 16 halfs).
@inline(__always) func loadHalf16(_ raw: UnsafeRawPointer) -> V16 {
    _mm512_cvtph_ps(raw.loadUnaligned(as: __m256i.self))
}

/// 16 bfloat16 values widened by moving them into the upper half of each lane.
@inline(__always) func loadBF16x16(_ raw: UnsafeRawPointer) -> V16 {
    let h = raw.loadUnaligned(as: SIMD16<UInt16>.self)
    var w = SIMD16<UInt32>()
    for i in 0..<16 { w[i] = UInt32(h[i]) }
    return unsafeBitCast(w &<< 16, to: V16.self)
}

/// 16 signed bytes sign-extended and converted to floats (vpmovsxbd + vcvtdq2ps).
@inline(__always) func signedBytes16(_ raw: UnsafeRawPointer) -> V16 {
    let v = raw.loadUnaligned(as: SIMD16<Int8>.self)
    var i32 = SIMD16<Int32>()
    for i in 0..<16 { i32[i] = Int32(v[i]) }
    var f = V16()
    for i in 0..<16 { f[i] = Float(i32[i]) }
    return f
}

/// 16 bytes zero-extended into 32-bit lanes (vpmovzxbd): the low nibble of each byte sits in bits 0–3 of its lane.
@inline(__always) func byteLanes16(_ raw: UnsafeRawPointer) -> SIMD16<Int32> {
    let v = raw.loadUnaligned(as: SIMD16<UInt8>.self)
    var r = SIMD16<Int32>()
    for i in 0..<16 { r[i] = Int32(v[i]) }
    return r
}

/// table[index & 15] per lane (vpermps; only the low four bits of each index are used).
@inline(__always) func lookup(_ table: V16, _ index: SIMD16<Int32>) -> V16 {
    _mm512_permutexvar_ps(unsafeBitCast(index, to: __m512i.self), table)
}

/// The high nibble of each zero-extended byte lane as a float (vpsrld + vcvtdq2ps). The nibble kernels look the
/// low nibbles up (`lookup`, a shuffle) and convert the high ones, so the two halves use different execution units
/// (shuffle and conversion) beside the multiply-adds. A C model of the four-row Q4_0 loop, 1536 × 576 in L2, one
/// core, fastest of 2,000 calls: 20.0 G weights/s with both halves masked or shifted and converted, 21.6 with both
/// looked up, 22.4 split.
@inline(__always) func highNibbles(_ lanes: SIMD16<Int32>) -> V16 {
    _mm512_cvtepi32_ps(_mm512_srli_epi32(unsafeBitCast(lanes, to: __m512i.self), 4))
}

/// The f16 at `raw` as a Float, widened with integer operations (magnitude bits moved into the f32 exponent and
/// mantissa, rescaled by 2^112; exact for normal and subnormal halves). A single-f16 vcvtph2ps is lowered as a
/// vpinsrw into whatever register is free, which can be an accumulator, and then chains every block to the
/// previous block's arithmetic.
@inline(__always) func halfScale(_ raw: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    let h = UInt32(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    let magnitude = Float(bitPattern: (h & 0x7FFF) << 13) * 0x1p112
    return Float(bitPattern: magnitude.bitPattern | ((h & 0x8000) << 16))
}

/// The f16 values at `offset` of four blocks, widened together (one vcvtph2ps) into lanes 0–3; lanes 4–15 are 0.
/// The halves are gathered in an integer register, so the conversion writes a whole register (see `halfScale`).
@inline(__always) func halfs4(_ p0: UnsafeRawPointer, _ p1: UnsafeRawPointer, _ p2: UnsafeRawPointer,
                              _ p3: UnsafeRawPointer, offset: Int) -> V16 {
    let h = UInt64(p0.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        | UInt64(p1.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) << 16
        | UInt64(p2.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) << 32
        | UInt64(p3.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) << 48
    let four = _mm_cvtph_ps(_mm_cvtsi64_si128(Int64(bitPattern: h)))
    return _mm512_zextps128_ps512(four)
}

@inline(__always) func hsum(_ v: V16) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

/// Software prefetch of the cache line at `p` into all cache levels (LLVM's prefetch intrinsic: read, high
/// locality, data); a prefetch never faults, so running ahead past the end of a tensor is harmless. `_mm_prefetch` is
/// a macro the intrinsics module does not export.
@_silgen_name("llvm.prefetch.p0")
func llvmPrefetch(_ p: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ data: Int32)

@inline(__always) func prefetch(_ p: UnsafeRawPointer) { llvmPrefetch(p, 0, 3, 1) }

/// Bytes ahead of the current position a matvec row loop prefetches weights. Decode of SmolLM2 on the 2-core host,
/// alternating runs against no prefetch: Q4_0 +11–14%, Q4_1 +16%, Q8_0 +20–25%; 1,024 and 4,096 bytes gained less
/// than 2,048. F32 and the 2-byte formats (F16, BF16) stream at the memory rate and are left to the hardware
/// prefetcher: with its conversions inline, the F16 loop decoded SmolLM2 F16 at 68–77 tok/s with this prefetch
/// (2 KiB) and 69–73 with 8 KiB, against 85–94 without (alternating runs).
let prefetchDistance = 2048

/// 0, 1, …, 15.
@inline(__always) func codeRamp() -> V16 {
    V16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

// MARK: - Public interface

/// The packed row layouts the AVX-512 matvec reads (the engine maps its formats onto these).
public enum AVX512RowFormat: Sendable, Equatable {
    case f32, f16, bf16
    /// Blocks of 32: f16 scale + 32 signed bytes (34 bytes).
    case q8_0
    /// Blocks of 32: f16 scale + 16 bytes of nibbles, value d·(q − 8); low nibbles are elements 0–15 (18 bytes).
    case q4_0
    /// Groups of `group` (32, 64, 128): f16 scale, f16 minimum, group/2 bytes of nibbles, value d·q + m; low
    /// nibbles are the first half of the group.
    case q4Min(group: Int, blockBytes: Int)
    /// Per row: Float32 scale, then one signed byte per element, value scale·q.
    case int8(weightOffset: Int)
}

public enum AVX512Kernels {
    /// y[r] = row r · x for every r in `rows`, rows `rowBytes` apart from `base`, each of `n` elements.
    /// `xsum` holds the activation sums per group for the `q4Min` layouts (`xsum[g]` = Σ of x over group g) and is
    /// not read for the others.
    public static func matvecRows(_ format: AVX512RowFormat, _ base: UnsafeRawPointer, rowBytes: Int, columns n: Int,
                                  _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                  rows: Range<Int>) {
        switch format {
        case .f32:
            // One row at a time: four interleaved row streams (x loaded once for four rows) decoded SmolLM2 F32
            // 10–15% slower here, and an F16 four-row version 25% slower, in alternating runs.
            for r in rows { y[r] = f32Dot((base + r * rowBytes).assumingMemoryBound(to: Float.self), x, n) }
        case .f16:
            for r in rows { y[r] = f16Dot(base + r * rowBytes, x, n) }
        case .bf16:
            for r in rows { y[r] = bf16Dot(base + r * rowBytes, x, n) }
        case .q8_0:
            for r in rows { y[r] = q8_0Dot(base + r * rowBytes, x, n) }
        case .q4_0:
            // Four rows at a time; the last rows of the range one by one.
            var r = rows.lowerBound
            while r + 4 <= rows.upperBound {
                store4(q4_0Rows4(base + r * rowBytes, rowBytes: rowBytes, x, xsum, n), y + r, false)
                r += 4
            }
            while r < rows.upperBound { y[r] = q4_0Dot(base + r * rowBytes, x, n); r += 1 }
        case let .q4Min(group, blockBytes):
            if group == 32 {
                var r = rows.lowerBound
                while r + 4 <= rows.upperBound {
                    store4(q4Min32Rows4(base + r * rowBytes, rowBytes: rowBytes, x, xsum, n, blockBytes: blockBytes),
                           y + r, false)
                    r += 4
                }
                while r < rows.upperBound {
                    y[r] = q4Min32Dot(base + r * rowBytes, x, xsum, n, blockBytes: blockBytes)
                    r += 1
                }
            } else {
                for r in rows { y[r] = q4MinDot(base + r * rowBytes, x, xsum, n, group: group, blockBytes: blockBytes) }
            }
        case let .int8(offset):
            for r in rows { y[r] = int8Dot(base + r * rowBytes, x, n, weightOffset: offset) }
        }
    }

    /// Y[t, i] (+)= Σ_k W[i, k] · X[t, k] for `rows` Float32 weight rows (`ldw` floats apart) and `tokens` activation
    /// rows (`ldx` floats apart) over `n` columns; outputs are `ldy` floats apart per token. Runs a 4-row × 6-token
    /// register tile (24 accumulators of 16 lanes), with narrower tiles for the edges.
    public static func f32Block(_ w: UnsafePointer<Float>, ldw: Int, rows: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                tokens: Int, columns n: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int,
                                accumulate: Bool) {
        var t = 0
        while t + 6 <= tokens {
            var i = 0
            while i + 4 <= rows {
                tile4x6(w + i * ldw, ldw, x + t * ldx, ldx, n, y + t * ldy + i, ldy, accumulate)
                i += 4
            }
            while i < rows {
                tile1x6(w + i * ldw, x + t * ldx, ldx, n, y + t * ldy + i, ldy, accumulate)
                i += 1
            }
            t += 6
        }
        while t < tokens {
            var i = 0
            while i + 4 <= rows {
                tile4x1(w + i * ldw, ldw, x + t * ldx, n, y + t * ldy + i, accumulate)
                i += 4
            }
            while i < rows {
                let d = f32Dot(w + i * ldw, x + t * ldx, n)
                if accumulate { y[t * ldy + i] += d } else { y[t * ldy + i] = d }
                i += 1
            }
            t += 1
        }
    }

    // MARK: Row dot products

    @inline(never) static func f32Dot(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
        var i = 0
        while i + 64 <= n {
            a0 = a0.addingProduct(load16(w + i), load16(x + i))
            a1 = a1.addingProduct(load16(w + i + 16), load16(x + i + 16))
            a2 = a2.addingProduct(load16(w + i + 32), load16(x + i + 32))
            a3 = a3.addingProduct(load16(w + i + 48), load16(x + i + 48))
            i += 64
        }
        while i + 16 <= n { a0 = a0.addingProduct(load16(w + i), load16(x + i)); i += 16 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += w[i] * x[i]; i += 1 }
        return s
    }

    @inline(never) static func f16Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        halfWidthDot(w, x, n, widen: loadHalf16) { Float($0.loadUnaligned(fromByteOffset: $1, as: Float16.self)) }
    }

    @inline(never) static func bf16Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        halfWidthDot(w, x, n, widen: loadBF16x16) {
            Float(bitPattern: UInt32($0.loadUnaligned(fromByteOffset: $1, as: UInt16.self)) << 16)
        }
    }

    /// The row loop of the 2-byte formats, inlined into each format's function with its own widening (`widen`: 16
    /// elements at a byte address; `element`: one element at a byte offset, for the tail).
    @inline(__always) static func halfWidthDot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int,
                                               widen: (UnsafeRawPointer) -> V16,
                                               element: (UnsafeRawPointer, Int) -> Float) -> Float {
        var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
        var i = 0
        while i + 64 <= n {
            a0 = a0.addingProduct(widen(w + 2 * i), load16(x + i))
            a1 = a1.addingProduct(widen(w + 2 * i + 32), load16(x + i + 16))
            a2 = a2.addingProduct(widen(w + 2 * i + 64), load16(x + i + 32))
            a3 = a3.addingProduct(widen(w + 2 * i + 96), load16(x + i + 48))
            i += 64
        }
        while i + 16 <= n { a0 = a0.addingProduct(widen(w + 2 * i), load16(x + i)); i += 16 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += element(w, 2 * i) * x[i]; i += 1 }
        return s
    }

    /// Q8_0: Σ_b d_b Σ_i q_i x_i, two blocks per iteration on four accumulators.
    @inline(never) static func q8_0Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = V16(), a1 = V16()
        let blocks = n / 32
        var b = 0
        while b + 2 <= blocks {
            let p = w + b * 34, q = p + 34
            prefetch(p + prefetchDistance); prefetch(p + prefetchDistance + 64)
            let xb = x + b * 32
            let d = V16(repeating: halfScale(p))
            let e = V16(repeating: halfScale(q))
            let t = (signedBytes16(p + 2) * load16(xb)).addingProduct(signedBytes16(p + 18), load16(xb + 16))
            let u = (signedBytes16(q + 2) * load16(xb + 32)).addingProduct(signedBytes16(q + 18), load16(xb + 48))
            a0 = a0.addingProduct(t, d)
            a1 = a1.addingProduct(u, e)
            b += 2
        }
        if b < blocks {
            let p = w + b * 34
            let xb = x + b * 32
            let t = (signedBytes16(p + 2) * load16(xb)).addingProduct(signedBytes16(p + 18), load16(xb + 16))
            a0 = a0.addingProduct(t, V16(repeating: halfScale(p)))
        }
        return hsum(a0 + a1)
    }

    /// Q4_0: Σ_b d_b Σ_i (q_i − 8) x_i. The codes become floats (q − 8) with one permute from a constant table
    /// per 16 codes (the low four bits of each byte lane select the entry, so the low nibbles need no mask).
    @inline(never) static func q4_0Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = V16(), a1 = V16()
        let centred = codeRamp() - 8
        let blocks = n / 32
        var b = 0
        while b + 2 <= blocks {
            let p = w + b * 18, q = p + 18
            prefetch(p + prefetchDistance)
            let xb = x + b * 32
            let ip = byteLanes16(p + 2), iq = byteLanes16(q + 2)
            let t = (lookup(centred, ip) * load16(xb)).addingProduct(lookup(centred, ip &>> 4), load16(xb + 16))
            let u = (lookup(centred, iq) * load16(xb + 32)).addingProduct(lookup(centred, iq &>> 4), load16(xb + 48))
            a0 = a0.addingProduct(t, V16(repeating: halfScale(p)))
            a1 = a1.addingProduct(u, V16(repeating: halfScale(q)))
            b += 2
        }
        if b < blocks {
            let p = w + b * 18
            let xb = x + b * 32
            let ip = byteLanes16(p + 2)
            let t = (lookup(centred, ip) * load16(xb)).addingProduct(lookup(centred, ip &>> 4), load16(xb + 16))
            a0 = a0.addingProduct(t, V16(repeating: halfScale(p)))
        }
        return hsum(a0 + a1)
    }

    /// Blocks per pass of `nibbleRows4`: their scales fit a 1 KiB stack buffer.
    static let nibbleRowsChunk = 64

    /// Four rows `rowBytes` apart of a 32-element nibble layout: Q4_0 (`withMinimum` false; 2-byte header, value
    /// d·(q − 8)) or Q4_1 / INT4-g32 (4-byte header: scale, minimum; value d·q + m). Σ_b d_b Σ_i q_i x_i plus the
    /// offset term Σ_b o_b S_b with `xsum[b]` = S_b = Σ_{i∈b} x_i and o_b = −8·d_b (Q4_0) or m_b; taking the −8
    /// out of the codes rounds once per row in Float32 (relative 2⁻²⁴ of 8·|d·S|, far below the format's error).
    /// Per chunk of up to 64 blocks, a first pass widens the four rows' block headers together (one vcvtph2ps per
    /// block) into a stack buffer and sums the offset term; the second pass converts the codes and multiplies each
    /// row's partial by its scale with a multiply-add that broadcasts the scale from that buffer (an embedded
    /// broadcast, a load rather than a shuffle). The rows share the activation loads and the loop. Against one row
    /// at a time (two scalar header conversions, a broadcast and a reduction per row and block pair), matvec
    /// 1536 × 576 on one core, fastest of 1,000 calls: Q4_0 55.6 → 42.6 µs, Q4_1 67.4 → 47.5 µs (Zen 4).
    /// The low nibbles are looked up and the high ones converted (`highNibbles`); broadcasting the scales by
    /// permutes instead of from the buffer was slower.
    @inline(__always) static func nibbleRows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                              _ xsum: UnsafePointer<Float>, _ n: Int, blockBytes: Int,
                                              withMinimum: Bool) -> SIMD4<Float> {
        let blocks = n / 32
        let codes = withMinimum ? 4 : 2
        let r1 = rowBytes, r2 = 2 * rowBytes, r3 = 3 * rowBytes
        // The four rows are read side by side, so the stream's front is the next group of four rows: prefetch the
        // same block there, whole groups ahead, at least `prefetchDistance` bytes. A fixed distance from each row
        // lands inside the rows being read: Q4_0 matvec 16,384 × 4,096 on 2 threads, streaming from memory, fastest
        // of 20 calls, took 2.75–2.80 ms that way against 2.58–2.66 one row at a time, and 1.87–1.96 ms this way.
        let groupBytes = 4 * rowBytes
        let ahead = groupBytes * max(1, (prefetchDistance + groupBytes - 1) / groupBytes)
        let ramp = codeRamp()
        @inline(__always) func part(_ i: SIMD16<Int32>, _ xl: V16, _ xh: V16) -> V16 {
            (lookup(ramp, i) * xl).addingProduct(highNibbles(i), xh)
        }
        return withUnsafeTemporaryAllocation(of: SIMD4<Float>.self, capacity: nibbleRowsChunk) { buffer in
            let scales = buffer.baseAddress!
            let f = UnsafeRawPointer(scales).assumingMemoryBound(to: Float.self)
            var offsets = SIMD4<Float>()
            var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
            var start = 0
            while start < blocks {
                let count = min(nibbleRowsChunk, blocks - start)
                // Pass 1: the four rows' scales of this chunk, and the offset term.
                for k in 0..<count {
                    let b = start + k
                    let p = w + b * blockBytes
                    let d = halfs4(p, p + r1, p + r2, p + r3, offset: 0).lowHalf.lowHalf
                    scales[k] = d
                    let o = withMinimum ? halfs4(p, p + r1, p + r2, p + r3, offset: 2).lowHalf.lowHalf : d
                    offsets = offsets.addingProduct(o, SIMD4(repeating: xsum[b]))
                }
                // Pass 2: the codes, one block of each row per iteration.
                for k in 0..<count {
                    let b = start + k
                    let p = w + b * blockBytes
                    prefetch(p + ahead); prefetch(p + r1 + ahead); prefetch(p + r2 + ahead); prefetch(p + r3 + ahead)
                    let xl = load16(x + b * 32), xh = load16(x + b * 32 + 16)
                    let t0 = part(byteLanes16(p + codes), xl, xh)
                    let t1 = part(byteLanes16(p + r1 + codes), xl, xh)
                    let t2 = part(byteLanes16(p + r2 + codes), xl, xh)
                    let t3 = part(byteLanes16(p + r3 + codes), xl, xh)
                    a0 = a0.addingProduct(t0, V16(repeating: f[4 * k]))
                    a1 = a1.addingProduct(t1, V16(repeating: f[4 * k + 1]))
                    a2 = a2.addingProduct(t2, V16(repeating: f[4 * k + 2]))
                    a3 = a3.addingProduct(t3, V16(repeating: f[4 * k + 3]))
                }
                start += count
            }
            let sums = SIMD4(hsum(a0), hsum(a1), hsum(a2), hsum(a3))
            return withMinimum ? sums + offsets : sums.addingProduct(offsets, SIMD4(repeating: -8))
        }
    }

    @inline(never) static func q4_0Rows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                         _ xsum: UnsafePointer<Float>, _ n: Int) -> SIMD4<Float> {
        nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, blockBytes: 18, withMinimum: false)
    }

    @inline(never) static func q4Min32Rows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                            _ xsum: UnsafePointer<Float>, _ n: Int, blockBytes: Int) -> SIMD4<Float> {
        nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, blockBytes: blockBytes, withMinimum: true)
    }

    /// Q4_1 / INT4-g32: Σ_g d_g Σ_i q_i x_i + Σ_g m_g S_g with `xsum[g]` = S_g = Σ_{i∈g} x_i; two blocks per
    /// iteration.
    @inline(never) static func q4Min32Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                          _ n: Int, blockBytes: Int) -> Float {
        var a0 = V16(), a1 = V16()
        var mins: Float = 0, mins2: Float = 0
        let ramp = codeRamp()
        let blocks = n / 32
        var b = 0
        while b + 2 <= blocks {
            let p = w + b * blockBytes, q = p + blockBytes
            prefetch(p + prefetchDistance)
            let xb = x + b * 32
            let dp = halfScale(p), mp = halfScale(p, 2), dq = halfScale(q), mq = halfScale(q, 2)
            let ip = byteLanes16(p + 4), iq = byteLanes16(q + 4)
            let t = (lookup(ramp, ip) * load16(xb)).addingProduct(lookup(ramp, ip &>> 4), load16(xb + 16))
            let u = (lookup(ramp, iq) * load16(xb + 32)).addingProduct(lookup(ramp, iq &>> 4), load16(xb + 48))
            a0 = a0.addingProduct(t, V16(repeating: dp))
            a1 = a1.addingProduct(u, V16(repeating: dq))
            mins = mins.addingProduct(mp, xsum[b])
            mins2 = mins2.addingProduct(mq, xsum[b + 1])
            b += 2
        }
        if b < blocks {
            let p = w + b * blockBytes
            let xb = x + b * 32
            let dp = halfScale(p), mp = halfScale(p, 2)
            let ip = byteLanes16(p + 4)
            let t = (lookup(ramp, ip) * load16(xb)).addingProduct(lookup(ramp, ip &>> 4), load16(xb + 16))
            a0 = a0.addingProduct(t, V16(repeating: dp))
            mins = mins.addingProduct(mp, xsum[b])
        }
        return hsum(a0 + a1) + (mins + mins2)
    }

    /// INT4-g64 / g128: as `q4Min32Dot`, 32 elements (16 code bytes) per step within a group.
    @inline(never) static func q4MinDot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                        _ n: Int, group: Int, blockBytes: Int) -> Float {
        var a0 = V16(), a1 = V16()
        var mins: Float = 0
        let ramp = codeRamp()
        let half = group / 2
        let groups = n / group
        for g in 0..<groups {
            let p = w + g * blockBytes
            prefetch(p + prefetchDistance)
            if blockBytes > 64 { prefetch(p + prefetchDistance + 64) }
            let xb = x + g * group
            let d = halfScale(p), m = halfScale(p, 2)
            var t0 = V16(), t1 = V16()
            var k = 0
            while k < half {
                let i0 = byteLanes16(p + 4 + k)
                t0 = t0.addingProduct(lookup(ramp, i0), load16(xb + k))
                t1 = t1.addingProduct(highNibbles(i0), load16(xb + half + k))
                k += 16
            }
            a0 = a0.addingProduct(t0, V16(repeating: d))
            a1 = a1.addingProduct(t1, V16(repeating: d))
            mins = mins.addingProduct(m, xsum[g])
        }
        return hsum(a0 + a1) + mins
    }

    /// INT8 per channel: scale · Σ_i q_i x_i.
    @inline(never) static func int8Dot(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int,
                                       weightOffset: Int) -> Float {
        let scale = Float(bitPattern: w.loadUnaligned(as: UInt32.self))
        let q = w + weightOffset
        var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
        var i = 0
        while i + 64 <= n {
            prefetch(q + i + prefetchDistance)
            a0 = a0.addingProduct(signedBytes16(q + i), load16(x + i))
            a1 = a1.addingProduct(signedBytes16(q + i + 16), load16(x + i + 16))
            a2 = a2.addingProduct(signedBytes16(q + i + 32), load16(x + i + 32))
            a3 = a3.addingProduct(signedBytes16(q + i + 48), load16(x + i + 48))
            i += 64
        }
        while i + 16 <= n { a0 = a0.addingProduct(signedBytes16(q + i), load16(x + i)); i += 16 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += Float(q.load(fromByteOffset: i, as: Int8.self)) * x[i]; i += 1 }
        return s * scale
    }

    // MARK: Matmul tiles

    /// Y[0..<6 tokens, 0..<4 rows]: 24 accumulators + 4 weight vectors + 1 activation vector of the 32 registers.
    @inline(never) static func tile4x6(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                                       _ n: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ accumulate: Bool) {
        var c00 = V16(), c01 = V16(), c02 = V16(), c03 = V16()
        var c10 = V16(), c11 = V16(), c12 = V16(), c13 = V16()
        var c20 = V16(), c21 = V16(), c22 = V16(), c23 = V16()
        var c30 = V16(), c31 = V16(), c32 = V16(), c33 = V16()
        var c40 = V16(), c41 = V16(), c42 = V16(), c43 = V16()
        var c50 = V16(), c51 = V16(), c52 = V16(), c53 = V16()
        let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        var k = 0
        while k + 16 <= n {
            let a0 = load16(w + k), a1 = load16(w1 + k), a2 = load16(w2 + k), a3 = load16(w3 + k)
            var b = load16(x + k)
            c00 = c00.addingProduct(a0, b); c01 = c01.addingProduct(a1, b)
            c02 = c02.addingProduct(a2, b); c03 = c03.addingProduct(a3, b)
            b = load16(x1 + k)
            c10 = c10.addingProduct(a0, b); c11 = c11.addingProduct(a1, b)
            c12 = c12.addingProduct(a2, b); c13 = c13.addingProduct(a3, b)
            b = load16(x2 + k)
            c20 = c20.addingProduct(a0, b); c21 = c21.addingProduct(a1, b)
            c22 = c22.addingProduct(a2, b); c23 = c23.addingProduct(a3, b)
            b = load16(x3 + k)
            c30 = c30.addingProduct(a0, b); c31 = c31.addingProduct(a1, b)
            c32 = c32.addingProduct(a2, b); c33 = c33.addingProduct(a3, b)
            b = load16(x4 + k)
            c40 = c40.addingProduct(a0, b); c41 = c41.addingProduct(a1, b)
            c42 = c42.addingProduct(a2, b); c43 = c43.addingProduct(a3, b)
            b = load16(x5 + k)
            c50 = c50.addingProduct(a0, b); c51 = c51.addingProduct(a1, b)
            c52 = c52.addingProduct(a2, b); c53 = c53.addingProduct(a3, b)
            k += 16
        }
        var s = (hsum4(c00, c01, c02, c03), hsum4(c10, c11, c12, c13), hsum4(c20, c21, c22, c23),
                 hsum4(c30, c31, c32, c33), hsum4(c40, c41, c42, c43), hsum4(c50, c51, c52, c53))
        while k < n {
            let a = SIMD4<Float>(w[k], w1[k], w2[k], w3[k])
            s.0 += a * x[k]; s.1 += a * x1[k]; s.2 += a * x2[k]
            s.3 += a * x3[k]; s.4 += a * x4[k]; s.5 += a * x5[k]
            k += 1
        }
        store4(s.0, y, accumulate); store4(s.1, y + ldy, accumulate); store4(s.2, y + 2 * ldy, accumulate)
        store4(s.3, y + 3 * ldy, accumulate); store4(s.4, y + 4 * ldy, accumulate); store4(s.5, y + 5 * ldy, accumulate)
    }

    /// One row against six tokens.
    @inline(never) static func tile1x6(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
                                       _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ accumulate: Bool) {
        var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16(), c4 = V16(), c5 = V16()
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        var k = 0
        while k + 16 <= n {
            let a = load16(w + k)
            c0 = c0.addingProduct(a, load16(x + k)); c1 = c1.addingProduct(a, load16(x1 + k))
            c2 = c2.addingProduct(a, load16(x2 + k)); c3 = c3.addingProduct(a, load16(x3 + k))
            c4 = c4.addingProduct(a, load16(x4 + k)); c5 = c5.addingProduct(a, load16(x5 + k))
            k += 16
        }
        var s = (hsum(c0), hsum(c1), hsum(c2), hsum(c3), hsum(c4), hsum(c5))
        while k < n {
            s.0 += w[k] * x[k]; s.1 += w[k] * x1[k]; s.2 += w[k] * x2[k]
            s.3 += w[k] * x3[k]; s.4 += w[k] * x4[k]; s.5 += w[k] * x5[k]
            k += 1
        }
        if accumulate {
            y[0] += s.0; y[ldy] += s.1; y[2 * ldy] += s.2; y[3 * ldy] += s.3; y[4 * ldy] += s.4; y[5 * ldy] += s.5
        } else {
            y[0] = s.0; y[ldy] = s.1; y[2 * ldy] = s.2; y[3 * ldy] = s.3; y[4 * ldy] = s.4; y[5 * ldy] = s.5
        }
    }

    /// Four rows against one token.
    @inline(never) static func tile4x1(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>, _ n: Int,
                                       _ y: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16()
        let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
        var k = 0
        while k + 16 <= n {
            let b = load16(x + k)
            c0 = c0.addingProduct(load16(w + k), b); c1 = c1.addingProduct(load16(w1 + k), b)
            c2 = c2.addingProduct(load16(w2 + k), b); c3 = c3.addingProduct(load16(w3 + k), b)
            k += 16
        }
        var s = hsum4(c0, c1, c2, c3)
        while k < n {
            s += SIMD4<Float>(w[k], w1[k], w2[k], w3[k]) * x[k]
            k += 1
        }
        store4(s, y, accumulate)
    }

    /// (Σ a, Σ b, Σ c, Σ d) with the halves of the four vectors added together before the final lanes.
    @inline(__always) static func hsum4(_ a: V16, _ b: V16, _ c: V16, _ d: V16) -> SIMD4<Float> {
        let a8 = a.lowHalf + a.highHalf, b8 = b.lowHalf + b.highHalf
        let c8 = c.lowHalf + c.highHalf, d8 = d.lowHalf + d.highHalf
        let a4 = a8.lowHalf + a8.highHalf, b4 = b8.lowHalf + b8.highHalf
        let c4 = c8.lowHalf + c8.highHalf, d4 = d8.lowHalf + d8.highHalf
        // Transpose-add: lanes of (a4, b4, c4, d4) summed column-wise.
        let ab = SIMD4<Float>(a4[0] + a4[1], b4[0] + b4[1], c4[0] + c4[1], d4[0] + d4[1])
        let cd = SIMD4<Float>(a4[2] + a4[3], b4[2] + b4[3], c4[2] + c4[3], d4[2] + d4[3])
        return ab + cd
    }

    @inline(__always) static func store4(_ v: SIMD4<Float>, _ y: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        if accumulate {
            y[0] += v[0]; y[1] += v[1]; y[2] += v[2]; y[3] += v[3]
        } else {
            y[0] = v[0]; y[1] = v[1]; y[2] = v[2]; y[3] = v[3]
        }
    }
}
#endif
