/// Errors from host calibration: bad options, unreadable system files, measurements that came out unusable.
public enum CalibrationError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidOption(name: String, expected: String, got: String)
    case unreadableSystemFile(path: String, reason: String)
    case missingSystemField(path: String, field: String)
    case unusableMeasurement(what: String, value: Double)

    public var description: String {
        switch self {
        case let .invalidOption(name, expected, got):
            return "invalid calibration option \(name): expected \(expected), got \(got)"
        case let .unreadableSystemFile(path, reason):
            return "cannot read \(path): \(reason)"
        case let .missingSystemField(path, field):
            return "\(path) has no '\(field)' line"
        case let .unusableMeasurement(what, value):
            return "measurement of \(what) is unusable (\(value)); the machine may be overloaded, run again"
        }
    }
}
