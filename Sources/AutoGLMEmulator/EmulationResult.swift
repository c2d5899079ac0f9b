import Foundation

/// One point of the memory timeline.
public struct TimelineSample: Codable, Equatable, Sendable {
    /// Seconds since the child was started.
    public var t: Double
    /// Total bytes charged to the group (or the child's resident set when uncapped).
    public var bytes: UInt64
    /// Anonymous part (heap, stacks, anonymous mmap).
    public var anonBytes: UInt64
    /// File-backed part (page cache, mmap'd files such as model weights).
    public var fileBytes: UInt64

    enum CodingKeys: String, CodingKey {
        case t
        case bytes
        case anonBytes = "anon_bytes"
        case fileBytes = "file_bytes"
    }

    public init(t: Double, bytes: UInt64, anonBytes: UInt64, fileBytes: UInt64) {
        self.t = t
        self.bytes = bytes
        self.anonBytes = anonBytes
        self.fileBytes = fileBytes
    }
}

/// What happened to a child run under emulation, as the kernel saw it.
public struct EmulationResult: Codable, Equatable, Sendable {
    public var command: [String]
    /// True when the child ran inside a capped group; false for an `allowUncapped` run without one.
    public var capped: Bool
    /// Why the run is uncapped (the setup error that `allowUncapped` let through); nil when capped.
    public var uncappedReason: String?
    public var cgroupVersion: CgroupVersion?
    /// The group's memory directory (removed again by the time the result exists).
    public var groupPath: String?
    public var requestedLimits: EmulationLimits
    /// Limits read back from the kernel; nil when uncapped.
    public var appliedLimits: AppliedLimits?
    /// Exit code when the child exited normally.
    public var exitStatus: Int32?
    /// Signal that ended the child, if one did.
    public var signal: Int32?
    /// The child died of SIGKILL and the group's OOM-kill counter went up.
    public var oomKilled: Bool
    /// OOM kills counted in the group during the run (any task in it).
    public var oomKillCount: UInt64
    /// Last phase the child marked before it ended.
    public var phaseAtExit: String?
    /// Phase the OOM kill happened in (``phaseAtExit`` when ``oomKilled``).
    public var oomPhase: String?
    public var phases: [PhaseMark]
    /// Phase-file lines that were not `<seconds> <phase>` (e.g. cut short by a kill).
    public var phaseLinesSkipped: Int
    public var peakBytes: UInt64
    public var peakSource: PeakSource
    /// Anonymous and file bytes in the sample with the highest total (nil when nothing was sampled).
    public var anonAtPeakBytes: UInt64?
    public var fileAtPeakBytes: UInt64?
    public var sampleIntervalSeconds: Double
    public var timeline: [TimelineSample]
    /// Seconds from spawn until the child was reaped (includes ``joinSeconds``).
    public var wallSeconds: Double
    /// Seconds from spawn until the child was in the group and allowed to exec the command (0 when uncapped).
    /// Moving a task between v1 groups waits for an RCU grace period, so this is often 10–30 ms there.
    public var joinSeconds: Double

    enum CodingKeys: String, CodingKey {
        case command
        case capped
        case uncappedReason = "uncapped_reason"
        case cgroupVersion = "cgroup_version"
        case groupPath = "group_path"
        case requestedLimits = "requested_limits"
        case appliedLimits = "limits_applied"
        case exitStatus = "exit_status"
        case signal
        case oomKilled = "oom_killed"
        case oomKillCount = "oom_kill_count"
        case phaseAtExit = "phase_at_exit"
        case oomPhase = "oom_phase"
        case phases
        case phaseLinesSkipped = "phase_lines_skipped"
        case peakBytes = "peak_bytes"
        case peakSource = "peak_source"
        case anonAtPeakBytes = "anon_at_peak_bytes"
        case fileAtPeakBytes = "file_at_peak_bytes"
        case sampleIntervalSeconds = "sample_interval_s"
        case timeline
        case wallSeconds = "wall_seconds"
        case joinSeconds = "join_seconds"
    }

    /// Exit code a wrapper should return: the child's own code, ``oomExitCode`` after an OOM kill, 128 + signal after
    /// another fatal signal.
    public var wrapperExitCode: Int32 {
        if oomKilled { return Self.oomExitCode }
        if let exitStatus { return exitStatus }
        if let signal { return 128 + signal }
        return 1
    }

    /// Exit code reported for a child the OOM killer ended.
    public static let oomExitCode: Int32 = 3
}
