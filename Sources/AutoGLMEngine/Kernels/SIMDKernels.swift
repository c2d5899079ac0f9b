// All SIMD code of the engine: load/convert helpers, packed-row dot products (matvec inner loops),
// SIMD dequantisation, the register-tiled Float32 micro-kernels, the row loops of matvec/matmul, and the
// element-wise helpers of the forward pass.
//
// The standard library's SIMD conversions (SIMD8<Int32>(truncatingIfNeeded:), SIMD8<Float>(SIMD8<Int32>),
// SIMD8<Float>(SIMD8<Float16>)) are generic code whose specialisations the inliner drops in larger loops, leaving a
// call (with vzeroupper and spilled accumulators) per use. The kernels use the lane-by-lane helpers below instead,
// which compile to vpmovzxbd/vpmovsxbd, vcvtdq2ps and vcvtph2ps on ymm registers wherever they are inlined (the
// panel and attention tiles in their own files use them too); check with objdump after compiler upgrades.

import Foundation
#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

// MARK: - Helpers

typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

// The widening helpers below avoid the standard library's generic conversions (`SIMD8<Int32>(truncatingIfNeeded:)`,
// `SIMD8<Float>(SIMD8<Int32>)`): their specialisations are not reliably inlined and then cost two out-of-line
// calls (with vzeroupper) per 8 values. Lane-by-lane construction from concrete scalar conversions compiles to one
// vpmovzxbd/vpmovsxbd and one vcvtdq2ps (check with objdump after compiler upgrades).

/// Zero-extends 8 bytes into 32-bit lanes.
@inline(__always) func widen(_ v: SIMD8<UInt8>) -> SIMD8<Int32> {
    SIMD8<Int32>(Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3]),
                 Int32(v[4]), Int32(v[5]), Int32(v[6]), Int32(v[7]))
}

/// Sign-extends 8 bytes into 32-bit lanes.
@inline(__always) func widen(_ v: SIMD8<Int8>) -> SIMD8<Int32> {
    SIMD8<Int32>(Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3]),
                 Int32(v[4]), Int32(v[5]), Int32(v[6]), Int32(v[7]))
}

/// Converts 32-bit lanes to floats (exact for the small codes used here).
@inline(__always) func smallIntsToFloats(_ i: SIMD8<Int32>) -> F8 {
    F8(Float(i[0]), Float(i[1]), Float(i[2]), Float(i[3]), Float(i[4]), Float(i[5]), Float(i[6]), Float(i[7]))
}

/// Zero-extends 8 bytes and converts them to floats.
@inline(__always) func floats(_ v: SIMD8<UInt8>) -> F8 {
    smallIntsToFloats(widen(v))
}

/// Sign-extends 8 bytes and converts them to floats.
@inline(__always) func floats(_ v: SIMD8<Int8>) -> F8 {
    smallIntsToFloats(widen(v))
}

/// Widens 8 halfs to floats, lane by lane from scalar conversions: compiles to one vcvtph2ps. The standard
/// library's `SIMD8<Float>(SIMD8<Float16>)` is a generic specialisation that the inliner drops in larger loops,
/// leaving an out-of-line call (with vzeroupper and every live accumulator spilled) per use.
@inline(__always) func floats(_ h: SIMD8<Float16>) -> F8 {
    F8(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
}

/// Loads 8 halfs and widens them (vcvtph2ps).
@inline(__always) func loadHalf8(_ raw: UnsafeRawPointer) -> F8 {
    floats(raw.loadUnaligned(as: SIMD8<Float16>.self))
}

/// Loads 8 bfloat16 values and widens them (shift into the upper half of each lane).
@inline(__always) func loadBF16x8(_ raw: UnsafeRawPointer) -> F8 {
    let h = raw.loadUnaligned(as: SIMD8<UInt16>.self)
    let w = SIMD8<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
                          UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7]))
    return unsafeBitCast(w &<< 16, to: F8.self)
}

/// Pairwise horizontal sum.
@inline(__always) func hsum(_ v: F8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
}

/// Lane-wise maximum (compiles to vmaxps; the standard library's pointwiseMax is not vectorised).
@inline(__always) func vmax(_ a: F8, _ b: F8) -> F8 {
    var r = a
    r.replace(with: b, where: b .> a)
    return r
}

/// Lane-wise minimum (vminps).
@inline(__always) func vmin(_ a: F8, _ b: F8) -> F8 {
    var r = a
    r.replace(with: b, where: b .< a)
    return r
}

/// The horizontal sums of four vectors: pairwise adds of interleaved halves, four results in one vector.
@inline(__always) func hsum4(_ a: F8, _ b: F8, _ c: F8, _ d: F8) -> SIMD4<Float> {
    let ab = F8(a[0], a[1], b[0], b[1], a[4], a[5], b[4], b[5]) + F8(a[2], a[3], b[2], b[3], a[6], a[7], b[6], b[7])
    let cd = F8(c[0], c[1], d[0], d[1], c[4], c[5], d[4], d[5]) + F8(c[2], c[3], d[2], d[3], c[6], c[7], d[6], d[7])
    let e = F8(ab[0], cd[0], ab[2], cd[2], ab[4], cd[4], ab[6], cd[6]) + F8(ab[1], cd[1], ab[3], cd[3], ab[5], cd[5], ab[7], cd[7])
    // e = (a01+a23, c.., b.., d.., a45+a67, c.., b.., d..) lane pairs: fold the halves.
    let f = e.lowHalf + e.highHalf
    return SIMD4<Float>(f[0], f[2], f[1], f[3])
}

@inline(__always) func hmax(_ v: F8) -> Float {
    var m = v[0]
    for i in 1..<8 { m = Swift.max(m, v[i]) }
    return m
}

