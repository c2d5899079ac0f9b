import Foundation
import Testing

@testable import AutoGLMEmulator

/// Whether this machine lets the tests create real groups (root with a writable memory controller).
let realCgroups: Bool = (try? CgroupDetector().detect()) != nil

/// Tests against the running kernel's cgroups. They create groups under this process's own group (wherever the test
/// runner sits), run one at a time, and leave nothing behind.
@Suite(.serialized, .enabled(if: realCgroups, "needs root and a writable cgroup memory controller"))
final class RealCgroupTests {
    let backend: any CgroupBackend
    let scratch: String

    init() throws {
        backend = try CgroupDetector().detect()
        scratch = NSTemporaryDirectory() + "autoglm-real-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: scratch) }

    var supervisor: Supervisor { Supervisor(options: SupervisorOptions(signalHandling: .none), backend: backend) }

    func knob(_ directory: String, _ name: String) throws -> String {
        try String(contentsOfFile: directory + "/" + name, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func gone(_ group: CgroupGroup) -> Bool {
        group.directories.allSatisfy { !FileManager.default.fileExists(atPath: $0) }
    }

    @Test func capIsAppliedAndReadBack() throws {
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 0.5, cpus: "0")
        let session = try CgroupSession(backend: backend, limits: limits)
        defer { try? session.remove() }
        let dir = session.group.memoryDirectory
        switch backend.version {
        case .v1:
            #expect(try knob(dir, "memory.limit_in_bytes") == "67108864")
            if FileManager.default.fileExists(atPath: dir + "/memory.memsw.limit_in_bytes") {
                #expect(try knob(dir, "memory.memsw.limit_in_bytes") == "67108864")
            }
            let cpuDir = try #require(session.group.directories.first { $0.contains("/cpu/") })
            #expect(try knob(cpuDir, "cpu.cfs_quota_us") == "50000")
            #expect(try knob(cpuDir, "cpu.cfs_period_us") == "100000")
            let cpusetDir = try #require(session.group.directories.first { $0.contains("/cpuset/") })
            #expect(try knob(cpusetDir, "cpuset.cpus") == "0")
            #expect(try !knob(cpusetDir, "cpuset.mems").isEmpty)
        case .v2:
            #expect(try knob(dir, "memory.max") == "67108864")
            #expect(try knob(dir, "memory.swap.max") == "0")
            #expect(try knob(dir, "cpu.max") == "50000 100000")
            #expect(try knob(dir, "cpuset.cpus") == "0")
        }
        #expect(session.applied.memoryMaxBytes == 64 << 20)
        #expect(session.applied.cpuQuotaMicros == 50_000)
        try session.remove()
        #expect(gone(session.group))
    }

    @Test func childRunsInsideTheGroupAndTheGroupIsRemoved() throws {
        let out = scratch + "/cgroup.txt"
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 1)
        let result = try supervisor.run(["/bin/sh", "-c", "cat /proc/self/cgroup > \(out)"], limits: limits)
        #expect(result.exitStatus == 0)
        #expect(result.signal == nil)
        #expect(result.capped)
        #expect(result.cgroupVersion == backend.version)
        let groupPath = try #require(result.groupPath)
        let name = (groupPath as NSString).lastPathComponent
        #expect(name.hasPrefix("autoglm-"))
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        let memoryLine = try #require(lines.first {
            let fields = $0.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return fields.count == 3 && (backend.version == .v2 ? fields[1].isEmpty : fields[1].split(separator: ",").contains("memory"))
        })
        #expect(memoryLine.hasSuffix("/" + name))
        if backend.version == .v1 {
            #expect(lines.contains { $0.contains(":cpu") && $0.hasSuffix("/" + name) })
        }
        #expect(!FileManager.default.fileExists(atPath: groupPath))
    }

    @Test func allocatingPastTheCapIsOOMKilledInItsPhase() throws {
        let python = try #require(
            ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first { (path: String) in access(path, X_OK) == 0 },
            "python3 is needed for the allocation child")
        // Marks phases like PhaseReporter does, then writes every byte of 200 MiB (b'x' * n fills the buffer).
        let script = """
            import os, time
            epoch = float(os.environ['AUTOGLM_PHASE_EPOCH'])
            def mark(p):
                with open(os.environ['AUTOGLM_PHASE_FILE'], 'a') as f:
                    f.write('%.6f %s\\n' % (time.time() - epoch, p))
            mark('load')
            small = b'x' * (8 << 20)
            mark('decode')
            big = b'y' * (200 << 20)
            mark('done')
            """
        let cap: UInt64 = 64 << 20
        let result = try supervisor.run([python, "-c", script], limits: try EmulationLimits(memoryMaxBytes: cap))
        #expect(result.oomKilled)
        #expect(result.signal == SIGKILL)
        #expect(result.exitStatus == nil)
        #expect(result.oomKillCount >= 1)
        #expect(result.phases.map { $0.phase } == ["load", "decode"])
        #expect(result.phaseAtExit == "decode")
        #expect(result.oomPhase == "decode")
        #expect(result.peakSource == (backend.version == .v1 ? PeakSource.kernelMaxUsage : PeakSource.kernelPeak))
        #expect(result.peakBytes <= cap)
        #expect(result.peakBytes >= cap * 9 / 10, "peak \(result.peakBytes) should be near the cap \(cap)")
        #expect(!result.timeline.isEmpty)
        #expect(result.timeline.allSatisfy { $0.bytes <= cap })
        let anon = try #require(result.anonAtPeakBytes)
        #expect(anon > 8 << 20)
        #expect(result.wrapperExitCode == 3)
        #expect(!FileManager.default.fileExists(atPath: try #require(result.groupPath)))
    }

    @Test func normalExitCodeAndCrashAreResults() throws {
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20)
        let exited = try supervisor.run(["/bin/sh", "-c", "exit 7"], limits: limits)
        #expect(exited.exitStatus == 7)
        #expect(!exited.oomKilled)
        #expect(exited.wrapperExitCode == 7)
        let crashed = try supervisor.run(["/bin/sh", "-c", "kill -SEGV $$"], limits: limits)
        #expect(crashed.signal == SIGSEGV)
        #expect(!crashed.oomKilled)
        #expect(crashed.oomPhase == nil)
        #expect(!FileManager.default.fileExists(atPath: try #require(crashed.groupPath)))
    }

    @Test func leftoverGrandchildrenAreKilledAndTheGroupRemoved() throws {
        let pidFile = scratch + "/grandchild.pid"
        let result = try supervisor.run(
            ["/bin/sh", "-c", "sleep 30 & echo $! > \(pidFile)"], limits: try EmulationLimits(memoryMaxBytes: 64 << 20))
        #expect(result.exitStatus == 0)
        let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(processEnded(pid))
        #expect(!FileManager.default.fileExists(atPath: try #require(result.groupPath)))
    }

    @Test func thrownErrorInsideSessionRemovesTheGroup() throws {
        struct Boom: Error {}
        var group: CgroupGroup?
        #expect(throws: Boom.self) {
            try CgroupSession.withSession(backend: backend, limits: try EmulationLimits(memoryMaxBytes: 64 << 20)) {
                group = $0.group
                throw Boom()
            }
        }
        #expect(gone(try #require(group)))
    }

    @Test func uncappedRunOnlyWhenAllowed() throws {
        let empty = scratch + "/no-cgroups"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20)
        let strict = Supervisor(options: SupervisorOptions(signalHandling: .none), detector: CgroupDetector(root: empty))
        #expect(throws: EmulatorError.self) { try strict.run(["/bin/true"], limits: limits) }
        let lenient = Supervisor(
            options: SupervisorOptions(allowUncapped: true, signalHandling: .none), detector: CgroupDetector(root: empty))
        let result = try lenient.run(["/bin/sh", "-c", "sleep 0.2"], limits: limits)
        #expect(!result.capped)
        #expect(result.cgroupVersion == nil && result.groupPath == nil && result.appliedLimits == nil)
        #expect(result.uncappedReason?.contains("no usable cgroup memory controller") == true)
        #expect(result.exitStatus == 0)
        #expect(result.peakSource == .sampledProcessRSS)
        #expect(result.peakBytes > 0)
    }

    @Test func missingCommandIsAnError() throws {
        #expect(throws: EmulatorError.commandNotFound(command: "autoglm-no-such-command")) {
            try supervisor.run(["autoglm-no-such-command"], limits: try EmulationLimits(memoryMaxBytes: 64 << 20))
        }
        #expect(throws: EmulatorError.emptyCommand) {
            try supervisor.run([], limits: try EmulationLimits(memoryMaxBytes: 64 << 20))
        }
    }
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its new parent), waiting up to 3 s.
func processEnded(_ pid: Int32) -> Bool {
    let deadline = Date().addingTimeInterval(3)
    while Date() < deadline {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
        usleep(20_000)
    }
    return false
}
