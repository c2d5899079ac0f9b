// Weight storage formats of the engine and their byte layouts.
//
// Every format stores a matrix row by row; a row of `columns` weights is a sequence of blocks of
// `blockElements` weights, each `blockBytes` long, except `int8` which carries one scale per row.
//
// | format     | block elems | block bytes | layout of one block                                   | value            |
// |------------|-------------|-------------|-------------------------------------------------------|------------------|
// | f32        | 1           | 4           | IEEE binary32                                          | x                |
// | f16        | 1           | 2           | IEEE binary16                                          | x                |
// | bf16       | 1           | 2           | upper 16 bits of binary32                              | x                |
// | q8_0       | 32          | 34          | f16 d, 32 × int8 q                                     | q·d              |
// | q4_0       | 32          | 18          | f16 d, 16 B nibbles (low: elems 0..15, high: 16..31)   | (q−8)·d          |
// | q4_1       | 32          | 20          | f16 d, f16 m, 16 B nibbles (as q4_0)                   | q·d + m          |
// | int8       | row         | 4 + cols↑4  | f32 scale, cols × int8 q, zero padding to 4 bytes      | q·scale          |
// | int4-gN    | N           | 4 + N/2     | f16 scale, f16 min, N/2 B nibbles (low: elems 0..N/2−1,| q·scale + min    |
// |            |             |             | high: N/2..N−1), N ∈ {32, 64, 128}                     |                  |
//
// The `int8` row is `[Float32 scale][cols int8][0-3 zero bytes]`, so every row starts 4-byte aligned and the
// scale can be read with an aligned load when the matrix base is aligned. All multi-byte fields are little endian.

/// A weight storage format. Independent of GGUF type ids; the GGUF reader maps its types onto these.
public enum PackedFormat: String, Sendable, Codable, CaseIterable, Hashable, CustomStringConvertible {
    case f32 = "f32"
    case f16 = "f16"
    case bf16 = "bf16"
    case q8_0 = "q8_0"
    case q4_0 = "q4_0"
    case q4_1 = "q4_1"
    case int8 = "int8"
    case int4g32 = "int4-g32"
    case int4g64 = "int4-g64"
    case int4g128 = "int4-g128"

    public var description: String { rawValue }

    /// Weights per block. For `int8` the scale is per row; its "block" is a single weight byte.
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16, .int8: return 1
        case .q8_0, .q4_0, .q4_1, .int4g32: return 32
        case .int4g64: return 64
        case .int4g128: return 128
        }
    }

    /// Bytes per block (for `int8`: bytes per weight, the per-row scale is added by `rowBytes`).
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return BlockQ8_0.byteCount
        case .q4_0: return BlockQ4_0.byteCount
        case .q4_1: return BlockQ4_1.byteCount
        case .int8: return 1
        case .int4g32: return BlockInt4G32.byteCount
        case .int4g64: return BlockInt4G64.byteCount
        case .int4g128: return BlockInt4G128.byteCount
        }
    }

    /// True for formats that hold quantised integers (everything except f32, f16 and bf16).
    public var isQuantized: Bool {
        switch self {
        case .f32, .f16, .bf16: return false
        default: return true
        }
    }

    /// Whether a row of `columns` weights can be stored in this format (a whole number of blocks).
    public func supports(columns: Int) -> Bool {
        columns > 0 && columns % blockElements == 0
    }

    /// Bytes of one stored row of `columns` weights. `columns` must satisfy `supports(columns:)`.
    public func rowBytes(columns: Int) -> Int {
        switch self {
        case .int8: return Int8RowLayout.scaleBytes + (columns + 3) & ~3
        default: return (columns / blockElements) * blockBytes
        }
    }

    /// Storage bits per weight, including scales and minimums (for `int8` the per-row scale is not counted,
    /// since it depends on the row length; see `rowBytes(columns:)`).
    public var bitsPerWeight: Double {
        Double(blockBytes * 8) / Double(blockElements)
    }

    /// Group size over which matvec needs sums of the activations (formats with an offset term: the minimum of
    /// Q4_1 and INT4, the −8 of Q4_0's codes in the 8-lane kernels), nil otherwise.
    var activationSumGroup: Int? {
        switch self {
        case .q4_0, .q4_1, .int4g32: return 32
        case .int4g64: return 64
        case .int4g128: return 128
        default: return nil
        }
    }

    /// Group size for nibble formats that store a scale and a minimum per group, nil otherwise.
    var int4GroupSize: Int? {
        switch self {
        case .int4g32: return 32
        case .int4g64: return 64
        case .int4g128: return 128
        default: return nil
        }
    }
}

