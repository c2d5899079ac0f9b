// Matrix–vector (decode) and matrix–matrix (prefill) products with packed weights.

import Foundation

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
    /// Smallest matvec task in weight bytes (the last tasks of a job): about a microsecond of streaming per core.
    static let minimumTaskBytes = 16 * 1024

    /// One task of a matvec job: rows `start ..< end` of matrix `matrix`.
    struct MatvecTask { var matrix: Int; var start: Int; var end: Int }

    /// Guided split of a matvec job over `threads`: each task takes 1/(2·threads) of the weight bytes still to
    /// hand out (whole groups of 4 rows, at least `minimumTaskBytes`), walking the matrices in order, so tasks
    /// shrink towards the end of the job and the threads finish close together without claiming many small tasks.
    /// Decode issues four jobs per layer and every claim costs a contended compare-and-swap: with equal tasks,
    /// 16 per thread decoded SmolLM2 Q4_0 about 25% slower than 6 and 3 slightly faster than 6, but a thread that
    /// takes the last of 3–6 equal tasks leaves the other idle for up to a task. Guided against 3 equal tasks per
    /// thread, tg128 medians of 8 alternating rounds on the 2-core AVX-512 host: Q4_0 151 → 175 and 162 → 176
    /// tok/s, F16 76.5 → 78.5 (5 rounds); 8 KiB and 32 KiB minimums were no better than 16 KiB.
    /// Returns the number of tasks written: at most `capacity` (≥ `matrices`), whole matrices' rests near it.
    /// Tasks start on multiples of `granule` rows (4; 16 where a matrix is grouped by 16 rows).
    static func guidedTasks(rows: (Int) -> Int, rowBytes: (Int) -> Int, matrices: Int, threads: Int,
                            into tasks: UnsafeMutablePointer<MatvecTask>, capacity: Int, granule: Int = 4) -> Int {
        var remaining = 0
        for m in 0..<matrices { remaining += rows(m) * rowBytes(m) }
        var count = 0
        for m in 0..<matrices {
            let r = rows(m), rb = max(1, rowBytes(m))
            var start = 0
            while start < r {
                let bytes = max(minimumTaskBytes, remaining / (2 * max(1, threads)))
                var take = max(granule, (bytes / rb + granule - 1) / granule * granule)
                // Near the capacity (one task kept for each later matrix) or the matrix's end: the rest in one.
                if count >= capacity - (matrices - m) || r - start - take < granule { take = r - start }
                take = min(take, r - start)
                tasks[count] = MatvecTask(matrix: m, start: start, end: start + take)
                count += 1
                start += take
                remaining -= take * rb
            }
        }
        return count
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
        // Activation scratch per matrix (sums, prepared activations; see `prepareActivations`), one after another.
        var scratchOffsets = [Int](repeating: 0, count: count)
        var totalScratch = 0
        for i in 0..<count {
            scratchOffsets[i] = totalScratch
            totalScratch += activationScratchCount(ws[i].format, columns: ws[i].columns, isa: isa)
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
            let granule = max(4, ws.prefix(count).map(\.rowGroup).max() ?? 1)
            runTasks(matrices: count, rows: { ws[$0].rows }, rowBytes: { ws[$0].rowBytes }, pool: pool,
                     granule: granule) { m, range in
                SIMDKernels.matvecRows(ws[m], inputs[m].x, inputs[m].sums, ys[m], range, isa: isa)
            }
        }
    }

    /// Runs `body(matrix, rows)` over every row of `matrices` matrices: on the calling thread in one call per
    /// matrix without a pool, else as the guided tasks of one pool job.
    private static func runTasks(matrices: Int, rows: (Int) -> Int, rowBytes: (Int) -> Int, pool: ComputePool?,
                                 granule: Int = 4, _ body: (Int, Range<Int>) -> Void) {
        guard let pool, pool.threadCount > 1 else {
            for m in 0..<matrices { body(m, 0..<rows(m)) }
            return
        }
        var bytes = 0
        for m in 0..<matrices { bytes += rows(m) * rowBytes(m) }
        // The guided sizes shrink by a factor 1 − 1/(2·threads) per task down to the minimum, then at most
        // 2·threads minimum tasks remain, plus one cut per matrix boundary.
        let threads = pool.threadCount
        let steps = log(max(Double(bytes) / Double(minimumTaskBytes), 1)).rounded(.up)
        let capacity = matrices + 2 * threads * (4 + Int(steps))
        withUnsafeTemporaryAllocation(of: MatvecTask.self, capacity: capacity) { buffer in
            let tasks = buffer.baseAddress!
            let n = guidedTasks(rows: rows, rowBytes: rowBytes, matrices: matrices, threads: threads, into: tasks,
                                capacity: capacity, granule: granule)
            pool.parallelFor(n) { t in body(tasks[t].matrix, tasks[t].start..<tasks[t].end) }
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
        runTasks(matrices: 1, rows: { _ in w.rows }, rowBytes: { _ in w.rowBytes }, pool: pool,
                 granule: max(4, w.rowGroup)) { _, range in
            SIMDKernels.matvecRows(w, x, xsum, y, range, isa: isa)
        }
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
        #if arch(x86_64)
        if usesInt8Activations(w, count: count, isa: isa) {
            matmulInt8([w], x, count: count, into: [y], pool: pool)
            return
        }
        #endif
        let rows = w.rows
        let n = w.columns
        // A matrix grouped by rows packs its panels without transposing (cheaper than dequantising rows), so every
        // batch takes the panels.
        if count >= panelMinimumTokens || w.rowGroup > 1 {
            matmulPanels(w, x, count: count, into: y, pool: pool, isa: isa)
            return
        }
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
