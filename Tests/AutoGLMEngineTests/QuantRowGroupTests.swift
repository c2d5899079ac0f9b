import Foundation
import Testing
@testable import AutoGLMEngine
#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

private func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

/// Each output against the Double-accumulated reference, relative to Σ|w·x| (the weights are exact after
/// dequantisation; only the Float32 summation order differs).
private func expectClose(_ got: [Float], _ reference: [Float], weights: [Float], x: [Float], rows: Int, columns: Int,
                         count: Int, _ label: String) {
    for t in 0..<count {
        for r in 0..<rows {
            var magnitude: Float = 0
            for c in 0..<columns { magnitude += abs(weights[r * columns + c] * x[t * columns + c]) }
            let i = t * rows + r
            #expect(abs(got[i] - reference[i]) <= 1e-5 * magnitude + 1e-6,
                    "\(label) token \(t) row \(r): got \(got[i]) want \(reference[i])")
        }
    }
}

private func nibbleMatrix(_ format: PackedFormat, rows: Int, columns: Int, seed: UInt64) throws -> PackedMatrix {
    try PackedMatrix.quantize(randomFloats(rows * columns, seed: seed), rows: rows, columns: columns, format: format)
}

/// Every format with a grouped layout.
private let nibbleFormats: [PackedFormat] = [.q4_0, .q4_1, .int4g32, .int4g64, .int4g128]

/// Shapes: one group; three groups (a panel of 32 rows and a half panel); SmolLM2's K/V and FFN down shapes; one
/// shape every group size divides. Each format takes the shapes whose rows are whole blocks of it.
private let groupShapes: [(rows: Int, columns: Int)] = [(16, 32), (48, 96), (192, 576), (64, 1536), (32, 256)]

private func shapes(_ format: PackedFormat) -> [(rows: Int, columns: Int)] {
    groupShapes.filter { format.supports(columns: $0.columns) }
}

@Suite("Nibble formats grouped by 16 rows")
struct QuantRowGroupTests {
    @Test("a group block is 16 blocks of the format: f16 scales, f16 minimums, one line of 16 bytes per code byte")
    func blockSize() throws {
        let q4_0 = NibbleRowGroup.q4_0
        #expect(NibbleRowGroup.rows == 16)
        #expect(q4_0.scaleBytes == 32 && q4_0.minimumBytes == 0 && q4_0.linesOffset == 32 && q4_0.lines == 16)
        #expect(q4_0.byteCount == 288)
        #expect(q4_0.groupBytes(columns: 576) == 18 * 288)
        let expected: [(PackedFormat, lines: Int, bytes: Int)] = [(.q4_1, 16, 320), (.int4g32, 16, 320),
                                                                 (.int4g64, 32, 576), (.int4g128, 64, 1088)]
        for (format, lines, bytes) in expected {
            let layout = try #require(NibbleRowGroup(format))
            #expect(layout.minimumBytes == 32 && layout.linesOffset == 64, "\(format)")
            #expect(layout.lines == lines && layout.byteCount == bytes, "\(format)")
            #expect(layout.byteCount == NibbleRowGroup.rows * format.blockBytes, "\(format)")
            #expect(layout.groupBytes(columns: 1536) == 16 * format.rowBytes(columns: 1536), "\(format)")
        }
        for format in [PackedFormat.f32, .f16, .bf16, .q8_0, .int8] { #expect(NibbleRowGroup(format) == nil) }
        #expect(Panels8.rows == NibbleRowGroup.rows, "an 8-lane panel is one group")
        #if arch(x86_64)
        #expect(AVX512Kernels.q4_0GroupRows == NibbleRowGroup.rows)
        #expect(AVX512Kernels.q4_0GroupBlockBytes == q4_0.byteCount)
        #endif
    }

    @Test("grouping keeps every byte and value: rows unpack and copy back exactly", arguments: nibbleFormats)
    func roundTrip(format: PackedFormat) throws {
        let layout = try #require(NibbleRowGroup(format))
        for shape in shapes(format) {
            let w = try nibbleMatrix(format, rows: shape.rows, columns: shape.columns, seed: 11)
            let g = try w.groupingRows()
            #expect(g.rowGroup == 16)
            #expect(g.byteCount == w.byteCount)
            #expect(g.dequantize() == w.dequantize(), "\(format) \(shape)")
            var bytes = [UInt8](repeating: 0, count: w.rowBytes)
            for r in 0..<shape.rows {
                bytes.withUnsafeMutableBytes {
                    layout.copyRow(g.data, row: r, columns: shape.columns, into: $0.baseAddress!)
                }
                let original = Array(UnsafeRawBufferPointer(start: w.rowPointer(r), count: w.rowBytes))
                #expect(bytes == original, "\(format) \(shape) row \(r)")
            }
            // Grouping a grouped matrix returns it unchanged.
            #expect(try g.groupingRows().data == g.data)
        }
    }

    @Test("a group block holds the rows' scales, then minimums, then line p = byte p of every row's codes")
    func lineContents() throws {
        let w = try nibbleMatrix(.int4g64, rows: 32, columns: 128, seed: 12)
        let g = try w.groupingRows()
        let layout = try #require(NibbleRowGroup(.int4g64))
        // Group 1, block 1 of rows 16–31.
        let block = g.data + layout.groupBytes(columns: 128) + layout.byteCount
        for j in 0..<16 {
            let row = w.rowPointer(16 + j) + PackedFormat.int4g64.blockBytes
            #expect(block.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self) == row.loadUnaligned(as: UInt16.self))
            #expect(block.loadUnaligned(fromByteOffset: 32 + 2 * j, as: UInt16.self)
                    == row.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            for p in 0..<32 {
                #expect(block.load(fromByteOffset: 64 + 16 * p + j, as: UInt8.self)
                        == row.load(fromByteOffset: 4 + p, as: UInt8.self), "row \(j) byte \(p)")
            }
        }
    }

