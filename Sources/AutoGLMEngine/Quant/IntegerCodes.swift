// The integer view of quantised weights and 8-bit activations, for the integer matmul.
//
// Every quantised format stores, per block of 32 weights, small integers and an affine map back to real values:
// w[k] = scale · u[k] + offset with u[k] an unsigned 8-bit code (Q4_0: u = q, offset = −8·d; Q4_1 and INT4: the
// stored minimum; Q8_0 and INT8: u = q + 128, offset = −128·d). Activations rounded to 8 bits per block of 32
// (a[k] ≈ s · q[k], s = max |a| / 127, q = round(a / s)) then give, per block,
//
//     Σ w[k] a[k] ≈ scale · s · Σ u[k] q[k] + offset · (s · Σ q[k])
//
// where Σ u q is an exact integer sum (u ≤ 255, |q| ≤ 127, 32 terms), computed four products at a time by the
// AVX-512 VNNI instruction (`vpdpbusd`: unsigned bytes times signed bytes). The only rounding beyond Float32 is the
// activations' own, the same as llama.cpp's quantised kernels (Q8_0 activations).

/// How a matrix multiplies its activations.
public enum ActivationPrecision: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Activations stay Float32 and the weights are widened to Float32: the default, exact up to Float32 sums.
    case float32 = "f32"
    /// Prefill batches (two tokens or more) round each token's activations to 8 bits per block of 32 and multiply
    /// them with the weights' integer codes (AVX-512 VNNI); decode (one token) keeps Float32.
    /// Quantised weight formats only, and only where the AVX-512 kernels run; elsewhere Float32 is used.
    case int8 = "int8"

    public var description: String { rawValue }
}

/// One block of 32 weights as unsigned codes and an affine map: w[k] = scale · codes[k] + offset.
public struct IntegerCodeBlock: Equatable, Sendable {
    public var codes: SIMD32<UInt8>
    public var scale: Float
    public var offset: Float
}

extension PackedFormat {
    /// Whether rows of `columns` weights have an integer view in blocks of 32 (every quantised format whose rows are
    /// a whole number of such blocks; INT8 rows may have any length).
    public func hasIntegerCodes(columns: Int) -> Bool {
        isQuantized && columns > 0 && columns % IntegerCodes.blockElements == 0 && supports(columns: columns)
    }
}

/// Reads the integer view of quantised rows (see the file comment).
public enum IntegerCodes {
    /// Weights per integer block: the activations' rounding block.
    public static let blockElements = 32

    /// The codes, scale and offset of block `b` (weights 32·b ..< 32·b + 32) of a row of `format`. The format must
    /// satisfy `hasIntegerCodes(columns:)`.
    @inline(__always)
    public static func block(_ row: UnsafeRawPointer, format: PackedFormat, block b: Int) -> IntegerCodeBlock {
        switch format {
        case .q4_0:
            let p = row + b * BlockQ4_0.byteCount
            let d = Float(loadF16(p, 0))
            return IntegerCodeBlock(codes: nibbles(p.loadUnaligned(fromByteOffset: 2, as: SIMD4<UInt32>.self)),
                                    scale: d, offset: -8 * d)
        case .q4_1:
            let p = row + b * BlockQ4_1.byteCount
            return IntegerCodeBlock(codes: nibbles(p.loadUnaligned(fromByteOffset: 4, as: SIMD4<UInt32>.self)),
                                    scale: Float(loadF16(p, 0)), offset: Float(loadF16(p, 2)))
        case .q8_0:
            let p = row + b * BlockQ8_0.byteCount
            return signedBlock(p + 2, scale: Float(loadF16(p, 0)))
        case .int8:
            let s = Float(bitPattern: UInt32(littleEndian: row.loadUnaligned(as: UInt32.self)))
            return signedBlock(row + Int8RowLayout.weightOffset + 32 * b, scale: s)
        case .int4g32:
            return groupBlock(row, group: 32, blockBytes: BlockInt4G32.byteCount, block: b)
        case .int4g64:
            return groupBlock(row, group: 64, blockBytes: BlockInt4G64.byteCount, block: b)
        case .int4g128:
            return groupBlock(row, group: 128, blockBytes: BlockInt4G128.byteCount, block: b)
        case .f32, .f16, .bf16:
            preconditionFailure("\(format) has no integer codes")
        }
    }