/// Widens the first four f16 values at `raw` (a block's scale and, where present, minimum) with one vcvtph2ps
/// from memory. Every block is at least 18 bytes, so reading 8 stays inside it. Loading a single f16 instead
/// compiles to vpinsrw into an arbitrary register, which can chain each block to the previous block's accumulator.
@inline(__always) func blockHeader(_ raw: UnsafeRawPointer) -> SIMD4<Float> {
    let h = raw.loadUnaligned(as: SIMD4<Float16>.self)
    return SIMD4<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]))
}

/// A block's f16 scale (its first two bytes) in all 8 lanes. The half is loaded into an integer register and
/// masked there with `mask` (`KernelConstants.halfBits`, all ones, read once by the caller: an access inside the
/// loop keeps its lazy-initialisation check there) before one vmovd and vcvtph2ps, which write whole registers.
/// Converted straight from memory, a single half is lowered as vpinsrw into whichever register the compiler picks,
/// a live accumulator included, which chained each block's scale to the previous iteration's last multiply-add.
@inline(__always) func broadcastScale(_ raw: UnsafeRawPointer, _ mask: UInt16) -> F8 {
    F8(repeating: Float(Float16(bitPattern: raw.loadUnaligned(as: UInt16.self) & mask)))
}

/// Values the kernels read at run time so that the optimiser cannot see them and rewrite the operations that use
/// them into slower forms (see the uses). Never written. Both are SIMD values: their lazy initialisation keeps the
/// optimiser from folding them (a plain integer variable that is never written is folded to its initial value).
enum KernelConstants {
    /// All ones: masks a block scale in an integer register (`broadcastScale`).
    @usableFromInline nonisolated(unsafe) static var halfBits = SIMD2<UInt16>(repeating: 0xFFFF)
    /// 4 in every lane: moves a code byte's high nibble to the bottom of its 32-bit lane (`RowDot.nibbleBlock`).
    /// With a literal 4 the compiler rewrites `(widened bytes) >> 4` as a byte shift and mask (vpsrlw, vpand) on
    /// the narrow bytes followed by a second widening: three operations instead of one vpsrlvd.
    @usableFromInline nonisolated(unsafe) static var highNibbleShift = SIMD8<Int32>(repeating: 4)
}

/// Software prefetch of the cache line at `p` into all cache levels (LLVM's prefetch intrinsic: read, high
/// locality, data). A prefetch never faults, so running ahead past the end of a tensor is harmless.
@_silgen_name("llvm.prefetch.p0")
func llvmPrefetch(_ p: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ data: Int32)

@inline(__always) func prefetch(_ p: UnsafeRawPointer) { llvmPrefetch(p, 0, 3, 1) }

#if arch(x86_64)
/// Writes back and invalidates the cache line at `p` in every cache level of every core (x86 `clflush`).
@_silgen_name("llvm.x86.sse2.clflush")
func llvmCacheLineFlush(_ p: UnsafeRawPointer)
#endif

/// Bytes ahead of the current position the 8-lane matvec row loops prefetch weights (as the AVX-512 loops do).
let prefetchDistance = 2048

