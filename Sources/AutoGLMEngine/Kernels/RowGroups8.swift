// Nibble matrices grouped by 16 rows (`NibbleRowGroup`) in the 8-lane kernel family: matvec and panel packing.
//
// A line of a group block is 16 bytes, byte j holding the codes of row j (low nibble column p, high nibble column
// p + N/2). Its two 8-byte halves widened are one column of rows 0–7 and of rows 8–15, so the matvec multiplies them
// with a broadcast activation: no horizontal sums, one scale multiply-add (and for Q4_1 and INT4-gN one minimum
// multiply-add) per 8 rows and block, and eight independent partial sums per block (two halves × two lines × low
// and high) where the four-row loop over row-major blocks has one dependency chain per row. A 16-row panel of the
// 8-lane matmul is exactly one group, and each line fills two panel columns without a transpose.

/// The 8-lane kernels over `NibbleRowGroup` matrices.
enum RowGroups8 {
    /// y[16 g ..< 16 g + 16] = W[group g] · x for every g in `groups`. `x` holds the activations prepared by
    /// `RowDot.nibbleActivations` (the format's group) and `xsum[b]` the sum of the original activations over
    /// block b.
    static func matvec(_ layout: NibbleRowGroup, _ base: UnsafeRawPointer, columns n: Int, _ x: UnsafePointer<Float>,
                       _ xsum: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, groups: Range<Int>) {
        let groupBytes = layout.groupBytes(columns: n)
        let shift = KernelConstants.highNibbleShift
        for g in groups {
            let w = base + g * groupBytes
            let rows: (F8, F8)
            switch layout.format {
            case .q4_0: rows = q4_0Group(w, x, xsum, n, shift: shift)
            case .q4_1, .int4g32: rows = minimumGroup32(w, x, xsum, n, shift: shift)
            case .int4g64: rows = minimumGroup64(w, x, xsum, n, shift: shift)
            default: rows = minimumGroup128(w, x, xsum, n, shift: shift)
            }
            store8(rows.0, y + 16 * g)
            store8(rows.1, y + 16 * g + 8)
        }
    }

