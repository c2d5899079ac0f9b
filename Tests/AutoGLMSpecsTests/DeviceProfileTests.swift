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

    @Test func snapdragon8Gen3Bandwidth() throws {
        let p = try DeviceProfile.load(repoPath("DeviceProfiles/snapdragon-8-gen-3-12gb.json"))
        #expect(p.memory.bandwidthBytesPerSecond.value == 9600e6 * 64 / 8)
        #expect(p.memory.appBudgetBytes.estimate)
        #expect(p.computeUnits.first { $0.kind == .cpu }?.cores == 8)
    }
}
