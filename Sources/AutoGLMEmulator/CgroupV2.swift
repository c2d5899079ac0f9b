import Foundation

/// cgroup v2: one unified hierarchy mounted at `mount` (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
///
/// The group is `<mount>/<parent>/<name>`. The parent must hand the `memory` (and `cpu`, `cpuset` when used) controllers
/// down through `cgroup.subtree_control`; this backend enables them there when they are missing. A v2 group other than
/// the root cannot both hold processes and delegate controllers ("no internal processes"), so when the parent is this
/// process's own non-root group, enabling fails with EBUSY: pick an empty parent instead.
public struct CgroupV2: CgroupBackend {
    public let root: String
    public let isKernel: Bool
    /// Hierarchy path of the parent group (default `/`).
    public let parent: String
    public var version: CgroupVersion { .v2 }
    var io: KnobIO { KnobIO(kernel: isKernel) }

    public init(mount: String = "/sys/fs/cgroup", parent: String = "/", isKernel: Bool? = nil) {
        self.root = mount
        self.parent = parent
        self.isKernel = isKernel ?? KnobIO.isCgroupFS(mount)
    }

    var parentDirectory: String { joinPath(root, parent) }

    func controllers(for limits: EmulationLimits) -> [String] {
        var names = ["memory"]
        if limits.cpuQuotaCores != nil { names.append("cpu") }
        if limits.cpus != nil { names.append("cpuset") }
        return names
    }

    /// Turns on the needed controllers in the parent's `cgroup.subtree_control`.
    func enableControllers(_ names: [String]) throws(EmulatorError) {
        let available = Set(
            try io.read(joinPath(parentDirectory, "cgroup.controllers")).split(whereSeparator: \.isWhitespace).map(String.init))
        for name in names where !available.contains(name) {
            throw .noMemoryController(
                root: parentDirectory,
                detail: "controller '\(name)' is not in \(joinPath(parentDirectory, "cgroup.controllers"))")
        }
        let controlPath = joinPath(parentDirectory, "cgroup.subtree_control")
        let enabled = Set(try io.read(controlPath).split(whereSeparator: \.isWhitespace).map(String.init))
        let missing = names.filter { !enabled.contains($0) }
        guard !missing.isEmpty else { return }
        let request = missing.map { "+" + $0 }.joined(separator: " ")
        do throws(EmulatorError) {
            if isKernel {
                try io.write(controlPath, request)
            } else {
                // A plain file has no kernel to merge "+name" requests: store the resulting list.
                try io.write(controlPath, (enabled.sorted() + missing).joined(separator: " ") + "\n")
            }
        } catch let error {
            if case .knobWriteFailed(_, _, let reason) = error, reason.contains("EBUSY") {
                throw .knobWriteFailed(
                    path: controlPath, value: request,
                    reason: reason + "; the parent group holds processes, so it cannot hand controllers to children "
                        + "(choose an empty parent group, e.g. autoglm-run exec --cgroup-parent /some/empty/group)")
            }
            throw error
        }
    }

    public func createGroup(named name: String, limits: EmulationLimits) throws(EmulatorError) -> (CgroupGroup, AppliedLimits) {
        try enableControllers(controllers(for: limits))
        let dir = joinPath(parentDirectory, name)
        let group = CgroupGroup(
            name: name, memoryDirectory: dir, directories: [dir], hierarchyPath: joinPath(parent, name))
        try io.makeDirectory(dir)
        do throws(EmulatorError) {
            try io.write(joinPath(dir, "memory.max"), "\(limits.memoryMaxBytes)")
            try io.write(joinPath(dir, "memory.swap.max"), "0")
            if let high = limits.memoryHighBytes { try io.write(joinPath(dir, "memory.high"), "\(high)") }
            if let quota = limits.cpuQuotaMicros {
                try io.write(joinPath(dir, "cpu.max"), "\(quota) \(limits.cpuPeriodMicros)")
            }
            if let cpus = limits.cpus {
                try io.write(joinPath(dir, "cpuset.cpus"), CPUList.format(try CPUList.parse(cpus)))
            }
            let applied = try readLimits(of: group, requested: limits)
            try verify(applied, against: limits, dir: dir)
            return (group, applied)
        } catch {
            try? io.removeDirectory(dir)
            throw error
        }
    }

