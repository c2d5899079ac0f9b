import Foundation
import Testing

@testable import AutoGLMEmulator

/// A cgroup tree made of plain files in a temporary folder.
final class FakeTree {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "autoglm-fake-cgroup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ text: String) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: root + "/" + relative) }

    /// A pure v2 tree whose root offers the usual controllers; `self` says this process is in the root group.
    static func v2() throws -> FakeTree {
        let tree = try FakeTree()
        try tree.write("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        try tree.write("cgroup.subtree_control", "io\n")
        try tree.write("cgroup.procs", "1\n")
        try tree.write("self-cgroup", "0::/\n")
        return tree
    }
}

@Suite struct FakeV2TreeTests {
    @Test func detectionPicksV2() throws {
        let tree = try FakeTree.v2()
        let backend = try CgroupDetector(root: tree.root, selfCgroupFile: tree.root + "/self-cgroup").detect()
        #expect(backend.version == .v2)
        #expect(backend.root == tree.root)
        #expect(!backend.isKernel)
    }

    @Test func detectionPicksHybridUnifiedWhenItHasMemory() throws {
        let tree = try FakeTree()
        try tree.write("unified/cgroup.controllers", "memory cpu\n")
        try tree.write("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try tree.write("self-cgroup", "0::/\n")
        let backend = try CgroupDetector(root: tree.root, selfCgroupFile: tree.root + "/self-cgroup").detect()
        #expect(backend.version == .v2)
        #expect(backend.root == tree.root + "/unified")
    }

    @Test func detectionFallsBackToV1WhenUnifiedIsEmpty() throws {
        let tree = try FakeTree()
        try tree.write("unified/cgroup.controllers", "")
        try tree.write("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try tree.write("self-cgroup", "4:memory:/outer\n1:cpu,cpuacct:/\n0::/\n")
        try tree.write("memory/outer/memory.limit_in_bytes", "9223372036854771712\n")
        let backend = try CgroupDetector(root: tree.root, selfCgroupFile: tree.root + "/self-cgroup").detect()
        #expect(backend.version == .v1)
        let v1 = try #require(backend as? CgroupV1)
        #expect(v1.parents["memory"] == "/outer")
        #expect(v1.parents["cpu"] == "/")
    }

    @Test func noControllerGivesTheFix() throws {
        let tree = try FakeTree()
        try tree.write("unified/cgroup.controllers", "cpu\n")
        do {
            _ = try CgroupDetector(root: tree.root, selfCgroupFile: tree.root + "/none").detect()
            Issue.record("detection should have failed")
        } catch {
            guard case .noMemoryController = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("systemd-run --scope -p MemoryMax="))
            #expect(error.description.contains("MemorySwapMax=0"))
            #expect(error.description.contains("--allow-uncapped"))
        }
    }

    @Test func sessionWritesKnobsAndCleansUp() throws {
        let tree = try FakeTree.v2()
        let backend = CgroupV2(mount: tree.root, parent: "/")
        let limits = try EmulationLimits(
            memoryMaxBytes: 64 << 20, memoryHighBytes: 48 << 20, cpuQuotaCores: 1.5, cpus: "0,1")
        let session = try CgroupSession(backend: backend, limits: limits)
        let name = session.group.name
        #expect(name.hasPrefix("autoglm-\(getpid())-"))
        #expect(try tree.read("\(name)/memory.max") == "67108864")
        #expect(try tree.read("\(name)/memory.swap.max") == "0")
        #expect(try tree.read("\(name)/memory.high") == "50331648")
        #expect(try tree.read("\(name)/cpu.max") == "150000 100000")
        #expect(try tree.read("\(name)/cpuset.cpus") == "0-1")
        let enabled = Set(try tree.read("cgroup.subtree_control").split(whereSeparator: \.isWhitespace))
        #expect(enabled.isSuperset(of: ["io", "memory", "cpu", "cpuset"]))
        #expect(session.applied == AppliedLimits(
            memoryMaxBytes: 64 << 20, memoryHighBytes: 48 << 20, swapMaxBytes: 0, cpuQuotaMicros: 150_000,
            cpuPeriodMicros: 100_000, cpus: "0-1"))
        #expect(session.group.hierarchyPath == "/\(name)")
        try session.remove()
        #expect(!tree.exists(name))
        try session.remove()  // idempotent
    }

