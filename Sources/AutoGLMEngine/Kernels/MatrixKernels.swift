// Matrix–vector (decode) and matrix–matrix (prefill) products with packed weights.

/// Errors from kernel entry points that check their arguments.
public enum KernelError: Error, CustomStringConvertible, Equatable, Sendable {
    case bufferTooSmall(name: String, needed: Int, got: Int)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .bufferTooSmall(name, needed, got): return "buffer '\(name)' needs \(needed) floats, got \(got)"
        case let .invalidArgument(text): return "invalid kernel argument: \(text)"
        }
    }
}

/// The engine's matrix kernels. Pointers are unchecked for speed; the `Checked` variants validate sizes.
public enum MatrixKernels {
    /// Rows handled per parallel task in matvec (a multiple of 4).
    static func matvecChunk(rows: Int, threads: Int) -> Int {
        let target = max(1, threads * 6)
        let chunk = (rows + target - 1) / target
        return max(8, (chunk + 3) & ~3)
    }

    /// y[r] = Σ_c W[r, c] · x[c] for every row r. `x` holds `w.columns` floats, `y` holds `w.rows` floats.
    /// Rows are split over `pool` (nil: the calling thread only).
    public static func matvec(_ w: PackedMatrix, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                              pool: ComputePool?) {
        let n = w.columns
        if let group = w.format.int4GroupSize ?? (w.format == .q4_1 ? 32 : nil) {
            let groups = n / group
            withUnsafeTemporaryAllocation(of: Float.self, capacity: groups) { sums in
                let s = sums.baseAddress!
                for g in 0..<groups { s[g] = VectorOps.sum(x + g * group, count: group) }
                runMatvec(w, x, s, y, pool: pool)
            }
        } else {
            runMatvec(w, x, x, y, pool: pool)
        }
    }

    /// Checked form of `matvec`: validates the buffer sizes and throws instead of reading out of bounds.
    public static func matvecChecked(_ w: PackedMatrix, _ x: UnsafeBufferPointer<Float>,
                                     into y: UnsafeMutableBufferPointer<Float>, pool: ComputePool?) throws {
        guard x.count >= w.columns, let xp = x.baseAddress else {
            throw KernelError.bufferTooSmall(name: "x", needed: w.columns, got: x.count)
        }
        guard y.count >= w.rows, let yp = y.baseAddress else {
            throw KernelError.bufferTooSmall(name: "y", needed: w.rows, got: y.count)
        }
        matvec(w, xp, into: yp, pool: pool)
    }

