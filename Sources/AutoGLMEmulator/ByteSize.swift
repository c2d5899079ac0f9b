import Foundation

/// Byte sizes as people write them: `64MiB`, `7GB`, `7.5GiB`, `512k`, `1048576`.
///
/// Units: `B`; decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024).
/// The single letters `K`, `M`, `G`, `T` are binary, as in systemd and Docker. Units are case-insensitive and may be
/// separated from the number by a space. Fractions are allowed when the result is a whole number of bytes.
public enum ByteSize {
    public static func parse(_ text: String) throws(EmulatorError) -> UInt64 {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .invalidSize(input: text, reason: "empty") }
        let numberPart = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unitPart = trimmed.dropFirst(numberPart.count).trimmingCharacters(in: .whitespaces)
        guard !numberPart.isEmpty else {
            throw .invalidSize(input: text, reason: "must start with a non-negative number")
        }
        guard let value = Decimal(string: String(numberPart)), numberPart.filter({ $0 == "." }).count <= 1 else {
            throw .invalidSize(input: text, reason: "'\(numberPart)' is not a number")
        }
        let multipliers: [String: UInt64] = [
            "": 1, "b": 1,
            "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
            "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
            "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
        ]
        guard let multiplier = multipliers[unitPart.lowercased()] else {
            throw .invalidSize(input: text, reason: "unknown unit '\(unitPart)'")
        }
        let bytes = value * Decimal(multiplier)
        guard bytes <= Decimal(UInt64(1) << 62) else { throw .invalidSize(input: text, reason: "too large") }
        var rounded = Decimal()
        var source = bytes
        NSDecimalRound(&rounded, &source, 0, .plain)
        guard rounded == bytes else {
            throw .invalidSize(input: text, reason: "is not a whole number of bytes")
        }
        return NSDecimalNumber(decimal: rounded).uint64Value
    }

    /// Renders bytes with a binary unit and two decimals, e.g. `64.00 MiB`.
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var index = 0
        while value >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        return index == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[index])
    }
}
