// The measured host profiles beside the published device profiles, and which of them describes a run.

import Foundation

/// Measured host profiles: `host*.json` files in the device profile folder, written by `autoglm-plan profile-host`
/// and saying what they were measured with (`DeviceProfile.MeasurementContext`). One machine kind per file: the
/// AVX-512 host is `host`, a machine whose engine runs another kernel family `host-<family>` (`defaultID`). Tools
/// that lean on measured host figures (the emulator's projection, bench-attention) take the profile that matches
/// their run, and say why none does.
public enum HostProfiles {
    /// The profile id (and file name) `profile-host` uses for a machine running `kernels`: `host` for the AVX-512
    /// kernels, `host-<kernels>` for another family.
    public static func defaultID(kernels: String) -> String { kernels == "avx512" ? "host" : "host-\(kernels)" }

    /// Where the attention time calibration of the host profile `id` in `directory` lives (written by
    /// `autoglm-run calibrate-attention`): `measurements/<id>.attention-calibration.json` in that folder.
    public static func attentionCalibrationPath(directory: String, id: String) -> String {
        (directory as NSString).appendingPathComponent("measurements/\(id).attention-calibration.json")
    }

    /// The host profile id for a run of `kernels` on `cpu`: the matching profile's in `directory`, else the one
    /// `profile-host` would write (`defaultID`).
    public static func hostID(directory: String, kernels: String, cpu: String?) -> String {
        select(directory: directory, kernels: kernels, cpu: cpu).hostID
    }

    /// The host profile chosen for a run, or why none was.
    public struct Selection: Sendable {
        /// The kernel family the run uses.
        public var kernels: String
        /// The matching profile's path and contents; nil when no host profile matches.
        public var path: String?
        public var profile: DeviceProfile?
        /// Per host profile not chosen: its path and why it does not describe the run (another kernel family or
        /// CPU, or the file does not load).
        public var rejected: [(path: String, reason: String)] = []

        /// The host profile id for the run: the matching profile's, else the one `profile-host` would write.
        public var hostID: String { profile?.id ?? HostProfiles.defaultID(kernels: kernels) }

        /// One sentence for a warning when nothing matched; nil when a profile matched or there is none at all.
        public var mismatch: String? {
            guard profile == nil, !rejected.isEmpty else { return nil }
            return rejected.map { "\($0.path): \($0.reason)" }.joined(separator: "; ")
        }
    }

    /// Host profile files in `directory` (`host.json`, `host-*.json`), `host.json` first, then by name.
    public static func paths(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { ($0 == "host.json" || $0.hasPrefix("host-")) && $0.hasSuffix(".json") }
            .sorted { ($0 == "host.json" ? "" : $0) < ($1 == "host.json" ? "" : $1) }
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// The first host profile in `directory` measured with `kernels` on `cpu` (a profile that does not say what it
    /// was measured with matches any run, as `DeviceProfile.mismatch` has it), with the reasons the others were
    /// passed over.
    public static func select(directory: String, kernels: String, cpu: String?) -> Selection {
        var selection = Selection(kernels: kernels)
        for path in paths(in: directory) {
            let profile: DeviceProfile
            do { profile = try DeviceProfile.load(path) } catch {
                selection.rejected.append((path, "does not load (\(error))"))
                continue
            }
            if let why = profile.mismatch(kernels: kernels, cpu: cpu) {
                selection.rejected.append((path, why))
                continue
            }
            selection.path = path
            selection.profile = profile
            return selection
        }
        return selection
    }
}
