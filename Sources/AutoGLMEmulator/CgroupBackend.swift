import Foundation

/// Which cgroup interface a backend drives.
public enum CgroupVersion: String, Codable, Sendable {
    case v1
    case v2
}

/// One created group: one directory per controller on v1, a single directory on v2.
public struct CgroupGroup: Equatable, Sendable {
    /// The group's name (last path component), e.g. `autoglm-1234-9f3a0c`.
    public let name: String
    /// The directory whose knobs carry memory accounting (and the one reported as the group's path).
    public let memoryDirectory: String
    /// Every directory of the group, memory first. All are removed on cleanup; a task is added to each.
    public let directories: [String]
    /// Path of the group inside its hierarchy, as `/proc/<pid>/cgroup` shows it for the memory controller.
    public let hierarchyPath: String

    public init(name: String, memoryDirectory: String, directories: [String], hierarchyPath: String) {
        self.name = name
        self.memoryDirectory = memoryDirectory
        self.directories = directories
        self.hierarchyPath = hierarchyPath
    }
}

/// The limits as the kernel reports them after they were written.
public struct AppliedLimits: Codable, Equatable, Sendable {
    /// Hard cap read back (page-rounded by the kernel).
    public var memoryMaxBytes: UInt64
    /// Soft cap read back; nil when none was asked for or the interface has none (v1).
    public var memoryHighBytes: UInt64?
    /// Swap beyond the cap read back: 0 when swap is capped; nil when this kernel cannot cap it (v1 without memsw).
    public var swapMaxBytes: UInt64?
    /// CPU quota and period read back; nil quota for none.
    public var cpuQuotaMicros: UInt64?
    public var cpuPeriodMicros: UInt64?
    /// CPU list read back, canonical form; nil when not restricted.
    public var cpus: String?
    /// Things the interface could not do exactly as asked.
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case memoryMaxBytes = "memory_max_bytes"
        case memoryHighBytes = "memory_high_bytes"
        case swapMaxBytes = "swap_max_bytes"
        case cpuQuotaMicros = "cpu_quota_us"
        case cpuPeriodMicros = "cpu_period_us"
        case cpus
        case notes
    }

    public init(
        memoryMaxBytes: UInt64, memoryHighBytes: UInt64? = nil, swapMaxBytes: UInt64? = nil,
        cpuQuotaMicros: UInt64? = nil, cpuPeriodMicros: UInt64? = nil, cpus: String? = nil, notes: [String] = []
    ) {
        self.memoryMaxBytes = memoryMaxBytes
        self.memoryHighBytes = memoryHighBytes
        self.swapMaxBytes = swapMaxBytes
        self.cpuQuotaMicros = cpuQuotaMicros
        self.cpuPeriodMicros = cpuPeriodMicros
        self.cpus = cpus
        self.notes = notes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        memoryMaxBytes = try c.decode(UInt64.self, forKey: .memoryMaxBytes)
        memoryHighBytes = try c.decodeIfPresent(UInt64.self, forKey: .memoryHighBytes)
        swapMaxBytes = try c.decodeIfPresent(UInt64.self, forKey: .swapMaxBytes)
        cpuQuotaMicros = try c.decodeIfPresent(UInt64.self, forKey: .cpuQuotaMicros)
        cpuPeriodMicros = try c.decodeIfPresent(UInt64.self, forKey: .cpuPeriodMicros)
        cpus = try c.decodeIfPresent(String.self, forKey: .cpus)
        notes = try c.decodeIfPresent([String].self, forKey: .notes) ?? []
    }
}

/// One memory reading of a group.
public struct MemoryReading: Equatable, Sendable {
    /// Total charged to the group (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    public var bytes: UInt64
    /// Anonymous memory (v2 `anon`, v1 `total_rss`).
    public var anonBytes: UInt64
    /// Page cache, including mmap'd files (v2 `file`, v1 `total_cache`).
    public var fileBytes: UInt64

    public init(bytes: UInt64, anonBytes: UInt64, fileBytes: UInt64) {
        self.bytes = bytes
        self.anonBytes = anonBytes
        self.fileBytes = fileBytes
    }
}

/// Where a peak figure comes from.
public enum PeakSource: String, Codable, Sendable {
    /// v1 `memory.max_usage_in_bytes`.
    case kernelMaxUsage = "kernel_max_usage_in_bytes"
    /// v2 `memory.peak`.
    case kernelPeak = "kernel_memory_peak"
    /// Largest of the group's sampled readings (kernel has no peak knob).
    case sampled = "sampled"
    /// Largest sampled resident set of the child process alone (uncapped run, no group).
    case sampledProcessRSS = "sampled_process_rss"
}

/// One interface to cgroup v1 and v2: create a capped group, move tasks in, read what the kernel saw, remove it.
public protocol CgroupBackend: Sendable {
    var version: CgroupVersion { get }
    /// Root of the cgroup tree (`/sys/fs/cgroup` or a stand-in).
    var root: String { get }
    /// True when the tree is the kernel's cgroupfs (false for a tree of plain files).
    var isKernel: Bool { get }

    /// Creates the group's directories, writes the limits and reads them back.
    /// Removes whatever it created before throwing.
    func createGroup(named name: String, limits: EmulationLimits) throws(EmulatorError) -> (CgroupGroup, AppliedLimits)
    /// Reads the limits back from the kernel.
    func readLimits(of group: CgroupGroup, requested: EmulationLimits) throws(EmulatorError) -> AppliedLimits
    /// Files a process id is written to for it to join the group (one per controller on v1).
    func procsFiles(of group: CgroupGroup) -> [String]
    func memoryReading(of group: CgroupGroup) throws(EmulatorError) -> MemoryReading
    /// The kernel's own peak for the group, when it keeps one, and which knob it came from.
    func kernelPeak(of group: CgroupGroup) throws(EmulatorError) -> (UInt64, PeakSource)?
    /// How many times the OOM killer killed a task in the group.
    func oomKillCount(of group: CgroupGroup) throws(EmulatorError) -> UInt64
    /// Process ids in the group.
    func processes(in group: CgroupGroup) throws(EmulatorError) -> [Int32]
    /// Kills every process in the group (only on the kernel's cgroupfs) and removes its directories.
    func removeGroup(_ group: CgroupGroup) throws(EmulatorError)
}

extension CgroupBackend {
    /// Sends SIGKILL to everything in the group until it is empty (at most `patience` seconds).
    func killAll(in group: CgroupGroup, patience: Double = 2.0) {
        guard isKernel else { return }
        let deadline = Date().addingTimeInterval(patience)
        while Date() < deadline {
            guard let pids = try? processes(in: group), !pids.isEmpty else { return }
            for pid in pids where pid > 0 { kill(pid, SIGKILL) }
            usleep(5_000)
        }
    }

    func readPIDs(_ path: String, io: KnobIO) throws(EmulatorError) -> [Int32] {
        let text = try io.read(path)
        var pids: [Int32] = []
        for line in text.split(whereSeparator: \.isNewline) {
            guard let pid = Int32(line.trimmingCharacters(in: .whitespaces)) else {
                throw .malformedKnob(path: path, content: String(line), expected: "one process id per line")
            }
            pids.append(pid)
        }
        return pids
    }
}

/// Page size used to predict the kernel's rounding of memory limits.
let pageSize = UInt64(max(4096, sysconf(Int32(_SC_PAGESIZE))))

func pageRounded(_ bytes: UInt64) -> UInt64 { bytes / pageSize * pageSize }
