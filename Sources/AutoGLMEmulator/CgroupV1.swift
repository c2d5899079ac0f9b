import Foundation

/// cgroup v1: one hierarchy per controller, mounted at `<root>/memory`, `<root>/cpu`, `<root>/cpuset`.
///
/// The group gets a `memory` directory always, a `cpu` directory when a CPU quota is asked for and a `cpuset` directory
/// when a CPU list is. Each lives under `parents[controller]` (default: this process's own group in that hierarchy,
/// so enclosing limits still hold). Swap is capped by setting `memory.memsw.limit_in_bytes` equal to the memory cap;
/// kernels without swap accounting get `memory.swappiness = 0` and a note instead.
public struct CgroupV1: CgroupBackend {
    public let root: String
    public let isKernel: Bool
    /// Hierarchy path of the parent group per controller (`memory`, `cpu`, `cpuset`); missing ones default to `/`.
    public let parents: [String: String]
    public var version: CgroupVersion { .v1 }
    var io: KnobIO { KnobIO(kernel: isKernel) }

    public init(root: String = "/sys/fs/cgroup", parents: [String: String] = [:], isKernel: Bool? = nil) {
        self.root = root
        self.parents = parents
        self.isKernel = isKernel ?? KnobIO.isCgroupFS(joinPath(root, "memory"))
    }

    func directory(_ controller: String, _ name: String) -> String {
        joinPath(root, controller, parents[controller] ?? "/", name)
    }

    public func createGroup(named name: String, limits: EmulationLimits) throws(EmulatorError) -> (CgroupGroup, AppliedLimits) {
        var controllers = ["memory"]
        if limits.cpuQuotaCores != nil { controllers.append("cpu") }
        if limits.cpus != nil { controllers.append("cpuset") }
        var created: [String] = []
        let memoryDirectory = directory("memory", name)
        let group = CgroupGroup(
            name: name, memoryDirectory: memoryDirectory,
            directories: controllers.map { directory($0, name) },
            hierarchyPath: joinPath(parents["memory"] ?? "/", name))
        do throws(EmulatorError) {
            for dir in group.directories {
                try io.makeDirectory(dir)
                created.append(dir)
            }
            let io = self.io
            var notes: [String] = []
            try io.write(joinPath(memoryDirectory, "memory.limit_in_bytes"), "\(limits.memoryMaxBytes)")
            let memsw = joinPath(memoryDirectory, "memory.memsw.limit_in_bytes")
            if io.exists(memsw) {
                try io.write(memsw, "\(limits.memoryMaxBytes)")
            } else {
                try io.write(joinPath(memoryDirectory, "memory.swappiness"), "0")
                notes.append("no swap accounting (memory.memsw.*): swap is discouraged with memory.swappiness=0, not capped")
            }
            if limits.memoryHighBytes != nil {
                notes.append("v1 has no soft cap equivalent to memory.high; the soft cap was not applied")
            }
            if let quota = limits.cpuQuotaMicros {
                let dir = directory("cpu", name)
                try io.write(joinPath(dir, "cpu.cfs_period_us"), "\(limits.cpuPeriodMicros)")
                try io.write(joinPath(dir, "cpu.cfs_quota_us"), "\(quota)")
            }
            if let cpus = limits.cpus {
                let dir = directory("cpuset", name)
                try io.write(joinPath(dir, "cpuset.cpus"), CPUList.format(try CPUList.parse(cpus)))
                // A new cpuset starts with no memory nodes and refuses tasks until it has some: inherit the parent's.
                let parentMems = try io.read(joinPath(root, "cpuset", parents["cpuset"] ?? "/", "cpuset.mems"))
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard !parentMems.isEmpty else {
                    throw EmulatorError.malformedKnob(
                        path: joinPath(root, "cpuset", parents["cpuset"] ?? "/", "cpuset.mems"), content: "",
                        expected: "the parent's memory nodes")
                }
                try io.write(joinPath(dir, "cpuset.mems"), parentMems)
            }
            var applied = try readLimits(of: group, requested: limits)
            applied.notes = notes
            try verify(applied, against: limits, group: group)
            return (group, applied)
        } catch {
            for dir in created.reversed() { try? io.removeDirectory(dir) }
            throw error
        }
    }