    @Test func withSessionRemovesTheGroupWhenTheBodyThrows() throws {
        struct Boom: Error {}
        let tree = try FakeTree.v2()
        let backend = CgroupV2(mount: tree.root)
        var name = ""
        #expect(throws: Boom.self) {
            try CgroupSession.withSession(backend: backend, limits: try EmulationLimits(memoryMaxBytes: 64 << 20)) {
                name = $0.group.name
                #expect(tree.exists(name))
                throw Boom()
            }
        }
        #expect(!name.isEmpty)
        #expect(!tree.exists(name))
    }

    @Test func missingControllerInParentIsReported() throws {
        let tree = try FakeTree()
        try tree.write("cgroup.controllers", "memory io\n")
        try tree.write("cgroup.subtree_control", "")
        let backend = CgroupV2(mount: tree.root)
        #expect(throws: EmulatorError.self) {
            try CgroupSession(backend: backend, limits: try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 1))
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tree.root).filter { $0.hasPrefix("autoglm-") }
        #expect(leftovers.isEmpty)
    }

    func makeGroup(_ tree: FakeTree, _ files: [String: String]) throws -> CgroupGroup {
        for (name, text) in files { try tree.write("g/\(name)", text) }
        return CgroupGroup(name: "g", memoryDirectory: tree.root + "/g", directories: [tree.root + "/g"], hierarchyPath: "/g")
    }

    @Test func readsMemoryEventsAndPeak() throws {
        let tree = try FakeTree.v2()
        let group = try makeGroup(tree, [
            "memory.current": "1048576\n", "memory.stat": "anon 524288\nfile 262144\nkernel 4096\n",
            "memory.peak": "2097152\n", "memory.events": "low 0\nhigh 3\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n",
            "cgroup.procs": "12\n34\n",
        ])
        let backend = CgroupV2(mount: tree.root)
        #expect(try backend.memoryReading(of: group) == MemoryReading(bytes: 1_048_576, anonBytes: 524_288, fileBytes: 262_144))
        let peak = try #require(try backend.kernelPeak(of: group))
        #expect(peak.0 == 2_097_152 && peak.1 == .kernelPeak)
        #expect(try backend.oomKillCount(of: group) == 1)
        #expect(try backend.processes(in: group) == [12, 34])
    }

    @Test(arguments: [
        ("memory.current", "lots\n", "memory.current"),
        ("memory.events", "oom 1\noom_kill one\n", "memory.events"),
        ("memory.events", "oom 1\n", "memory.events"),
        ("memory.stat", "anon\n", "memory.stat"),
        ("cgroup.procs", "12\nabc\n", "cgroup.procs"),
    ])
    func malformedKnobsGiveClearErrors(file: String, content: String, named: String) throws {
        let tree = try FakeTree.v2()
        var files = [
            "memory.current": "1\n", "memory.stat": "anon 1\nfile 1\n", "memory.events": "oom_kill 0\n",
            "cgroup.procs": "",
        ]
        files[file] = content
        let group = try makeGroup(tree, files)
        let backend = CgroupV2(mount: tree.root)
        do {
            _ = try backend.memoryReading(of: group)
            _ = try backend.oomKillCount(of: group)
            _ = try backend.processes(in: group)
            Issue.record("expected a malformed-knob error for \(file)")
        } catch {
            guard case .malformedKnob(let path, _, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path.hasSuffix(named))
            #expect(error.description.hasPrefix("malformed \(tree.root)/g/\(named): expected"))
        }
    }

    @Test func malformedCPUMaxReadBack() throws {
        let tree = try FakeTree.v2()
        let group = try makeGroup(tree, ["memory.max": "67108864\n", "memory.swap.max": "0\n", "cpu.max": "150000\n"])
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 1.5)
        #expect(throws: EmulatorError.malformedKnob(
            path: tree.root + "/g/cpu.max", content: "150000", expected: "'<quota|max> <period>'")
        ) { try CgroupV2(mount: tree.root).readLimits(of: group, requested: limits) }
    }

    @Test func unlimitedMemoryMaxFailsVerification() throws {
        let tree = try FakeTree.v2()
        let group = try makeGroup(tree, ["memory.max": "max\n", "memory.swap.max": "0\n"])
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20)
        #expect(throws: EmulatorError.verifyFailed(path: tree.root + "/g/memory.max", expected: "67108864", got: "max")) {
            try CgroupV2(mount: tree.root).readLimits(of: group, requested: limits)
        }
    }

    @Test func v1KnobsParse() throws {
        let tree = try FakeTree()
        try tree.write("memory/g/memory.usage_in_bytes", "8192\n")
        try tree.write("memory/g/memory.stat", "cache 4096\nrss 8192\ntotal_cache 4096\ntotal_rss 12288\n")
        try tree.write("memory/g/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
        try tree.write("memory/g/memory.max_usage_in_bytes", "65536\n")
        let backend = CgroupV1(root: tree.root)
        let group = CgroupGroup(
            name: "g", memoryDirectory: tree.root + "/memory/g", directories: [tree.root + "/memory/g"], hierarchyPath: "/g")
        #expect(try backend.memoryReading(of: group) == MemoryReading(bytes: 8192, anonBytes: 12288, fileBytes: 4096))
        #expect(try backend.oomKillCount(of: group) == 3)
        #expect(try backend.kernelPeak(of: group)?.0 == 65536)
        try tree.write("memory/g/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
        #expect(throws: EmulatorError.self) { try backend.oomKillCount(of: group) }
    }

    @Test func v1FakeSessionWritesLimitsAndCpuset() throws {
        let tree = try FakeTree()
        try tree.write("memory/memory.limit_in_bytes", "9223372036854771712\n")
        try tree.write("cpuset/cpuset.mems", "0\n")
        try FileManager.default.createDirectory(atPath: tree.root + "/cpu", withIntermediateDirectories: true)
        let backend = CgroupV1(root: tree.root)
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 0.5, cpus: "0")
        let session = try CgroupSession(backend: backend, limits: limits)
        let name = session.group.name
        #expect(try tree.read("memory/\(name)/memory.limit_in_bytes") == "67108864")
        #expect(try tree.read("cpu/\(name)/cpu.cfs_quota_us") == "50000")
        #expect(try tree.read("cpu/\(name)/cpu.cfs_period_us") == "100000")
        #expect(try tree.read("cpuset/\(name)/cpuset.cpus") == "0")
        #expect(try tree.read("cpuset/\(name)/cpuset.mems") == "0")
        // No memsw file in this tree: swap falls back to swappiness 0 and the result says so.
        #expect(try tree.read("memory/\(name)/memory.swappiness") == "0")
        #expect(session.applied.swapMaxBytes == nil)
        #expect(session.applied.notes.contains { $0.contains("swap") })
        try session.remove()
        for controller in ["memory", "cpu", "cpuset"] { #expect(!tree.exists("\(controller)/\(name)")) }
    }

    @Test func samplingErrorMidRunKillsChildAndRemovesGroup() throws {
        // The fake group has no memory.current, so the first sample fails: the supervisor must kill the child,
        // remove the group and report the read error.
        let tree = try FakeTree.v2()
        let pidFile = tree.root + "/child.pid"
        let supervisor = Supervisor(
            options: SupervisorOptions(signalHandling: .none), backend: CgroupV2(mount: tree.root))
        let start = Date()
        do {
            _ = try supervisor.run(["/bin/sh", "-c", "echo $$ > \(pidFile); sleep 20"], limits: try EmulationLimits(memoryMaxBytes: 64 << 20))
            Issue.record("expected a knob read error")
        } catch {
            guard case .knobReadFailed(let path, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(path.hasSuffix("memory.current"))
        }
        #expect(Date().timeIntervalSince(start) < 15)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tree.root).filter { $0.hasPrefix("autoglm-") }
        #expect(leftovers.isEmpty)
    }
}
