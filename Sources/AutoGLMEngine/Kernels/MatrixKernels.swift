// Matrix–vector (decode) and matrix–matrix (prefill) products with packed weights.

#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

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
    /// Rows handled per parallel task in matvec (a multiple of 4): about three tasks per thread. Decode issues
    /// four jobs per layer, so every claimed task costs; in alternating runs 16 tasks per thread decoded SmolLM2
    /// Q4_0 about 25% slower than 6, and 3 slightly faster than 6.
    static func matvecChunk(rows: Int, threads: Int) -> Int {
        let target = max(1, threads * 3)
        let chunk = (rows + target - 1) / target
        return max(8, (chunk + 3) & ~3)
    }

    /// y[r] = Σ_c W[r, c] · x[c] for every row r. `x` holds `w.columns` floats, `y` holds `w.rows` floats.
    /// Rows are split over `pool` (nil: the calling thread only). `isa` picks the kernel family (tests compare them).
    public static func matvec(_ w: PackedMatrix, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                              pool: ComputePool?, isa: KernelISA = .active) {
        let scratch = activationScratchCount(w.format, columns: w.columns, isa: isa)
        if scratch == 0 { runMatvec(w, x, x, y, pool: pool, isa: isa); return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: scratch) { buffer in
            let (xk, sums) = prepareActivations(w.format, x, columns: w.columns, isa: isa, scratch: buffer.baseAddress!)
            runMatvec(w, xk, sums, y, pool: pool, isa: isa)
        }
    }

    /// Floats of per-call scratch the matvec kernels of `format` need next to the activations: the sums of each
    /// group (formats with an offset term), and for the 8-lane nibble kernels the prepared activations.
    static func activationScratchCount(_ format: PackedFormat, columns n: Int, isa: KernelISA) -> Int {
        guard let group = format.activationSumGroup else { return 0 }
        return n / group + (isa == .avx512 ? 0 : n)
    }

    /// Fills `scratch` (`activationScratchCount` floats) for one input vector: the group sums of `x`, then, for
    /// the 8-lane nibble kernels, `RowDot.nibbleActivations` of `x`. Returns the activations the row kernels
    /// read and the sums (both `x` for formats that need neither).
    static func prepareActivations(_ format: PackedFormat, _ x: UnsafePointer<Float>, columns n: Int, isa: KernelISA,
                                   scratch: UnsafeMutablePointer<Float>) -> (x: UnsafePointer<Float>, sums: UnsafePointer<Float>) {
        guard let group = format.activationSumGroup else { return (x, x) }
        let groups = n / group
        for g in 0..<groups { scratch[g] = VectorOps.sum(x + g * group, count: group) }
        if isa == .avx512 { return (x, UnsafePointer(scratch)) }
        RowDot.nibbleActivations(x, count: n, group: group, into: scratch + groups)
        return (UnsafePointer(scratch + groups), UnsafePointer(scratch))
    }

    /// Several matvecs that share one input (for example Q, K and V, or gate and up) in a single parallel job:
    /// `ys[i]` = `ws[i]` · x. Every matrix must have `x`'s length as its column count; matrices and outputs pair up
    /// by index (extra entries in the longer array are ignored). Saves one pool round trip per extra matrix.
    public static func matvec(_ ws: [PackedMatrix], _ x: UnsafePointer<Float>, into ys: [UnsafeMutablePointer<Float>],
                              pool: ComputePool?, isa: KernelISA = .active) {
        let count = min(ws.count, ys.count)
        if count == 0 { return }
        if count == 1 { matvec(ws[0], x, into: ys[0], pool: pool, isa: isa); return }
        let threads = pool?.threadCount ?? 1
        // Activation scratch per matrix (sums, prepared activations; see `prepareActivations`), one after another.
        var scratchOffsets = [Int](repeating: 0, count: count)
        var totalScratch = 0
        var chunkOf = [Int](repeating: 0, count: count)
        var firstTask = [Int](repeating: 0, count: count + 1)
        for i in 0..<count {
            scratchOffsets[i] = totalScratch
            totalScratch += activationScratchCount(ws[i].format, columns: ws[i].columns, isa: isa)
            chunkOf[i] = matvecChunk(rows: ws[i].rows, threads: threads)
            firstTask[i + 1] = firstTask[i] + (ws[i].rows + chunkOf[i] - 1) / chunkOf[i]
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(totalScratch, 1)) { buffer in
            let s = buffer.baseAddress!
            // Matrices of one format read the same prepared input (Q, K and V; gate and up): prepared once.
            var inputs: [(x: UnsafePointer<Float>, sums: UnsafePointer<Float>)] = []
            for i in 0..<count {
                if let j = (0..<i).first(where: { ws[$0].format == ws[i].format }) { inputs.append(inputs[j]); continue }
                inputs.append(prepareActivations(ws[i].format, x, columns: ws[i].columns, isa: isa,
                                                 scratch: s + scratchOffsets[i]))
            }
            let body: (Int) -> Void = { task in
                var m = 0
                while firstTask[m + 1] <= task { m += 1 }
                let start = (task - firstTask[m]) * chunkOf[m]
                let w = ws[m]
                SIMDKernels.matvecRows(w, inputs[m].x, inputs[m].sums, ys[m], start..<min(start + chunkOf[m], w.rows),
                                       isa: isa)
            }
            if let pool { pool.parallelFor(firstTask[count], body) } else { for t in 0..<firstTask[count] { body(t) } }
        }
    }

    /// Checked form of `matvec`: validates the buffer sizes and throws instead of reading out of bounds.
    public static func matvecChecked(_ w: PackedMatrix, _ x: UnsafeBufferPointer<Float>,
                                     into y: UnsafeMutableBufferPointer<Float>, pool: ComputePool?,
                                     isa: KernelISA = .active) throws {
        guard x.count >= w.columns, let xp = x.baseAddress else {
            throw KernelError.bufferTooSmall(name: "x", needed: w.columns, got: x.count)
        }
        guard y.count >= w.rows, let yp = y.baseAddress else {
            throw KernelError.bufferTooSmall(name: "y", needed: w.rows, got: y.count)
        }
        matvec(w, xp, into: yp, pool: pool, isa: isa)
    }

    private static func runMatvec(_ w: PackedMatrix, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                                  _ y: UnsafeMutablePointer<Float>, pool: ComputePool?, isa: KernelISA) {
        let rows = w.rows
        let chunk = matvecChunk(rows: rows, threads: pool?.threadCount ?? 1)
        let tasks = (rows + chunk - 1) / chunk
        let body: (Int) -> Void = { t in
            let start = t * chunk
            SIMDKernels.matvecRows(w, x, xsum, y, start..<min(start + chunk, rows), isa: isa)
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    /// Y[t, r] = Σ_c X[t, c] · W[r, c] for `count` tokens: `x` is `count × w.columns` row-major, `y` is
    /// `count × w.rows` row-major. With at least `panelMinimumTokens` tokens each task dequantises panels of weight
    /// rows (AVX-512: 32, 8-lane: 16), packs each column by column once and runs an outer-product tile over every
    /// token (32 rows × 8 tokens, 16 rows × 6 tokens). Otherwise each task
    /// dequantises blocks of 16 weight rows once per chunk of tokens and runs a register-tiled FMA kernel over them
    /// (AVX-512: 4 rows × 6 tokens; 8-lane: 2 × 6), in column slices for long rows.
    public static func matmul(_ w: PackedMatrix, _ x: UnsafePointer<Float>, count: Int,
                              into y: UnsafeMutablePointer<Float>, pool: ComputePool?, isa: KernelISA = .active) {
        if count <= 0 { return }
        if count == 1 { matvec(w, x, into: y, pool: pool, isa: isa); return }
        let rows = w.rows
        let n = w.columns
        if count >= panelMinimumTokens { matmulPanels(w, x, count: count, into: y, pool: pool, isa: isa); return }
        // Token chunk sized so its activations stay in L2 (~384 KiB), a multiple of the 6-token tile.
        let chunkTokens = max(6, min(count, (384 * 1024) / max(1, n * 4)) / 6 * 6)
        let tiles = (rows + 3) / 4
        let threads = pool?.threadCount ?? 1
        // About eight tasks per thread: the last task to finish bounds the wait of the others.
        let tilesPerTask = max(1, (tiles + threads * 8 - 1) / (threads * 8))
        let tasks = (tiles + tilesPerTask - 1) / tilesPerTask
        let body: (Int) -> Void = { task in
            let firstRow = task * tilesPerTask * 4
            let endRow = min(rows, firstRow + tilesPerTask * 4)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: SIMDKernels.matmulScratchCount(columns: n)) { scratch in
                SIMDKernels.matmulRows(w, x, count, y, firstRow..<endRow, chunkTokens, scratch.baseAddress!, isa: isa)
            }
        }
        if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
    }

    /// Fewest tokens for the packed-panel matmul: packing costs about as much as 32 tokens of multiply-adds per
    /// panel, so shorter batches run the row-major tile on the weights in place. SmolLM2 Q4_0 prefill of 16 tokens
    /// (AVX-512): 450 tok/s packed, about 650 in place; see `make bench` for the long batches.
    static let panelMinimumTokens = 64

    /// The panel matmul: tasks take runs of panels (32 rows for AVX-512, 16 for the 8-lane family); each panel is
    /// dequantised, packed column by column once, and multiplied with every token (outer-product tile, no
    /// horizontal sums).
    private static func matmulPanels(_ w: PackedMatrix, _ x: UnsafePointer<Float>, count: Int,
                                     into y: UnsafeMutablePointer<Float>, pool: ComputePool?, isa: KernelISA) {
        let rows = w.rows
        let panelRows = SIMDKernels.panelRows(isa: isa)
        let panels = (rows + panelRows - 1) / panelRows
        let threads = pool?.threadCount ?? 1
        // About four tasks per thread: a panel is a large unit (its rows × every token).
        let panelsPerTask = max(1, (panels + threads * 4 - 1) / (threads * 4))
        let tasks = (panels + panelsPerTask - 1) / panelsPerTask
        let scratch = SIMDKernels.panelScratchCount(columns: w.columns, isa: isa)
        let run: (UnsafePointer<Float>) -> Void = { xk in
            let body: (Int) -> Void = { task in
                let first = task * panelsPerTask * panelRows
                let end = min(rows, first + panelsPerTask * panelRows)
                withUnsafeTemporaryAllocation(of: Float.self, capacity: scratch) {
                    SIMDKernels.matmulPanelRows(w, xk, count, y, first..<end, $0.baseAddress!, isa: isa)
                }
            }
            if let pool { pool.parallelFor(tasks, body) } else { for t in 0..<tasks { body(t) } }
        }
        #if arch(x86_64)
        if isa == .avx512 { run(x); return }
        #endif
        // The 8-lane tile reads the activations packed six tokens at a time, column-major (packed once per call,
        // split over the threads like the panels).
        let n = w.columns
        let groups = (count + Panels8.tokens - 1) / Panels8.tokens
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: Panels8.packedActivationsCount(tokens: count, columns: n))
        defer { packed.deallocate() }
        let groupsPerTask = max(1, (groups + threads * 2 - 1) / (threads * 2))
        let packTasks = (groups + groupsPerTask - 1) / groupsPerTask
        let pack: (Int) -> Void = { task in
            let g0 = task * groupsPerTask
            Panels8.packActivations(x, ldx: n, tokens: count, columns: n, groups: g0..<min(groups, g0 + groupsPerTask),
                                    into: packed)
        }
        if let pool { pool.parallelFor(packTasks, pack) } else { for t in 0..<packTasks { pack(t) } }
        run(UnsafePointer(packed))
    }

    /// Checked form of `matmul`.
    public static func matmulChecked(_ w: PackedMatrix, _ x: UnsafeBufferPointer<Float>, count: Int,
                                     into y: UnsafeMutableBufferPointer<Float>, pool: ComputePool?,
                                     isa: KernelISA = .active) throws {
        guard count >= 0 else { throw KernelError.invalidArgument("token count \(count) is negative") }
        guard x.count >= count * w.columns, let xp = x.baseAddress else {
            throw KernelError.bufferTooSmall(name: "x", needed: count * w.columns, got: x.count)
        }
        guard y.count >= count * w.rows, let yp = y.baseAddress else {
            throw KernelError.bufferTooSmall(name: "y", needed: count * w.rows, got: y.count)
        }
        matmul(w, xp, count: count, into: yp, pool: pool, isa: isa)
    }
}
