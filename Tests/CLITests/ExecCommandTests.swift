import Foundation
import Testing

/// Finds the built `autoglm-run`: `AUTOGLM_RUN_BIN`, else next to the test executable, else `.build/<config>/`.
func autoglmRunBinary() throws -> String {
    var candidates: [String] = []
    if let explicit = ProcessInfo.processInfo.environment["AUTOGLM_RUN_BIN"] { candidates.append(explicit) }
    var testDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if testDirectory.pathExtension == "xctest" || testDirectory.path.hasSuffix("/Contents/MacOS") {
        testDirectory = testDirectory.deletingLastPathComponent()
    }
    candidates.append(testDirectory.appendingPathComponent("autoglm-run").path)
    if let bundle = Bundle.main.executableURL?.deletingLastPathComponent() {
        candidates.append(bundle.appendingPathComponent("autoglm-run").path)
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for config in ["debug", "release"] {
        candidates.append(root.appendingPathComponent(".build/\(config)/autoglm-run").path)
    }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw ExecTestError("autoglm-run not found; looked at \(candidates.joined(separator: ", "))")
    }
    return found
}

struct ExecTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Outcome {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// A started `autoglm-run` whose output goes to temporary files (no pipe to fill up).
final class RunningCLI {
    let process = Process()
    let outPath: String
    let errPath: String

    init(_ arguments: [String]) throws {
        let base = NSTemporaryDirectory() + "autoglm-cli-\(UUID().uuidString)"
        outPath = base + ".out"
        errPath = base + ".err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try autoglmRunBinary())
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
    }

    func finish() -> Outcome {
        process.waitUntilExit()
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        unlink(outPath)
        unlink(errPath)
        return Outcome(status: process.terminationStatus, stdout: out, stderr: err)
    }
}

func runCLI(_ arguments: [String]) throws -> Outcome {
    try RunningCLI(arguments).finish()
}

/// Root with a cgroup memory controller (v1 or v2) to cap children with.
let cgroupsUsable: Bool = getuid() == 0
    && (FileManager.default.isWritableFile(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        || ((try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8))?.contains("memory") ?? false))

@Suite struct ExecInputTests {
    @Test(arguments: [
        (["exec", "--memory-cap", "64XB", "--", "true"], "invalid byte size '64XB'"),
        (["exec", "--memory-cap", "7.5.1GiB", "--", "true"], "invalid byte size"),
        (["exec", "--", "true"], "--memory-cap"),
        (["exec", "--memory-cap", "64MiB"], "no command"),
        (["exec", "--memory-cap", "64MiB", "--cpus", "zero", "--", "true"], "invalid CPU list 'zero'"),
        (["exec", "--memory-cap", "64MiB", "--cpu-quota", "fast", "--", "true"], "--cpu-quota"),
        (["exec", "--memory-cap", "64MiB", "--sample-interval-ms", "0", "--", "true"], "--sample-interval-ms"),
        (["exec", "--memory-cap", "1KiB", "--", "true"], "must be at least"),
        (["exec", "--memory-cap", "64MiB", "--", "autoglm-no-such-command"], "not found on PATH"),
    ])
    func badInputExitsTwoWithAClearMessage(arguments: [String], message: String) throws {
        let outcome = try runCLI(arguments)
        #expect(outcome.status == 2, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains(message), "stderr: \(outcome.stderr)")
    }