@inline(__always) func f16Scalar(_ raw: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

// MARK: - Packed row dot products

enum RowDot {
    @inline(never) static func f32(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
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

    @inline(never) static func f16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            prefetch(w + 2 * i + prefetchDistance)
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

    @inline(never) static func bf16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            prefetch(w + 2 * i + prefetchDistance)
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

    // The block loops below share one pattern: codes are widened 8 at a time into 32-bit lanes straight from memory
    // (vpmovzxbd/vpmovsxbd), converted (vcvtdq2ps) and multiplied with the activations into partial vectors (one
    // per block for Q8_0, two for the nibble formats); each partial is added to an accumulator with one FMA by the
    // block scale (acc += t · d). Scales come from `broadcastScale` (Q8_0, Q4_0) or from `blockHeader` where the
    // minimum is needed too. Weights are prefetched `prefetchDistance` bytes ahead.

    /// Q8_0: Σ_b d_b Σ_i q_i x_i.
    @inline(never) static func q8_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let mask = KernelConstants.halfBits[0]
        @inline(__always) func block(_ p: UnsafeRawPointer, _ xb: UnsafePointer<Float>) -> F8 {
            var t = floats(p.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int8>.self)) * load8(xb)
            t = t.addingProduct(floats(p.loadUnaligned(fromByteOffset: 10, as: SIMD8<Int8>.self)), load8(xb + 8))
            t = t.addingProduct(floats(p.loadUnaligned(fromByteOffset: 18, as: SIMD8<Int8>.self)), load8(xb + 16))
            t = t.addingProduct(floats(p.loadUnaligned(fromByteOffset: 26, as: SIMD8<Int8>.self)), load8(xb + 24))
            return t
        }
        var a0 = F8(), a1 = F8()
        let blocks = n / 32
        var b = 0
        while b + 2 <= blocks {
            let p = w + b * 34, xb = x + b * 32
            prefetch(p + prefetchDistance)
            let t = block(p, xb), u = block(p + 34, xb + 32)
            a0 = a0.addingProduct(t, broadcastScale(p, mask))
            a1 = a1.addingProduct(u, broadcastScale(p + 34, mask))
            b += 2
        }
        if b < blocks {
            let p = w + b * 34
            a0 = a0.addingProduct(block(p, x + b * 32), broadcastScale(p, mask))
        }
        return hsum(a0 + a1)
    }

    /// Σ_i c_i x_i over one nibble group whose code bytes start at `q`, for 16 of its bytes: byte j holds code j in
    /// its low nibble and code j + `half` in its high nibble. With the byte b_j = lo_j + 16·hi_j,
    ///     lo_j·x_j + hi_j·x_{j+half} = b_j·x_j + hi_j·(x_{j+half} − 16·x_j),
    /// so the kernel reads activations prepared once per matvec by `nibbleActivations` (x′: the first half of each
    /// group as it is, the second half minus 16 times the first) and never masks the low nibble: per 8 bytes one
    /// widening load, one shift, two conversions and two multiply-adds (the masked form needs two more vector
    /// operations, and the compiler narrows the mask and shift to bytes, which costs a second widening).
    /// One partial vector, one dependency chain of four operations: the four-row loop's rows are the independent
    /// chains (two partials per row summed measured the same; two accumulators per row spilled).
    /// `shift` is `KernelConstants.highNibbleShift`, read once by the caller.
    @inline(__always) static func nibbleBlock(_ q: UnsafeRawPointer, _ xb: UnsafePointer<Float>,
                                              half: Int, shift: SIMD8<Int32>) -> F8 {
        let v0 = widen(q.loadUnaligned(as: SIMD8<UInt8>.self))
        let v1 = widen(q.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
        var t = smallIntsToFloats(v0) * load8(xb)
        t = t.addingProduct(smallIntsToFloats(v0 &>> shift), load8(xb + half))
        t = t.addingProduct(smallIntsToFloats(v1), load8(xb + 8))
        return t.addingProduct(smallIntsToFloats(v1 &>> shift), load8(xb + half + 8))
    }

    /// The activations the 8-lane nibble kernels read (see `nibbleBlock`): per group of `group` values, x′ = x on
    /// the first half and x′[j + half] = x[j + half] − 16·x[j] on the second. The subtraction rounds once (relative
    /// 2⁻²⁴ of |x[j + half]| + 16|x[j]|), far below any 4-bit format's own error.
    static func nibbleActivations(_ x: UnsafePointer<Float>, count n: Int, group: Int,
                                  into out: UnsafeMutablePointer<Float>) {
        let half = group / 2
        let sixteen = F8(repeating: 16)
        var g = 0
        while g + group <= n {
            var j = 0
            while j + 8 <= half {
                let a = load8(x + g + j)
                store8(a, out + g + j)
                store8(load8(x + g + half + j) - sixteen * a, out + g + half + j)
                j += 8
            }
            while j < half {
                out[g + j] = x[g + j]
                out[g + half + j] = x[g + half + j] - 16 * x[g + j]
                j += 1
            }
            g += group
        }
    }

    /// Q4_0: Σ_b d_b (Σ_i c_i x_i − 8 S_b), with the stored codes c_i = 0...15 and `xsum[b]` = S_b = Σ_{i∈b} x_i.
    /// `x` holds the prepared activations of `nibbleActivations`; the sums are of the original ones.
    /// Taking the offset out of the inner loop saves two integer operations per 8 weights; the subtraction happens
    /// once per row in Float32, where its rounding (relative 2⁻²⁴ of 8·|d·S|) is far below the format's own error.
    /// The last rows of a range (fewer than four) only; whole groups of four rows go through `q4_0Rows4`.
    @inline(never) static func q4_0(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                    _ n: Int) -> Float {
        let shift = KernelConstants.highNibbleShift, mask = KernelConstants.halfBits[0]
        var acc = F8()
        var offset: Float = 0
        for b in 0..<(n / 32) {
            let p = w + b * 18
            let d = broadcastScale(p, mask)
            acc = acc.addingProduct(nibbleBlock(p + 2, x + b * 32, half: 16, shift: shift), d)
            offset = offset.addingProduct(d[0], xsum[b])
        }
        return hsum(acc) - 8 * offset
    }

    /// Four rows `rowBytes` apart of a nibble format, one block of each per iteration: the rows share the loop,
    /// the activation loads and the final reduction, and their block headers are widened together (one vcvtph2ps),
    /// which also gives the offset term of all four rows in one multiply-add. Per 576-value row (18 blocks) the
    /// single-row loops' call, setup and horizontal sum cost about a quarter of their block work.
    /// Q4_0 (`withMinimum` false): Σ_b d_b (Σ_i c_i x_i − 8 S_b). Q4_1 and INT4-gN: Σ_g d_g Σ_i c_i x_i + m_g S_g.
    @inline(__always) static func nibbleRows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                              _ xsum: UnsafePointer<Float>, _ n: Int, group: Int, blockBytes: Int,
                                              withMinimum: Bool) -> SIMD4<Float> {
        let shift = KernelConstants.highNibbleShift, mask = KernelConstants.halfBits[0]
        let w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes
        let half = group / 2, codes = withMinimum ? 4 : 2
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var offsets = SIMD4<Float>()
        // One partial per row and block: four accumulators, so that with the shift and the partials every value
        // stays in the 16 vector registers (two per row spilled accumulators).
        for g in 0..<(n / group) {
            let o = g * blockBytes, xb = x + g * group
            prefetch(w + o + prefetchDistance); prefetch(w1 + o + prefetchDistance)
            prefetch(w2 + o + prefetchDistance); prefetch(w3 + o + prefetchDistance)
            // The four rows' f16 headers through integer registers (see `broadcastScale`), widened at once.
            let d: SIMD4<Float>, m: SIMD4<Float>
            if withMinimum {
                let h = SIMD8<UInt16>(w.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w1.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w2.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w3.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self),
                                      w1.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self),
                                      w2.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self),
                                      w3.loadUnaligned(fromByteOffset: o + 2, as: UInt16.self)) & mask
                let f = floats(unsafeBitCast(h, to: SIMD8<Float16>.self))
                d = f.lowHalf; m = f.highHalf
            } else {
                let h = SIMD4<UInt16>(w.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w1.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w2.loadUnaligned(fromByteOffset: o, as: UInt16.self),
                                      w3.loadUnaligned(fromByteOffset: o, as: UInt16.self)) & mask
                let hf = unsafeBitCast(h, to: SIMD4<Float16>.self)
                d = SIMD4<Float>(Float(hf[0]), Float(hf[1]), Float(hf[2]), Float(hf[3]))
                m = d  // the −8 is applied once, after the loop
            }
            offsets = offsets.addingProduct(m, xsum[g])
            var t0 = nibbleBlock(w + o + codes, xb, half: half, shift: shift)
            var t1 = nibbleBlock(w1 + o + codes, xb, half: half, shift: shift)
            var t2 = nibbleBlock(w2 + o + codes, xb, half: half, shift: shift)
            var t3 = nibbleBlock(w3 + o + codes, xb, half: half, shift: shift)
            var k = 16
            while k < half {
                t0 += nibbleBlock(w + o + codes + k, xb + k, half: half, shift: shift)
                t1 += nibbleBlock(w1 + o + codes + k, xb + k, half: half, shift: shift)
                t2 += nibbleBlock(w2 + o + codes + k, xb + k, half: half, shift: shift)
                t3 += nibbleBlock(w3 + o + codes + k, xb + k, half: half, shift: shift)
                k += 16
            }
            a0 = a0.addingProduct(t0, F8(repeating: d[0])); a1 = a1.addingProduct(t1, F8(repeating: d[1]))
            a2 = a2.addingProduct(t2, F8(repeating: d[2])); a3 = a3.addingProduct(t3, F8(repeating: d[3]))
        }
        return hsum4(a0, a1, a2, a3) + (withMinimum ? offsets : -8 * offsets)
    }

    @inline(never) static func q4_0Rows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                         _ xsum: UnsafePointer<Float>, _ n: Int) -> SIMD4<Float> {
        nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, group: 32, blockBytes: 18, withMinimum: false)
    }

    /// Q4_1 and INT4-gN, one specialisation per group size (constant group sizes keep the loop over a group's
    /// 16-byte chunks unrolled and every value in registers).
    @inline(never) static func q4MinRows4(_ w: UnsafeRawPointer, rowBytes: Int, _ x: UnsafePointer<Float>,
                                          _ xsum: UnsafePointer<Float>, _ n: Int, group: Int,
                                          blockBytes: Int) -> SIMD4<Float> {
        switch group {
        case 32: return nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, group: 32, blockBytes: 20, withMinimum: true)
        case 64: return nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, group: 64, blockBytes: 36, withMinimum: true)
        default:
            return nibbleRows4(w, rowBytes: rowBytes, x, xsum, n, group: group, blockBytes: blockBytes, withMinimum: true)
        }
    }

    /// Q4_1 and INT4-gN: Σ_g d_g Σ_i q_i x_i + Σ_g m_g S_g, where `xsum[g]` = S_g = Σ_{i∈g} x_i.
    /// `x` holds the prepared activations of `nibbleActivations`; the sums are of the original ones.
    /// The last rows of a range (fewer than four) only; whole groups of four rows go through `q4MinRows4`.
    @inline(never) static func q4Min(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                     _ n: Int, group: Int, blockBytes: Int) -> Float {
        let shift = KernelConstants.highNibbleShift
        let half = group / 2
        var acc = F8()
        var mins: Float = 0
        for g in 0..<(n / group) {
            let p = w + g * blockBytes, xb = x + g * group
            let header = blockHeader(p)
            var t = nibbleBlock(p + 4, xb, half: half, shift: shift)
            var k = 16
            while k < half { t += nibbleBlock(p + 4 + k, xb + k, half: half, shift: shift); k += 16 }
            acc = acc.addingProduct(t, F8(repeating: header[0]))
            mins = mins.addingProduct(header[1], xsum[g])
        }
        return hsum(acc) + mins
    }

    /// INT8 per-channel: scale · Σ_i q_i x_i.
    @inline(never) static func int8(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let scale = Float(bitPattern: w.loadUnaligned(as: UInt32.self))
        let q = w + Int8RowLayout.weightOffset
        @inline(__always) func codes(_ i: Int) -> F8 { floats(q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)) }
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = 0
        while i + 32 <= n {
            prefetch(q + i + prefetchDistance)
            a0 = a0.addingProduct(codes(i), load8(x + i))
            a1 = a1.addingProduct(codes(i + 8), load8(x + i + 8))
            a2 = a2.addingProduct(codes(i + 16), load8(x + i + 16))
            a3 = a3.addingProduct(codes(i + 24), load8(x + i + 24))
            i += 32
        }
        while i + 8 <= n { a0 = a0.addingProduct(codes(i), load8(x + i)); i += 8 }
        var s = hsum((a0 + a1) + (a2 + a3))
        while i < n { s += Float(q.load(fromByteOffset: i, as: Int8.self)) * x[i]; i += 1 }
        return s * scale
    }
}