    private static func runMatvec(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<Float>, pool: ComputePool?) {
        let rows = w.rows
        let chunk = matvecChunk(rows: rows, threads: pool?.threadCount ?? 1)
        let tasks = (rows + chunk - 1) / chunk
        let body: (Int) -> Void = { t in
            let start = t * chunk
            matvecRows(w, x, xsum, y, start..<min(start + chunk, rows))
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    static func matvecRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                           _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let n = w.columns
        let rb = w.rowBytes
        let base = w.data
        switch w.format {
        case .f32:
            var r = range.lowerBound
            while r + 4 <= range.upperBound {
                let p = (base + r * rb).assumingMemoryBound(to: Float.self)
                MicroKernels.f32Rows4(p, n, x, n, y + r)
                r += 4
            }
            while r < range.upperBound {
                y[r] = RowDot.f32((base + r * rb).assumingMemoryBound(to: Float.self), x, n); r += 1
            }
        case .f16:
            for r in range { y[r] = RowDot.f16(base + r * rb, x, n) }
        case .bf16:
            for r in range { y[r] = RowDot.bf16(base + r * rb, x, n) }
        case .q8_0:
            for r in range { y[r] = RowDot.q8_0(base + r * rb, x, n) }
        case .q4_0:
            for r in range { y[r] = RowDot.q4_0(base + r * rb, x, n) }
        case .q4_1, .int4g32:
            for r in range { y[r] = RowDot.q4Min(base + r * rb, x, xsum, n, group: 32, blockBytes: 20) }
        case .int4g64:
            for r in range { y[r] = RowDot.q4Min(base + r * rb, x, xsum, n, group: 64, blockBytes: 36) }
        case .int4g128:
            for r in range { y[r] = RowDot.q4Min(base + r * rb, x, xsum, n, group: 128, blockBytes: 68) }
        case .int8:
            for r in range { y[r] = RowDot.int8(base + r * rb, x, n) }
        }
    }

    /// Y[t, r] = Σ_c X[t, c] · W[r, c] for `count` tokens: `x` is `count × w.columns` row-major, `y` is
    /// `count × w.rows` row-major. Each task dequantises a tile of 4 weight rows once per chunk of tokens and
    /// runs a 4-row × 3-token register-tiled FMA kernel over it.
    public static func matmul(_ w: PackedMatrix, _ x: UnsafePointer<Float>, count: Int,
                              into y: UnsafeMutablePointer<Float>, pool: ComputePool?) {
        if count <= 0 { return }
        if count == 1 { matvec(w, x, into: y, pool: pool); return }
        let rows = w.rows
        let n = w.columns
        // Token chunk sized so its activations stay in L2 (~384 KiB), a multiple of the 3-token tile.
        let chunkTokens = max(3, min(count, (384 * 1024) / max(1, n * 4)) / 3 * 3)
        let tiles = (rows + 3) / 4
        let threads = pool?.threadCount ?? 1
        let tilesPerTask = max(1, (tiles + threads * 4 - 1) / (threads * 4))
        let tasks = (tiles + tilesPerTask - 1) / tilesPerTask
        let body: (Int) -> Void = { task in
            let firstRow = task * tilesPerTask * 4
            let endRow = min(rows, firstRow + tilesPerTask * 4)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * n) { scratch in
                matmulRows(w, x, count, y, firstRow..<endRow, chunkTokens, scratch.baseAddress!)
            }
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    /// Checked form of `matmul`.
    public static func matmulChecked(_ w: PackedMatrix, _ x: UnsafeBufferPointer<Float>, count: Int,
                                     into y: UnsafeMutableBufferPointer<Float>, pool: ComputePool?) throws {
        guard count >= 0 else { throw KernelError.invalidArgument("token count \(count) is negative") }
        guard x.count >= count * w.columns, let xp = x.baseAddress else {
            throw KernelError.bufferTooSmall(name: "x", needed: count * w.columns, got: x.count)
        }
        guard y.count >= count * w.rows, let yp = y.baseAddress else {
            throw KernelError.bufferTooSmall(name: "y", needed: count * w.rows, got: y.count)
        }
        matmul(w, xp, count: count, into: yp, pool: pool)
    }

    static func matmulRows(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ count: Int,
                           _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>, _ chunkTokens: Int,
                           _ scratch: UnsafeMutablePointer<Float>) {
        let n = w.columns
        let rows = w.rows
        var t0 = 0
        while t0 < count {
            let t1 = min(count, t0 + chunkTokens)
            var r = range.lowerBound
            while r < range.upperBound {
                let tileRows = min(4, range.upperBound - r)
                let wTile: UnsafePointer<Float>
                if w.format == .f32 {
                    wTile = (w.data + r * w.rowBytes).assumingMemoryBound(to: Float.self)
                } else {
                    for i in 0..<tileRows {
                        Dequantize.row(w.rowPointer(r + i), format: w.format, columns: n, into: scratch + i * n)
                    }
                    wTile = UnsafePointer(scratch)
                }
                if tileRows == 4 {
                    var t = t0
                    while t + 3 <= t1 {
                        MicroKernels.f32Rows4Tokens3(wTile, n, x + t * n, n, y + t * rows + r, rows)
                        t += 3
                    }
                    while t < t1 {
                        MicroKernels.f32Rows4(wTile, n, x + t * n, n, y + t * rows + r)
                        t += 1
                    }
                } else {
                    for i in 0..<tileRows {
                        for t in t0..<t1 { y[t * rows + r + i] = RowDot.f32(wTile + i * n, x + t * n, n) }
                    }
                }
                r += tileRows
            }
            t0 = t1
        }
    }
}

/// Register-tiled Float32 kernels over rows that are already Float32.
enum MicroKernels {
    /// y[0..<4] = W[0..<4] · x, rows `ldw` floats apart.
    @inline(__always) static func f32Rows4(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>,
                                           _ n: Int, _ y: UnsafeMutablePointer<Float>) {
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
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3
    }

    /// Y[t, 0..<4] for 3 tokens: tokens are `ldx` floats apart in `x`, outputs `ldy` floats apart in `y`.
    @inline(__always) static func f32Rows4Tokens3(_ w: UnsafePointer<Float>, _ ldw: Int, _ x: UnsafePointer<Float>,
                                                  _ ldx: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        let n = ldx
        var c00 = F8(), c01 = F8(), c02 = F8(), c03 = F8()
        var c10 = F8(), c11 = F8(), c12 = F8(), c13 = F8()
        var c20 = F8(), c21 = F8(), c22 = F8(), c23 = F8()
        let w1 = w + ldw, w2 = w + 2 * ldw, w3 = w + 3 * ldw
        let x1 = x + ldx, x2 = x + 2 * ldx
        var k = 0
        while k + 8 <= n {
            let a0 = load8(w + k), a1 = load8(w1 + k), a2 = load8(w2 + k), a3 = load8(w3 + k)
            let b0 = load8(x + k)
            c00 = c00.addingProduct(a0, b0); c01 = c01.addingProduct(a1, b0)
            c02 = c02.addingProduct(a2, b0); c03 = c03.addingProduct(a3, b0)
            let b1 = load8(x1 + k)
            c10 = c10.addingProduct(a0, b1); c11 = c11.addingProduct(a1, b1)
            c12 = c12.addingProduct(a2, b1); c13 = c13.addingProduct(a3, b1)
            let b2 = load8(x2 + k)
            c20 = c20.addingProduct(a0, b2); c21 = c21.addingProduct(a1, b2)
            c22 = c22.addingProduct(a2, b2); c23 = c23.addingProduct(a3, b2)
            k += 8
        }
        var s = (hsum(c00), hsum(c01), hsum(c02), hsum(c03),
                 hsum(c10), hsum(c11), hsum(c12), hsum(c13),
                 hsum(c20), hsum(c21), hsum(c22), hsum(c23))
        while k < n {
            s.0 += w[k] * x[k]; s.1 += w1[k] * x[k]; s.2 += w2[k] * x[k]; s.3 += w3[k] * x[k]
            s.4 += w[k] * x1[k]; s.5 += w1[k] * x1[k]; s.6 += w2[k] * x1[k]; s.7 += w3[k] * x1[k]
            s.8 += w[k] * x2[k]; s.9 += w1[k] * x2[k]; s.10 += w2[k] * x2[k]; s.11 += w3[k] * x2[k]
            k += 1
        }
        y[0] = s.0; y[1] = s.1; y[2] = s.2; y[3] = s.3
        y[ldy] = s.4; y[ldy + 1] = s.5; y[ldy + 2] = s.6; y[ldy + 3] = s.7
        y[2 * ldy] = s.8; y[2 * ldy + 1] = s.9; y[2 * ldy + 2] = s.10; y[2 * ldy + 3] = s.11
    }
}
