import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ISO 8601 UTC timestamps with seconds ("2026-12-06T19:02:15Z"), the form every record and report writes.
///
/// Formatted from the C library's broken-down UTC time rather than with `ISO8601DateFormatter`: the formatter loads
/// the ICU data and Foundation's internationalisation code, about 8 MiB of resident memory in an engine process
/// whose peak is measured against a plan.
public enum UTCTimestamp {
    public static func string(_ date: Date = Date()) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(t.tm_year + 1900, 4) + "-" + pad(t.tm_mon + 1, 2) + "-" + pad(t.tm_mday, 2) + "T"
            + pad(t.tm_hour, 2) + ":" + pad(t.tm_min, 2) + ":" + pad(t.tm_sec, 2) + "Z"
    }
}