/// Errors raised when packed weights are created, wrapped or converted.
public enum QuantError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The row length is not a whole number of blocks of the format.
    case columnsNotBlockAligned(format: PackedFormat, columns: Int, blockElements: Int)
    /// A dimension is zero or negative.
    case invalidShape(rows: Int, columns: Int)
    /// The number of source floats does not match rows × columns.
    case elementCountMismatch(expected: Int, got: Int)
    /// Wrapped storage is shorter than the format needs.
    case storageTooSmall(format: PackedFormat, rows: Int, columns: Int, needed: Int, got: Int)
    /// A source value is NaN or infinite and cannot be quantised.
    case nonFiniteValue(row: Int, column: Int)
    /// A matrix cannot be rearranged into the requested row layout (`PackedMatrix.groupingRows`).
    case invalidLayout(String)

    public var description: String {
        switch self {
        case let .columnsNotBlockAligned(format, columns, blockElements):
            return "format \(format) needs a row length that is a multiple of \(blockElements), got \(columns) columns"
        case let .invalidShape(rows, columns):
            return "matrix shape must be positive, got \(rows) rows × \(columns) columns"
        case let .elementCountMismatch(expected, got):
            return "expected \(expected) source values (rows × columns), got \(got)"
        case let .storageTooSmall(format, rows, columns, needed, got):
            return "\(format) matrix of \(rows)×\(columns) needs \(needed) bytes of storage, got \(got)"
        case let .nonFiniteValue(row, column):
            return "cannot quantise a non-finite value at row \(row), column \(column)"
        case let .invalidLayout(reason):
            return "cannot regroup the matrix: \(reason)"
        }
    }
}

/// Layout constants of the `int8` per-channel row: a Float32 scale followed by the int8 weights.
public enum Int8RowLayout {
    public static let scaleBytes = 4
    public static let weightOffset = 4
}

/// A fixed-size quantised block: its packed byte size, how to read and write it, and the value of each element.
/// These types are the reference (scalar) definition of each layout; the kernels read the same bytes with SIMD.
public protocol PackedBlock: Sendable, Equatable {
    /// Weights in one block.
    static var elements: Int { get }
    /// Packed bytes of one block.
    static var byteCount: Int { get }
    /// Reads a block from packed bytes (no alignment needed).
    init(loadingFrom raw: UnsafeRawPointer)
    /// Writes the block as packed bytes.
    func store(to raw: UnsafeMutableRawPointer)
    /// The dequantised value of element `i`.
    func value(at i: Int) -> Float
}

@inline(__always) func loadF16(_ raw: UnsafeRawPointer, _ offset: Int) -> Float16 {
    Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always) func storeF16(_ v: Float16, _ raw: UnsafeMutableRawPointer, _ offset: Int) {
    raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
}

