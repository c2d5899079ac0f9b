import Testing
@testable import AutoGLMEngine

private func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

/// Checks `got` against the Double-accumulated reference. Weights are exact after dequantisation, so the only
/// error is Float32 accumulation order: bound it relative to Σ|w·x| of each output.
private func expectClose(_ got: [Float], _ reference: [Float], weights: [Float], x: [Float], rows: Int, columns: Int,
                         count: Int, relative: Float, _ label: String) {
    for t in 0..<count {
        for r in 0..<rows {
            var magnitude: Float = 0
            for c in 0..<columns { magnitude += abs(weights[r * columns + c] * x[t * columns + c]) }
            let i = t * rows + r
            let err = abs(got[i] - reference[i])
            #expect(err <= relative * magnitude + 1e-6,
                    "\(label) token \(t) row \(r): got \(got[i]) want \(reference[i]) (Σ|wx| \(magnitude))")
        }
    }
}

private let shapes: [(rows: Int, columns: Int)] = [(13, 256), (4, 128), (9, 384)]

@Suite("Matrix kernels")
struct KernelMatrixTests {
    @Test("matvec matches the scalar reference for every format", arguments: PackedFormat.allCases, KernelISA.supported)
    func matvecAllFormats(format: PackedFormat, isa: KernelISA) throws {
        let pool = ComputePool(threadCount: 3)
        for (k, shape) in shapes.enumerated() {
            let w = try PackedMatrix.quantize(randomFloats(shape.rows * shape.columns, seed: UInt64(k + 1)),
                                              rows: shape.rows, columns: shape.columns, format: format)
            let x = randomFloats(shape.columns, seed: UInt64(100 + k), range: -4...4)
            let reference = ReferenceKernels.matvec(w, x)
            let dequantized = w.dequantize()
            let relative: Float = format == .f32 ? 2e-6 : 1e-5
            for p in [nil, pool] {
                var y = [Float](repeating: .nan, count: shape.rows)
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeMutableBufferPointer { yb in
                        try MatrixKernels.matvecChecked(w, xb, into: yb, pool: p, isa: isa)
                    }
                }
                expectClose(y, reference, weights: dequantized, x: x, rows: shape.rows, columns: shape.columns,
                            count: 1, relative: relative, "\(format) \(shape) pool \(p?.threadCount ?? 0)")
            }
        }
    }

    @Test("matvec handles row lengths that are not a multiple of 8", arguments: [PackedFormat.f32, .f16, .bf16, .int8], KernelISA.supported)
    func matvecOddColumns(format: PackedFormat, isa: KernelISA) throws {
        for columns in [1, 7, 37, 45] {
            let rows = 6
            let w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 5), rows: rows, columns: columns,
                                              format: format)
            let x = randomFloats(columns, seed: 6)
            let reference = ReferenceKernels.matvec(w, x)
            var y = [Float](repeating: .nan, count: rows)
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { MatrixKernels.matvec(w, xb.baseAddress!, into: $0.baseAddress!, pool: nil, isa: isa) }
            }
            expectClose(y, reference, weights: w.dequantize(), x: x, rows: rows, columns: columns, count: 1,
                        relative: 1e-5, "\(format) columns \(columns)")
            // And the batched path over the same odd length.
            let xs = randomFloats(5 * columns, seed: 7)
            var ys = [Float](repeating: .nan, count: 5 * rows)
            xs.withUnsafeBufferPointer { xb in
                ys.withUnsafeMutableBufferPointer {
                    MatrixKernels.matmul(w, xb.baseAddress!, count: 5, into: $0.baseAddress!, pool: nil, isa: isa)
                }
            }
            expectClose(ys, ReferenceKernels.matmul(w, xs, count: 5), weights: w.dequantize(), x: xs, rows: rows,
                        columns: columns, count: 5, relative: 1e-5, "\(format) matmul columns \(columns)")
        }
    }

    @Test("matmul matches the scalar reference for every format", arguments: PackedFormat.allCases, KernelISA.supported)
    func matmulAllFormats(format: PackedFormat, isa: KernelISA) throws {
        let pool = ComputePool(threadCount: 2)
        for (k, shape) in shapes.enumerated() {
            let w = try PackedMatrix.quantize(randomFloats(shape.rows * shape.columns, seed: UInt64(k + 20)),
                                              rows: shape.rows, columns: shape.columns, format: format)
            let dequantized = w.dequantize()
            for count in [2, 7, 12] {
                let x = randomFloats(count * shape.columns, seed: UInt64(200 + k * 10 + count), range: -3...3)
                let reference = ReferenceKernels.matmul(w, x, count: count)
                for p in [nil, pool] {
                    var y = [Float](repeating: .nan, count: count * shape.rows)
                    try x.withUnsafeBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { yb in
                            try MatrixKernels.matmulChecked(w, xb, count: count, into: yb, pool: p, isa: isa)
                        }
                    }
                    expectClose(y, reference, weights: dequantized, x: x, rows: shape.rows, columns: shape.columns,
                                count: count, relative: format == .f32 ? 2e-6 : 1e-5,
                                "\(format) \(shape) count \(count)")
                }
            }
        }
    }

    @Test("matmul over many tokens equals one matvec per token", arguments: KernelISA.supported)
    func matmulEqualsMatvecs(isa: KernelISA) throws {
        // More tokens than one L2 chunk for 1536 columns, so the chunk loop is exercised.
        let rows = 10, columns = 1536, count = 70
        for format in [PackedFormat.q4_1, .f16] {
            let w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 3), rows: rows, columns: columns,
                                              format: format)
            let x = randomFloats(count * columns, seed: 4)
            var batched = [Float](repeating: .nan, count: count * rows)
            var single = [Float](repeating: .nan, count: count * rows)
            x.withUnsafeBufferPointer { xb in
                batched.withUnsafeMutableBufferPointer {
                    MatrixKernels.matmul(w, xb.baseAddress!, count: count, into: $0.baseAddress!, pool: nil, isa: isa)
                }
                single.withUnsafeMutableBufferPointer { yb in
                    for t in 0..<count {
                        MatrixKernels.matvec(w, xb.baseAddress! + t * columns, into: yb.baseAddress! + t * rows, pool: nil, isa: isa)
                    }
                }
            }
            expectClose(batched, single, weights: w.dequantize(), x: x, rows: rows, columns: columns, count: count,
                        relative: 2e-5, "\(format)")
        }
    }

    @Test("matmul with long rows (column slices), odd row blocks and token remainders",
          arguments: [PackedFormat.f32, .f16, .q4_0, .q8_0, .int8, .int4g32], KernelISA.supported)
    func matmulLongRows(format: PackedFormat, isa: KernelISA) throws {
        // 13 tokens run the in-place tiles; 67 the packed panels (AVX-512: a full and a partial panel of 32 rows;
        // 8-lane: two full panels of 16 and a partial one, 16×6 tiles and a 1-token edge).
        for count in [13, 67] {
            try matmulLongRows(format: format, isa: isa, count: count)
        }
    }

    private func matmulLongRows(format: PackedFormat, isa: KernelISA, count: Int) throws {
        let rows = 37, columns = 1600
        let w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 70), rows: rows, columns: columns,
                                          format: format)
        let x = randomFloats(count * columns, seed: 71)
        let pool = ComputePool(threadCount: 2)
        for p in [nil, pool] {
            var y = [Float](repeating: .nan, count: count * rows)
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer {
                    MatrixKernels.matmul(w, xb.baseAddress!, count: count, into: $0.baseAddress!, pool: p, isa: isa)
                }
            }
            expectClose(y, ReferenceKernels.matmul(w, x, count: count), weights: w.dequantize(), x: x, rows: rows,
                        columns: columns, count: count, relative: 1e-5, "\(format) count \(count) pool \(p?.threadCount ?? 0)")
        }
    }

    @Test("quantised matvec stays close to the Float32 product of the original weights", arguments: KernelISA.supported)
    func quantisedVersusOriginal(isa: KernelISA) throws {
        let rows = 16, columns = 512
        let original = randomFloats(rows * columns, seed: 8)
        let x = randomFloats(columns, seed: 9)
        let exact = ReferenceKernels.matvec(try PackedMatrix.quantize(original, rows: rows, columns: columns, format: .f32), x)
        // Relative RMS error of y over all rows, by bit width.
        let bounds: [PackedFormat: Double] = [.f16: 1e-3, .bf16: 8e-3, .q8_0: 1e-2, .int8: 1e-2, .q4_0: 0.15,
                                              .q4_1: 0.15, .int4g32: 0.15, .int4g64: 0.15, .int4g128: 0.2]
        for (format, bound) in bounds {
            let w = try PackedMatrix.quantize(original, rows: rows, columns: columns, format: format)
            var y = [Float](repeating: 0, count: rows)
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { MatrixKernels.matvec(w, xb.baseAddress!, into: $0.baseAddress!, pool: nil, isa: isa) }
            }
            var num = 0.0, den = 0.0
            for r in 0..<rows { num += Double(y[r] - exact[r]) * Double(y[r] - exact[r]); den += Double(exact[r] * exact[r]) }
            let rel = (num / den).squareRoot()
            #expect(rel < bound, "\(format): relative RMS error \(rel) ≥ \(bound)")
        }
    }

    @Test("guided matvec tasks cover every row once, in groups of four, shrinking towards the end",
          arguments: [(rows: [576, 192, 192], rowBytes: 324, threads: 2, capacity: 64),
                      (rows: [49152], rowBytes: 324, threads: 2, capacity: 64),
                      (rows: [7, 1, 1536], rowBytes: 1152, threads: 4, capacity: 64),
                      (rows: [4096, 4096], rowBytes: 2304, threads: 2, capacity: 5)])
    func guidedTasks(shape: (rows: [Int], rowBytes: Int, threads: Int, capacity: Int)) throws {
        var tasks = [MatrixKernels.MatvecTask](repeating: .init(matrix: -1, start: 0, end: 0), count: shape.capacity)
        let n = tasks.withUnsafeMutableBufferPointer {
            MatrixKernels.guidedTasks(rows: { shape.rows[$0] }, rowBytes: { _ in shape.rowBytes },
                                      matrices: shape.rows.count, threads: shape.threads, into: $0.baseAddress!,
                                      capacity: shape.capacity)
        }
        try #require(n >= 1 && n <= shape.capacity)
        var next = [Int](repeating: 0, count: shape.rows.count)
        var lastMatrix = 0
        for task in tasks[0..<n] {
            #expect(task.matrix >= lastMatrix)
            lastMatrix = task.matrix
            #expect(task.start == next[task.matrix], "tasks of a matrix are contiguous")
            #expect(task.end > task.start)
            let size = task.end - task.start
            #expect(size % 4 == 0 || task.end == shape.rows[task.matrix], "groups of four except a matrix's rest")
            next[task.matrix] = task.end
        }
        #expect(next == shape.rows, "every row of every matrix exactly once")
        if shape.capacity >= 64 {
            // Some task is larger than the last one (the point of the guided split), and no task is below the
            // minimum unless it is a matrix's rest.
            let bytes = tasks[0..<n].map { ($0.end - $0.start) * shape.rowBytes }
            if n > 4 { #expect(bytes.max()! > bytes[n - 1]) }
            for (i, task) in tasks[0..<n].enumerated() where task.end != shape.rows[task.matrix] {
                #expect(bytes[i] >= MatrixKernels.minimumTaskBytes)
            }
        }
    }

    @Test("fused matvec over several matrices equals separate matvecs", arguments: KernelISA.supported)
    func fusedMatvec(isa: KernelISA) throws {
        let columns = 256
        // Two Q4_1 matrices: matrices of one format share one prepared input.
        let specs: [(PackedFormat, Int)] = [(.q4_1, 40), (.q8_0, 13), (.int4g128, 24), (.f16, 5), (.q4_1, 9)]
        let ws = try specs.enumerated().map { i, spec in
            try PackedMatrix.quantize(randomFloats(spec.1 * columns, seed: UInt64(50 + i)), rows: spec.1,
                                      columns: columns, format: spec.0)
        }
        let x = randomFloats(columns, seed: 60)
        let pool = ComputePool(threadCount: 2)
        let outputs = ws.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.rows) }
        defer { outputs.forEach { $0.deallocate() } }
        for p in [nil, pool] {
            x.withUnsafeBufferPointer { MatrixKernels.matvec(ws, $0.baseAddress!, into: outputs, pool: p, isa: isa) }
            for (i, w) in ws.enumerated() {
                var single = [Float](repeating: 0, count: w.rows)
                x.withUnsafeBufferPointer { xb in
                    single.withUnsafeMutableBufferPointer {
                        MatrixKernels.matvec(w, xb.baseAddress!, into: $0.baseAddress!, pool: nil, isa: isa)
                    }
                }
                for r in 0..<w.rows { #expect(outputs[i][r] == single[r], "matrix \(i) row \(r)") }
            }
        }
    }

    @Test("8-lane nibble kernels: the prepared activations give Σ lo·x + hi·x′ for every group size",
          arguments: [32, 64, 128])
    func nibbleActivations(group: Int) {
        let n = 4 * group, half = group / 2
        // A wide dynamic range: the second half's transform subtracts 16 times the first.
        let x = randomFloats(n, seed: UInt64(group), range: -1...1).enumerated().map { $0 % 7 == 0 ? $1 * 1000 : $1 }
        var rng = SplitMix64(seed: 77)
        let bytes = (0..<(n / 2)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var prepared = [Float](repeating: .nan, count: n)
        x.withUnsafeBufferPointer { xb in
            prepared.withUnsafeMutableBufferPointer { RowDot.nibbleActivations(xb.baseAddress!, count: n, group: group,
                                                                               into: $0.baseAddress!) }
        }
        for g in 0..<(n / group) {
            var exact = 0.0, viaPrepared = 0.0, magnitude = 0.0
            for j in 0..<half {
                let b = bytes[g * half + j], lo = Double(b & 0x0F), hi = Double(b >> 4)
                let x1 = Double(x[g * group + j]), x2 = Double(x[g * group + half + j])
                exact += lo * x1 + hi * x2
                magnitude += lo * abs(x1) + hi * abs(x2) + 16 * hi * abs(x1)
                viaPrepared += Double(b) * Double(prepared[g * group + j]) + hi * Double(prepared[g * group + half + j])
                #expect(prepared[g * group + j] == x[g * group + j])
            }
            #expect(abs(viaPrepared - exact) <= 1e-6 * magnitude, "group \(g): \(viaPrepared) vs \(exact)")
        }
    }

    @Test("checked entry points reject short buffers")
    func checkedEntryPoints() throws {
        let isa = KernelISA.active
        let w = try PackedMatrix.quantize(randomFloats(8 * 64, seed: 1), rows: 8, columns: 64, format: .q8_0)
        let x = [Float](repeating: 1, count: 63)
        var y = [Float](repeating: 0, count: 8)
        #expect(throws: KernelError.bufferTooSmall(name: "x", needed: 64, got: 63)) {
            try x.withUnsafeBufferPointer { xb in
                try y.withUnsafeMutableBufferPointer { try MatrixKernels.matvecChecked(w, xb, into: $0, pool: nil, isa: isa) }
            }
        }
        let xs = [Float](repeating: 1, count: 128)
        #expect(throws: KernelError.bufferTooSmall(name: "y", needed: 16, got: 8)) {
            try xs.withUnsafeBufferPointer { xb in
                try y.withUnsafeMutableBufferPointer { try MatrixKernels.matmulChecked(w, xb, count: 2, into: $0, pool: nil, isa: isa) }
            }
        }
    }

    @Test("long rows with an odd number of 32-value blocks and an odd row count",
          arguments: PackedFormat.allCases, KernelISA.supported)
    func longOddRows(format: PackedFormat, isa: KernelISA) throws {
        // 1120 columns = 35 blocks of 32 (the two-block matvec loops take their single-block tail) and more than
        // 1024 columns (matmul runs in column slices of 512 with a 96-column tail slice); 19 rows leave an odd row
        // in every 16-row block and a 4-row matvec tail.
        let rows = 19, columns = 1120
        guard format.supports(columns: columns) else { return }
        let w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 41), rows: rows, columns: columns,
                                          format: format)
        let dequantized = w.dequantize()
        let relative: Float = format == .f32 ? 2e-6 : 1e-5
        let pool = ComputePool(threadCount: 2)
        for count in [1, 13] {
            let x = randomFloats(count * columns, seed: 42 + UInt64(count), range: -3...3)
            let reference = ReferenceKernels.matmul(w, x, count: count)
            for p in [nil, pool] {
                var y = [Float](repeating: .nan, count: count * rows)
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeMutableBufferPointer { yb in
                        try MatrixKernels.matmulChecked(w, xb, count: count, into: yb, pool: p, isa: isa)
                    }
                }
                expectClose(y, reference, weights: dequantized, x: x, rows: rows, columns: columns, count: count,
                            relative: relative, "\(format) long rows count \(count)")
            }
        }
    }
}
