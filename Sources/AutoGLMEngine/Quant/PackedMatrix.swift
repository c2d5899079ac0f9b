// A row-major matrix of packed weights, and conversion from and to Float32.

/// Owns memory allocated for packed weights and frees it when the last `PackedMatrix` referring to it goes away.
public final class PackedStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Allocates `byteCount` zeroed bytes aligned to 64.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    deinit { pointer.deallocate() }
}

/// A weight matrix `W` of `rows` (output dimension) × `columns` (input dimension, GGUF `ne0`), stored row by row
/// in `format`. The bytes are immutable and may live inside a memory-mapped file or in a `PackedStorage`;
/// `owner` keeps whatever holds them alive.
public struct PackedMatrix: @unchecked Sendable {
    public let format: PackedFormat
    public let rows: Int
    public let columns: Int
    /// Start of row 0. Row `r` starts at `data + r * rowBytes`.
    public let data: UnsafeRawPointer
    /// Keeps the memory behind `data` alive (a mapping, a `PackedStorage`, ...). Never mutated.
    public let owner: AnyObject?
    /// How prefill multiplies activations with these weights (`MatrixKernels.usesInt8Activations`).
    public var activations: ActivationPrecision = .float32
    /// 1: row by row (`rowPointer`). 16: a nibble matrix in the `NibbleRowGroup` order (`groupingRows`), whose rows
    /// are not contiguous: read values with `unpackRow`, never through `rowPointer`.
    public internal(set) var rowGroup = 1

    /// Bytes of one packed row.
    public var rowBytes: Int { format.rowBytes(columns: columns) }
    /// Bytes of the whole matrix.
    public var byteCount: Int { rows * rowBytes }

    /// Wraps existing packed bytes. Throws if the shape does not fit the format or `availableBytes` is too small.
    public init(format: PackedFormat, rows: Int, columns: Int, data: UnsafeRawPointer, availableBytes: Int,
                owner: AnyObject?) throws {
        guard rows > 0, columns > 0 else { throw QuantError.invalidShape(rows: rows, columns: columns) }
        guard format.supports(columns: columns) else {
            throw QuantError.columnsNotBlockAligned(format: format, columns: columns, blockElements: format.blockElements)
        }
        // Shapes may come from a file: reject sizes whose byte count does not fit in an Int. A row is at most
        // 4 bytes per weight plus 4, so bounding `columns` keeps `rowBytes` exact.
        guard columns <= Int.max / 8 else { throw QuantError.invalidShape(rows: rows, columns: columns) }
        let (neededBytes, overflow) = rows.multipliedReportingOverflow(by: format.rowBytes(columns: columns))
        guard !overflow else { throw QuantError.invalidShape(rows: rows, columns: columns) }
        guard availableBytes >= neededBytes else {
            throw QuantError.storageTooSmall(format: format, rows: rows, columns: columns, needed: neededBytes,
                                             got: availableBytes)
        }
        self.format = format
        self.rows = rows
        self.columns = columns
        self.data = data
        self.owner = owner
    }

    /// Pointer to the packed bytes of row `r` (row-major matrices only: `rowGroup` 1).
    @inline(__always) public func rowPointer(_ r: Int) -> UnsafeRawPointer {
        data + r &* rowBytes
    }