    @Test func noControllerExplainsTheFixOrRunsUncappedWhenAllowed() throws {
        let empty = NSTemporaryDirectory() + "autoglm-empty-root-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let refused = try runCLI(["exec", "--memory-cap", "64MiB", "--cgroup-root", empty, "--", "/bin/true"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("systemd-run --scope -p MemoryMax="), "stderr: \(refused.stderr)")
        let uncapped = try runCLI(["exec", "--memory-cap", "64MiB", "--cgroup-root", empty, "--allow-uncapped", "--", "/bin/sh", "-c", "exit 4"])
        #expect(uncapped.status == 4)
        #expect(uncapped.stdout.contains("UNCAPPED"), "stdout: \(uncapped.stdout)")
    }
}

@Suite(.serialized, .enabled(if: cgroupsUsable, "needs root and a cgroup memory controller"))
struct ExecCgroupTests {
    @Test func passesTheExitCodeThroughAndPrintsJSON() throws {
        let outcome = try runCLI(["exec", "--memory-cap", "64MiB", "--cpu-quota", "1.5", "--json", "--", "/bin/sh", "-c", "exit 5"])
        #expect(outcome.status == 5, "stderr: \(outcome.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        #expect(json["capped"] as? Bool == true)
        #expect(json["exit_status"] as? Int == 5)
        #expect(json["oom_killed"] as? Bool == false)
        let applied = try #require(json["limits_applied"] as? [String: Any])
        #expect(applied["memory_max_bytes"] as? Int == 64 << 20)
        #expect(applied["cpu_quota_us"] as? Int == 150_000)
        let group = try #require(json["group_path"] as? String)
        #expect(!FileManager.default.fileExists(atPath: group))
    }

    @Test func oomKilledChildExitsThreeWithSummary() throws {
        let python = try #require(
            ["/usr/bin/python3", "/usr/local/bin/python3"].first { (path: String) in FileManager.default.isExecutableFile(atPath: path) },
            "python3 is needed for the allocation child")
        let outcome = try runCLI(["exec", "--memory-cap", "64MiB", "--", python, "-c", "b = b'x' * (200 << 20)"])
        #expect(outcome.status == 3, "stderr: \(outcome.stderr)")
        #expect(outcome.stdout.contains("oom killed  YES"), "stdout: \(outcome.stdout)")
        #expect(outcome.stdout.contains("memory cap  64.00 MiB"))
        #expect(outcome.stdout.contains("killed by signal 9"))
    }

    @Test(arguments: [SIGINT, SIGTERM])
    func signalKillsTheChildAndRemovesTheGroup(signal: Int32) throws {
        let scratch = NSTemporaryDirectory() + "autoglm-sigint-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let cgroupFile = scratch + "/cgroup"
        let pidFile = scratch + "/pids"
        // The child records its group and both its pid and a background sleeper's, then waits.
        let script = "cat /proc/self/cgroup > \(cgroupFile).tmp; sleep 60 & echo \"$$ $!\" > \(pidFile).tmp; "
            + "mv \(cgroupFile).tmp \(cgroupFile); mv \(pidFile).tmp \(pidFile); wait"
        let cli = try RunningCLI(["exec", "--memory-cap", "64MiB", "--", "/bin/sh", "-c", script])
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: pidFile), Date() < deadline, cli.process.isRunning { usleep(20_000) }
        let pids = try String(contentsOfFile: pidFile, encoding: .utf8).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        #expect(pids.count == 2)
        let lines = try String(contentsOfFile: cgroupFile, encoding: .utf8).split(separator: "\n")
        let memoryLine = try #require(lines.first { $0.contains(":memory:") } ?? lines.first { $0.hasPrefix("0::") })
        let groupPath = String(memoryLine.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)[2])
        #expect(groupPath.contains("autoglm-"))
        let groupDirectory = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes")
            ? "/sys/fs/cgroup/memory" + groupPath : "/sys/fs/cgroup" + groupPath
        #expect(FileManager.default.fileExists(atPath: groupDirectory))

        kill(cli.process.processIdentifier, signal)
        let outcome = cli.finish()
        #expect(outcome.status == 128 + signal, "stderr: \(outcome.stderr)")
        #expect(!FileManager.default.fileExists(atPath: groupDirectory))
        for pid in pids { #expect(ended(pid), "process \(pid) still runs") }
    }
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its parent), waiting up to 3 s.
func ended(_ pid: Int32) -> Bool {
    let deadline = Date().addingTimeInterval(3)
    while Date() < deadline {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return true }
        usleep(20_000)
    }
    return false
}
