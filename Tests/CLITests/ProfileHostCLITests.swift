import Foundation
import Testing
import AutoGLMSpecs

/// `autoglm-plan profile-host --quick` run as a process: the profile it writes loads through `DeviceProfile.load`.
@Suite("autoglm-plan profile-host")
struct ProfileHostCLITests {
    static func run(_ arguments: [String]) throws -> CLITool.Output {
        try CLITool.run("autoglm-plan", arguments)
    }

    @Test("--quick writes a host profile that DeviceProfile.load accepts, with positive finite measured figures")
    func quickProfileLoads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("profile-host-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("host.json").path
        let raw = dir.appendingPathComponent("measurements.json").path
        let result = try Self.run(["profile-host", "--quick", "--threads", "2", "-o", path, "--measurements", raw])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.stdout.contains("stream read:") && result.stdout.contains("wrote \(path)"))
        let profile = try DeviceProfile.load(path)
        #expect(profile.kind == .host)
        let cpu = try #require(profile.computeUnits.first)
        var figures = [profile.memory.bandwidthBytesPerSecond, profile.sustainedFactor]
        figures += Array(cpu.peakOpsPerSecond.values) + Array(profile.efficiency.values)
        // All ten engine formats are measured: one peak per precision they need.
        #expect(Set(cpu.peakOpsPerSecond.keys) == Set(ComputePrecision.allCases))
        for figure in figures {
            #expect(figure.value > 0 && figure.value.isFinite, "\(figure.source)")
            #expect(!figure.estimate && figure.source.hasPrefix("measured: autoglm-plan profile-host on "))
        }
        #expect(profile.memory.appBudgetBytes.value > 0 && profile.memory.totalBytes.value > 0)
        #expect(FileManager.default.fileExists(atPath: raw))
    }

    @Test("bad options exit non-zero with a message and write nothing")
    func badOptions() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("never-\(UUID().uuidString).json").path
        let result = try Self.run(["profile-host", "--quick", "--threads", "0", "-o", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--threads"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
