// Matmul over packed weight panels for the 8-lane family (the AVX-512 module has its own, 32 rows wide).
//
// A panel is 16 weight rows stored column by column, `panel[k · 16 + i]` = W[i, k]: one column of the panel is two
// 8-lane vectors, so Y[t, rows] accumulates as an outer product (two weight vectors times one broadcast activation
// per token) and the tile ends with plain vector stores, where the row-major 2-row × 6-token tile ends with twelve
// horizontal sums per column slice.

/// Packing and register tiles of the 8-lane panel matmul.
enum Panels8 {
    /// Rows per packed panel: two 8-lane vectors.
    static let rows = 16

    /// Floats of one packed panel of rows with `n` columns.
    static func panelCount(columns n: Int) -> Int { rows * n }

    /// panel[k · 16 + i] = w[i · ldw + k] for i < `count`; 0 for count ≤ i < 16. Eight rows at a time are read
    /// 8 columns at a time and transposed in registers, so the panel is written with whole-vector stores.
    static func pack(_ w: UnsafePointer<Float>, ldw: Int, rows count: Int, columns n: Int,
                     into panel: UnsafeMutablePointer<Float>) {
        for half in 0..<2 {
            let r0 = half * 8
            let live = max(0, min(8, count - r0))
            if live == 8 {
                var k = 0
                while k + 8 <= n {
                    transpose8(w + r0 * ldw + k, ldw, panel + k * rows + r0, rows)
                    k += 8
                }
                while k < n {
                    for i in 0..<8 { panel[k * rows + r0 + i] = w[(r0 + i) * ldw + k] }
                    k += 1
                }
            } else {
                for k in 0..<n {
                    for i in 0..<8 { panel[k * rows + r0 + i] = i < live ? w[(r0 + i) * ldw + k] : 0 }
                }
            }
        }
    }

