// Q4_0 matrices grouped by 16 rows (`Q4_0RowGroup`) in the 8-lane kernel family: matvec and panel packing.
//
// A line of a group block is 16 bytes, byte j holding the codes of row j (low nibble column p, high nibble column
// p + 16). Its two 8-byte halves widened are one column of rows 0–7 and of rows 8–15, so the matvec multiplies them
// with a broadcast activation: no horizontal sums, one scale multiply-add per 8 rows and block, and eight
// independent partial sums per block (two halves × two lines × low and high) where the four-row loop over row-major
// blocks has one dependency chain per row. A 16-row panel of the 8-lane matmul is exactly one group, and each line
// fills two panel columns without a transpose.

/// The 8-lane kernels over `Q4_0RowGroup` matrices.
enum RowGroups8 {
    /// y[16 g ..< 16 g + 16] = W[group g] · x for every g in `groups`. `x` holds the activations prepared by
    /// `RowDot.nibbleActivations` (group 32) and `xsum[b]` the sum of the original activations over block b.
    static func q4_0Matvec(_ base: UnsafeRawPointer, columns n: Int, _ x: UnsafePointer<Float>,
                           _ xsum: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, groups: Range<Int>) {
        let groupBytes = Q4_0RowGroup.groupBytes(columns: n)
        let shift = KernelConstants.highNibbleShift
        for g in groups {
            let rows = q4_0Group(base + g * groupBytes, x, xsum, n, shift: shift)
            store8(rows.0, y + 16 * g)
            store8(rows.1, y + 16 * g + 8)
        }
    }

    /// One group, rows 0–7 and 8–15: Σ_b d_b ⊙ (Σ_i c_i x_i − 8 S_b) with the stored codes c_i = 0...15. Per line,
    /// as in `RowDot.nibbleBlock`: the whole byte times x′_p plus its high nibble times x′_{p+16} gives
    /// lo·x_p + hi·x_{p+16} without masking the low nibble.
    @inline(never) static func q4_0Group(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                         _ n: Int, shift: SIMD8<Int32>) -> (F8, F8) {
        var accA = F8(), accB = F8()
        for b in 0..<(n / BlockQ4_0.elements) {
            let p = w + b * Q4_0RowGroup.byteCount
            // The stream runs through the groups in order: fetch the block's lines `prefetchDistance` ahead.
            let ahead = p + prefetchDistance
            prefetch(ahead); prefetch(ahead + 64); prefetch(ahead + 128); prefetch(ahead + 192); prefetch(ahead + 256)
            let xb = x + b * BlockQ4_0.elements
            let codes = p + Q4_0RowGroup.scaleBytes
            // Lines alternate between two pairs of partials (a: rows 0–7, b: rows 8–15).
            var a0 = F8(), a1 = F8(), b0 = F8(), b1 = F8()
            @inline(__always) func line(_ k: Int, _ a: inout F8, _ b: inout F8) {
                let q = codes + 16 * k
                let va = widen(q.loadUnaligned(as: SIMD8<UInt8>.self))
                let vb = widen(q.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
                let low = F8(repeating: xb[k]), high = F8(repeating: xb[k + 16])
                a = a.addingProduct(smallIntsToFloats(va), low)
                b = b.addingProduct(smallIntsToFloats(vb), low)
                a = a.addingProduct(smallIntsToFloats(va &>> shift), high)
                b = b.addingProduct(smallIntsToFloats(vb &>> shift), high)
            }
            var k = 0
            while k < 16 {
                line(k, &a0, &b0)
                line(k + 1, &a1, &b1)
                k += 2
            }
            let offset = F8(repeating: -8 * xsum[b])
            accA = accA.addingProduct(a0 + a1 + offset, loadHalf8(p))
            accB = accB.addingProduct(b0 + b1 + offset, loadHalf8(p + 16))
        }
        return (accA, accB)
    }

    /// panel[k · 16 + i] = W[16 · group + i, k]: the 16 rows of one group widened to (q − 8) · d column by column,
    /// the layout of `Panels8` (two 8-lane vectors per column). Values equal `Dequantize`'s: q − 8 and the product
    /// with an f16 scale are both exact in Float32.
    static func packPanelQ4_0(_ base: UnsafeRawPointer, columns n: Int, group: Int,
                              into panel: UnsafeMutablePointer<Float>) {
        let w = base + group * Q4_0RowGroup.groupBytes(columns: n)
        let eight = F8(repeating: 8)
        let lowBits = SIMD8<Int32>(repeating: 0x0F)
        for b in 0..<(n / BlockQ4_0.elements) {
            let p = w + b * Q4_0RowGroup.byteCount
            let dA = loadHalf8(p), dB = loadHalf8(p + 16)
            let column = panel + Panels8.rows * BlockQ4_0.elements * b
            for k in 0..<16 {
                let q = p + Q4_0RowGroup.scaleBytes + 16 * k
                let va = widen(q.loadUnaligned(as: SIMD8<UInt8>.self))
                let vb = widen(q.loadUnaligned(fromByteOffset: 8, as: SIMD8<UInt8>.self))
                let low = column + Panels8.rows * k, high = column + Panels8.rows * (k + 16)
                store8((smallIntsToFloats(va & lowBits) - eight) * dA, low)
                store8((smallIntsToFloats(vb & lowBits) - eight) * dB, low + 8)
                store8((smallIntsToFloats(va &>> 4) - eight) * dA, high)
                store8((smallIntsToFloats(vb &>> 4) - eight) * dB, high + 8)
            }
        }
    }
}