    func verify(_ applied: AppliedLimits, against limits: EmulationLimits, dir: String) throws(EmulatorError) {
        if applied.memoryMaxBytes != pageRounded(limits.memoryMaxBytes), applied.memoryMaxBytes != limits.memoryMaxBytes {
            throw .verifyFailed(
                path: joinPath(dir, "memory.max"), expected: "\(limits.memoryMaxBytes)", got: "\(applied.memoryMaxBytes)")
        }
        if applied.swapMaxBytes != 0 {
            throw .verifyFailed(
                path: joinPath(dir, "memory.swap.max"), expected: "0",
                got: applied.swapMaxBytes.map(String.init) ?? "missing")
        }
        if let high = limits.memoryHighBytes, applied.memoryHighBytes != high, applied.memoryHighBytes != pageRounded(high) {
            throw .verifyFailed(
                path: joinPath(dir, "memory.high"), expected: "\(high)", got: applied.memoryHighBytes.map(String.init) ?? "max")
        }
        if let quota = limits.cpuQuotaMicros, applied.cpuQuotaMicros != quota || applied.cpuPeriodMicros != limits.cpuPeriodMicros {
            throw .verifyFailed(
                path: joinPath(dir, "cpu.max"), expected: "\(quota) \(limits.cpuPeriodMicros)",
                got: "\(applied.cpuQuotaMicros.map(String.init) ?? "max") \(applied.cpuPeriodMicros.map(String.init) ?? "?")")
        }
        if let cpus = limits.cpus {
            let wanted = CPUList.format(try CPUList.parse(cpus))
            if applied.cpus != wanted {
                throw .verifyFailed(path: joinPath(dir, "cpuset.cpus"), expected: wanted, got: applied.cpus ?? "")
            }
        }
    }

    public func readLimits(of group: CgroupGroup, requested: EmulationLimits) throws(EmulatorError) -> AppliedLimits {
        let dir = group.memoryDirectory
        let maxPath = joinPath(dir, "memory.max")
        guard let max = try io.readUInt(maxPath, allowMax: true) else {
            throw .verifyFailed(path: maxPath, expected: "\(requested.memoryMaxBytes)", got: "max")
        }
        var applied = AppliedLimits(memoryMaxBytes: max)
        let swapPath = joinPath(dir, "memory.swap.max")
        if io.exists(swapPath) {
            applied.swapMaxBytes = try io.readUInt(swapPath, allowMax: true) ?? UInt64.max
        } else {
            applied.notes.append("no memory.swap.max (kernel without swap accounting): swap is not capped")
            applied.swapMaxBytes = requested.swapMaxBytes
        }
        if requested.memoryHighBytes != nil {
            applied.memoryHighBytes = try io.readUInt(joinPath(dir, "memory.high"), allowMax: true)
        }
        if requested.cpuQuotaCores != nil {
            let path = joinPath(dir, "cpu.max")
            let text = try io.read(path).trimmingCharacters(in: .whitespacesAndNewlines)
            let fields = text.split(separator: " ")
            guard fields.count == 2, fields[0] == "max" || UInt64(fields[0]) != nil, let period = UInt64(fields[1]) else {
                throw .malformedKnob(path: path, content: text, expected: "'<quota|max> <period>'")
            }
            applied.cpuQuotaMicros = UInt64(fields[0])
            applied.cpuPeriodMicros = period
        }
        if requested.cpus != nil {
            let path = joinPath(dir, "cpuset.cpus")
            let text = try io.read(path).trimmingCharacters(in: .whitespacesAndNewlines)
            do { applied.cpus = CPUList.format(try CPUList.parse(text)) } catch {
                throw .malformedKnob(path: path, content: text, expected: "a CPU list")
            }
        }
        return applied
    }

    public func procsFiles(of group: CgroupGroup) -> [String] { [joinPath(group.memoryDirectory, "cgroup.procs")] }

    public func memoryReading(of group: CgroupGroup) throws(EmulatorError) -> MemoryReading {
        let currentPath = joinPath(group.memoryDirectory, "memory.current")
        let statPath = joinPath(group.memoryDirectory, "memory.stat")
        let current = try io.readUInt(currentPath) ?? 0
        let stat = try io.readKeyed(statPath)
        return MemoryReading(
            bytes: current, anonBytes: try io.value("anon", in: stat, path: statPath),
            fileBytes: try io.value("file", in: stat, path: statPath))
    }

    public func kernelPeak(of group: CgroupGroup) throws(EmulatorError) -> (UInt64, PeakSource)? {
        let path = joinPath(group.memoryDirectory, "memory.peak")
        guard io.exists(path), let peak = try io.readUInt(path) else { return nil }
        return (peak, .kernelPeak)
    }

    public func oomKillCount(of group: CgroupGroup) throws(EmulatorError) -> UInt64 {
        let path = joinPath(group.memoryDirectory, "memory.events")
        return try io.value("oom_kill", in: io.readKeyed(path), path: path)
    }

    public func processes(in group: CgroupGroup) throws(EmulatorError) -> [Int32] {
        let file = joinPath(group.memoryDirectory, "cgroup.procs")
        return io.exists(file) ? try readPIDs(file, io: io).sorted() : []
    }

    public func removeGroup(_ group: CgroupGroup) throws(EmulatorError) {
        let killFile = joinPath(group.memoryDirectory, "cgroup.kill")
        if isKernel, io.exists(killFile) { try? io.write(killFile, "1") }
        killAll(in: group)
        try io.removeDirectory(group.memoryDirectory)
    }
}
