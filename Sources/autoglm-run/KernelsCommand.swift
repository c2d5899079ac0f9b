import ArgumentParser
import AutoGLMEngine
import AutoGLMSpecs
import Foundation

/// `autoglm-run kernels`: the kernel family the engine runs on this machine, why, and which measured host profile
/// (`DeviceProfiles/host*.json`) describes it. The Makefile's measuring targets read `--host-id` to pick the files
/// they write and compare against.
struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Show the kernel family this machine runs and the measured host profile that describes it.")

    @Option(help: "Folder of device profiles to look for host profiles in.")
    var profiles: String = "DeviceProfiles"

    @Flag(name: .customLong("host-id"), help: """
        Print only the host profile id for this machine: the matching profile's, else the one profile-host would \
        write (host for AVX-512 kernels, host-<family> otherwise).
        """)
    var hostID = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if hostID && json { throw ValidationError("--host-id and --json print different things; give one") }
    }

    struct Report: Codable {
        var kernels: String
        var cpu: String?
        var missingForAVX512: [String]
        var hostProfile: String?
        var hostID: String
        var notMatching: [String: String]

        enum CodingKeys: String, CodingKey {
            case kernels, cpu, missingForAVX512 = "missing_for_avx512", hostProfile = "host_profile"
            case hostID = "host_id", notMatching = "not_matching"
        }
    }

    func run() throws {
        let kernels = KernelISA.active.rawValue
        let cpu = (try? HostInfo.current())?.cpuModel
        let selection = HostProfiles.select(directory: profiles, kernels: kernels, cpu: cpu)
        let report = Report(kernels: kernels, cpu: cpu, missingForAVX512: CPUFeatures.host.missingForAVX512,
                            hostProfile: selection.path,
                            hostID: selection.hostID,
                            notMatching: Dictionary(selection.rejected.map { ($0.path, $0.reason) },
                                                    uniquingKeysWith: { a, _ in a }))
        if hostID { print(report.hostID); return }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        var lines: [(String, String)] = [("kernels", kernels == "avx512" ? "avx512 (16-lane AVX-512)"
                                                : "\(kernels) (8-lane SIMD: AVX2/FMA/F16C on x86-64, NEON elsewhere)")]
        if kernels != "avx512" {
            let missing = report.missingForAVX512
            lines.append(("avx512", missing.isEmpty ? "supported, not selected (AUTOGLM_KERNELS)"
                                     : "not run here: the CPU lacks " + missing.joined(separator: ", ")))
        }
        lines.append(("cpu", cpu ?? "unknown"))
        if let path = selection.path {
            lines.append(("host profile", "\(path) (id \(report.hostID))"))
        } else {
            lines.append(("host profile",
                          "none measured here; make profile-host writes \(profiles)/\(report.hostID).json"))
        }
        for (path, reason) in selection.rejected { lines.append(("not used", "\(path): \(reason)")) }
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines { print(key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + value) }
    }
}

/// This machine's measured files in the checkout, named by its host profile id (`autoglm-run kernels --host-id`):
/// the defaults of bench-attention and calibrate-attention.
enum HostFiles {
    static let id = HostProfiles.hostID(directory: "DeviceProfiles", kernels: KernelISA.active.rawValue,
                                        cpu: (try? HostInfo.current())?.cpuModel)
    static var profile: String { "DeviceProfiles/\(id).json" }
    static var attentionCalibration: String {
        HostProfiles.attentionCalibrationPath(directory: "DeviceProfiles", id: id)
    }
}
