import AutoGLMSpecs
import Foundation

/// Number formatting shared by the text, Markdown, JUnit and HTML outputs (decimal units, fixed digits, no locale).
public enum SignoffFormat {
    public static func number(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "n/a" : (value > 0 ? "∞" : "-∞") }
        return String(format: "%.\(digits)f", value)
    }

    /// Decimal bytes: 6.50 GB, 312.4 MB, 12.0 kB, 512 B.
    public static func bytes(_ value: Double) -> String {
        let a = abs(value)
        if a >= 1e9 { return number(value / 1e9, digits: 2) + " GB" }
        if a >= 1e6 { return number(value / 1e6, digits: 1) + " MB" }
        if a >= 1e3 { return number(value / 1e3, digits: 1) + " kB" }
        return number(value, digits: 0) + " B"
    }

    public static func seconds(_ value: Double) -> String {
        let a = abs(value)
        if a != 0 && a < 1 { return number(value * 1000, digits: 1) + " ms" }
        return number(value, digits: 3) + " s"
    }

    public static func percent(_ value: Double) -> String { number(value * 100, digits: 1) + "%" }

    /// The current time as ISO 8601 UTC with seconds.
    public static func timestamp(_ date: Date = Date()) -> String {
        UTCTimestamp.string(date)
    }

    /// Escapes text for XML and HTML content and attribute values.
    public static func xmlEscape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // XML 1.0 forbids most control characters; replace them.
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" && scalar != "\r" {
                    out += "?"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Escapes a Markdown table cell.
    public static func markdownCell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