// MARK: - Dequantisation

enum Dequantize {
    /// Writes `n` Float32 values of one packed row to `out`.
    static func row(_ raw: UnsafeRawPointer, format: PackedFormat, columns n: Int, into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .f32: out.update(from: raw.assumingMemoryBound(to: Float.self), count: n)
        case .f16: f16(raw, n, out)
        case .bf16: bf16(raw, n, out)
        case .q8_0: q8_0(raw, n, out)
        case .q4_0: q4_0(raw, n, out)
        case .q4_1, .int4g32: q4Min(raw, n, out, group: 32, bytes: 20)
        case .int4g64: q4Min(raw, n, out, group: 64, bytes: 36)
        case .int4g128: q4Min(raw, n, out, group: 128, bytes: 68)
        case .int8: int8(raw, n, out)
        }
    }

    // Each format has its own small function so that the SIMD conversions inline into the loop.

    @inline(never) static func f16(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
            var i = 0
            while i + 8 <= n { store8(loadHalf8(raw + 2 * i), out + i); i += 8 }
            while i < n { out[i] = f16Scalar(raw, 2 * i); i += 1 }
    }

    @inline(never) static func bf16(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
            var i = 0
            while i + 8 <= n { store8(loadBF16x8(raw + 2 * i), out + i); i += 8 }
            while i < n { out[i] = BF16.toFloat(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)); i += 1 }
    }

    @inline(never) static func q8_0(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
            for b in 0..<(n / 32) {
                let p = raw + b * 34
                let d = F8(repeating: f16Scalar(p))
                let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<Int8>.self)
                let o = out + b * 32
                store8(floats(q.lowHalf.lowHalf) * d, o)
                store8(floats(q.lowHalf.highHalf) * d, o + 8)
                store8(floats(q.highHalf.lowHalf) * d, o + 16)
                store8(floats(q.highHalf.highHalf) * d, o + 24)
            }
    }

    @inline(never) static func q4_0(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
            for b in 0..<(n / 32) {
                let p = raw + b * 18
                // (q − 8)·d computed as q·d − 8d: both products are exact in Float32, so the result equals the
                // reference's (q − 8)·d bit for bit.
                let ds = f16Scalar(p)
                let d = F8(repeating: ds)
                let m = F8(repeating: -8 * ds)
                let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
                let lo = q & 0x0F
                let hi = q &>> 4
                let o = out + b * 32
                store8(floats(lo.lowHalf) * d + m, o)
                store8(floats(lo.highHalf) * d + m, o + 8)
                store8(floats(hi.lowHalf) * d + m, o + 16)
                store8(floats(hi.highHalf) * d + m, o + 24)
            }
    }

    @inline(never) static func q4Min(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>,
                                     group g: Int, bytes: Int) {
            let half = g / 2
            for b in 0..<(n / g) {
                let p = raw + b * bytes
                let d = F8(repeating: f16Scalar(p))
                let m = F8(repeating: f16Scalar(p, 2))
                let o = out + b * g
                var k = 0
                while k < half {
                    let q = p.loadUnaligned(fromByteOffset: 4 + k, as: SIMD16<UInt8>.self)
                    let lo = q & 0x0F
                    let hi = q &>> 4
                    store8(floats(lo.lowHalf) * d + m, o + k)
                    store8(floats(lo.highHalf) * d + m, o + k + 8)
                    store8(floats(hi.lowHalf) * d + m, o + half + k)
                    store8(floats(hi.highHalf) * d + m, o + half + k + 8)
                    k += 16
                }
            }
    }

    @inline(never) static func int8(_ raw: UnsafeRawPointer, _ n: Int, _ out: UnsafeMutablePointer<Float>) {
            let scale = F8(repeating: Float(bitPattern: raw.loadUnaligned(as: UInt32.self)))
            let q = raw + Int8RowLayout.weightOffset
            var i = 0
            while i + 8 <= n { store8(floats(q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)) * scale, out + i); i += 8 }
            while i < n { out[i] = Float(q.load(fromByteOffset: i, as: Int8.self)) * scale[0]; i += 1 }
    }
}