    /// Packs `rows × columns` Float32 values (row-major) into `format`, rounding to nearest.
    ///
    /// Scale rules: q8_0 `d = max|x|/127`; q4_0 `d = x*/−8` where x* is the value of largest magnitude (so it maps
    /// to code 0), codes clamped to 0...15; q4_1 and int4-gN `d = (max−min)/15`, `m = min`; int8 per row
    /// `scale = max|x|/127`. Codes are computed against the stored (f16-rounded) scale and minimum. f16 saturates
    /// at ±65504, bf16 rounds to nearest even.
    public static func quantize(_ floats: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
                                format: PackedFormat) throws -> PackedMatrix {
        guard rows > 0, columns > 0 else { throw QuantError.invalidShape(rows: rows, columns: columns) }
        guard format.supports(columns: columns) else {
            throw QuantError.columnsNotBlockAligned(format: format, columns: columns, blockElements: format.blockElements)
        }
        guard floats.count == rows * columns, let base = floats.baseAddress else {
            throw QuantError.elementCountMismatch(expected: rows * columns, got: floats.count)
        }
        for i in 0..<floats.count where !floats[i].isFinite {
            throw QuantError.nonFiniteValue(row: i / columns, column: i % columns)
        }
        let rowBytes = format.rowBytes(columns: columns)
        let storage = PackedStorage(byteCount: rows * rowBytes)
        for r in 0..<rows {
            Quantizer.quantizeRow(base + r * columns, columns: columns, format: format,
                                  into: storage.pointer + r * rowBytes)
        }
        return try PackedMatrix(format: format, rows: rows, columns: columns, data: UnsafeRawPointer(storage.pointer),
                                availableBytes: storage.byteCount, owner: storage)
    }

    /// Convenience overload of `quantize(_:rows:columns:format:)` for an array.
    public static func quantize(_ floats: [Float], rows: Int, columns: Int, format: PackedFormat) throws -> PackedMatrix {
        try floats.withUnsafeBufferPointer { try quantize($0, rows: rows, columns: columns, format: format) }
    }

    /// Writes the Float32 values of row `row` into `out` (which must hold at least `columns` values).
    /// Out-of-range rows or a short buffer write nothing and return false.
    @discardableResult
    public func dequantizeRow(_ row: Int, into out: UnsafeMutableBufferPointer<Float>) -> Bool {
        guard row >= 0, row < rows, out.count >= columns, let o = out.baseAddress else { return false }
        unpackRow(row, into: o)
        return true
    }

    /// Writes the `columns` Float32 values of row `row` (unchecked: `row` in range, `out` long enough), in either
    /// row order.
    @inline(__always) func unpackRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        if let layout = nibbleRowGroup {
            layout.dequantizeRow(data, row: row, columns: columns, into: out)
        } else {
            Dequantize.row(rowPointer(row), format: format, columns: columns, into: out)
        }
    }

    /// All values as a row-major Float32 array of `rows × columns`.
    public func dequantize() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * columns) { buf, count in
            for r in 0..<rows { unpackRow(r, into: buf.baseAddress! + r * columns) }
            count = rows * columns
        }
    }
}

/// Scalar quantisers, one row at a time.
enum Quantizer {
    static let f16Max: Float = 65504

    @inline(__always) static func roundedCode(_ v: Float, lo: Float, hi: Float) -> Float {
        Swift.min(Swift.max(v.rounded(.toNearestOrAwayFromZero), lo), hi)
    }