/// One Q8_0 block (34 bytes): f16 scale `d`, then 32 signed bytes; value = q·d.
public struct BlockQ8_0: PackedBlock {
    public static let elements = 32
    public static let byteCount = 2 + 32
    public var d: Float16
    public var qs: SIMD32<Int8>
    public init(d: Float16, qs: SIMD32<Int8>) { self.d = d; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        d = loadF16(raw, 0)
        qs = raw.loadUnaligned(fromByteOffset: 2, as: SIMD32<Int8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(d, raw, 0)
        raw.storeBytes(of: qs, toByteOffset: 2, as: SIMD32<Int8>.self)
    }
    public func value(at i: Int) -> Float { Float(qs[i]) * Float(d) }
}

/// One Q4_0 block (18 bytes): f16 scale `d`, then 16 bytes of nibbles; value = (q−8)·d.
/// Byte i holds element i in its low nibble and element i+16 in its high nibble.
public struct BlockQ4_0: PackedBlock {
    public static let elements = 32
    public static let byteCount = 2 + 16
    public var d: Float16
    public var qs: SIMD16<UInt8>
    public init(d: Float16, qs: SIMD16<UInt8>) { self.d = d; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        d = loadF16(raw, 0)
        qs = raw.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(d, raw, 0)
        raw.storeBytes(of: qs, toByteOffset: 2, as: SIMD16<UInt8>.self)
    }
    /// The 4-bit code of element `i` (0...15).
    public func code(at i: Int) -> UInt8 { i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4 }
    public func value(at i: Int) -> Float { (Float(code(at: i)) - 8) * Float(d) }
}

/// One Q4_1 block (20 bytes): f16 scale `d`, f16 minimum `m`, then 16 bytes of nibbles (order as Q4_0);
/// value = q·d + m.
public struct BlockQ4_1: PackedBlock {
    public static let elements = 32
    public static let byteCount = 2 + 2 + 16
    public var d: Float16
    public var m: Float16
    public var qs: SIMD16<UInt8>
    public init(d: Float16, m: Float16, qs: SIMD16<UInt8>) { self.d = d; self.m = m; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        d = loadF16(raw, 0)
        m = loadF16(raw, 2)
        qs = raw.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(d, raw, 0)
        storeF16(m, raw, 2)
        raw.storeBytes(of: qs, toByteOffset: 4, as: SIMD16<UInt8>.self)
    }
    public func code(at i: Int) -> UInt8 { i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4 }
    public func value(at i: Int) -> Float { Float(code(at: i)) * Float(d) + Float(m) }
}

/// One INT4 group of `N` weights (4 + N/2 bytes): f16 scale, f16 min, then N/2 bytes of nibbles;
/// value = q·scale + min. Byte i holds element i (low nibble) and element i + N/2 (high nibble).
public protocol Int4GroupBlock: PackedBlock {
    var scale: Float16 { get }
    var min: Float16 { get }
    /// The 4-bit code of element `i` (0...15).
    func code(at i: Int) -> UInt8
}

extension Int4GroupBlock {
    public func value(at i: Int) -> Float { Float(code(at: i)) * Float(scale) + Float(min) }
}

/// INT4 group of 32 (20 bytes).
public struct BlockInt4G32: Int4GroupBlock {
    public static let elements = 32
    public static let byteCount = 4 + 16
    public var scale: Float16
    public var min: Float16
    public var qs: SIMD16<UInt8>
    public init(scale: Float16, min: Float16, qs: SIMD16<UInt8>) { self.scale = scale; self.min = min; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        scale = loadF16(raw, 0)
        min = loadF16(raw, 2)
        qs = raw.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(scale, raw, 0)
        storeF16(min, raw, 2)
        raw.storeBytes(of: qs, toByteOffset: 4, as: SIMD16<UInt8>.self)
    }
    public func code(at i: Int) -> UInt8 { i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4 }
}

/// INT4 group of 64 (36 bytes).
public struct BlockInt4G64: Int4GroupBlock {
    public static let elements = 64
    public static let byteCount = 4 + 32
    public var scale: Float16
    public var min: Float16
    public var qs: SIMD32<UInt8>
    public init(scale: Float16, min: Float16, qs: SIMD32<UInt8>) { self.scale = scale; self.min = min; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        scale = loadF16(raw, 0)
        min = loadF16(raw, 2)
        qs = raw.loadUnaligned(fromByteOffset: 4, as: SIMD32<UInt8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(scale, raw, 0)
        storeF16(min, raw, 2)
        raw.storeBytes(of: qs, toByteOffset: 4, as: SIMD32<UInt8>.self)
    }
    public func code(at i: Int) -> UInt8 { i < 32 ? qs[i] & 0x0F : qs[i - 32] >> 4 }
}

/// INT4 group of 128 (68 bytes).
public struct BlockInt4G128: Int4GroupBlock {
    public static let elements = 128
    public static let byteCount = 4 + 64
    public var scale: Float16
    public var min: Float16
    public var qs: SIMD64<UInt8>
    public init(scale: Float16, min: Float16, qs: SIMD64<UInt8>) { self.scale = scale; self.min = min; self.qs = qs }
    public init(loadingFrom raw: UnsafeRawPointer) {
        scale = loadF16(raw, 0)
        min = loadF16(raw, 2)
        qs = raw.loadUnaligned(fromByteOffset: 4, as: SIMD64<UInt8>.self)
    }
    public func store(to raw: UnsafeMutableRawPointer) {
        storeF16(scale, raw, 0)
        storeF16(min, raw, 2)
        raw.storeBytes(of: qs, toByteOffset: 4, as: SIMD64<UInt8>.self)
    }
    public func code(at i: Int) -> UInt8 { i < 64 ? qs[i] & 0x0F : qs[i - 64] >> 4 }
}
