import Testing
@testable import AutoGLMEngine

private func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

private let integerFormats: [PackedFormat] = PackedFormat.allCases.filter(\.isQuantized)

/// The Float32 product with the rounded activations, through the integer kernels (AVX-512 only).
private func int8Matmul(_ w: PackedMatrix, _ x: [Float], count: Int, pool: ComputePool?) -> [Float] {
    var y = [Float](repeating: .nan, count: count * w.rows)
    x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer {
            MatrixKernels.matmul(w, xb.baseAddress!, count: count, into: $0.baseAddress!, pool: pool, isa: .avx512)
        }
    }
    return y
}

@Suite("8-bit activations")
struct KernelInt8Tests {
    @Test("an integer panel block is 1,024 bytes of codes and 256 of row scales and offsets")
    func panelBlockBytes() {
        #if arch(x86_64)
        #expect(Int8Panels.blockBytes == 1280)
        #expect(Int8Panels.byteCount(columns: 576) == 18 * 1280)
        #endif
        #expect(IntegerCodes.blockElements == 32)
    }

    @Test("the integer view (scale · code + offset) gives back every dequantised weight", arguments: integerFormats)
    func codesMatchDequantisation(format: PackedFormat) throws {
        let rows = 3, columns = 256
        let w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 11, range: -3...3), rows: rows,
                                          columns: columns, format: format)
        #expect(format.hasIntegerCodes(columns: columns))
        let reference = w.dequantize()
        for r in 0..<rows {
            for b in 0..<(columns / 32) {
                let block = IntegerCodes.block(w.rowPointer(r), format: format, block: b)
                for k in 0..<32 {
                    let value = block.scale * Float(block.codes[k]) + block.offset
                    let want = reference[r * columns + 32 * b + k]
                    // Exact for the f16-scaled formats; INT8's Float32 scale times a shifted code rounds once.
                    #expect(abs(value - want) <= (128 * abs(block.scale)).ulp * 2, "\(format) row \(r) block \(b) k \(k)")
                }
            }
        }
    }

    @Test("formats without integer codes, and rows that are not whole blocks of 32, keep Float32 activations")
    func formatsWithoutCodes() throws {
        for format in [PackedFormat.f32, .f16, .bf16] { #expect(!format.hasIntegerCodes(columns: 64)) }
        #expect(!PackedFormat.int8.hasIntegerCodes(columns: 40))
        var w = try PackedMatrix.quantize(randomFloats(8 * 40, seed: 3), rows: 8, columns: 40, format: .int8)
        w.activations = .int8
        #expect(!MatrixKernels.usesInt8Activations(w, count: 128, isa: .avx512))
    }

    @Test("the scalar rounding: scale max|x|/127, codes within ±127, an all-zero block gives zeros")
    func scalarRounding() {
        var x = randomFloats(64, seed: 21, range: -2...2)
        for k in 32..<64 { x[k] = 0 }
        x[5] = -2.5
        let a = Int8Activations.quantize(x, columns: 64)
        #expect(a.scales[0] == 2.5 / 127)
        #expect(a.codes[5] == -127)
        #expect(a.codes.allSatisfy { $0 >= -127 })
        #expect(a.scales[1] == 0 && a.sums[1] == 0 && a.codes[32...].allSatisfy { $0 == 0 })
        var sum: Int32 = 0
        for k in 0..<32 {
            sum += Int32(a.codes[k])
            #expect(abs(x[k] - a.scales[0] * Float(a.codes[k])) <= a.scales[0] / 2 * 1.0001, "k \(k)")
        }
        #expect(a.sums[0] == a.scales[0] * Float(sum))
    }

    @Test("only quantised matrices marked int8, in batches of two tokens or more on AVX-512, take the integer path")
    func routing() throws {
        var w = try PackedMatrix.quantize(randomFloats(32 * 64, seed: 4), rows: 32, columns: 64, format: .q4_0)
        #expect(!MatrixKernels.usesInt8Activations(w, count: 512, isa: .avx512))
        w.activations = .int8
        #expect(!MatrixKernels.usesInt8Activations(w, count: MatrixKernels.int8MinimumTokens - 1, isa: .avx512))
        #expect(!MatrixKernels.usesInt8Activations(w, count: 512, isa: .simd8))
        // Routing follows the family asked for (callers pass `.active`, which the CPU always runs).
        #expect(MatrixKernels.usesInt8Activations(w, count: MatrixKernels.int8MinimumTokens, isa: .avx512))
    }
}

@Suite("8-bit activation kernels (AVX-512)", .enabled(if: KernelISA.avx512.isSupported(), "needs the AVX-512 kernels"))
struct KernelInt8AVX512Tests {
    /// (rows, columns, tokens): a full panel, a panel and a partial one, token counts with remainders past the
    /// 6-token tile, and batches shorter than one tile.
    static let shapes: [(rows: Int, columns: Int, tokens: Int)] = [(32, 256, 64), (40, 384, 71), (7, 128, 67),
                                                                    (40, 128, 2), (33, 256, 5)]

