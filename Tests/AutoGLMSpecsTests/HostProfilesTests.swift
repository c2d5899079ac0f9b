import Foundation
import Testing
import AutoGLMSpecs

@Suite("Measured host profiles")
struct HostProfilesTests {
    /// A folder with the checked-in AVX-512 host profile, a copy of it measured with the 8-lane kernels as
    /// `host-simd8`, a file that does not load, and a phone profile (not a host profile).
    private func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "host-profiles-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let host = try Data(contentsOf: URL(fileURLWithPath: repoPath("DeviceProfiles/host.json")))
        try host.write(to: URL(fileURLWithPath: dir + "/host.json"))
        var object = try #require(try JSONSerialization.jsonObject(with: host) as? [String: Any])
        object["id"] = "host-simd8"
        object["measured_with"] = ["kernels": "simd8", "cpu": "AMD EPYC"]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: dir + "/host-simd8.json"))
        try Data("{\"id\": \"host-broken\"".utf8).write(to: URL(fileURLWithPath: dir + "/host-broken.json"))
        try FileManager.default.copyItem(atPath: repoPath("DeviceProfiles/snapdragon-8-gen-3-12gb.json"),
                                         toPath: dir + "/snapdragon-8-gen-3-12gb.json")
        return dir
    }

    @Test("host profiles are host.json and host-*.json, host.json first")
    func paths() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(HostProfiles.paths(in: dir).map { ($0 as NSString).lastPathComponent }
                == ["host.json", "host-broken.json", "host-simd8.json"])
        #expect(HostProfiles.paths(in: dir + "/missing").isEmpty)
    }

    @Test("a run takes the profile measured with its kernels; the others say why they were passed over")
    func selection() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let avx512 = HostProfiles.select(directory: dir, kernels: "avx512", cpu: "AMD EPYC")
        #expect(avx512.profile?.id == "host" && avx512.path == dir + "/host.json" && avx512.mismatch == nil)
        let simd8 = HostProfiles.select(directory: dir, kernels: "simd8", cpu: "AMD EPYC")
        #expect(simd8.profile?.id == "host-simd8" && simd8.path == dir + "/host-simd8.json" && simd8.mismatch == nil)
        #expect(simd8.rejected.map(\.path) == [dir + "/host.json", dir + "/host-broken.json"])
        #expect(simd8.rejected[0].reason == "profile 'host' was measured with avx512 kernels, this run simd8")
        #expect(simd8.rejected[1].reason.hasPrefix("does not load"))
        // Another CPU: nothing matches, and the warning names every file and its reason.
        let other = HostProfiles.select(directory: dir, kernels: "simd8", cpu: "Other CPU")
        #expect(other.profile == nil && other.path == nil)
        let why = try #require(other.mismatch)
        #expect(why.contains(dir + "/host-simd8.json: profile 'host-simd8' was measured with CPU 'AMD EPYC', "
                             + "this host 'Other CPU'"))
        #expect(why.contains(dir + "/host.json: ") && why.contains(dir + "/host-broken.json: does not load"))
        #expect(avx512.hostID == "host" && simd8.hostID == "host-simd8")
        #expect(HostProfiles.select(directory: dir, kernels: "neon", cpu: nil).hostID == "host-neon",
                "no match: the id profile-host would write")
        // No host profile at all: nothing to warn about.
        #expect(HostProfiles.select(directory: dir + "/missing", kernels: "simd8", cpu: nil).mismatch == nil)
    }

    @Test("profile-host's default ids: host for the AVX-512 kernels, host-<family> for another")
    func defaultIDs() {
        #expect(HostProfiles.defaultID(kernels: "avx512") == "host")
        #expect(HostProfiles.defaultID(kernels: "simd8") == "host-simd8")
    }

    @Test("every checked-in host profile says what it was measured with and is named by its id")
    func checkedIn() throws {
        let paths = HostProfiles.paths(in: repoPath("DeviceProfiles"))
        #expect(!paths.isEmpty)
        var families: Set<String> = []
        for path in paths {
            let profile = try DeviceProfile.load(path)
            let context = try #require(profile.measuredWith, "\(path)")
            #expect(profile.kind == .host, "\(path)")
            #expect((path as NSString).lastPathComponent == "\(profile.id).json", "\(path)")
            #expect(profile.id == HostProfiles.defaultID(kernels: context.kernels), "\(path)")
            #expect(families.insert(context.kernels).inserted, "one host profile per kernel family: \(path)")
        }
    }
}
