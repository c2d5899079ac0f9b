// Prefill with 8-bit activations: the integer view of the weights (IntegerCodes.swift) packed into panels and
// multiplied by the AVX-512 VNNI tile (AutoGLMKernelsAVX512/AVX512Int8.swift).

#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

extension MatrixKernels {
    /// Fewest tokens for the integer matmul: every batch (one token is decode's matvec, which stays Float32). The
    /// panels pay their packing back from two tokens, unlike the Float32 ones: SmolLM2 Q4_0 prefill, f32 → int8
    /// tok/s, medians of 5: 2 tokens 158 → 201, 4: 237 → 361, 8: 328 → 641, 16: 444 → 993, 32: 588 → 1,413.
    public static let int8MinimumTokens = 2

    /// Whether `matmul` of `count` tokens rounds the activations to 8 bits for `w`: the matrix asks for it, its
    /// format has an integer view, the batch is long enough and the AVX-512 kernels run.
    public static func usesInt8Activations(_ w: PackedMatrix, count: Int, isa: KernelISA = .active) -> Bool {
        #if arch(x86_64)
        return w.activations == .int8 && isa == .avx512 && count >= int8MinimumTokens
            && w.format.hasIntegerCodes(columns: w.columns) && w.rowGroup == 1
        #else
        return false
        #endif
    }

    /// Several matmuls that share one input (Q, K and V; gate and up): `ys[i]` (count × ws[i].rows) = X · ws[i]ᵀ.
    /// When every matrix takes the integer path the tokens are rounded once and all the panels run in one pool job;
    /// otherwise one `matmul` per matrix.
    public static func matmul(_ ws: [PackedMatrix], _ x: UnsafePointer<Float>, count: Int,
                              into ys: [UnsafeMutablePointer<Float>], pool: ComputePool?, isa: KernelISA = .active) {
        let pairs = min(ws.count, ys.count)
        #if arch(x86_64)
        if pairs > 1, ws.allSatisfy({ usesInt8Activations($0, count: count, isa: isa) && $0.columns == ws[0].columns }) {
            matmulInt8(Array(ws.prefix(pairs)), x, count: count, into: Array(ys.prefix(pairs)), pool: pool)
            return
        }
        #endif
        for i in 0..<pairs { matmul(ws[i], x, count: count, into: ys[i], pool: pool, isa: isa) }
    }

    /// The precision prefill runs with when `requested` is asked for: int8 only where the integer kernels exist.
    public static func effectiveActivations(_ requested: ActivationPrecision,
                                            isa: KernelISA = .active) -> ActivationPrecision {
        requested == .int8 && isa == .avx512 ? .int8 : .float32
    }

    #if arch(x86_64)
    /// Y_i (count × rows_i) = X (count × columns) · W_iᵀ for every matrix, with X rounded to 8 bits per block of 32
    /// once for all of them (the matrices share X's columns): the tokens are rounded once (split over the pool),
    /// then one job's tasks take runs of 32-row panels of one matrix, pack each panel's integer codes once and
    /// multiply it with every token.
    static func matmulInt8(_ ws: [PackedMatrix], _ x: UnsafePointer<Float>, count: Int,
                           into ys: [UnsafeMutablePointer<Float>], pool: ComputePool?) {
        let n = ws[0].columns, blocks = n / IntegerCodes.blockElements
        let codes = UnsafeMutablePointer<Int8>.allocate(capacity: count * n)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: 2 * count * blocks)
        defer { codes.deallocate(); scales.deallocate() }
        let sums = scales + count * blocks
        forRowRanges(count, pool: pool) { tokens in                  // X (count, n) -> codes, scales, sums
            AVX512Kernels.quantizeActivations(x, columns: n, tokens: tokens, codes: codes, scales: scales, sums: sums)
        }
        // About four tasks per thread over all the panels, as for the Float32 panels; a task stays in one matrix.
        let panelRows = Int8Panels.rows
        let panels = ws.reduce(0) { $0 + ($1.rows + panelRows - 1) / panelRows }
        let threads = pool?.threadCount ?? 1
        let taskRows = max(1, (panels + threads * 4 - 1) / (threads * 4)) * panelRows
        var tasks: [(matrix: Int, rows: Range<Int>)] = []
        for (m, w) in ws.enumerated() {
            for first in stride(from: 0, to: w.rows, by: taskRows) {
                tasks.append((m, first..<min(w.rows, first + taskRows)))
            }
        }
        let body: (Int) -> Void = { task in
            let (m, rows) = tasks[task]
            let w = ws[m]
            withUnsafeTemporaryAllocation(byteCount: Int8Panels.byteCount(columns: n), alignment: 64) { buffer in
                let panel = buffer.baseAddress!
                for r0 in stride(from: rows.lowerBound, to: rows.upperBound, by: panelRows) {
                    let nr = min(panelRows, rows.upperBound - r0)
                    Int8Panels.pack(w, rows: r0..<(r0 + nr), into: panel)
                    AVX512Kernels.int8PanelMatmul(UnsafeRawPointer(panel), blocks: blocks, codes: codes,
                                                  scales: scales, sums: sums, tokens: count, ys[m] + r0, ldy: w.rows,
                                                  rows: nr)
                }
            }
        }
        if let pool { pool.parallelFor(tasks.count, body) } else { for t in 0..<tasks.count { body(t) } }
    }
    #endif
}

#if arch(x86_64)
/// Integer panels: 32 weight rows' codes, scales and offsets in the layout the AVX-512 integer tile reads
/// (`AVX512Kernels.int8PanelMatmul`). Per block of 32 columns: `[group g (8)][row i (32)][4 codes: columns 4g ..<
/// 4g + 4]` (1,024 bytes), then the 32 rows' scales and their offsets as Float32; rows past a matrix's last are zero.
enum Int8Panels {
    /// Rows per panel.
    static let rows = 32
    /// Bytes per block of 32 columns.
    static let blockBytes = AVX512Kernels.int8PanelBlockBytes

    /// Bytes of one panel of rows with `n` columns.
    static func byteCount(columns n: Int) -> Int { n / IntegerCodes.blockElements * blockBytes }

    /// Packs rows `range` (at most 32) of `w`, whose format has integer codes.
    static func pack(_ w: PackedMatrix, rows range: Range<Int>, into panel: UnsafeMutableRawPointer) {
        let blocks = w.columns / IntegerCodes.blockElements
        /// Row i of block b: its eight words of four codes (codes 4g ..< 4g + 4 in word g), scale and offset.
        func store(_ i: Int, _ b: Int, _ words: SIMD8<UInt32>, _ scale: Float, _ offset: Float) {
            let out = panel + b * blockBytes
            for g in 0..<8 { (out + 128 * g + 4 * i).storeBytes(of: words[g], as: UInt32.self) }
            (out + 1024 + 4 * i).storeBytes(of: scale, as: Float.self)
            (out + 1152 + 4 * i).storeBytes(of: offset, as: Float.self)
        }
        for i in 0..<rows {
            guard i < range.count else {
                for b in 0..<blocks { store(i, b, SIMD8(), 0, 0) }
                continue
            }
            let row = w.rowPointer(range.lowerBound + i)
            for b in 0..<blocks {
                let block = IntegerCodes.block(row, format: w.format, block: b)
                store(i, b, unsafeBitCast(block.codes, to: SIMD8<UInt32>.self), block.scale, block.offset)
            }
        }
    }
}
#endif