    // The byte operations below work on 32-bit lanes: the compiler turns byte-lane SIMD operators into a loop over
    // the bytes through the stack (packing Q8_0 took 44% of a prefill that way).

    /// Q4_0 / Q4_1 / INT4-g32 nibbles: low nibbles are weights 0–15, high nibbles 16–31.
    @inline(__always) static func nibbles(_ qs: SIMD4<UInt32>) -> SIMD32<UInt8> {
        let mask = SIMD4<UInt32>(repeating: 0x0F0F_0F0F)
        return unsafeBitCast(SIMD8(lowHalf: qs & mask, highHalf: (qs &>> 4) & mask), to: SIMD32<UInt8>.self)
    }

    /// 32 signed bytes at `q` times `scale` (Q8_0, INT8) as unsigned codes q + 128 (the sign bit flipped) with the
    /// offset −128 · scale.
    @inline(__always) static func signedBlock(_ q: UnsafeRawPointer, scale: Float) -> IntegerCodeBlock {
        let flipped = q.loadUnaligned(as: SIMD8<UInt32>.self) ^ SIMD8(repeating: 0x8080_8080)
        return IntegerCodeBlock(codes: unsafeBitCast(flipped, to: SIMD32<UInt8>.self), scale: scale,
                                offset: -128 * scale)
    }

    /// Block `b` of an INT4 row with groups of `group` weights (f16 scale, f16 min, group/2 bytes; byte i holds
    /// weight i in its low nibble and weight i + group/2 in its high one). From 64 up, a block of 32 lies in one
    /// half of its group: 32 consecutive bytes, all low or all high nibbles.
    @inline(__always)
    static func groupBlock(_ row: UnsafeRawPointer, group: Int, blockBytes: Int, block b: Int) -> IntegerCodeBlock {
        let first = b * blockElements
        let p = row + (first / group) * blockBytes
        let scale = Float(loadF16(p, 0)), offset = Float(loadF16(p, 2))
        if group == blockElements {
            return IntegerCodeBlock(codes: nibbles(p.loadUnaligned(fromByteOffset: 4, as: SIMD4<UInt32>.self)),
                                    scale: scale, offset: offset)
        }
        let half = group / 2
        let within = first % group
        let bytes = p.loadUnaligned(fromByteOffset: 4 + within % half, as: SIMD8<UInt32>.self)
        let codes = (within < half ? bytes : bytes &>> 4) & SIMD8(repeating: 0x0F0F_0F0F)
        return IntegerCodeBlock(codes: unsafeBitCast(codes, to: SIMD32<UInt8>.self), scale: scale, offset: offset)
    }
}

/// Activations rounded to 8 bits per block of 32, row by row: `codes[t · n + k]`, and per token and block
/// `scales[t · blocks + b]` = max |x| / 127 and `sums[t · blocks + b]` = scale · Σ codes of the block.
public enum Int8Activations {
    /// The scalar rounding the vector kernels must reproduce bit for bit: per block, d = max |x| / 127,
    /// inverse = 1 / d (0 for an all-zero block), q = x · inverse rounded to nearest, ties to even.
    public static func quantize(_ x: [Float], columns n: Int) -> (codes: [Int8], scales: [Float], sums: [Float]) {
        precondition(n % IntegerCodes.blockElements == 0 && x.count % n == 0)
        let blocks = x.count / IntegerCodes.blockElements
        var codes = [Int8](repeating: 0, count: x.count)
        var scales = [Float](repeating: 0, count: blocks), sums = [Float](repeating: 0, count: blocks)
        for b in 0..<blocks {
            let range = (b * 32)..<(b * 32 + 32)
            let amax = x[range].reduce(Float(0)) { max($0, abs($1)) }
            let d = amax / 127
            let inverse: Float = d != 0 ? 1 / d : 0
            var sum: Int32 = 0
            for k in range {
                let q = Int8((x[k] * inverse).rounded(.toNearestOrEven))
                codes[k] = q
                sum += Int32(q)
            }
            scales[b] = d
            sums[b] = d * Float(sum)
        }
        return (codes, scales, sums)
    }
}