    /// Per line k of a block: the two halves of the line (rows 0–7 and 8–15) times the prepared activations of
    /// columns k and k + `half`. As in `RowDot.nibbleBlock`, the whole byte times x′_k plus its high nibble times
    /// x′_{k+half} gives lo·x_k + hi·x_{k+half} without masking the low nibble.
    @inline(__always) static func line(_ q: UnsafeRawPointer, _ low: F8, _ high: F8, shift: SIMD8<Int32>,
                                       _ a: inout F8, _ b: inout F8) {
        let va = widen(q.loadUnaligned(as: SIMD8<UInt8>.self))
        let vb = widen(q.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
        a = a.addingProduct(smallIntsToFloats(va), low)
        b = b.addingProduct(smallIntsToFloats(vb), low)
        a = a.addingProduct(smallIntsToFloats(va &>> shift), high)
        b = b.addingProduct(smallIntsToFloats(vb &>> shift), high)
    }

    /// Σ over the `lines` lines of one group block whose lines start at `codes`, activations `xb` (one block):
    /// rows 0–7 and 8–15. Lines alternate between two pairs of partials.
    @inline(__always) static func blockSums(_ codes: UnsafeRawPointer, _ xb: UnsafePointer<Float>, lines: Int,
                                            shift: SIMD8<Int32>) -> (F8, F8) {
        var a0 = F8(), a1 = F8(), b0 = F8(), b1 = F8()
        var k = 0
        while k < lines {
            line(codes + 16 * k, F8(repeating: xb[k]), F8(repeating: xb[k + lines]), shift: shift, &a0, &b0)
            line(codes + 16 * (k + 1), F8(repeating: xb[k + 1]), F8(repeating: xb[k + 1 + lines]), shift: shift,
                 &a1, &b1)
            k += 2
        }
        return (a0 + a1, b0 + b1)
    }

    /// The stream runs through the groups in order: fetch a group block's lines `prefetchDistance` ahead.
    @inline(__always) static func prefetchBlock(_ p: UnsafeRawPointer, bytes: Int) {
        var o = 0
        while o < bytes { prefetch(p + prefetchDistance + o); o += 64 }
    }

    /// One Q4_0 group, rows 0–7 and 8–15: Σ_b d_b ⊙ (Σ_i c_i x_i − 8 S_b) with the stored codes c_i = 0...15.
    @inline(never) static func q4_0Group(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                         _ n: Int, shift: SIMD8<Int32>) -> (F8, F8) {
        let layout = NibbleRowGroup.q4_0
        var accA = F8(), accB = F8()
        for b in 0..<(n / BlockQ4_0.elements) {
            let p = w + b * layout.byteCount
            prefetchBlock(p, bytes: layout.byteCount)
            let (a, c) = blockSums(p + layout.linesOffset, x + b * BlockQ4_0.elements, lines: 16, shift: shift)
            let offset = F8(repeating: -8 * xsum[b])
            accA = accA.addingProduct(a + offset, loadHalf8(p))
            accB = accB.addingProduct(c + offset, loadHalf8(p + 16))
        }
        return (accA, accB)
    }

    /// One group of a format with a minimum (Q4_1, INT4-gN; `group` columns per block), rows 0–7 and 8–15:
    /// Σ_g d_g ⊙ Σ_i c_i x_i + m_g ⊙ S_g.
    @inline(__always) static func minimumGroup(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                               _ xsum: UnsafePointer<Float>, _ n: Int, group: Int,
                                               shift: SIMD8<Int32>) -> (F8, F8) {
        // `NibbleRowGroup` of a format with a minimum, as constants the loops unroll on: 16 scales (32 bytes),
        // 16 minimums (32 bytes), then group / 2 lines of 16 bytes.
        let lines = group / 2
        let blockBytes = NibbleRowGroup.rows * (4 + lines), linesOffset = 4 * NibbleRowGroup.rows
        var accA = F8(), accB = F8()
        for b in 0..<(n / group) {
            let p = w + b * blockBytes
            prefetchBlock(p, bytes: blockBytes)
            let (a, c) = blockSums(p + linesOffset, x + b * group, lines: lines, shift: shift)
            let s = F8(repeating: xsum[b])
            accA = accA.addingProduct(a, loadHalf8(p)).addingProduct(loadHalf8(p + 32), s)
            accB = accB.addingProduct(c, loadHalf8(p + 16)).addingProduct(loadHalf8(p + 48), s)
        }
        return (accA, accB)
    }

    // One specialisation per group size: constant line counts keep the loops unrolled.
    @inline(never) static func minimumGroup32(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                              _ xsum: UnsafePointer<Float>, _ n: Int, shift: SIMD8<Int32>) -> (F8, F8) {
        minimumGroup(w, x, xsum, n, group: 32, shift: shift)
    }

    @inline(never) static func minimumGroup64(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                              _ xsum: UnsafePointer<Float>, _ n: Int, shift: SIMD8<Int32>) -> (F8, F8) {
        minimumGroup(w, x, xsum, n, group: 64, shift: shift)
    }

    @inline(never) static func minimumGroup128(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>,
                                               _ xsum: UnsafePointer<Float>, _ n: Int,
                                               shift: SIMD8<Int32>) -> (F8, F8) {
        minimumGroup(w, x, xsum, n, group: 128, shift: shift)
    }

    /// panel[k · 16 + i] = W[16 · group + i, k]: the 16 rows of one group widened column by column, the layout of
    /// `Panels8` (two 8-lane vectors per column). Values equal `Dequantize`'s bit for bit: Q4_0 (q − 8) · d, where
    /// q − 8 and the product with an f16 scale are both exact in Float32; the others q · d + m, the same two
    /// roundings in the same order.
    static func packPanel(_ layout: NibbleRowGroup, _ base: UnsafeRawPointer, columns n: Int, group: Int,
                          into panel: UnsafeMutablePointer<Float>) {
        let w = base + group * layout.groupBytes(columns: n)
        let lines = layout.lines
        let eight = F8(repeating: 8)
        let lowBits = SIMD8<Int32>(repeating: 0x0F)
        for b in 0..<(n / layout.blockElements) {
            let p = w + b * layout.byteCount
            let dA = loadHalf8(p), dB = loadHalf8(p + 16)
            let mA = layout.hasMinimum ? loadHalf8(p + 32) : F8(), mB = layout.hasMinimum ? loadHalf8(p + 48) : F8()
            let column = panel + Panels8.rows * layout.blockElements * b
            for k in 0..<lines {
                let q = p + layout.linesOffset + 16 * k
                let va = widen(q.loadUnaligned(as: SIMD8<UInt8>.self))
                let vb = widen(q.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
                let low = column + Panels8.rows * k, high = column + Panels8.rows * (k + lines)
                let codes = (smallIntsToFloats(va & lowBits), smallIntsToFloats(vb & lowBits),
                             smallIntsToFloats(va &>> 4), smallIntsToFloats(vb &>> 4))
                if layout.hasMinimum {
                    store8(codes.0 * dA + mA, low)
                    store8(codes.1 * dB + mB, low + 8)
                    store8(codes.2 * dA + mA, high)
                    store8(codes.3 * dB + mB, high + 8)
                } else {
                    store8((codes.0 - eight) * dA, low)
                    store8((codes.1 - eight) * dB, low + 8)
                    store8((codes.2 - eight) * dA, high)
                    store8((codes.3 - eight) * dB, high + 8)
                }
            }
        }
    }
}