    @Test("nibble matrices of whole groups are grouped where the family has group kernels; others keep their layout")
    func refusals() throws {
        let q8 = try PackedMatrix.quantize(randomFloats(16 * 32, seed: 3), rows: 16, columns: 32, format: .q8_0)
        #expect(throws: QuantError.self) { _ = try q8.groupingRows() }
        let partial = try nibbleMatrix(.q4_0, rows: 20, columns: 64, seed: 4)
        #expect(throws: QuantError.self) { _ = try partial.groupingRows() }
        for isa in KernelISA.allCases {
            #expect(try q8.executionLayout(isa: isa).rowGroup == 1)
            #expect(try partial.executionLayout(isa: isa).rowGroup == 1)
        }
        for format in nibbleFormats {
            let whole = try nibbleMatrix(format, rows: 32, columns: 128, seed: 5)
            #expect(try whole.executionLayout(isa: .simd8).rowGroup == 16, "\(format)")
            #expect(try whole.executionLayout(isa: .avx512).rowGroup == (format == .q4_0 ? 16 : 1),
                    "\(format): the AVX-512 family groups Q4_0 only")
            var int8Prefill = whole
            int8Prefill.activations = .int8
            #expect(try int8Prefill.executionLayout(isa: .simd8).rowGroup == 1, "8-bit prefill reads row-major blocks")
        }
    }

    @Test("grouped matvec matches the scalar reference", arguments: nibbleFormats, KernelISA.supported)
    func matvec(format: PackedFormat, isa: KernelISA) throws {
        for shape in shapes(format) {
            let w = try nibbleMatrix(format, rows: shape.rows, columns: shape.columns, seed: 21)
            let g = try w.groupingRows()
            let x = randomFloats(shape.columns, seed: 22, range: -4...4)
            let reference = ReferenceKernels.matvec(w, x)
            #expect(ReferenceKernels.matvec(g, x) == reference, "the reference reads the grouped rows back")
            for pool in [nil, ComputePool(threadCount: 3)] {
                var y = [Float](repeating: .nan, count: shape.rows)
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeMutableBufferPointer {
                        try MatrixKernels.matvecChecked(g, xb, into: $0, pool: pool, isa: isa)
                    }
                }
                expectClose(y, reference, weights: w.dequantize(), x: x, rows: shape.rows, columns: shape.columns,
                            count: 1, "\(format) \(isa) \(shape) pool \(pool?.threadCount ?? 0)")
            }
        }
    }

    @Test("a range that splits a group runs row by row and matches the grouped kernel", arguments: nibbleFormats)
    func splitRange(format: PackedFormat) throws {
        let n = 256
        let w = try nibbleMatrix(format, rows: 48, columns: n, seed: 23)
        let g = try w.groupingRows()
        let x = randomFloats(n, seed: 24, range: -4...4)
        let reference = ReferenceKernels.matvec(w, x)
        for isa in KernelISA.supported {
            var y = [Float](repeating: .nan, count: 48)
            let scratch = MatrixKernels.activationScratchCount(format, columns: n, isa: isa)
            var buffer = [Float](repeating: 0, count: scratch)
            x.withUnsafeBufferPointer { xb in
                buffer.withUnsafeMutableBufferPointer { sb in
                    let (xk, sums) = MatrixKernels.prepareActivations(format, xb.baseAddress!, columns: n, isa: isa,
                                                                      scratch: sb.baseAddress!)
                    y.withUnsafeMutableBufferPointer { yb in
                        for range in [0..<5, 5..<16, 16..<40, 40..<48] {
                            SIMDKernels.groupedMatvecRows(g, xk, sums, yb.baseAddress!, range, isa: isa)
                        }
                    }
                }
            }
            expectClose(y, reference, weights: w.dequantize(), x: x, rows: 48, columns: n, count: 1,
                        "\(format) \(isa) split ranges")
        }
    }

    @Test("grouped matmul matches the scalar reference at short and long batches",
          arguments: nibbleFormats, KernelISA.supported)
    func matmul(format: PackedFormat, isa: KernelISA) throws {
        for tokens in [2, 7, 64, 70] {
            for (k, shape) in [(rows: 48, columns: 256), (rows: 64, columns: 1536)].enumerated() {
                let w = try nibbleMatrix(format, rows: shape.rows, columns: shape.columns, seed: UInt64(30 + k))
                let g = try w.groupingRows()
                let x = randomFloats(tokens * shape.columns, seed: UInt64(40 + k), range: -4...4)
                var y = [Float](repeating: .nan, count: tokens * shape.rows)
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeMutableBufferPointer {
                        try MatrixKernels.matmulChecked(g, xb, count: tokens, into: $0,
                                                        pool: ComputePool(threadCount: 2), isa: isa)
                    }
                }
                expectClose(y, ReferenceKernels.matmul(w, x, count: tokens), weights: w.dequantize(), x: x,
                            rows: shape.rows, columns: shape.columns, count: tokens,
                            "\(format) \(isa) \(shape) tokens \(tokens)")
            }
        }
    }

    #if arch(x86_64)
    @Test("a grouped panel holds the dequantised rows column by column, the second half zero for one group",
          arguments: [1, 2])
    func panel(groups: Int) throws {
        guard KernelISA.avx512.isSupported() else { return }
        let n = 96
        let w = try nibbleMatrix(.q4_0, rows: 48, columns: n, seed: 50)
        let g = try w.groupingRows()
        let values = w.dequantize()
        var panel = [Float](repeating: .nan, count: 32 * n)
        panel.withUnsafeMutableBufferPointer {
            AVX512Kernels.packPanelQ4_0Groups(g.data, columns: n, group: 1, groups: groups, into: $0.baseAddress!)
        }
        for k in 0..<n {
            for i in 0..<32 {
                let want = i < 16 * groups ? values[(16 + i) * n + k] : 0
                #expect(panel[k * 32 + i] == want, "column \(k) row \(i)")
            }
        }
    }
    #endif

    @Test("an 8-lane grouped panel is one group's dequantised rows column by column, bit for bit",
          arguments: nibbleFormats)
    func panel8(format: PackedFormat) throws {
        let n = 256
        let layout = try #require(NibbleRowGroup(format))
        let w = try nibbleMatrix(format, rows: 48, columns: n, seed: 51)
        let g = try w.groupingRows()
        let values = w.dequantize()
        for group in [0, 2] {
            var panel = [Float](repeating: .nan, count: Panels8.rows * n)
            panel.withUnsafeMutableBufferPointer {
                RowGroups8.packPanel(layout, g.data, columns: n, group: group, into: $0.baseAddress!)
            }
            for k in 0..<n {
                for i in 0..<16 {
                    #expect(panel[k * 16 + i] == values[(16 * group + i) * n + k],
                            "\(format) group \(group) column \(k) row \(i)")
                }
            }
        }
    }

    @Test("the loader regroups nibble formats (mapped GGUF, copy mode, conversions; not emulation's mmap mode)",
          arguments: [LoadMode?.none, .copy, .mmap])
    func loader(mode: LoadMode?) throws {
        let path = TinyGLM4V.temporaryPath("groups")
        defer { unlink(path) }
        try SyntheticCheckpoint.write(manifest: try TinyGLM4V.manifest(),
                                      plan: TinyGLM4V.plan([("decoder", .q4_0), ("embedding", .f32), ("head", .q4_0)]),
                                      planSHA256: "x", seed: 3, to: path)
        let reference = try CheckpointSource(path: path, mode: .mmap)
        let stored = try #require(try reference.sourceTensor(named: "blk.0.ffn_down.weight")).matrix()
        let f32 = try #require(try reference.sourceTensor(named: "token_embd.weight")).matrix()
        func source() throws -> TensorSource {
            if let mode { return try CheckpointSource(path: path, mode: mode) }
            return try GGUFFile(path: path)
        }
        // Stored Q4_0: regrouped (copy mode in place, after the source forgets its copy; a mapped file copied),
        // except where the source keeps its weights in the page cache; read twice as one matrix.
        let loader = WeightLoader(source: try source(), policy: .checkpoint)
        let down = try loader.matrix("blk.0.ffn_down.weight", rows: stored.rows, columns: stored.columns)
        #expect(down.rowGroup == (mode != .mmap ? 16 : 1))
        #expect(down.dequantize() == stored.dequantize())
        let again = try loader.matrix("blk.0.ffn_down.weight", rows: stored.rows, columns: stored.columns)
        #expect(again.data == down.data)
        // A conversion to Q4_0 (the F32 embedding table) is regrouped where the conversion put it.
        let converting = WeightLoader(source: try source(), policy: .uniform(.q4_0))
        let table = try converting.matrix("token_embd.weight", rows: f32.rows, columns: f32.columns)
        #expect(table.rowGroup == 16)
        #expect(table.dequantize() == (try WeightLoader.convert(f32, to: .q4_0)).dequantize())
        if let storage = table.owner as? PackedStorage {
            #expect(UnsafeRawPointer(storage.pointer) == table.data, "regrouped in the conversion's own storage")
        }
        // A conversion to INT4-g32 is grouped where the running family has group kernels for it (8-lane).
        let int4 = try WeightLoader(source: try source(), policy: .uniform(.int4g32))
            .matrix("token_embd.weight", rows: f32.rows, columns: f32.columns)
        #expect(int4.rowGroup == (KernelISA.active == .simd8 ? 16 : 1))
        #expect(int4.dequantize() == (try WeightLoader.convert(f32, to: .int4g32)).dequantize())
    }

    @Test("matvec tasks of a grouped matrix start and end on whole groups",
          arguments: [(rows: [576, 192, 192], threads: 2), (rows: [49152], threads: 2),
                      (rows: [1536, 1536], threads: 3)])
    func tasks(shape: (rows: [Int], threads: Int)) throws {
        let capacity = 256
        var tasks = [MatrixKernels.MatvecTask](repeating: .init(matrix: -1, start: 0, end: 0), count: capacity)
        let n = tasks.withUnsafeMutableBufferPointer {
            MatrixKernels.guidedTasks(rows: { shape.rows[$0] }, rowBytes: { _ in 324 }, matrices: shape.rows.count,
                                      threads: shape.threads, into: $0.baseAddress!, capacity: capacity, granule: 16)
        }
        try #require(n > shape.rows.count)
        var covered = [Int](repeating: 0, count: shape.rows.count)
        for task in tasks[0..<n] {
            #expect(task.start % 16 == 0 && task.end % 16 == 0, "task \(task.start)..<\(task.end)")
            #expect(task.start == covered[task.matrix])
            covered[task.matrix] = task.end
        }
        #expect(covered == shape.rows)
    }
}
