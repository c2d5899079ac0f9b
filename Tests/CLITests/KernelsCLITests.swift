import Foundation
import Testing

/// `autoglm-run kernels`: the family this machine runs and the host profile the Makefile's measuring targets use.
@Suite("autoglm-run kernels")
struct KernelsCLITests {
    static func run(_ arguments: [String]) throws -> CLITool.Output {
        try CLITool.run("autoglm-run", ["kernels"] + arguments, currentDirectory: CLITool.packageRoot)
    }

    /// A profiles folder holding only the checked-in AVX-512 host profile.
    private func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "kernels-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLITool.packageRoot.path + "/DeviceProfiles/host.json",
                                         toPath: dir + "/host.json")
        return dir
    }

    @Test("--json and --host-id agree: the AVX-512 host profile matches only a run of the AVX-512 kernels")
    func hostID() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run(["--profiles", dir, "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let kernels = try #require(report["kernels"] as? String)
        #expect(["avx512", "simd8"].contains(kernels))
        let missing = try #require(report["missing_for_avx512"] as? [String])
        if kernels == "avx512" {
            #expect(missing.isEmpty, "the AVX-512 kernels run only where the CPU has all they need")
            #expect(report["host_id"] as? String == "host")
            #expect(report["host_profile"] as? String == dir + "/host.json")
        } else {
            #expect(report["host_id"] as? String == "host-simd8")
            #expect(report["host_profile"] == nil)
            let passed = try #require(report["not_matching"] as? [String: String])
            #expect(passed[dir + "/host.json"] == "profile 'host' was measured with avx512 kernels, this run simd8")
        }
        let id = try Self.run(["--profiles", dir, "--host-id"])
        #expect(id.status == 0 && id.stdout == "\(report["host_id"] as? String ?? "?")\n")
        let table = try Self.run(["--profiles", dir])
        #expect(table.status == 0 && table.stdout.contains("kernels") && table.stdout.contains("host profile"))
    }

    @Test("bench-attention's defaults are this machine's host profile and calibration: no mismatch warning")
    func benchAttentionDefaults() throws {
        let id = try Self.run(["--host-id"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(!id.isEmpty)
        let r = try CLITool.run("autoglm-run", ["bench-attention", "--lengths", "64", "--settings", "full",
                                                "--repetitions", "1", "--min-time", "0", "--rounds", "1"],
                                currentDirectory: CLITool.packageRoot)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("predictions: planner on \(id)"), "stdout: \(r.stdout)")
        #expect(!r.stderr.contains("warning"), "stderr: \(r.stderr)")
    }

    @Test("--host-id with --json is refused")
    func conflictingFlags() throws {
        let r = try Self.run(["--host-id", "--json"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--host-id and --json"), "stderr: \(r.stderr)")
    }
}
