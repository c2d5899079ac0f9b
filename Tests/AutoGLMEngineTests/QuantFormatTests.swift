import Foundation
import Testing
@testable import AutoGLMEngine

private func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

@Suite("Quant formats")
struct QuantFormatTests {
    @Test("block sizes and element counts match the documented layouts")
    func blockByteSizes() {
        let expected: [PackedFormat: (elements: Int, bytes: Int)] = [
            .f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q8_0: (32, 34), .q4_0: (32, 18), .q4_1: (32, 20),
            .int8: (1, 1), .int4g32: (32, 20), .int4g64: (64, 36), .int4g128: (128, 68),
        ]
        for format in PackedFormat.allCases {
            let e = expected[format]!
            #expect(format.blockElements == e.elements, "\(format)")
            #expect(format.blockBytes == e.bytes, "\(format)")
        }
        #expect(BlockQ8_0.byteCount == 34)
        #expect(BlockQ4_0.byteCount == 18)
        #expect(BlockQ4_1.byteCount == 20)
        #expect(BlockInt4G32.byteCount == 20)
        #expect(BlockInt4G64.byteCount == 36)
        #expect(BlockInt4G128.byteCount == 68)
    }

    @Test("row bytes and bits per weight")
    func rowBytesAndBits() {
        #expect(PackedFormat.f32.rowBytes(columns: 576) == 2304)
        #expect(PackedFormat.f16.rowBytes(columns: 576) == 1152)
        #expect(PackedFormat.q8_0.rowBytes(columns: 576) == 18 * 34)
        #expect(PackedFormat.q4_0.rowBytes(columns: 576) == 18 * 18)
        #expect(PackedFormat.q4_1.rowBytes(columns: 576) == 18 * 20)
        #expect(PackedFormat.int4g128.rowBytes(columns: 1536) == 12 * 68)
        // int8: 4-byte scale, then the weights padded to a multiple of 4.
        #expect(PackedFormat.int8.rowBytes(columns: 576) == 580)
        #expect(PackedFormat.int8.rowBytes(columns: 13) == 20)
        #expect(PackedFormat.q8_0.bitsPerWeight == 8.5)
        #expect(PackedFormat.q4_0.bitsPerWeight == 4.5)
        #expect(PackedFormat.q4_1.bitsPerWeight == 5.0)
        #expect(PackedFormat.int4g32.bitsPerWeight == 5.0)
        #expect(PackedFormat.int4g64.bitsPerWeight == 4.5)
        #expect(PackedFormat.int4g128.bitsPerWeight == 4.25)
        #expect(PackedFormat.f16.bitsPerWeight == 16)
        #expect(PackedFormat.int8.bitsPerWeight == 8)
    }

    @Test("Codable uses the string raw values")
    func codable() throws {
        let all = PackedFormat.allCases
        let data = try JSONEncoder().encode(all)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text == #"["f32","f16","bf16","q8_0","q4_0","q4_1","int8","int4-g32","int4-g64","int4-g128"]"#)
        #expect(try JSONDecoder().decode([PackedFormat].self, from: data) == all)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([PackedFormat].self, from: Data(#"["q5_k"]"#.utf8)) }
    }