    static func quantizeRow(_ x: UnsafePointer<Float>, columns n: Int, format: PackedFormat,
                            into out: UnsafeMutableRawPointer) {
        switch format {
        case .f32:
            out.copyMemory(from: x, byteCount: n * 4)
        case .f16:
            for i in 0..<n {
                let h = Float16(Swift.min(Swift.max(x[i], -f16Max), f16Max))
                out.storeBytes(of: h.bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .bf16:
            for i in 0..<n {
                out.storeBytes(of: BF16.fromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        case .q8_0:
            for b in 0..<(n / 32) {
                let xb = x + b * 32
                var amax: Float = 0
                for i in 0..<32 { amax = Swift.max(amax, abs(xb[i])) }
                let d = Float16(amax / 127)
                let df = Float(d)
                var qs = SIMD32<Int8>()
                if df > 0 {
                    for i in 0..<32 { qs[i] = Int8(roundedCode(xb[i] / df, lo: -127, hi: 127)) }
                }
                BlockQ8_0(d: d, qs: qs).store(to: out + b * BlockQ8_0.byteCount)
            }
        case .q4_0:
            for b in 0..<(n / 32) {
                let xb = x + b * 32
                var amax: Float = 0
                var extreme: Float = 0
                for i in 0..<32 where abs(xb[i]) > amax { amax = abs(xb[i]); extreme = xb[i] }
                let d = Float16(extreme / -8)
                let df = Float(d)
                var qs = SIMD16<UInt8>()
                if df != 0 {
                    for i in 0..<16 {
                        let lo = UInt8(roundedCode(xb[i] / df + 8, lo: 0, hi: 15))
                        let hi = UInt8(roundedCode(xb[i + 16] / df + 8, lo: 0, hi: 15))
                        qs[i] = lo | (hi << 4)
                    }
                } else {
                    qs = SIMD16(repeating: 0x88)
                }
                BlockQ4_0(d: d, qs: qs).store(to: out + b * BlockQ4_0.byteCount)
            }
        case .q4_1, .int4g32, .int4g64, .int4g128:
            let g = format.blockElements
            let half = g / 2
            let blockBytes = format.blockBytes
            for b in 0..<(n / g) {
                let xb = x + b * g
                var lo = xb[0], hi = xb[0]
                for i in 1..<g { lo = Swift.min(lo, xb[i]); hi = Swift.max(hi, xb[i]) }
                let d = Float16((hi - lo) / 15)
                let m = Float16(lo)
                let df = Float(d), mf = Float(m)
                let ob = out + b * blockBytes
                storeF16(d, ob, 0)
                storeF16(m, ob, 2)
                for i in 0..<half {
                    var c0: UInt8 = 0, c1: UInt8 = 0
                    if df > 0 {
                        c0 = UInt8(roundedCode((xb[i] - mf) / df, lo: 0, hi: 15))
                        c1 = UInt8(roundedCode((xb[i + half] - mf) / df, lo: 0, hi: 15))
                    }
                    ob.storeBytes(of: c0 | (c1 << 4), toByteOffset: 4 + i, as: UInt8.self)
                }
            }
        case .int8:
            var amax: Float = 0
            for i in 0..<n { amax = Swift.max(amax, abs(x[i])) }
            let scale = amax / 127
            out.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
            let q = out + Int8RowLayout.weightOffset
            for i in 0..<n {
                let c: Int8 = scale > 0 ? Int8(roundedCode(x[i] / scale, lo: -127, hi: 127)) : 0
                q.storeBytes(of: c, toByteOffset: i, as: Int8.self)
            }
        }
    }
}

/// Reference (scalar) dequantisation through the block types; the SIMD path in `Dequantize` must match it.
public enum ReferenceDequantize {
    /// Writes `columns` Float32 values of one packed row.
    public static func row(_ raw: UnsafeRawPointer, format: PackedFormat, columns n: Int,
                           into out: UnsafeMutablePointer<Float>) {
        func blocks<B: PackedBlock>(_: B.Type) {
            for b in 0..<(n / B.elements) {
                let block = B(loadingFrom: raw + b * B.byteCount)
                for i in 0..<B.elements { out[b * B.elements + i] = block.value(at: i) }
            }
        }
        switch format {
        case .f32:
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<n { out[i] = Float(loadF16(raw, 2 * i)) }
        case .bf16:
            for i in 0..<n { out[i] = BF16.toFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .q8_0: blocks(BlockQ8_0.self)
        case .q4_0: blocks(BlockQ4_0.self)
        case .q4_1: blocks(BlockQ4_1.self)
        case .int4g32: blocks(BlockInt4G32.self)
        case .int4g64: blocks(BlockInt4G64.self)
        case .int4g128: blocks(BlockInt4G128.self)
        case .int8:
            let scale = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
            for i in 0..<n {
                out[i] = Float(raw.load(fromByteOffset: Int8RowLayout.weightOffset + i, as: Int8.self)) * scale
            }
        }
    }
}

/// bfloat16 conversions.
public enum BF16 {
    /// Rounds to nearest even; NaN stays a quiet NaN.
    @inline(__always) public static func fromFloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    @inline(__always) public static func toFloat(_ h: UInt16) -> Float {
        Float(bitPattern: UInt32(h) << 16)
    }
}
