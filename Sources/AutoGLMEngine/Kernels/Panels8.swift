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

    /// Tokens per group of packed activations: the tile's token count.
    static let tokens = 6

    /// Floats of the packed activations of `count` tokens with `n` columns.
    static func packedActivationsCount(tokens count: Int, columns n: Int) -> Int {
        (count + tokens - 1) / tokens * tokens * n
    }

    /// Packs the activations of the tokens in `groups` (groups of 6 tokens) k-major:
    /// `out[(g · n + k) · 6 + j]` = x[(6g + j) · ldx + k], 0 for tokens past `count`. The tile then reads its six
    /// activations of a column from one 24-byte run instead of six rows `ldx` apart.
    static func packActivations(_ x: UnsafePointer<Float>, ldx: Int, tokens count: Int, columns n: Int,
                                groups: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for g in groups {
            let dst = out + g * n * tokens
            let live = min(tokens, count - g * tokens)
            for j in 0..<tokens {
                if j < live {
                    let src = x + (g * tokens + j) * ldx
                    for k in 0..<n { dst[k * tokens + j] = src[k] }
                } else {
                    for k in 0..<n { dst[k * tokens + j] = 0 }
                }
            }
        }
    }

    /// Y[t, 0 ..< rows] = panel rows · X[t] for `count` tokens from activations packed by `packActivations`;
    /// outputs `ldy` floats apart per token. Partial tiles (the last rows of a matrix, the last tokens) go through
    /// a buffer and only their valid rows and tokens are written.
    static func matmul(_ panel: UnsafePointer<Float>, columns n: Int, packed x: UnsafePointer<Float>, tokens count: Int,
                       _ y: UnsafeMutablePointer<Float>, ldy: Int, rows live: Int) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows * tokens) { buffer in
            let tmp = buffer.baseAddress!
            var t = 0
            while t < count {
                let m = min(tokens, count - t)
                let xg = x + (t / tokens) * n * tokens
                if m == tokens && live == rows {
                    tile16x6(panel, n, xg, y + t * ldy, ldy)
                } else {
                    tile16x6(panel, n, xg, tmp, rows)
                    for j in 0..<m { (y + (t + j) * ldy).update(from: tmp + j * rows, count: live) }
                }
                t += m
            }
        }
    }

    /// 16 rows × 6 tokens: per column two weight vectors and six activations broadcast from one packed run feed
    /// twelve multiply-adds; 12 accumulators + 2 weight vectors + 1 broadcast = 15 of the 16 ymm registers. Two
    /// columns per iteration, so the loop's own instructions are paid once per 24 multiply-adds.
    @inline(never) static func tile16x6(_ w: UnsafePointer<Float>, _ n: Int, _ x: UnsafePointer<Float>,
                                        _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
        var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
        @inline(__always) func column(_ k: Int) {
            let wk = w + 16 * k, xk = x + 6 * k
            let w0 = load8(wk), w1 = load8(wk + 8)
            var b = F8(repeating: xk[0]); c00 = c00.addingProduct(w0, b); c01 = c01.addingProduct(w1, b)
            b = F8(repeating: xk[1]); c10 = c10.addingProduct(w0, b); c11 = c11.addingProduct(w1, b)
            b = F8(repeating: xk[2]); c20 = c20.addingProduct(w0, b); c21 = c21.addingProduct(w1, b)
            b = F8(repeating: xk[3]); c30 = c30.addingProduct(w0, b); c31 = c31.addingProduct(w1, b)
            b = F8(repeating: xk[4]); c40 = c40.addingProduct(w0, b); c41 = c41.addingProduct(w1, b)
            b = F8(repeating: xk[5]); c50 = c50.addingProduct(w0, b); c51 = c51.addingProduct(w1, b)
        }
        var k = 0
        while k + 2 <= n { column(k); column(k + 1); k += 2 }
        if k < n { column(k) }
        store8(c00, y); store8(c01, y + 8); store8(c10, y + ldy); store8(c11, y + ldy + 8)
        store8(c20, y + 2 * ldy); store8(c21, y + 2 * ldy + 8); store8(c30, y + 3 * ldy); store8(c31, y + 3 * ldy + 8)
        store8(c40, y + 4 * ldy); store8(c41, y + 4 * ldy + 8); store8(c50, y + 5 * ldy); store8(c51, y + 5 * ldy + 8)
    }
}
