import Foundation

/// Number formatting for reasons, shortfalls and tables (decimal GB/MB, fixed precision, thousands separators).
public enum Units {
    public static func gb(_ bytes: Int) -> String { String(format: "%.2f GB", Double(bytes) / 1e9) }
    public static func gb1(_ bytes: Int) -> String { String(format: "%.1f GB", Double(bytes) / 1e9) }
    public static func mb(_ bytes: Int) -> String { String(format: "%.0f MB", Double(bytes) / 1e6) }
    public static func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / 1_073_741_824) }
    /// Bytes in the most readable unit.
    public static func bytes(_ bytes: Int) -> String {
        if bytes >= 1_000_000_000 { return gb(bytes) }
        if bytes >= 1_000_000 { return mb(bytes) }
        if bytes >= 1_000 { return String(format: "%.0f kB", Double(bytes) / 1e3) }
        return "\(bytes) B"
    }
    public static func percent(_ fraction: Double, digits: Int = 2) -> String {
        String(format: "%.\(digits)f%%", fraction * 100)
    }
    public static func seconds(_ s: Double) -> String {
        if s.isInfinite { return "∞ s" }
        if s >= 1 { return String(format: "%.2f s", s) }
        return String(format: "%.1f ms", s * 1000)
    }
    public static func rate(_ r: Double) -> String { String(format: "%.1f tok/s", r) }
    public static func count(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }
    static func round(_ x: Double, _ places: Int) -> Double {
        guard x.isFinite else { return x }
        let scale = pow(10, Double(places))
        return (x * scale).rounded() / scale
    }
}
