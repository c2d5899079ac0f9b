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

private func q4_0Matrix(rows: Int, columns: Int, seed: UInt64) throws -> PackedMatrix {
    try PackedMatrix.quantize(randomFloats(rows * columns, seed: seed), rows: rows, columns: columns, format: .q4_0)
}

/// Shapes: one group; three groups (a panel of 32 rows and a half panel); SmolLM2's K/V and FFN down shapes.
private let groupShapes: [(rows: Int, columns: Int)] = [(16, 32), (48, 96), (192, 576), (64, 1536)]

@Suite("Q4_0 grouped by 16 rows")
struct QuantRowGroupTests {
    @Test("a group block is 16 Q4_0 blocks: 16 f16 scales and 16 lines of 16 code bytes")
    func blockSize() {
        #expect(Q4_0RowGroup.rows == 16)
        #expect(Q4_0RowGroup.scaleBytes == 32)
        #expect(Q4_0RowGroup.byteCount == 288)
        #expect(Q4_0RowGroup.byteCount == Q4_0RowGroup.rows * BlockQ4_0.byteCount)
        #expect(Q4_0RowGroup.groupBytes(columns: 576) == 18 * 288)
        #expect(Panels8.rows == Q4_0RowGroup.rows, "an 8-lane panel is one group")
        #if arch(x86_64)
        #expect(AVX512Kernels.q4_0GroupRows == Q4_0RowGroup.rows)
        #expect(AVX512Kernels.q4_0GroupBlockBytes == Q4_0RowGroup.byteCount)
        #endif
    }

    @Test("grouping keeps every byte and value: rows unpack and copy back exactly", arguments: groupShapes)
    func roundTrip(shape: (rows: Int, columns: Int)) throws {
        let w = try q4_0Matrix(rows: shape.rows, columns: shape.columns, seed: 11)
        let g = try w.groupingQ4_0Rows()
        #expect(g.rowGroup == 16)
        #expect(g.byteCount == w.byteCount)
        #expect(g.dequantize() == w.dequantize())
        var bytes = [UInt8](repeating: 0, count: w.rowBytes)
        for r in 0..<shape.rows {
            bytes.withUnsafeMutableBytes {
                Q4_0RowGroup.copyRow(g.data, row: r, columns: shape.columns, into: $0.baseAddress!)
            }
            let original = Array(UnsafeRawBufferPointer(start: w.rowPointer(r), count: w.rowBytes))
            #expect(bytes == original, "row \(r)")
        }
        // Grouping a grouped matrix returns it unchanged.
        #expect(try g.groupingQ4_0Rows().data == g.data)
    }

    @Test("only Q4_0 with whole groups of rows is grouped; other matrices keep their layout")
    func refusals() throws {
        let q8 = try PackedMatrix.quantize(randomFloats(16 * 32, seed: 3), rows: 16, columns: 32, format: .q8_0)
        #expect(throws: QuantError.self) { _ = try q8.groupingQ4_0Rows() }
        let partial = try q4_0Matrix(rows: 20, columns: 64, seed: 4)
        #expect(throws: QuantError.self) { _ = try partial.groupingQ4_0Rows() }
        #expect(try q8.executionLayout().rowGroup == 1)
        #expect(try partial.executionLayout().rowGroup == 1)
        let whole = try q4_0Matrix(rows: 32, columns: 64, seed: 5)
        #expect(try whole.executionLayout().rowGroup == 16)
        var int8Prefill = whole
        int8Prefill.activations = .int8
        #expect(try int8Prefill.executionLayout().rowGroup == 1, "8-bit prefill reads row-major blocks")
    }

    @Test("grouped matvec matches the scalar reference", arguments: groupShapes, KernelISA.supported)
    func matvec(shape: (rows: Int, columns: Int), isa: KernelISA) throws {
        let w = try q4_0Matrix(rows: shape.rows, columns: shape.columns, seed: 21)
        let g = try w.groupingQ4_0Rows()
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
                        count: 1, "\(isa) \(shape) pool \(pool?.threadCount ?? 0)")
        }
    }

    @Test("grouped matmul matches the scalar reference at short and long batches",
          arguments: [2, 7, 64, 70], KernelISA.supported)
    func matmul(tokens: Int, isa: KernelISA) throws {
        for (k, shape) in [(rows: 48, columns: 96), (rows: 64, columns: 1536)].enumerated() {
            let w = try q4_0Matrix(rows: shape.rows, columns: shape.columns, seed: UInt64(30 + k))
            let g = try w.groupingQ4_0Rows()
            let x = randomFloats(tokens * shape.columns, seed: UInt64(40 + k), range: -4...4)
            var y = [Float](repeating: .nan, count: tokens * shape.rows)
            try x.withUnsafeBufferPointer { xb in
                try y.withUnsafeMutableBufferPointer {
                    try MatrixKernels.matmulChecked(g, xb, count: tokens, into: $0, pool: ComputePool(threadCount: 2),
                                                    isa: isa)
                }
            }
            expectClose(y, ReferenceKernels.matmul(w, x, count: tokens), weights: w.dequantize(), x: x,
                        rows: shape.rows, columns: shape.columns, count: tokens, "\(isa) \(shape) tokens \(tokens)")
        }
    }

    #if arch(x86_64)
    @Test("a grouped panel holds the dequantised rows column by column, the second half zero for one group",
          arguments: [1, 2])
    func panel(groups: Int) throws {
        guard KernelISA.avx512.isSupported() else { return }
        let n = 96
        let w = try q4_0Matrix(rows: 48, columns: n, seed: 50)
        let g = try w.groupingQ4_0Rows()
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

    @Test("an 8-lane grouped panel is one group's dequantised rows column by column", arguments: [0, 2])
    func panel8(group: Int) throws {
        let n = 96
        let w = try q4_0Matrix(rows: 48, columns: n, seed: 51)
        let g = try w.groupingQ4_0Rows()
        let values = w.dequantize()
        var panel = [Float](repeating: .nan, count: Panels8.rows * n)
        panel.withUnsafeMutableBufferPointer {
            RowGroups8.packPanelQ4_0(g.data, columns: n, group: group, into: $0.baseAddress!)
        }
        for k in 0..<n {
            for i in 0..<16 {
                #expect(panel[k * 16 + i] == values[(16 * group + i) * n + k], "column \(k) row \(i)")
            }
        }
    }

    @Test("the loader regroups Q4_0 (mapped GGUF, copy mode, conversions; not emulation's mmap mode)",
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