// MARK: - Matrix row loops

/// Row loops of matvec and matmul (called once per parallel task by `MatrixKernels`).
enum SIMDKernels {
    #if arch(x86_64)
    /// The AVX-512 module's description of a format's row layout.
    static func avx512Layout(_ format: PackedFormat) -> AVX512RowFormat {
        switch format {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1, .int4g32: return .q4Min(group: 32, blockBytes: 20)
        case .int4g64: return .q4Min(group: 64, blockBytes: 36)
        case .int4g128: return .q4Min(group: 128, blockBytes: 68)
        case .int8: return .int8(weightOffset: Int8RowLayout.weightOffset)
        }
    }
    #endif

    static func matvecRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                           _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>, isa: KernelISA) {
        let n = w.columns
        let rb = w.rowBytes
        let base = w.data
        if w.rowGroup > 1 { groupedMatvecRows(w, x, xsum, y, range, isa: isa); return }
        #if arch(x86_64)
        if isa == .avx512 {
            AVX512Kernels.matvecRows(avx512Layout(w.format), base, rowBytes: rb, columns: n, x, xsum, y, rows: range)
            return
        }
        #endif
        switch w.format {
        case .f32:
            // One row at a time, as in the AVX-512 family: one sequential stream per thread. Four interleaved rows
            // (x loaded once for four) streamed 6–8% slower in a C model on the Zen 3 machine (medians of 40).
            for r in range { y[r] = RowDot.f32((base + r * rb).assumingMemoryBound(to: Float.self), x, n) }
        case .f16:
            for r in range { y[r] = RowDot.f16(base + r * rb, x, n) }
        case .bf16:
            for r in range { y[r] = RowDot.bf16(base + r * rb, x, n) }
        case .q8_0:
            for r in range { y[r] = RowDot.q8_0(base + r * rb, x, n) }
        case .q4_0, .q4_1, .int4g32, .int4g64, .int4g128:
            // Four rows at a time; the last rows of the range one by one.
            let group = w.format.activationSumGroup ?? 32, blockBytes = w.format.blockBytes
            var r = range.lowerBound
            while r + 4 <= range.upperBound {
                let v = w.format == .q4_0
                    ? RowDot.q4_0Rows4(base + r * rb, rowBytes: rb, x, xsum, n)
                    : RowDot.q4MinRows4(base + r * rb, rowBytes: rb, x, xsum, n, group: group, blockBytes: blockBytes)
                y[r] = v[0]; y[r + 1] = v[1]; y[r + 2] = v[2]; y[r + 3] = v[3]
                r += 4
            }
            while r < range.upperBound {
                y[r] = w.format == .q4_0 ? RowDot.q4_0(base + r * rb, x, xsum, n)
                    : RowDot.q4Min(base + r * rb, x, xsum, n, group: group, blockBytes: blockBytes)
                r += 1
            }
        case .int8:
            for r in range { y[r] = RowDot.int8(base + r * rb, x, n) }
        }
    }

    /// Matvec over the rows in `range` of a matrix grouped by 16 rows (`NibbleRowGroup`): a group per call with the
    /// rows in the vector lanes (AVX-512, Q4_0 only: one 16-lane vector; 8-lane: two halves); `range` then starts
    /// and ends on whole groups (the matrix's rows are whole groups, and the tasks are cut in multiples of 16).
    /// A range that splits a group, or a grouped format the family has no group kernel for (AVX-512 and the
    /// formats with a minimum, which it never groups itself), has each row copied back to its row-major blocks
    /// and run through the family's row kernel.
    static func groupedMatvecRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>, isa: KernelISA) {
        guard let layout = w.nibbleRowGroup else { return }
        let n = w.columns, rb = w.rowBytes
        let g = NibbleRowGroup.rows
        if range.lowerBound % g == 0, range.upperBound % g == 0 {
            let groups = range.lowerBound / g ..< range.upperBound / g
            #if arch(x86_64)
            if isa == .avx512, w.format == .q4_0 {
                AVX512Kernels.q4_0GroupMatvec(w.data, columns: n, x, xsum, y, groups: groups)
                return
            }
            #endif
            if isa == .simd8 {
                RowGroups8.matvec(layout, w.data, columns: n, x, xsum, y, groups: groups)
                return
            }
        }
        let group = w.format.activationSumGroup ?? 32, blockBytes = w.format.blockBytes
        withUnsafeTemporaryAllocation(byteCount: rb, alignment: 64) { row in
            let p = row.baseAddress!
            for r in range {
                layout.copyRow(w.data, row: r, columns: n, into: p)
                #if arch(x86_64)
                if isa == .avx512 {
                    AVX512Kernels.matvecRows(avx512Layout(w.format), UnsafeRawPointer(p), rowBytes: rb, columns: n,
                                             x, xsum, y + r, rows: 0..<1)
                    continue
                }
                #endif
                y[r] = w.format == .q4_0 ? RowDot.q4_0(UnsafeRawPointer(p), x, xsum, n)
                    : RowDot.q4Min(UnsafeRawPointer(p), x, xsum, n, group: group, blockBytes: blockBytes)
            }
        }
    }

    /// Rows dequantised together in matmul.
    static let matmulBlockRows = 16

    /// Columns per slice of the matmul inner kernel: rows longer than 1024 values run in slices of 512.
    static func matmulSlice(columns n: Int) -> Int { n > 1024 ? 512 : n }

    /// Floats between consecutive dequantised rows in the matmul scratch: the row length padded so that it is
    /// not a multiple of 4 KiB apart (rows exactly 4 KiB apart map to the same L1 sets and alias).
    static func matmulScratchStride(columns n: Int) -> Int { (n + 15) / 16 * 16 + 16 }

    /// Floats of scratch `matmulRows` needs for rows of `n` values (the dequantised row block).
    static func matmulScratchCount(columns n: Int) -> Int {
        matmulBlockRows * matmulScratchStride(columns: n)
    }

    /// Rows per packed panel of the panel matmul in kernel family `isa`.
    static func panelRows(isa: KernelISA) -> Int {
        #if arch(x86_64)
        if isa == .avx512 { return AVX512Kernels.panelRows }
        #endif
        return Panels8.rows
    }

    /// Floats of scratch `matmulPanelRows` needs: one panel's dequantised rows and the packed panel.
    static func panelScratchCount(columns n: Int, isa: KernelISA) -> Int {
        panelRows(isa: isa) * (matmulScratchStride(columns: n) + n)
    }

    /// Panel matmul over the rows in `range` (a multiple of the panel's rows apart from the matrix's last rows): per
    /// panel, dequantise (F32 rows are read in place), pack column by column, multiply with all `count` tokens.
    /// `x` is row-major for AVX-512 and packed by `Panels8.packActivations` for the 8-lane family.
    static func matmulPanelRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ count: Int,
                                _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>,
                                _ scratch: UnsafeMutablePointer<Float>, isa: KernelISA) {
        let n = w.columns
        let stride = matmulScratchStride(columns: n)
        let panelRows = panelRows(isa: isa)
        let panel = scratch + panelRows * stride
        var r0 = range.lowerBound
        while r0 < range.upperBound {
            let nr = min(panelRows, range.upperBound - r0)
            let rows: UnsafePointer<Float>, ldw: Int
            #if arch(x86_64)
            if isa == .avx512, w.format == .q4_0, w.rowGroup > 1, r0 % w.rowGroup == 0, nr % w.rowGroup == 0 {
                AVX512Kernels.packPanelQ4_0Groups(w.data, columns: n, group: r0 / w.rowGroup, groups: nr / w.rowGroup,
                                                  into: panel)
                AVX512Kernels.panelMatmul(panel, columns: n, x, ldx: n, tokens: count, y + r0, ldy: w.rows, rows: nr)
                r0 += nr
                continue
            }
            #endif
            if isa == .simd8, let layout = w.nibbleRowGroup, r0 % NibbleRowGroup.rows == 0, nr == Panels8.rows {
                RowGroups8.packPanel(layout, w.data, columns: n, group: r0 / NibbleRowGroup.rows, into: panel)
                Panels8.matmul(panel, columns: n, packed: x, tokens: count, y + r0, ldy: w.rows, rows: nr)
                r0 += nr
                continue
            }
            if case .f32 = w.format {
                rows = (w.data + r0 * w.rowBytes).assumingMemoryBound(to: Float.self)
                ldw = n
            } else {
                for i in 0..<nr { w.unpackRow(r0 + i, into: scratch + i * stride) }
                rows = UnsafePointer(scratch)
                ldw = stride
            }
            #if arch(x86_64)
            if isa == .avx512 {
                AVX512Kernels.packPanel(rows, ldw: ldw, rows: nr, columns: n, into: panel)
                AVX512Kernels.panelMatmul(panel, columns: n, x, ldx: n, tokens: count, y + r0, ldy: w.rows, rows: nr)
                r0 += nr
                continue
            }
            #endif
            Panels8.pack(rows, ldw: ldw, rows: nr, columns: n, into: panel)
            Panels8.matmul(panel, columns: n, packed: x, tokens: count, y + r0, ldy: w.rows, rows: nr)
            r0 += nr
        }
    }

    /// Matmul over the rows in `range`: for each chunk of tokens (activations kept in L2) and each block of
    /// `matmulBlockRows` rows (dequantised once into `scratch`), runs the 2-row × 6-token kernel over slices of
    /// the columns (512 at a time for rows longer than 1024). Activations are read in place: copying each
    /// 6-token tile into a contiguous panel (against L1 set aliasing of rows 16 KiB apart) measured slower.
    /// With the dequantisation conversions inlined, 4096 × 4096 runs at about the rate of the smaller shapes for
    /// the quantised formats; the quarter rate noted earlier was not reproduced (conversions were out of line then).
    static func matmulRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ count: Int,
                           _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>, _ chunkTokens: Int,
                           _ scratch: UnsafeMutablePointer<Float>, isa: KernelISA) {
        let n = w.columns
        let rows = w.rows
        let slice = matmulSlice(columns: n)
        let stride = matmulScratchStride(columns: n)
        var t0 = 0
        while t0 < count {
            let t1 = min(count, t0 + chunkTokens)
            var r0 = range.lowerBound
            while r0 < range.upperBound {
                let nr = min(matmulBlockRows, range.upperBound - r0)
                let wBlock: UnsafePointer<Float>
                let ldw: Int
                if case .f32 = w.format {
                    wBlock = (w.data + r0 * w.rowBytes).assumingMemoryBound(to: Float.self)
                    ldw = n
                } else {
                    for i in 0..<nr { w.unpackRow(r0 + i, into: scratch + i * stride) }
                    wBlock = UnsafePointer(scratch)
                    ldw = stride
                }
                var k0 = 0
                while k0 < n {
                    let kl = min(slice, n - k0)
                    let accumulate = k0 > 0
                    #if arch(x86_64)
                    if isa == .avx512 {
                        AVX512Kernels.f32Block(wBlock + k0, ldw: ldw, rows: nr, x + t0 * n + k0, ldx: n, tokens: t1 - t0,
                                               columns: kl, y + t0 * rows + r0, ldy: rows, accumulate: accumulate)
                        k0 += kl
                        continue
                    }
                    #endif
                    var t = t0
                    while t + 6 <= t1 {
                        var i = 0
                        while i + 2 <= nr {
                            MicroKernels.f32Rows2Tokens6(wBlock + i * ldw + k0, ldw, x + t * n + k0, n, kl,
                                                         y + t * rows + r0 + i, rows, accumulate)
                            i += 2
                        }
                        if i < nr {
                            for j in 0..<6 {
                                MicroKernels.dot1(wBlock + i * ldw + k0, x + (t + j) * n + k0, kl, y + (t + j) * rows + r0 + i,
                                                  accumulate)
                            }
                        }
                        t += 6
                    }
                    while t < t1 {
                        var i = 0
                        while i + 4 <= nr {
                            MicroKernels.f32Rows4(wBlock + i * ldw + k0, ldw, x + t * n + k0, kl, y + t * rows + r0 + i,
                                                  accumulate: accumulate)
                            i += 4
                        }
                        while i < nr {
                            MicroKernels.dot1(wBlock + i * ldw + k0, x + t * n + k0, kl, y + t * rows + r0 + i, accumulate)
                            i += 1
                        }
                        t += 1
                    }
                    k0 += kl
                }
                r0 += nr
            }
            t0 = t1
        }
    }
}

