// Tensor element types of the GGUF format, with their block layout.

/// A tensor element type as stored in a GGUF file. Raw values are the on-disk type ids.
///
/// Quantised types store elements in blocks: `blockSize` elements occupy `blockByteCount` bytes.
/// Plain types have a block of one element.
public enum GGMLType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    // 4 and 5 (Q4_2, Q4_3) were removed from the format.
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case iq2_XXS = 16
    case iq2_XS = 17
    case iq3_XXS = 18
    case iq1_S = 19
    case iq4_NL = 20
    case iq3_S = 21
    case iq2_S = 22
    case iq4_XS = 23
    case i8 = 24
    case i16 = 25
    case i32 = 26
    case i64 = 27
    case f64 = 28
    case iq1_M = 29
    case bf16 = 30
    // 31...33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) are no longer valid in files.
    case tq1_0 = 34
    case tq2_0 = 35
    // 36...38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) are no longer valid in files.
    case mxfp4 = 39

    /// Elements per super-block of the K and IQ families.
    public static let kBlockSize = 256

    /// Number of elements in one block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K,
             .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S, .iq2_S, .iq4_XS, .iq1_M,
             .tq1_0, .tq2_0: GGMLType.kBlockSize
        }
    }

    /// Number of bytes in one block.
    public var blockByteCount: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .f64: 8
        case .i8: 1
        case .i16: 2
        case .i32: 4
        case .i64: 8
        case .q4_0: 18      // f16 scale + 16 bytes of nibbles
        case .q4_1: 20      // f16 scale + f16 min + 16 bytes
        case .q5_0: 22      // f16 scale + 4 bytes high bits + 16 bytes
        case .q5_1: 24      // f16 scale + f16 min + 4 + 16
        case .q8_0: 34      // f16 scale + 32 int8
        case .q8_1: 36      // f16 scale + f16 sum + 32 int8
        case .q2_K: 84      // 16 scales + 64 quants + 2 × f16
        case .q3_K: 110     // 32 hmask + 64 quants + 12 scales + f16
        case .q4_K: 144     // 2 × f16 + 12 scales + 128 quants
        case .q5_K: 176     // 2 × f16 + 12 scales + 32 high bits + 128 quants
        case .q6_K: 210     // 128 low + 64 high + 16 scales + f16
        case .q8_K: 292     // f32 scale + 256 int8 + 16 × int16 sums
        case .iq2_XXS: 66
        case .iq2_XS: 74
        case .iq3_XXS: 98
        case .iq1_S: 50
        case .iq4_NL: 18
        case .iq3_S: 110
        case .iq2_S: 82
        case .iq4_XS: 136
        case .iq1_M: 56
        case .tq1_0: 54
        case .tq2_0: 66
        case .mxfp4: 17     // shared e8m0 exponent + 16 bytes of e2m1 pairs
        }
    }

    /// The name used by ggml and llama.cpp ("Q4_0", "F16", ...).
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .q8_K: "Q8_K"
        case .iq2_XXS: "IQ2_XXS"
        case .iq2_XS: "IQ2_XS"
        case .iq3_XXS: "IQ3_XXS"
        case .iq1_S: "IQ1_S"
        case .iq4_NL: "IQ4_NL"
        case .iq3_S: "IQ3_S"
        case .iq2_S: "IQ2_S"
        case .iq4_XS: "IQ4_XS"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .f64: "F64"
        case .iq1_M: "IQ1_M"
        case .bf16: "BF16"
        case .tq1_0: "TQ1_0"
        case .tq2_0: "TQ2_0"
        case .mxfp4: "MXFP4"
        }
    }

    public var description: String { name }

    /// Looks a type up by its ggml name, case-insensitively ("q4_0", "Q8_0", "bf16").
    public init?(name: String) {
        let upper = name.uppercased()
        guard let match = GGMLType.allCases.first(where: { $0.name == upper }) else { return nil }
        self = match
    }

    /// Whether the type is a block-quantised format (as opposed to plain floats or integers).
    public var isQuantized: Bool { blockSize > 1 }

    /// Bits per element, averaged over a block (4.5 for Q4_0, 16 for F16).
    public var bitsPerElement: Double { Double(blockByteCount * 8) / Double(blockSize) }

    /// Bytes taken by one row of `elements` values, or nil when `elements` is not a whole number of blocks
    /// or the size overflows.
    public func rowByteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: blockByteCount)
        return overflow ? nil : bytes
    }

    /// Bytes taken by a tensor of the given shape (ne0 first), or nil when ne0 is not a whole number of blocks,
    /// a dimension is negative, or the size overflows.
    public func byteCount(dimensions: [Int]) -> Int? {
        guard let first = dimensions.first else { return nil }
        guard var total = rowByteCount(elements: first) else { return nil }
        for dim in dimensions.dropFirst() {
            guard dim >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            total = product
        }
        return total
    }
}
