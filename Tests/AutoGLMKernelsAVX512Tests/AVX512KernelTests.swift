// Direct tests of the AVX-512 module's block layouts on hand-built rows (the engine's matrix tests also compare
// every format and shape against the scalar reference through both kernel families). Skipped on CPUs without
// the module's features.

import Foundation
import Testing
import AutoGLMEngine
#if arch(x86_64)
import AutoGLMKernelsAVX512

private let supported = KernelISA.avx512.isSupported()

@Suite("AVX-512 kernels", .enabled(if: supported, "this CPU lacks a feature the AVX-512 kernels need"))
struct AVX512KernelTests {
    /// A Q4_0 block with scale 0.5 and codes 0…15, 15…0: values 0.5·(code − 8).
    @Test("Q4_0 gives d·(q − 8) for every code, low nibbles first")
    func q4_0Block() {
        var block = [UInt8](repeating: 0, count: 18)
        withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian) { block[0] = $0[0]; block[1] = $0[1] }
        for i in 0..<16 { block[2 + i] = UInt8(i) | UInt8(15 - i) << 4 }
        let x = (0..<32).map { Float($0 + 1) }
        var expected = 0.0
        for i in 0..<16 { expected += 0.5 * Double(i - 8) * Double(x[i]) }
        for i in 0..<16 { expected += 0.5 * Double(15 - i - 8) * Double(x[16 + i]) }
        var y: Float = .nan
        block.withUnsafeBytes { raw in
            x.withUnsafeBufferPointer { xb in
                AVX512Kernels.matvecRows(.q4_0, raw.baseAddress!, rowBytes: 18, columns: 32, xb.baseAddress!,
                                         xb.baseAddress!, &y, rows: 0..<1)
            }
        }
        #expect(Double(y) == expected)
    }

    /// Q4_1 / INT4-g32 blocks (scale, minimum): values d·q + m.
    @Test("Q4_1 gives d·q + m (minimum through the activation sums), two blocks and a tail block", arguments: [32, 64, 96])
    func q4MinBlocks(columns: Int) {
        let blocks = columns / 32
        var row = [UInt8](repeating: 0, count: blocks * 20)
        var values: [Double] = []
        for b in 0..<blocks {
            let d = Float16(0.25 * Float(b + 1)), m = Float16(-1.5 + Float(b))
            withUnsafeBytes(of: d.bitPattern.littleEndian) { row[b * 20] = $0[0]; row[b * 20 + 1] = $0[1] }
            withUnsafeBytes(of: m.bitPattern.littleEndian) { row[b * 20 + 2] = $0[0]; row[b * 20 + 3] = $0[1] }
            var low = [Double](), high = [Double]()
            for i in 0..<16 {
                let lo = (i * 7 + b) & 15, hi = (i * 5 + 3) & 15
                row[b * 20 + 4 + i] = UInt8(lo) | UInt8(hi) << 4
                low.append(Double(d) * Double(lo) + Double(m))
                high.append(Double(d) * Double(hi) + Double(m))
            }
            values += low + high
        }
        let x = (0..<columns).map { Float(($0 % 11) - 5) * 0.125 }
        let expected = zip(values, x).reduce(0.0) { $0 + $1.0 * Double($1.1) }
        let sums = (0..<blocks).map { b in x[(b * 32)..<(b * 32 + 32)].reduce(0, +) }
        var y: Float = .nan
        row.withUnsafeBytes { raw in
            x.withUnsafeBufferPointer { xb in
                AVX512Kernels.matvecRows(.q4Min(group: 32, blockBytes: 20), raw.baseAddress!, rowBytes: blocks * 20,
                                         columns: columns, xb.baseAddress!, sums, &y, rows: 0..<1)
            }
        }
        #expect(abs(Double(y) - expected) <= 1e-5 * max(1, abs(expected)))
    }

    /// Rows of exact values (scales and minimums multiples of 1/4, activations multiples of 1/8, sums far below
    /// 2^24), so every partial sum is exact in Float32 and the kernels must reproduce the reference bit for bit.
    /// Row counts exercise the four-row loop with and without leftover rows; 2,240 columns (70 blocks) cross
    /// the four-row loop's 64-block chunk of scales.
    @Test("the four-row Q4_0 and Q4_1 loops give every row's exact sum, leftover rows and long rows included",
          arguments: [false, true], [(rows: 4, columns: 96), (rows: 7, columns: 2240), (rows: 9, columns: 64)])
    func nibbleRowsOfFour(withMinimum: Bool, shape: (rows: Int, columns: Int)) {
        let blocks = shape.columns / 32, blockBytes = withMinimum ? 20 : 18, header = withMinimum ? 4 : 2
        let rowBytes = blocks * blockBytes
        var matrix = [UInt8](repeating: 0, count: shape.rows * rowBytes)
        var values = [Double](repeating: 0, count: shape.rows * shape.columns)
        for r in 0..<shape.rows {
            for b in 0..<blocks {
                let at = r * rowBytes + b * blockBytes
                let d = Float16(0.25 * Float((r + b) % 5 + 1)), m = Float16(0.25 * Float((r * 3 + b) % 9) - 1)
                withUnsafeBytes(of: d.bitPattern.littleEndian) { matrix[at] = $0[0]; matrix[at + 1] = $0[1] }
                if withMinimum {
                    withUnsafeBytes(of: m.bitPattern.littleEndian) { matrix[at + 2] = $0[0]; matrix[at + 3] = $0[1] }
                }
                for i in 0..<16 {
                    let lo = (i * 7 + b + r) & 15, hi = (i * 5 + 3 * r + b) & 15
                    matrix[at + header + i] = UInt8(lo) | UInt8(hi) << 4
                    let base = r * shape.columns + b * 32
                    values[base + i] = withMinimum ? Double(d) * Double(lo) + Double(m) : Double(d) * Double(lo - 8)
                    values[base + 16 + i] = withMinimum ? Double(d) * Double(hi) + Double(m) : Double(d) * Double(hi - 8)
                }
            }
        }
        let x = (0..<shape.columns).map { Float(($0 * 13) % 23 - 11) * 0.125 }
        let sums = (0..<blocks).map { b in x[(b * 32)..<(b * 32 + 32)].reduce(0, +) }
        let layout: AVX512RowFormat = withMinimum ? .q4Min(group: 32, blockBytes: 20) : .q4_0
        var y = [Float](repeating: .nan, count: shape.rows)
        matrix.withUnsafeBytes { raw in
            x.withUnsafeBufferPointer { xb in
                AVX512Kernels.matvecRows(layout, raw.baseAddress!, rowBytes: rowBytes, columns: shape.columns,
                                         xb.baseAddress!, sums, &y, rows: 0..<shape.rows)
            }
        }
        for r in 0..<shape.rows {
            var expected = 0.0
            for c in 0..<shape.columns { expected += values[r * shape.columns + c] * Double(x[c]) }
            #expect(Double(y[r]) == expected, "row \(r) of \(shape.rows), \(shape.columns) columns")
        }
    }

    @Test("a packed panel holds the rows column by column, zero-padded to 32 rows (16 × 16 transposes and the tail)",
          arguments: [(rows: 32, n: 7), (rows: 5, n: 7), (rows: 32, n: 37), (rows: 32, n: 64), (rows: 17, n: 48)])
    func packPanel(shape: (rows: Int, n: Int)) {
        let rows = shape.rows, n = shape.n
        let w = (0..<(rows * n)).map { Float($0) }
        var panel = [Float](repeating: .nan, count: 32 * n)
        w.withUnsafeBufferPointer { wb in
            panel.withUnsafeMutableBufferPointer {
                AVX512Kernels.packPanel(wb.baseAddress!, ldw: n, rows: rows, columns: n, into: $0.baseAddress!)
            }
        }
        for k in 0..<n {
            for i in 0..<32 { #expect(panel[k * 32 + i] == (i < rows ? w[i * n + k] : 0), "k \(k) row \(i)") }
        }
    }

    @Test("the panel kernels cover 32×8 tiles, the 4- and 1-token edges and partial panels",
          arguments: [(rows: 32, tokens: 8), (rows: 32, tokens: 13), (rows: 7, tokens: 13), (rows: 1, tokens: 1),
                      (rows: 32, tokens: 21)])
    func panelMatmul(shape: (rows: Int, tokens: Int)) {
        let n = 37, ldy = shape.rows + 3
        let w = (0..<(shape.rows * n)).map { Float(($0 * 13) % 17) - 8 }
        let x = (0..<(shape.tokens * n)).map { Float(($0 * 7) % 11) - 5 }
        var panel = [Float](repeating: .nan, count: 32 * n)
        var y = [Float](repeating: -1, count: shape.tokens * ldy)
        w.withUnsafeBufferPointer { wb in
            panel.withUnsafeMutableBufferPointer {
                AVX512Kernels.packPanel(wb.baseAddress!, ldw: n, rows: shape.rows, columns: n, into: $0.baseAddress!)
            }
        }
        panel.withUnsafeBufferPointer { pb in
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { yb in
                    AVX512Kernels.panelMatmul(pb.baseAddress!, columns: n, xb.baseAddress!, ldx: n, tokens: shape.tokens,
                                              yb.baseAddress!, ldy: ldy, rows: shape.rows)
                }
            }
        }
        for t in 0..<shape.tokens {
            for r in 0..<ldy {
                var s: Float = 0
                for k in 0..<n where r < shape.rows { s += w[r * n + k] * x[t * n + k] }
                // Small integers: exact in Float32. Columns past `rows` are left untouched.
                #expect(y[t * ldy + r] == (r < shape.rows ? s : -1), "token \(t) row \(r)")
            }
        }
    }

    @Test("an integer panel block is 1,280 bytes: 32 rows × 32 codes, then 32 scales and 32 offsets")
    func int8PanelBlock() {
        #expect(AVX512Kernels.int8PanelBlockBytes == 32 * 32 + 32 * 4 + 32 * 4)
    }

    /// Values that stress the rounding: halves of the scale (ties), an all-zero block, one huge and one tiny block,
    /// a block whose maximum is negative.
    @Test("8-bit activation rounding equals the engine's scalar rounding bit for bit")
    func activationRounding() {
        let n = 160, tokens = 3
        var x = [Float](repeating: 0, count: tokens * n)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<x.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            x[i] = Float(Int64(bitPattern: state >> 11) % 20001 - 10000) / 2500
        }
        for k in 0..<32 { x[32 + k] = 0 }                                  // token 0, block 1: zeros
        // Token 0, block 2: maximum 31.75, so the scale is 0.25 and (k − 16 + 0.5) · 0.25 falls on ties.
        for k in 0..<32 { x[64 + k] = (Float(k - 16) + 0.5) * 0.25 }
        x[64 + 3] = 31.75
        for k in 0..<32 { x[n + k] *= 1e30 }                              // token 1, block 0: huge
        for k in 0..<32 { x[n + 32 + k] *= 1e-30 }                        // token 1, block 1: tiny
        x[2 * n + 7] = -9                                                  // token 2, block 0: negative maximum
        let reference = Int8Activations.quantize(x, columns: n)
        var codes = [Int8](repeating: 99, count: tokens * n)
        var scales = [Float](repeating: .nan, count: tokens * n / 32), sums = scales
        x.withUnsafeBufferPointer { xb in
            codes.withUnsafeMutableBufferPointer { c in
                scales.withUnsafeMutableBufferPointer { s in
                    sums.withUnsafeMutableBufferPointer { q in
                        AVX512Kernels.quantizeActivations(xb.baseAddress!, columns: n, tokens: 0..<tokens,
                                                          codes: c.baseAddress!, scales: s.baseAddress!,
                                                          sums: q.baseAddress!)
                    }
                }
            }
        }
        #expect(codes == reference.codes)
        #expect(scales == reference.scales)
        #expect(sums == reference.sums)
    }

    /// One attention tile against a Float64 online-softmax step: lanes with their own key runs (one empty, one
    /// whose running max is still −∞), padding lanes to the vector's end, and lanes past it poisoned (NaN
    /// queries, every key visible, sentinel state) that the tile must neither read nor write.
    @Test("the attention tile steps each lane as a Float64 online softmax and leaves lanes past its vectors alone",
          arguments: [(5, 48, 13), (16, 48, 8), (20, 64, 19), (33, 64, 9), (40, 48, 3)])
    func attentionTile(lanes: Int, pitch: Int, count: Int) {
        let d = 64, used = (lanes + 15) / 16 * 16, sentinel: Float = 12_345
        var state: UInt64 = 0x2545_F491_4F6C_DD1D &+ UInt64(lanes * 131 + count)
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 20001 - 10000) / 40000
        }
        var qT = [Float](repeating: .nan, count: d * pitch)
        var lo = [Int32](repeating: 0, count: pitch), hi = [Int32](repeating: Int32(count), count: pitch)
        var maxes = [Float](repeating: sentinel, count: pitch), sums = maxes
        var acc = [Float](repeating: 0, count: lanes * d)
        for l in 0..<used {
            for c in 0..<d { qT[c * pitch + l] = l < lanes ? next() : 0 }
            guard l < lanes else { lo[l] = 0; hi[l] = 0; maxes[l] = -.infinity; sums[l] = 0; continue }
            let first = l * 5 % count, end = min(count, first + 1 + l * 3 % (count - first))
            (lo[l], hi[l]) = l == 1 ? (0, 0) : (Int32(first), Int32(end))
            if l == 2 { maxes[l] = -.infinity; sums[l] = 0 } else { maxes[l] = next() * 4; sums[l] = 1 + abs(next()) }
            for c in 0..<d { acc[l * d + c] = l == 2 ? 0 : next() }
        }
        let keys = (0..<(count * d)).map { _ in next() }, values = (0..<(count * d)).map { _ in next() }
        // Float64 reference for the real lanes.
        var refMax = [Double](repeating: 0, count: lanes), refSum = refMax
        var refAcc = [Double](repeating: 0, count: lanes * d)
        for l in 0..<lanes {
            let scores = (0..<count).map { j in
                (0..<d).reduce(0.0) { $0 + Double(qT[$1 * pitch + l]) * Double(keys[j * d + $1]) }
            }
            let visible = Int(lo[l])..<Int(hi[l])
            let old = Double(maxes[l]), m = visible.reduce(old) { max($0, scores[$1]) }
            let factor = old.isFinite ? Foundation.exp(old - m) : 0
            refMax[l] = m
            refSum[l] = Double(sums[l]) * factor + visible.reduce(0.0) { $0 + Foundation.exp(scores[$1] - m) }
            for c in 0..<d {
                refAcc[l * d + c] = Double(acc[l * d + c]) * factor
                    + visible.reduce(0.0) { $0 + Foundation.exp(scores[$1] - m) * Double(values[$1 * d + c]) }
            }
        }
        var scores = [Float](repeating: .nan, count: count * pitch)
        var correction = [Float](repeating: sentinel, count: pitch)
        AVX512Attention.tile(qT: qT, lanePitch: pitch, lanes: lanes, headDim: d, keys: keys, keyStride: d,
                             values: values, valueStride: d, count: count, lo: lo, hi: hi, maxes: &maxes,
                             sums: &sums, acc: &acc, scores: &scores, correction: &correction)
        func close(_ a: Float, _ r: Double) -> Bool { abs(Double(a) - r) <= 1e-5 * (abs(r) + 1) }
        for l in 0..<lanes {
            #expect(maxes[l] == Float(refMax[l]) || close(maxes[l], refMax[l]), "lane \(l) max")
            #expect(close(sums[l], refSum[l]), "lane \(l) sum \(sums[l]) vs \(refSum[l])")
            let worst = (0..<d).map { c in
                abs(Double(acc[l * d + c]) - refAcc[l * d + c]) / (abs(refAcc[l * d + c]) + 1)
            }
            #expect(worst.max()! <= 1e-5, "lane \(l) accumulator")
        }
        #expect(maxes[used...].allSatisfy { $0 == sentinel } && sums[used...].allSatisfy { $0 == sentinel })
        #expect(correction[used...].allSatisfy { $0 == sentinel })
        #expect((0..<count).allSatisfy { j in scores[(j * pitch + used)..<(j * pitch + pitch)].allSatisfy(\.isNaN) })
    }
}
#endif
