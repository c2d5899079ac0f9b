// Q4_0 weights in groups of 16 rows (the engine's `NibbleRowGroup` layout for Q4_0): per group and block of 32 columns,
// the 16 rows' f16 scales (32 bytes), then 16 lines of 16 bytes, line p holding byte p of each row's Q4_0 block (row j
// in byte j: low nibble column p, high nibble column p + 16). One 16-lane vector then carries one column of 16 rows, so
// a matvec multiplies it with a broadcast activation (no horizontal sums), applies the 16 rows' scales with one
// multiply-add per block, and needs no pass over the scales before the codes: 6 vector operations per 32 weights of a
// row against 7 plus a share of the scale pass in the four-row loop over row-major blocks. Activations stay Float32
// throughout.

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX512Kernels {
    /// Rows per group of the interleaved Q4_0 layout.
    public static let q4_0GroupRows = 16
    /// Bytes per group and block of 32 columns: 16 f16 scales and 16 × 16 code bytes.
    public static let q4_0GroupBlockBytes = 16 * 18

    /// y[16 g ..< 16 g + 16] = W[group g] · x for every g in `groups`; `xsum[b]` = Σ of x over block b.
    public static func q4_0GroupMatvec(_ base: UnsafeRawPointer, columns n: Int, _ x: UnsafePointer<Float>,
                                       _ xsum: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                       groups: Range<Int>) {
        let groupBytes = (n / 32) * q4_0GroupBlockBytes
        for g in groups { store16(q4_0Group(base + g * groupBytes, x, xsum, n), y + 16 * g) }
    }

    /// One group: Σ_b d_b ⊙ Σ_i (q_i · x_i) − 8 Σ_b d_b S_b, lanes = the 16 rows. Low nibbles are looked up
    /// (`lookup`), high ones shifted and converted (`highNibbles`), as in the row-major kernels.
    @inline(never) static func q4_0Group(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                         _ n: Int) -> V16 {
        let ramp = codeRamp()
        var acc = V16(), offset = V16()
        for b in 0..<(n / 32) {
            let p = w + b * q4_0GroupBlockBytes
            // The stream runs through the groups in order: fetch the lines of the block `prefetchDistance` ahead.
            let ahead = p + prefetchDistance
            prefetch(ahead); prefetch(ahead + 64); prefetch(ahead + 128); prefetch(ahead + 192); prefetch(ahead + 256)
            let xb = x + b * 32
            let codes = p + 32
            var low = V16(), high = V16()
            var k = 0
            while k < 16 {
                let i0 = byteLanes16(codes + 16 * k), i1 = byteLanes16(codes + 16 * k + 16)
                low = low.addingProduct(lookup(ramp, i0), V16(repeating: xb[k]))
                high = high.addingProduct(highNibbles(i0), V16(repeating: xb[k + 16]))
                low = low.addingProduct(lookup(ramp, i1), V16(repeating: xb[k + 1]))
                high = high.addingProduct(highNibbles(i1), V16(repeating: xb[k + 17]))
                k += 2
            }
            let d = loadHalf16(p)
            acc = acc.addingProduct(low + high, d)
            offset = offset.addingProduct(d, V16(repeating: xsum[b]))
        }
        return acc.addingProduct(offset, V16(repeating: -8))
    }

    /// panel[k · 32 + i] = W[i, k] for the `groups` (1 or 2) groups of 16 rows starting at `group`: the codes
    /// widened to (q − 8) · d per column, 16 rows per vector, straight into the panel's layout (no transposes);
    /// with one group the panel's rows 16–31 are zero. Values are those of `Dequantize` (one rounding of (q − 8) · d).
    public static func packPanelQ4_0Groups(_ base: UnsafeRawPointer, columns n: Int, group: Int, groups: Int,
                                           into panel: UnsafeMutablePointer<Float>) {
        let groupBytes = (n / 32) * q4_0GroupBlockBytes
        let centred = codeRamp() - 8
        for h in 0..<2 {
            let out = panel + 16 * h
            guard h < groups else {
                for k in 0..<n { store16(V16(), out + 32 * k) }
                continue
            }
            let w = base + (group + h) * groupBytes
            for b in 0..<(n / 32) {
                let p = w + b * q4_0GroupBlockBytes
                let d = loadHalf16(p)
                let column = out + 32 * 32 * b
                for k in 0..<16 {
                    let i = byteLanes16(p + 32 + 16 * k)
                    store16(lookup(centred, i) * d, column + 32 * k)
                    store16(lookup(centred, i &>> 4) * d, column + 32 * (k + 16))
                }
            }
        }
    }
}
#endif