// MARK: - Micro-kernels

/// Register-tiled Float32 kernels over rows that are already Float32.
enum MicroKernels {
    /// y[0..<4] = W[0..<4] · x, rows `ldw` floats apart.
    @inline(__always) static func f32Rows4(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>,
                                           _ n: Int, _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        var c0 = F8(), c1 = F8(), c2 = F8(), c3 = F8()
        var d0 = F8(), d1 = F8(), d2 = F8(), d3 = F8()
        let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
        var k = 0
        while k + 16 <= n {
            let xa = load8(x + k), xb = load8(x + k + 8)
            c0 = c0.addingProduct(load8(w + k), xa); d0 = d0.addingProduct(load8(w + k + 8), xb)
            c1 = c1.addingProduct(load8(w1 + k), xa); d1 = d1.addingProduct(load8(w1 + k + 8), xb)
            c2 = c2.addingProduct(load8(w2 + k), xa); d2 = d2.addingProduct(load8(w2 + k + 8), xb)
            c3 = c3.addingProduct(load8(w3 + k), xa); d3 = d3.addingProduct(load8(w3 + k + 8), xb)
            k += 16
        }
        while k + 8 <= n {
            let xa = load8(x + k)
            c0 = c0.addingProduct(load8(w + k), xa)
            c1 = c1.addingProduct(load8(w1 + k), xa)
            c2 = c2.addingProduct(load8(w2 + k), xa)
            c3 = c3.addingProduct(load8(w3 + k), xa)
            k += 8
        }
        var s0 = hsum(c0 + d0), s1 = hsum(c1 + d1), s2 = hsum(c2 + d2), s3 = hsum(c3 + d3)
        while k < n {
            s0 += w[k] * x[k]; s1 += w1[k] * x[k]; s2 += w2[k] * x[k]; s3 += w3[k] * x[k]
            k += 1
        }
        if accumulate {
            y[0] += s0; y[1] += s1; y[2] += s2; y[3] += s3
        } else {
            y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3
        }
    }

