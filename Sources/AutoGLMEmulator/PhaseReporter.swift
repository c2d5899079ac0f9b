import Foundation

/// A phase marker written by the child: `<seconds> <phase>` per line.
public struct PhaseMark: Codable, Equatable, Sendable {
    /// Seconds since the supervisor started the child (or since the reporter was created, outside a supervisor).
    public var t: Double
    public var phase: String

    public init(t: Double, phase: String) {
        self.t = t
        self.phase = phase
    }
}

/// Child side of phase reporting: appends `<seconds> <phase>` lines to the file named by `AUTOGLM_PHASE_FILE`.
///
/// Seconds count from `AUTOGLM_PHASE_EPOCH` (Unix time, set by the supervisor at spawn) so marks line up with the
/// supervisor's memory timeline; without it, from the reporter's creation. Outside a supervisor (no
/// `AUTOGLM_PHASE_FILE`) ``mark(_:)`` only validates the name. Each line is one `write` to an `O_APPEND` file,
/// so a mark is on disk before the phase's allocations start and survives the process being killed.
public struct PhaseReporter: Sendable {
    public static let fileVariable = "AUTOGLM_PHASE_FILE"
    public static let epochVariable = "AUTOGLM_PHASE_EPOCH"

    public let path: String?
    let epoch: Double

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment[Self.fileVariable].flatMap { $0.isEmpty ? nil : $0 }
        epoch = environment[Self.epochVariable].flatMap(Double.init) ?? Date().timeIntervalSince1970
    }

    public init(path: String, epoch: Double = Date().timeIntervalSince1970) {
        self.path = path
        self.epoch = epoch
    }

    /// Records that `phase` (one word: `load`, `vision-encode`, `prefill`, `decode`, …) starts now.
    public func mark(_ phase: String) throws(EmulatorError) {
        guard !phase.isEmpty, !phase.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw .invalidPhaseName(name: phase)
        }
        guard let path else { return }
        let seconds = max(0, Date().timeIntervalSince1970 - epoch)
        let line = Array(String(format: "%.6f %@\n", seconds, phase).utf8)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .phaseFileFailed(path: path, reason: errnoText()) }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else { throw .phaseFileFailed(path: path, reason: errnoText()) }
    }

    /// Parses a phase file. Lines that are not `<seconds> <phase>` (e.g. cut short by a kill) are skipped and counted.
    public static func parse(_ text: String) -> (marks: [PhaseMark], skipped: Int) {
        var marks: [PhaseMark] = []
        var skipped = 0
        let endsComplete = text.hasSuffix("\n")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() where !line.isEmpty {
            let fields = line.split(separator: " ")
            let isLast = index == lines.count - 1
            guard fields.count == 2, let t = Double(fields[0]), t.isFinite, t >= 0, !(isLast && !endsComplete) else {
                skipped += 1
                continue
            }
            marks.append(PhaseMark(t: t, phase: String(fields[1])))
        }
        return (marks, skipped)
    }
}