    @Test("bad shapes and inputs throw descriptive errors")
    func badInputs() {
        let x = [Float](repeating: 1, count: 40)
        #expect(throws: QuantError.columnsNotBlockAligned(format: .q4_0, columns: 40, blockElements: 32)) {
            try PackedMatrix.quantize(x, rows: 1, columns: 40, format: .q4_0)
        }
        #expect(throws: QuantError.elementCountMismatch(expected: 64, got: 40)) {
            try PackedMatrix.quantize(x, rows: 2, columns: 32, format: .q8_0)
        }
        #expect(throws: QuantError.invalidShape(rows: 0, columns: 32)) {
            try PackedMatrix.quantize([], rows: 0, columns: 32, format: .f32)
        }
        var bad = [Float](repeating: 0, count: 32)
        bad[5] = .nan
        #expect(throws: QuantError.nonFiniteValue(row: 0, column: 5)) {
            try PackedMatrix.quantize(bad, rows: 1, columns: 32, format: .q8_0)
        }
        let storage = PackedStorage(byteCount: 10)
        #expect(throws: QuantError.storageTooSmall(format: .q4_0, rows: 1, columns: 32, needed: 18, got: 10)) {
            try PackedMatrix(format: .q4_0, rows: 1, columns: 32, data: storage.pointer, availableBytes: 10,
                             owner: storage)
        }
        #expect(throws: QuantError.invalidShape(rows: Int.max / 2, columns: 1 << 40)) {
            try PackedMatrix(format: .f32, rows: Int.max / 2, columns: 1 << 40, data: storage.pointer,
                             availableBytes: 10, owner: storage)
        }
        let message = QuantError.columnsNotBlockAligned(format: .q4_0, columns: 40, blockElements: 32).description
        #expect(message.contains("q4_0") && message.contains("40") && message.contains("32"))
    }

    @Test("Q4_0 nibble order: low nibbles are elements 0..15, high nibbles 16..31")
    func q4_0NibbleOrder() throws {
        var bytes = [UInt8](repeating: 0, count: 18)
        let d = Float16(0.5)
        bytes[0] = UInt8(d.bitPattern & 0xFF)
        bytes[1] = UInt8(d.bitPattern >> 8)
        for i in 0..<16 { bytes[2 + i] = UInt8(i) | UInt8(15 - i) << 4 }
        let values = try bytes.withUnsafeBytes { raw -> [Float] in
            let m = try PackedMatrix(format: .q4_0, rows: 1, columns: 32, data: raw.baseAddress!, availableBytes: 18,
                                     owner: nil)
            return m.dequantize()
        }
        for i in 0..<16 {
            #expect(values[i] == (Float(i) - 8) * 0.5)
            #expect(values[16 + i] == (Float(15 - i) - 8) * 0.5)
        }
    }

    @Test("Q4_1 and int4 decode q·d + m with the documented nibble order")
    func q4MinDecode() throws {
        for (format, group) in [(PackedFormat.q4_1, 32), (.int4g32, 32), (.int4g64, 64), (.int4g128, 128)] {
            let half = group / 2
            var bytes = [UInt8](repeating: 0, count: format.blockBytes)
            let d = Float16(0.25), m = Float16(-1.5)
            bytes[0] = UInt8(d.bitPattern & 0xFF); bytes[1] = UInt8(d.bitPattern >> 8)
            bytes[2] = UInt8(m.bitPattern & 0xFF); bytes[3] = UInt8(m.bitPattern >> 8)
            for i in 0..<half { bytes[4 + i] = UInt8(i % 16) | UInt8((i + 3) % 16) << 4 }
            let values = try bytes.withUnsafeBytes { raw in
                try PackedMatrix(format: format, rows: 1, columns: group, data: raw.baseAddress!,
                                 availableBytes: bytes.count, owner: nil).dequantize()
            }
            for i in 0..<half {
                #expect(values[i] == Float(i % 16) * 0.25 - 1.5, "\(format) element \(i)")
                #expect(values[half + i] == Float((i + 3) % 16) * 0.25 - 1.5, "\(format) element \(half + i)")
            }
        }
    }

    @Test("SIMD dequantisation equals the scalar block-type reference", arguments: PackedFormat.allCases)
    func dequantizeMatchesReference(format: PackedFormat) throws {
        let rows = 7, columns = 256
        let src = randomFloats(rows * columns, seed: 11, range: -3...3)
        let m = try PackedMatrix.quantize(src, rows: rows, columns: columns, format: format)
        let fast = m.dequantize()
        var ref = [Float](repeating: 0, count: columns)
        for r in 0..<rows {
            ref.withUnsafeMutableBufferPointer {
                ReferenceDequantize.row(m.rowPointer(r), format: format, columns: columns, into: $0.baseAddress!)
            }
            for c in 0..<columns { #expect(fast[r * columns + c] == ref[c], "\(format) [\(r), \(c)]") }
        }
        var one = [Float](repeating: 0, count: columns)
        #expect(one.withUnsafeMutableBufferPointer { m.dequantizeRow(3, into: $0) })
        #expect(Array(fast[(3 * columns)..<(4 * columns)]) == one)
        #expect(!one.withUnsafeMutableBufferPointer { m.dequantizeRow(rows, into: $0) })
    }

    /// Per-element bound on |dequantised − original| for each format, from the block's stored parameters.
    @Test("quantisation error stays within the per-format bound", arguments: PackedFormat.allCases)
    func quantizationErrorBounds(format: PackedFormat) throws {
        let rows = 5, columns = 512
        var src = randomFloats(rows * columns, seed: 99, range: -2...2)
        src[7] = 0; src[100] = 1e-3; src[300] = -1.75
        for i in 0..<32 { src[columns + i] = 0 }  // an all-zero block
        let m = try PackedMatrix.quantize(src, rows: rows, columns: columns, format: format)
        let out = m.dequantize()
        for r in 0..<rows {
            for c in 0..<columns {
                let i = r * columns + c
                let x = src[i], err = abs(out[i] - x)
                let bound: Float
                let p = m.rowPointer(r)
                switch format {
                case .f32: bound = 0
                case .f16: bound = abs(x) * 0x1p-11 + 0x1p-25
                case .bf16: bound = abs(x) * 0x1p-8
                case .q8_0:
                    bound = BlockQ8_0(loadingFrom: p + (c / 32) * 34).d.magnitudeFloat / 2 * 1.0001
                case .q4_0:
                    // The value of largest magnitude maps to −8; its opposite extreme clamps at +7, one step off.
                    bound = BlockQ4_0(loadingFrom: p + (c / 32) * 18).d.magnitudeFloat * 1.0001
                case .q4_1, .int4g32, .int4g64, .int4g128:
                    let g = format.blockElements
                    let raw = p + (c / g) * format.blockBytes
                    let d = Float(Float16(bitPattern: raw.loadUnaligned(as: UInt16.self)))
                    let mn = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                    // Half a step, plus the f16 rounding of the minimum and of the step (over 15 steps).
                    bound = d / 2 + abs(mn) * 0x1p-11 + 15 * d * 0x1p-11 + 1e-7
                case .int8:
                    let scale = Float(bitPattern: p.loadUnaligned(as: UInt32.self))
                    bound = scale / 2 * 1.0001
                }
                #expect(err <= bound, "\(format) [\(r), \(c)] x=\(x) got \(out[i]) err \(err) > \(bound)")
            }
        }
        // An all-zero block decodes to exact zeros.
        if format.blockElements == 32 {
            for i in 0..<32 { #expect(out[columns + i] == 0, "\(format) zero block element \(i)") }
        }
    }

    @Test("bf16 rounds to nearest even and f16 saturates")
    func halfConversions() throws {
        #expect(BF16.fromFloat(1.0) == 0x3F80)
        #expect(BF16.toFloat(BF16.fromFloat(1.00390625)) == 1.0)      // tie → even
        #expect(BF16.toFloat(BF16.fromFloat(1.01171875)) == 1.015625)  // tie → even (up)
        #expect(BF16.toFloat(BF16.fromFloat(-3.5)) == -3.5)
        let m = try PackedMatrix.quantize([1e6, -1e6], rows: 1, columns: 2, format: .f16)
        #expect(m.dequantize() == [65504, -65504])
    }
}

extension Float16 {
    fileprivate var magnitudeFloat: Float { abs(Float(self)) }
}