    /// y = (y if accumulating, else 0) + w · x over `n` values.
    @inline(__always) static func dot1(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                                       _ y: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let d = RowDot.f32(w, x, n)
        if accumulate { y.pointee += d } else { y.pointee = d }
    }

    /// Y[t, 0..<2] for 6 tokens over `n` columns: rows are `ldw` floats apart, tokens `ldx` floats apart in `x`,
    /// outputs `ldy` floats apart in `y` (added to what is there when `accumulate`).
    /// 12 accumulators + 2 weight vectors + 1 activation vector = 15 of the 16 ymm registers, no spills;
    /// 8 loads feed 12 FMAs.
    @inline(__always) static func f32Rows2Tokens6(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>,
                                                  _ ldx: Int, _ n: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
                                                  _ accumulate: Bool) {
        var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
        var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
        let w1 = w + ldw
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        var k = 0
        while k + 8 <= n {
            let a0 = load8(w + k), a1 = load8(w1 + k)
            let b0 = load8(x + k)
            c00 = c00.addingProduct(a0, b0); c01 = c01.addingProduct(a1, b0)
            let b1 = load8(x1 + k)
            c10 = c10.addingProduct(a0, b1); c11 = c11.addingProduct(a1, b1)
            let b2 = load8(x2 + k)
            c20 = c20.addingProduct(a0, b2); c21 = c21.addingProduct(a1, b2)
            let b3 = load8(x3 + k)
            c30 = c30.addingProduct(a0, b3); c31 = c31.addingProduct(a1, b3)
            let b4 = load8(x4 + k)
            c40 = c40.addingProduct(a0, b4); c41 = c41.addingProduct(a1, b4)
            let b5 = load8(x5 + k)
            c50 = c50.addingProduct(a0, b5); c51 = c51.addingProduct(a1, b5)
            k += 8
        }
        var s = (hsum(c00), hsum(c01), hsum(c10), hsum(c11), hsum(c20), hsum(c21),
                 hsum(c30), hsum(c31), hsum(c40), hsum(c41), hsum(c50), hsum(c51))
        while k < n {
            let a0 = w[k], a1 = w1[k]
            s.0 += a0 * x[k]; s.1 += a1 * x[k]
            s.2 += a0 * x1[k]; s.3 += a1 * x1[k]
            s.4 += a0 * x2[k]; s.5 += a1 * x2[k]
            s.6 += a0 * x3[k]; s.7 += a1 * x3[k]
            s.8 += a0 * x4[k]; s.9 += a1 * x4[k]
            s.10 += a0 * x5[k]; s.11 += a1 * x5[k]
            k += 1
        }
        if accumulate {
            y[0] += s.0; y[1] += s.1
            y[ldy] += s.2; y[ldy + 1] += s.3
            y[2 * ldy] += s.4; y[2 * ldy + 1] += s.5
            y[3 * ldy] += s.6; y[3 * ldy + 1] += s.7
            y[4 * ldy] += s.8; y[4 * ldy + 1] += s.9
            y[5 * ldy] += s.10; y[5 * ldy + 1] += s.11
        } else {
            y[0] = s.0; y[1] = s.1
            y[ldy] = s.2; y[ldy + 1] = s.3
            y[2 * ldy] = s.4; y[2 * ldy + 1] = s.5
            y[3 * ldy] = s.6; y[3 * ldy + 1] = s.7
            y[4 * ldy] = s.8; y[4 * ldy + 1] = s.9
            y[5 * ldy] = s.10; y[5 * ldy + 1] = s.11
        }
    }
}

