import AutoGLMSpecs
import Foundation

/// Errors of the sign-off domain: bad policy or report files, missing bound files, keys, records and the ledger.
/// Every case names the file or field involved and reads as one line.
public enum SignoffError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A specification file (policy, run report, plan, device profile) failed to load.
    case spec(SpecError)
    /// A file the sign-off must read or bind is missing or unreadable.
    case unreadable(file: String, reason: String)
    /// A run report refers to a file whose bytes no longer match the hash the report recorded.
    case hashMismatch(file: String, role: String, expected: String, found: String)
    /// Something a run report needs is not there (a plan path, a device profile for its device, ...).
    case missingInput(report: String, field: String, reason: String)
    /// The signing key could not be loaded or is malformed; the key material itself is never shown.
    case badKey(source: String, reason: String)
    /// A sign-off record is malformed.
    case badRecord(file: String, reason: String)
    /// The ledger refused a write or could not be read.
    case ledger(path: String, reason: String)
    /// A file could not be written.
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .spec(error): return error.description
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .hashMismatch(file, role, expected, found):
            return "\(file): \(role) changed: expected sha256 \(expected), found \(found)"
        case let .missingInput(report, field, reason): return "\(report): field '\(field)': \(reason)"
        case let .badKey(source, reason): return "signing key from \(source): \(reason)"
        case let .badRecord(file, reason): return "\(file): not a valid sign-off record: \(reason)"
        case let .ledger(path, reason): return "ledger \(path): \(reason)"
        case let .unwritable(file, reason): return "\(file): cannot write: \(reason)"
        }
    }

    /// Runs `body`, turning a `SpecError` into `.spec`.
    static func wrapping<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SpecError { throw SignoffError.spec(error) }
    }
}
