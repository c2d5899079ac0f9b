// The byte-level alphabet of GPT-2 style BPE: every byte is shown as a printable character.

/// Maps bytes to the printable Unicode characters that byte-level BPE vocabularies are written in, and back.
///
/// Printable Latin-1 bytes (33...126, 161...172, 174...255) stand for themselves; the remaining 68 bytes
/// (controls, space, DEL, NBSP, soft hyphen) are assigned U+0100 upwards in byte order, so space is 'Ġ' (U+0120)
/// and newline is 'Ċ' (U+010A).
enum ByteLevel {
    /// Scalar value for each byte.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// Byte for each scalar value below 324 (the highest assigned); -1 where unassigned.
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar)] = Int16(byte) }
        return table
    }()

    /// The vocabulary symbol for one byte.
    static func symbol(for byte: UInt8) -> String {
        String(Character(Unicode.Scalar(scalarForByte[Int(byte)]) ?? "?"))
    }

    /// Decodes a vocabulary string to bytes; nil when it holds a character outside the byte alphabet.
    static func bytes(of token: String) -> [UInt8]? {
        var result: [UInt8] = []
        result.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            let v = Int(scalar.value)
            guard v < byteForScalar.count, byteForScalar[v] >= 0 else { return nil }
            result.append(UInt8(byteForScalar[v]))
        }
        return result
    }
}