    /// dst[j · lddst + i] = src[i · ldsrc + j] for an 8 × 8 block.
    @inline(__always) static func transpose8(_ src: UnsafePointer<Float>, _ ldsrc: Int,
                                             _ dst: UnsafeMutablePointer<Float>, _ lddst: Int) {
        let r0 = load8(src), r1 = load8(src + ldsrc), r2 = load8(src + 2 * ldsrc), r3 = load8(src + 3 * ldsrc)
        let r4 = load8(src + 4 * ldsrc), r5 = load8(src + 5 * ldsrc), r6 = load8(src + 6 * ldsrc)
        let r7 = load8(src + 7 * ldsrc)
        // Column j of the block gathers lane j of every row.
        for j in 0..<8 {
            store8(F8(r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j]), dst + j * lddst)
        }
    }

    /// Y[t, 0 ..< count] = panel rows · X[t] for `tokens` activation rows (`ldx` floats apart, `n` columns); outputs
    /// `ldy` floats apart per token.
    static func matmul(_ panel: UnsafePointer<Float>, columns n: Int, _ x: UnsafePointer<Float>, ldx: Int,
                       tokens: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int, rows count: Int) {
        if count == rows {
            panelTokens(panel, n, x, ldx, tokens, y, ldy)
            return
        }
        // A partial panel (the last rows of a matrix): full tiles into a buffer, then the valid rows.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows * 6) { buffer in
            let tmp = buffer.baseAddress!
            var t = 0
            while t < tokens {
                let m = min(6, tokens - t)
                panelTokens(panel, n, x + t * ldx, ldx, m, tmp, rows)
                for j in 0..<m { (y + (t + j) * ldy).update(from: tmp + j * rows, count: count) }
                t += m
            }
        }
    }

    static func panelTokens(_ panel: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                            _ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var t = 0
        while t + 6 <= tokens { tile16x6(panel, n, x + t * ldx, ldx, y + t * ldy, ldy); t += 6 }
        while t + 2 <= tokens { tile16x2(panel, n, x + t * ldx, ldx, y + t * ldy, ldy); t += 2 }
        while t < tokens { tile16x1(panel, n, x + t * ldx, y + t * ldy); t += 1 }
    }

    /// 16 rows × 6 tokens: per column two weight vectors and six broadcast activations feed twelve multiply-adds;
    /// 12 accumulators + 2 weight vectors + 1 broadcast = 15 of the 16 ymm registers.
    @inline(never) static func tile16x6(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                                        _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
        var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
        let x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx
        for k in 0..<n {
            let w0 = load8(w + 16 * k), w1 = load8(w + 16 * k + 8)
            var b = F8(repeating: x[k]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = F8(repeating: x1[k]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
            b = F8(repeating: x2[k]); c20 = c20.addingProduct(w0, b); c21 = c21.addingProduct(w1, b)
            b = F8(repeating: x3[k]); c30 = c30.addingProduct(w0, b); c31 = c31.addingProduct(w1, b)
            b = F8(repeating: x4[k]); c40 = c40.addingProduct(w0, b); c41 = c41.addingProduct(w1, b)
            b = F8(repeating: x5[k]); c50 = c50.addingProduct(w0, b); c51 = c51.addingProduct(w1, b)
        }
        store8(c00, y); store8(c01, y + 8); store8(c10, y + ldy); store8(c11, y + ldy + 8)
        store8(c20, y + 2 * ldy); store8(c21, y + 2 * ldy + 8); store8(c30, y + 3 * ldy); store8(c31, y + 3 * ldy + 8)
        store8(c40, y + 4 * ldy); store8(c41, y + 4 * ldy + 8); store8(c50, y + 5 * ldy); store8(c51, y + 5 * ldy + 8)
    }

    /// 16 rows × 2 tokens (two accumulator sets over even and odd columns, for independent chains).
    @inline(never) static func tile16x2(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>, _ ldx: Int,
                                        _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8()
        var d00 = F8(), d01 = F8(), d10 = F8(), d11 = F8()
        let x1 = x + ldx
        var k = 0
        while k + 2 <= n {
            let w0 = load8(w + 16 * k), w1 = load8(w + 16 * k + 8)
            let v0 = load8(w + 16 * k + 16), v1 = load8(w + 16 * k + 24)
            var b = F8(repeating: x[k]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = F8(repeating: x1[k]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
            b = F8(repeating: x[k + 1]); d00 = d00.addingProduct(v0, b); d01 = d01.addingProduct(v1, b)
            b = F8(repeating: x1[k + 1]); d10 = d10.addingProduct(v0, b); d11 = d11.addingProduct(v1, b)
            k += 2
        }
        if k < n {
            let w0 = load8(w + 16 * k), w1 = load8(w + 16 * k + 8)
            var b = F8(repeating: x[k]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = F8(repeating: x1[k]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
        }
        store8(c00 + d00, y); store8(c01 + d01, y + 8); store8(c10 + d10, y + ldy); store8(c11 + d11, y + ldy + 8)
    }

    /// 16 rows × 1 token (four accumulators over columns k mod 2).
    @inline(never) static func tile16x1(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>,
                                        _ y: UnsafeMutablePointer<Float>) {
        var c0 = F8(), c1 = F8(), d0 = F8(), d1 = F8()
        var k = 0
        while k + 2 <= n {
            let b = F8(repeating: x[k]), e = F8(repeating: x[k + 1])
            c0 = c0.addingProduct(load8(w + 16 * k), b); c1 = c1.addingProduct(load8(w + 16 * k + 8), b)
            d0 = d0.addingProduct(load8(w + 16 * k + 16), e); d1 = d1.addingProduct(load8(w + 16 * k + 24), e)
            k += 2
        }
        if k < n {
            let b = F8(repeating: x[k])
            c0 = c0.addingProduct(load8(w + 16 * k), b); c1 = c1.addingProduct(load8(w + 16 * k + 8), b)
        }
        store8(c0 + d0, y); store8(c1 + d1, y + 8)
    }
}