    @Test("the integer matmul matches its scalar reference (exact integer sums, Float32 folds)",
          arguments: integerFormats)
    func matchesReference(format: PackedFormat) throws {
        let pool = ComputePool(threadCount: 3)
        for (k, shape) in Self.shapes.enumerated() {
            var w = try PackedMatrix.quantize(randomFloats(shape.rows * shape.columns, seed: UInt64(30 + k)),
                                              rows: shape.rows, columns: shape.columns, format: format)
            w.activations = .int8
            let x = randomFloats(shape.tokens * shape.columns, seed: UInt64(40 + k), range: -4...4)
            let reference = ReferenceKernels.matmulInt8Activations(w, x, count: shape.tokens)
            // The bound: Float32 rounding of each block's two terms, relative to their magnitudes.
            let a = Int8Activations.quantize(x, columns: shape.columns)
            let blocks = shape.columns / 32
            for p in [nil, pool] {
                let y = int8Matmul(w, x, count: shape.tokens, pool: p)
                for t in 0..<shape.tokens {
                    for r in 0..<shape.rows {
                        var magnitude: Float = 0
                        for b in 0..<blocks {
                            let block = IntegerCodes.block(w.rowPointer(r), format: format, block: b)
                            var dot = 0
                            for j in 0..<32 { dot += Int(block.codes[j]) * Int(a.codes[t * shape.columns + 32 * b + j]) }
                            magnitude += abs(block.scale * a.scales[t * blocks + b] * Float(dot))
                                + abs(block.offset * a.sums[t * blocks + b])
                        }
                        let i = t * shape.rows + r
                        #expect(abs(y[i] - reference[i]) <= 4e-6 * magnitude + 1e-6,
                                "\(format) \(shape) pool \(p?.threadCount ?? 0) token \(t) row \(r): \(y[i]) vs \(reference[i])")
                    }
                }
            }
        }
    }

    @Test("the integer matmul is within the 8-bit activation rounding of the Float32 product", arguments: integerFormats)
    func withinRoundingBound(format: PackedFormat) throws {
        let rows = 40, columns = 256, tokens = 70
        var w = try PackedMatrix.quantize(randomFloats(rows * columns, seed: 50), rows: rows, columns: columns,
                                          format: format)
        w.activations = .int8
        let x = randomFloats(tokens * columns, seed: 51, range: -4...4)
        let exact = ReferenceKernels.matmul(w, x, count: tokens)
        let weights = w.dequantize()
        let a = Int8Activations.quantize(x, columns: columns)
        let y = int8Matmul(w, x, count: tokens, pool: nil)
        var worst: Float = 0
        for t in 0..<tokens {
            for r in 0..<rows {
                // |x − s·q| ≤ s/2 per activation: Σ |w| · s/2 over each block, plus Float32 sums.
                var bound: Float = 0, magnitude: Float = 0
                for c in 0..<columns {
                    bound += abs(weights[r * columns + c]) * a.scales[t * (columns / 32) + c / 32] / 2
                    magnitude += abs(weights[r * columns + c] * x[t * columns + c])
                }
                let err = abs(y[t * rows + r] - exact[t * rows + r])
                worst = max(worst, err / bound)
                #expect(err <= bound + 1e-5 * magnitude, "\(format) token \(t) row \(r): error \(err), bound \(bound)")
            }
        }
        // The rounding is real (not a Float32 path in disguise): the error is a visible share of its bound.
        #expect(worst > 0.01, "\(format): worst error / bound \(worst)")
    }

    @Test("decode (one token) and matrices left at Float32 activations run the Float32 kernels, bit for bit")
    func float32Unchanged() throws {
        let w = try PackedMatrix.quantize(randomFloats(64 * 128, seed: 60), rows: 64, columns: 128, format: .q4_0)
        var marked = w
        marked.activations = .int8
        let one = randomFloats(128, seed: 61)
        #expect(int8Matmul(w, one, count: 1, pool: nil) == int8Matmul(marked, one, count: 1, pool: nil))
        let two = randomFloats(2 * 128, seed: 62)
        #expect(!MatrixKernels.usesInt8Activations(w, count: 2, isa: .avx512))
        #expect(int8Matmul(w, two, count: 2, pool: nil) != int8Matmul(marked, two, count: 2, pool: nil))
    }

    @Test("matrices sharing an input round it once and give what each matmul gives alone, bit for bit")
    func sharedInput() throws {
        let pool = ComputePool(threadCount: 2)
        let shapes = [(rows: 40, format: PackedFormat.q4_0), (rows: 32, format: .q4_1), (rows: 9, format: .q8_0)]
        let columns = 128, tokens = 70
        let ws = try shapes.enumerated().map { i, shape -> PackedMatrix in
            var w = try PackedMatrix.quantize(randomFloats(shape.rows * columns, seed: UInt64(70 + i)), rows: shape.rows,
                                              columns: columns, format: shape.format)
            w.activations = .int8
            return w
        }
        let x = randomFloats(tokens * columns, seed: 80)
        let alone = ws.map { int8Matmul($0, x, count: tokens, pool: pool) }
        var together = ws.map { [Float](repeating: .nan, count: tokens * $0.rows) }
        let buffers = together.indices.map { UnsafeMutablePointer<Float>.allocate(capacity: together[$0].count) }
        defer { buffers.forEach { $0.deallocate() } }
        x.withUnsafeBufferPointer { xb in
            MatrixKernels.matmul(ws, xb.baseAddress!, count: tokens, into: buffers, pool: pool, isa: .avx512)
        }
        for i in together.indices {
            together[i] = Array(UnsafeBufferPointer(start: buffers[i], count: together[i].count))
        }
        #expect(together == alone)
    }
}
