// Matmul over packed weight panels for the AVX-512 family (see AVX512Kernels.swift for the instruction set).
//
// A panel is 32 weight rows stored column by column, `panel[k · 32 + i]` = W[i, k]: one 32-float step of the panel
// is two vectors of 16 rows, so Y[t, rows] accumulates as an outer product, two weight vectors times one broadcast
// activation per token, with no horizontal sums at the end (the row-major 4 × 6 tile needs 24 of them).

#if arch(x86_64)
import _Builtin_intrinsics.intel

extension AVX512Kernels {
    /// Rows per packed panel.
    public static let panelRows = 32

    /// panel[k · 32 + i] = w[i · ldw + k] for i < rows; 0 for rows ≤ i < 32.
    public static func packPanel(_ w: UnsafePointer<Float>, ldw: Int, rows: Int, columns n: Int,
                                 into panel: UnsafeMutablePointer<Float>) {
        for i in 0..<rows {
            let src = w + i * ldw
            var k = 0
            while k + 4 <= n {
                panel[k * 32 + i] = src[k]; panel[(k + 1) * 32 + i] = src[k + 1]
                panel[(k + 2) * 32 + i] = src[k + 2]; panel[(k + 3) * 32 + i] = src[k + 3]
                k += 4
            }
            while k < n { panel[k * 32 + i] = src[k]; k += 1 }
        }
        if rows < 32 {
            for k in 0..<n { for i in rows..<32 { panel[k * 32 + i] = 0 } }
        }
    }

    /// Y[t, 0 ..< rows] = panel-rows · X[t] for `tokens` activation rows (`ldx` floats apart, `n` columns); outputs
    /// `ldy` floats apart per token. Runs a 32-row × 8-token register tile.
    public static func panelMatmul(_ panel: UnsafePointer<Float>, columns n: Int, _ x: UnsafePointer<Float>, ldx: Int,
                                   tokens: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Int) {
        if rows == 32 {
            panelTokens(panel, n, x, ldx, tokens, y, ldy)
            return
        }
        // A partial panel (the last rows of a matrix): full tiles into a buffer, then the valid rows.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32 * 8) { buffer in
            let tmp = buffer.baseAddress!
            var t = 0
            while t < tokens {
                let m = min(8, tokens - t)
                panelTokens(panel, n, x + t * ldx, ldx, m, tmp, 32)
                for j in 0..<m { (y + (t + j) * ldy).update(from: tmp + j * 32, count: rows) }
                t += m
            }
        }
    }

    static func panelTokens(_ panel: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                            _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var t = 0
        while t + 8 <= tokens { panel32x8(panel, n, x + t * ldx, ldx, y + t * ldy, ldy); t += 8 }
        while t + 4 <= tokens { panel32x4(panel, n, x + t * ldx, ldx, y + t * ldy, ldy); t += 4 }
        while t < tokens { panel32x1(panel, n, x + t * ldx, y + t * ldy); t += 1 }
    }

    /// 32 rows × 8 tokens: per column two weight vectors and eight broadcast activations (16 accumulators; a
    /// 12-token tile had its accumulators spilled to the stack by the compiler's unrolling, 20% slower than the
    /// row-major tile).
    @inline(never) static func panel32x8(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                                         _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16()
        var c30 = V16(), c31 = V16(), c40 = V16(), c41 = V16(), c50 = V16(), c51 = V16()
        var c60 = V16(), c61 = V16(), c70 = V16(), c71 = V16()
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        let x6 = x + 6 * ldx, x7 = x + 7 * ldx
        for k in 0..<n {
            let w0 = load16(w + 32 * k), w1 = load16(w + 32 * k + 16)
            var b = V16(repeating: x[k]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = V16(repeating: x1[k]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
            b = V16(repeating: x2[k]); c20 = c20.addingProduct(w0, b); c21 = c21.addingProduct(w1, b)
            b = V16(repeating: x3[k]); c30 = c30.addingProduct(w0, b); c31 = c31.addingProduct(w1, b)
            b = V16(repeating: x4[k]); c40 = c40.addingProduct(w0, b); c41 = c41.addingProduct(w1, b)
            b = V16(repeating: x5[k]); c50 = c50.addingProduct(w0, b); c51 = c51.addingProduct(w1, b)
            b = V16(repeating: x6[k]); c60 = c60.addingProduct(w0, b); c61 = c61.addingProduct(w1, b)
            b = V16(repeating: x7[k]); c70 = c70.addingProduct(w0, b); c71 = c71.addingProduct(w1, b)
        }
        store16(c00, y); store16(c01, y + 16); store16(c10, y + ldy); store16(c11, y + ldy + 16)
        store16(c20, y + 2 * ldy); store16(c21, y + 2 * ldy + 16); store16(c30, y + 3 * ldy)
        store16(c31, y + 3 * ldy + 16); store16(c40, y + 4 * ldy); store16(c41, y + 4 * ldy + 16)
        store16(c50, y + 5 * ldy); store16(c51, y + 5 * ldy + 16); store16(c60, y + 6 * ldy)
        store16(c61, y + 6 * ldy + 16); store16(c70, y + 7 * ldy); store16(c71, y + 7 * ldy + 16)
    }

    /// 32 rows × 4 tokens.
    @inline(never) static func panel32x4(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                                         _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16(), c30 = V16(), c31 = V16()
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
        for k in 0..<n {
            let w0 = load16(w + 32 * k), w1 = load16(w + 32 * k + 16)
            var b = V16(repeating: x[k]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = V16(repeating: x1[k]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
            b = V16(repeating: x2[k]); c20 = c20.addingProduct(w0, b); c21 = c21.addingProduct(w1, b)
            b = V16(repeating: x3[k]); c30 = c30.addingProduct(w0, b); c31 = c31.addingProduct(w1, b)
        }
        store16(c00, y); store16(c01, y + 16); store16(c10, y + ldy); store16(c11, y + ldy + 16)
        store16(c20, y + 2 * ldy); store16(c21, y + 2 * ldy + 16); store16(c30, y + 3 * ldy)
        store16(c31, y + 3 * ldy + 16)
    }

    /// 32 rows × 1 token (two accumulators per row vector over even and odd columns).
    @inline(never) static func panel32x1(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>,
                                         _ y: UnsafeMutablePointer<Float>) {
        var c0 = V16(), c1 = V16(), d0 = V16(), d1 = V16()
        var k = 0
        while k + 2 <= n {
            let b = V16(repeating: x[k]), e = V16(repeating: x[k + 1])
            c0 = c0.addingProduct(load16(w + 32 * k), b); c1 = c1.addingProduct(load16(w + 32 * k + 16), b)
            d0 = d0.addingProduct(load16(w + 32 * k + 32), e); d1 = d1.addingProduct(load16(w + 32 * k + 48), e)
            k += 2
        }
        if k < n {
            let b = V16(repeating: x[k])
            c0 = c0.addingProduct(load16(w + 32 * k), b); c1 = c1.addingProduct(load16(w + 32 * k + 16), b)
        }
        store16(c0 + d0, y); store16(c1 + d1, y + 16)
    }
}
#endif