    func verify(_ applied: AppliedLimits, against limits: EmulationLimits, group: CgroupGroup) throws(EmulatorError) {
        let memory = group.memoryDirectory
        if applied.memoryMaxBytes != pageRounded(limits.memoryMaxBytes) {
            throw .verifyFailed(
                path: joinPath(memory, "memory.limit_in_bytes"), expected: "\(pageRounded(limits.memoryMaxBytes))",
                got: "\(applied.memoryMaxBytes)")
        }
        if let swap = applied.swapMaxBytes, swap != 0 {
            throw .verifyFailed(
                path: joinPath(memory, "memory.memsw.limit_in_bytes"), expected: "\(applied.memoryMaxBytes)",
                got: "\(applied.memoryMaxBytes + swap)")
        }
        if let quota = limits.cpuQuotaMicros, applied.cpuQuotaMicros != quota || applied.cpuPeriodMicros != limits.cpuPeriodMicros {
            throw .verifyFailed(
                path: joinPath(directory("cpu", group.name), "cpu.cfs_quota_us"),
                expected: "\(quota)/\(limits.cpuPeriodMicros)",
                got: "\(applied.cpuQuotaMicros.map(String.init) ?? "-1")/\(applied.cpuPeriodMicros.map(String.init) ?? "?")")
        }
        if let cpus = limits.cpus {
            let wanted = CPUList.format(try CPUList.parse(cpus))
            if applied.cpus != wanted {
                throw .verifyFailed(
                    path: joinPath(directory("cpuset", group.name), "cpuset.cpus"), expected: wanted,
                    got: applied.cpus ?? "")
            }
        }
    }

    public func readLimits(of group: CgroupGroup, requested: EmulationLimits) throws(EmulatorError) -> AppliedLimits {
        let memory = group.memoryDirectory
        guard let limit = try io.readUInt(joinPath(memory, "memory.limit_in_bytes")) else {
            throw .malformedKnob(path: joinPath(memory, "memory.limit_in_bytes"), content: "", expected: "an integer")
        }
        var applied = AppliedLimits(memoryMaxBytes: limit)
        let memsw = joinPath(memory, "memory.memsw.limit_in_bytes")
        if io.exists(memsw), let total = try io.readUInt(memsw) {
            applied.swapMaxBytes = total >= limit ? total - limit : 0
        }
        if requested.cpuQuotaCores != nil {
            let dir = directory("cpu", group.name)
            let quotaText = try io.read(joinPath(dir, "cpu.cfs_quota_us")).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let quota = Int64(quotaText) else {
                throw .malformedKnob(path: joinPath(dir, "cpu.cfs_quota_us"), content: quotaText, expected: "an integer")
            }
            applied.cpuQuotaMicros = quota < 0 ? nil : UInt64(quota)
            applied.cpuPeriodMicros = try io.readUInt(joinPath(dir, "cpu.cfs_period_us"))
        }
        if requested.cpus != nil {
            let path = joinPath(directory("cpuset", group.name), "cpuset.cpus")
            let text = try io.read(path).trimmingCharacters(in: .whitespacesAndNewlines)
            do { applied.cpus = CPUList.format(try CPUList.parse(text)) } catch {
                throw .malformedKnob(path: path, content: text, expected: "a CPU list")
            }
        }
        return applied
    }

    public func procsFiles(of group: CgroupGroup) -> [String] {
        group.directories.map { joinPath($0, "cgroup.procs") }
    }

    public func memoryReading(of group: CgroupGroup) throws(EmulatorError) -> MemoryReading {
        let usagePath = joinPath(group.memoryDirectory, "memory.usage_in_bytes")
        let statPath = joinPath(group.memoryDirectory, "memory.stat")
        let usage = try io.readUInt(usagePath) ?? 0
        let stat = try io.readKeyed(statPath)
        // total_* include descendants; a leaf group has none, but prefer them when the kernel shows them.
        let anon = try io.value(stat["total_rss"] != nil ? "total_rss" : "rss", in: stat, path: statPath)
        let file = try io.value(stat["total_cache"] != nil ? "total_cache" : "cache", in: stat, path: statPath)
        return MemoryReading(bytes: usage, anonBytes: anon, fileBytes: file)
    }

    public func kernelPeak(of group: CgroupGroup) throws(EmulatorError) -> (UInt64, PeakSource)? {
        let path = joinPath(group.memoryDirectory, "memory.max_usage_in_bytes")
        guard io.exists(path), let peak = try io.readUInt(path) else { return nil }
        return (peak, .kernelMaxUsage)
    }

    public func oomKillCount(of group: CgroupGroup) throws(EmulatorError) -> UInt64 {
        let path = joinPath(group.memoryDirectory, "memory.oom_control")
        return try io.value("oom_kill", in: io.readKeyed(path), path: path)
    }

    public func processes(in group: CgroupGroup) throws(EmulatorError) -> [Int32] {
        var all = Set<Int32>()
        for file in procsFiles(of: group) where io.exists(file) {
            all.formUnion(try readPIDs(file, io: io))
        }
        return all.sorted()
    }

    public func removeGroup(_ group: CgroupGroup) throws(EmulatorError) {
        killAll(in: group)
        var firstError: EmulatorError?
        for dir in group.directories {
            do throws(EmulatorError) { try io.removeDirectory(dir) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
