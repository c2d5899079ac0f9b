import Foundation

/// Everything that can go wrong while setting up or supervising an emulated run.
///
/// A child that is killed (by the OOM killer, a signal or a crash) is not an error: it is an ``EmulationResult``.
public enum EmulatorError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A byte size such as `64MiB` could not be parsed.
    case invalidSize(input: String, reason: String)
    /// A limit is out of range.
    case invalidLimit(field: String, value: String, reason: String)
    /// A CPU list such as `0-1,3` could not be parsed or names CPUs this host lacks.
    case invalidCPUList(input: String, reason: String)
    /// No usable memory controller under the cgroup root.
    case noMemoryController(root: String, detail: String)
    /// The cgroup tree exists but this process may not create groups in it.
    case permissionDenied(path: String, operation: String, reason: String)
    /// Creating a group directory failed.
    case groupCreateFailed(path: String, reason: String)
    /// Writing a cgroup knob failed.
    case knobWriteFailed(path: String, value: String, reason: String)
    /// Reading a cgroup knob failed.
    case knobReadFailed(path: String, reason: String)
    /// A knob held something other than the expected format.
    case malformedKnob(path: String, content: String, expected: String)
    /// A knob read back a different value than the one written.
    case verifyFailed(path: String, expected: String, got: String)
    /// The group could not be removed.
    case groupRemoveFailed(path: String, reason: String)
    /// The child could not be moved into the group before it started.
    case joinFailed(pid: Int32, path: String, reason: String)
    /// The command to run was empty.
    case emptyCommand
    /// The command was not found on PATH.
    case commandNotFound(command: String)
    /// posix_spawn failed.
    case spawnFailed(command: String, reason: String)
    /// A phase name is not a single non-empty word.
    case invalidPhaseName(name: String)
    /// The phase file could not be written or read.
    case phaseFileFailed(path: String, reason: String)
    /// The supervising process received SIGINT/SIGTERM; the child was killed and the group removed.
    case interrupted(signal: Int32)

    static let fix =
        "Fix: run as root (or with CAP_SYS_ADMIN over the cgroup tree); or start inside a delegated cgroup that "
        + "already carries the cap, e.g. `systemd-run --scope -p MemoryMax=64M -p MemorySwapMax=0 -- "
        + "autoglm-run exec --allow-uncapped --memory-cap 64MiB -- COMMAND`; or pass --allow-uncapped to run without a cap."

    public var description: String {
        switch self {
        case let .invalidSize(input, reason):
            return "invalid byte size '\(input)': \(reason) (examples: 64MiB, 7GB, 7.5GiB, 1048576)"
        case let .invalidLimit(field, value, reason):
            return "invalid limit \(field) = \(value): \(reason)"
        case let .invalidCPUList(input, reason):
            return "invalid CPU list '\(input)': \(reason) (examples: 0, 0-1, 0,2-3)"
        case let .noMemoryController(root, detail):
            return "no usable cgroup memory controller under \(root): \(detail). \(Self.fix)"
        case let .permissionDenied(path, operation, reason):
            return "cannot \(operation) \(path): \(reason). \(Self.fix)"
        case let .groupCreateFailed(path, reason):
            return "cannot create cgroup \(path): \(reason)"
        case let .knobWriteFailed(path, value, reason):
            return "cannot write '\(value)' to \(path): \(reason)"
        case let .knobReadFailed(path, reason):
            return "cannot read \(path): \(reason)"
        case let .malformedKnob(path, content, expected):
            let shown = content.count > 80 ? String(content.prefix(80)) + "…" : content
            return "malformed \(path): expected \(expected), got '\(shown.replacingOccurrences(of: "\n", with: "\\n"))'"
        case let .verifyFailed(path, expected, got):
            return "cgroup knob \(path) reads back '\(got)' after writing '\(expected)'"
        case let .groupRemoveFailed(path, reason):
            return "cannot remove cgroup \(path): \(reason)"
        case let .joinFailed(pid, path, reason):
            return "cannot move process \(pid) into \(path): \(reason)"
        case .emptyCommand:
            return "no command given to run (put it after --)"
        case let .commandNotFound(command):
            return "command '\(command)' not found on PATH"
        case let .spawnFailed(command, reason):
            return "cannot start '\(command)': \(reason)"
        case let .invalidPhaseName(name):
            return "invalid phase name '\(name)': use one non-empty word without whitespace"
        case let .phaseFileFailed(path, reason):
            return "phase file \(path): \(reason)"
        case let .interrupted(signal):
            return "interrupted by signal \(signal); the child was killed and its cgroup removed"
        }
    }
}

/// `strerror` for the current or a given errno, with the symbolic name for the common cgroup ones.
func errnoText(_ code: Int32 = errno) -> String {
    let names: [Int32: String] = [
        EACCES: "EACCES", EPERM: "EPERM", EBUSY: "EBUSY", ENOENT: "ENOENT", EINVAL: "EINVAL",
        EEXIST: "EEXIST", ENOSPC: "ENOSPC", EROFS: "EROFS", ENOTEMPTY: "ENOTEMPTY", ESRCH: "ESRCH",
    ]
    let text = String(cString: strerror(code))
    if let name = names[code] { return "\(text) (\(name))" }
    return "\(text) (errno \(code))"
}