// MARK: - Element-wise helpers

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
        while i + 8 <= n { mv = vmax(mv, load8(x + i)); i += 8 }
        var mx = hmax(mv)
        while i < n { mx = Swift.max(mx, x[i]); i += 1 }
        if mx == -.infinity { mx = 0 }
        let m = F8(repeating: mx)
        var acc = F8()
        i = 0
        while i + 8 <= n { let e = expF8(load8(x + i) - m); store8(e, x + i); acc += e; i += 8 }
        var total = hsum(acc)
        while i < n { let e = expScalar(x[i] - mx); x[i] = e; total += e; i += 1 }
        scale(x, by: 1 / total, count: n)
    }

    /// SwiGLU: out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^−g).
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let g = load8(gate + i)
            store8(g / (1 + expF8(-g)) * load8(up + i), out + i)
            i += 8
        }
        while i < n { let g = gate[i]; out[i] = g / (1 + expScalar(-g)) * up[i]; i += 1 }
    }

    /// out[i] = silu(x[i]).
    public static func silu(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { let g = load8(x + i); store8(g / (1 + expF8(-g)), out + i); i += 8 }
        while i < n { let g = x[i]; out[i] = g / (1 + expScalar(-g)); i += 1 }
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
            store8(v / (1 + expF8(-2 * u)), out + i)
            i += 8
        }
        while i < n {
            let v = x[i]
            let u = 0.7978845608028654 * v * (1 + 0.044715 * v * v)
            out[i] = v / (1 + expScalar(-2 * u))
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
    /// e^x for 8 lanes with relative error of a few ulp over the normal range; returns +infinity above 88.376
    /// and 0 below −87.34 (no subnormal results).
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> { expF8(x) }

    /// Scalar form of `exp(_: SIMD8<Float>)`.
    public static func exp(_ x: Float) -> Float {
        expScalar(x)
    }
}

/// Vectorised e^x (see `FastMath.exp`), inlined into the element-wise loops.
@inline(__always) func expF8(_ x: F8) -> F8 {
    let expHigh: Float = 88.3762626647949
    let expLow: Float = -87.3365447504
    let xc = vmin(vmax(x, F8(repeating: expLow)), F8(repeating: expHigh))
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

@inline(__always) func expScalar(_ x: Float) -> Float { expF8(F8(repeating: x))[0] }
