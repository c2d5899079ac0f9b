import Foundation

/// Every weight format the planner knows, with its exact storage layout.
///
/// Bits per weight follow from the layout: `bits + (scale bits + zero bits) / group size` (+ super-block terms).
/// Formats the engine executes natively: f32, f16, bf16, q8_0, q4_0, q4_1, int8 (per channel), int4-g32/g64/g128.
/// The others (llm-int8, gptq-int4-g128, nf4, q4_k, q6_k) are planned for their memory and accuracy figures.
public enum WeightFormat: String, Codable, CaseIterable, Sendable, Comparable, CodingKeyRepresentable {
    case f32
    case f16
    case bf16
    /// INT8 per output channel: int8 weights, one Float32 scale per row.
    case int8 = "int8"
    /// LLM.int8(): int8 rows with a Float32 scale per row plus FP16 copies of the outlier input columns.
    case llmInt8 = "llm-int8"
    /// INT4 group-wise, unsigned nibbles with an FP16 scale and FP16 min per group of 32/64/128.
    case int4g32 = "int4-g32"
    case int4g64 = "int4-g64"
    case int4g128 = "int4-g128"
    /// GPTQ INT4, group 128: FP16 scale and 4-bit zero per group, plus an int32 group index per input column.
    case gptqInt4g128 = "gptq-int4-g128"
    /// NF4 with double-quantised scales (QLoRA): 4-bit codes, 8-bit absmax per 64, FP32 per 256 absmax values.
    case nf4 = "nf4"
    /// GGUF block formats.
    case q8_0 = "q8_0"
    case q4_0 = "q4_0"
    case q4_1 = "q4_1"
    case q4K = "q4_k"
    case q6K = "q6_k"

    /// Fraction of input columns LLM.int8() keeps in FP16 (derived: outliers concentrate in ~7 of 4096 hidden dims,
    /// Dettmers et al. 2022, section 4; 0.2% rounds that up).
    public static let llmInt8OutlierFraction = 0.002

    public static func < (a: WeightFormat, b: WeightFormat) -> Bool { a.nominalBits < b.nominalBits }

    /// Decodes a format name; an unknown name throws a `FieldValidationError` that lists every known format.
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let format = WeightFormat(rawValue: name) else {
            throw FieldValidationError(decoder.codingPath, expected: "one of " + Self.allCases.map(\.rawValue)
                .joined(separator: ", "), found: name)
        }
        self = format
    }

    /// Elements in one storage block along a row (1 for element-wise formats).
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16, .int8, .llmInt8: return 1
        case .int4g32, .q8_0, .q4_0, .q4_1: return 32
        case .int4g64, .nf4: return 64
        case .int4g128, .gptqInt4g128: return 128
        case .q4K, .q6K: return 256
        }
    }

    /// Bytes of one storage block (for element-wise formats, bytes per element).
    public var blockBytes: Double {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .int8, .llmInt8: return 1
        case .int4g32: return 20        // f16 scale + f16 min + 16 B
        case .int4g64: return 36
        case .int4g128: return 68
        case .gptqInt4g128: return 66.5 // 64 B nibbles + f16 scale + 4-bit zero
        case .nf4: return 33            // 32 B nibbles + 8-bit absmax
        case .q8_0: return 34           // f16 d + 32 int8
        case .q4_0: return 18           // f16 d + 16 B
        case .q4_1: return 20           // f16 d + f16 m + 16 B
        case .q4K: return 144           // 2 f16 + 12 B scales + 128 B
        case .q6K: return 210           // 128 B low + 64 B high + 16 scales + f16
        }
    }

    /// Bits per weight of a large matrix in this format, all per-row and per-matrix terms included.
    public var nominalBits: Double {
        switch self {
        case .int8: return 8
        case .llmInt8: return 8 + 16 * Self.llmInt8OutlierFraction
        case .nf4: return 4 + 8.0 / 64 + 32.0 / (64 * 256)
        default: return blockBytes * 8 / Double(blockElements)
        }
    }

    /// Bytes to store a (rows × columns) matrix, rows being output channels and columns the input (reduction) axis.
    /// Requires `canStore(columns:)`.
    public func bytes(rows: Int, columns: Int) -> Int {
        let r = Double(rows), c = Double(columns)
        switch self {
        case .f32, .f16, .bf16:
            return Int(blockBytes) * rows * columns
        case .int8:
            return rows * columns + rows * 4
        case .llmInt8:
            let outliers = (c * Self.llmInt8OutlierFraction).rounded(.up)
            return rows * columns + rows * 4 + Int(outliers) * rows * 2 + Int(outliers) * 4
        case .gptqInt4g128:
            let groups = r * (c / 128).rounded(.up)
            return Int((groups * blockBytes).rounded(.up)) + columns * 4
        case .nf4:
            let n = r * c
            let absmax = (n / 64).rounded(.up)
            return Int(n / 2 + absmax + (absmax / 256).rounded(.up) * 4 + 4)
        default:
            let blocks = (c / Double(blockElements)).rounded(.up)
            return Int(r * blocks * blockBytes)
        }
    }

    /// Whether a row of `columns` elements can be stored in this format without padding.
    public func canStore(columns: Int) -> Bool { columns > 0 && columns % blockElements == 0 }

    /// The format a matrix with rows of `columns` elements is stored in when this one is requested: this format when
    /// its blocks divide the row; for an INT4 group format, the largest smaller group that does (576-wide rows take
    /// int4-g64 under int4-g128); else F16.
    public func stored(columns: Int) -> WeightFormat {
        if canStore(columns: columns) { return self }
        let groups: [WeightFormat] = [.int4g128, .int4g64, .int4g32]
        if let i = groups.firstIndex(of: self),
           let smaller = groups[(i + 1)...].first(where: { $0.canStore(columns: columns) }) {
            return smaller
        }
        return .f16
    }

    /// Whether the project's engine executes this format (the others are planned, not run).
    public var engineExecutes: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .int8, .int4g32, .int4g64, .int4g128: return true
        case .llmInt8, .gptqInt4g128, .nf4, .q4K, .q6K: return false
        }
    }

    /// The format the engine executes in this one's place: itself where `engineExecutes`, else the executed format
    /// with the same bits per weight or the next finer one.
    public var engineFormat: WeightFormat {
        switch self {
        case .q4K, .nf4: return .int4g32        // 4.5 / 4.13 bits → 5 bits with group 32 scale and min
        case .gptqInt4g128: return .int4g128
        case .q6K: return .q8_0
        case .llmInt8: return .int8
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .int8, .int4g32, .int4g64, .int4g128: return self
        }
    }

    /// The arithmetic precision a compute unit needs to execute this format at full rate.
    public var computePrecision: ComputePrecision {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .int8, .llmInt8, .q8_0, .q6K: return .int8
        case .int4g32, .int4g64, .int4g128, .gptqInt4g128, .nf4, .q4_0, .q4_1, .q4K: return .int4
        }
    }
}

/// Arithmetic precisions for which compute units publish throughput.
public enum ComputePrecision: String, Codable, CaseIterable, Sendable, CodingKeyRepresentable {
    case f32, f16, bf16, int8, int4
}
