import Testing
import Foundation
import AutoGLMSpecs

@Suite("Device profiles")
struct DeviceProfileTests {
    static var profilePaths: [String] {
        let dir = repoPath("DeviceProfiles")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { dir + "/" + $0 }
    }

    @Test(arguments: profilePaths)
    func everyShippedProfileLoads(path: String) throws {
        let profile = try DeviceProfile.load(path)
        #expect(profile.memory.appBudgetBytes.value < profile.memory.totalBytes.value)
        #expect(!profile.computeUnits.isEmpty)
    }

    @Test("a measured profile says what it was measured with, and a run with other kernels or on another CPU hears why")
    func measuredWith() throws {
        let host = try DeviceProfile.load(repoPath("DeviceProfiles/host.json"))
        let context = try #require(host.measuredWith)
        #expect(["avx512", "simd8"].contains(context.kernels))
        #expect(host.mismatch(kernels: context.kernels, cpu: context.cpu) == nil)
        #expect(host.mismatch(kernels: context.kernels, cpu: nil) == nil, "an unknown CPU is no difference")
        let other = context.kernels == "avx512" ? "simd8" : "avx512"
        let kernels = try #require(host.mismatch(kernels: other, cpu: context.cpu))
        #expect(kernels == "profile 'host' was measured with \(context.kernels) kernels, this run \(other)")
        let both = try #require(host.mismatch(kernels: other, cpu: "Some Other CPU"))
        #expect(both.contains("; CPU '\(context.cpu ?? "")', this host 'Some Other CPU'"))
        // Published device figures say nothing of kernels: never a mismatch.
        let phone = try DeviceProfile.load(repoPath("DeviceProfiles/snapdragon-8-gen-3-12gb.json"))
        #expect(phone.measuredWith == nil && phone.mismatch(kernels: "simd8", cpu: "x") == nil)
    }

    @Test func snapdragon8Gen3Bandwidth() throws {
        let p = try DeviceProfile.load(repoPath("DeviceProfiles/snapdragon-8-gen-3-12gb.json"))
        #expect(p.memory.bandwidthBytesPerSecond.value == 9600e6 * 64 / 8)
        #expect(p.memory.appBudgetBytes.estimate)
        #expect(p.computeUnits.first { $0.kind == .cpu }?.cores == 8)
    }

    @Test func aFormatIsPricedAtItsPrecisionOrTheNearestWiderOnePublished() throws {
        let p = try DeviceProfile.load(repoPath("DeviceProfiles/snapdragon-8-gen-3-12gb.json"))
        let cpu = try #require(p.computeUnits.first { $0.kind == .cpu })
        // The CPU publishes f32, f16 and int8 figures (no int4): 4-bit formats are int8 arithmetic there.
        #expect(cpu.peakOpsPerSecond[.int4] == nil && cpu.peakOpsPerSecond[.int8] != nil)
        #expect(cpu.precision(for: .q4_0) == .int8)
        #expect(cpu.precision(for: .int4g128) == .int8)
        #expect(cpu.precision(for: .q8_0) == .int8)
        #expect(cpu.precision(for: .f16) == .f16)
        #expect(cpu.peakOps(for: .q4_0) == cpu.peakOpsPerSecond[.int8]?.value)
        for unit in p.computeUnits {
            for format in WeightFormat.allCases {
                #expect(unit.peakOps(for: format) == unit.precision(for: format).flatMap { unit.peakOpsPerSecond[$0]?.value })
            }
        }
    }
}
