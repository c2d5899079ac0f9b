import AutoGLMSpecs
import Foundation

/// A run report with the files it refers to, resolved and checked.
public struct LoadedReport: Sendable {
    public var path: String
    public var report: RunReport
    public var planPath: String
    public var plan: Plan
    public var deviceProfilePath: String
    /// nil for synthetic weights that have no file.
    public var checkpointPath: String?
}

/// Resolves paths and loads everything a sign-off needs.
///
/// Paths inside a run report (`plan.path`, `checkpoint.path`) are used as they are when absolute; when relative they
/// are looked up next to the report first, then in the working directory. A report's device profile is the
/// `--device` file whose `id` equals the report's `plan.device_id`; without one, `<id>.json` is looked up in the
/// plan's folder, in `DeviceProfiles/` beside the plan's folder, then in `./DeviceProfiles/`.
public enum SignoffInputs {
    public static func absolute(_ path: String, relativeTo base: String? = nil) -> String {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL.path }
        let root = base ?? FileManager.default.currentDirectoryPath
        return URL(fileURLWithPath: root).appendingPathComponent(path).standardizedFileURL.path
    }

    static func directory(of path: String) -> String {
        URL(fileURLWithPath: absolute(path)).deletingLastPathComponent().path
    }

    /// A path from a report: absolute, or found next to the report, or in the working directory.
    static func resolve(_ path: String, report: String) -> String? {
        if path.hasPrefix("/") { return FileManager.default.fileExists(atPath: path) ? path : nil }
        for candidate in [absolute(path, relativeTo: directory(of: report)), absolute(path)]
        where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// Loads the reports, their plans, device profiles and checkpoints. `devices` are explicit device profile files;
    /// `checkpoint` replaces every report's checkpoint path.
    public static func load(reports: [String], devices: [String], checkpoint: String? = nil) throws -> [LoadedReport] {
        var profiles: [String: String] = [:]
        for path in devices {
            let profile = try SignoffError.wrapping { try DeviceProfile.load(path) }
            profiles[profile.id] = absolute(path)
        }
        var checkpointHashes: [String: String] = [:]
        var out: [LoadedReport] = []
        for reportPath in reports {
            let report = try SignoffError.wrapping { try RunReport.load(reportPath) }
            guard !report.plan.path.isEmpty else {
                throw SignoffError.missingInput(report: reportPath, field: "plan.path", reason: "empty; the plan must be bound")
            }
            guard let planPath = resolve(report.plan.path, report: reportPath) else {
                throw SignoffError.missingInput(
                    report: reportPath, field: "plan.path",
                    reason: "plan file '\(report.plan.path)' not found next to the report or in the working directory")
            }
            let planHash = try FileIO.sha256(file: planPath).hex
            if !report.plan.sha256.isEmpty && report.plan.sha256.lowercased() != planHash {
                throw SignoffError.hashMismatch(
                    file: planPath, role: "plan (against \(reportPath) plan.sha256)", expected: report.plan.sha256,
                    found: planHash)
            }
            let plan = try SignoffError.wrapping { try Plan.load(planPath) }
            let deviceId = report.plan.deviceId.isEmpty ? plan.device.id : report.plan.deviceId
            guard let devicePath = profiles[deviceId] ?? findProfile(id: deviceId, planPath: planPath) else {
                throw SignoffError.missingInput(
                    report: reportPath, field: "plan.device_id",
                    reason: "no device profile for '\(deviceId)'; pass --device FILE"
                        + (profiles.isEmpty ? "" : " (given: \(profiles.keys.sorted().joined(separator: ", ")))"))
            }
            var checkpointPath: String?
            let ckpt = checkpoint ?? report.checkpoint.path
            if !ckpt.isEmpty {
                let found = checkpoint == nil ? resolve(ckpt, report: reportPath)
                    : (FileManager.default.fileExists(atPath: absolute(ckpt)) ? absolute(ckpt) : nil)
                guard let resolved = found else {
                    throw SignoffError.missingInput(
                        report: reportPath, field: checkpoint == nil ? "checkpoint.path" : "--checkpoint",
                        reason: "checkpoint '\(ckpt)' not found")
                }
                let hash: String
                if let cached = checkpointHashes[resolved] {
                    hash = cached
                } else {
                    hash = try FileIO.sha256(file: resolved).hex
                    checkpointHashes[resolved] = hash
                }
                if let expected = report.checkpoint.sha256, !expected.isEmpty, expected.lowercased() != hash {
                    throw SignoffError.hashMismatch(
                        file: resolved, role: "checkpoint (against \(reportPath) checkpoint.sha256)", expected: expected,
                        found: hash)
                }
                checkpointPath = resolved
            } else if !report.checkpoint.synthetic {
                throw SignoffError.missingInput(
                    report: reportPath, field: "checkpoint.path",
                    reason: "empty for non-synthetic weights; the checkpoint must be bound (or pass --checkpoint)")
            }
            out.append(LoadedReport(
                path: absolute(reportPath), report: report, planPath: planPath, plan: plan,
                deviceProfilePath: devicePath, checkpointPath: checkpointPath))
        }
        return out
    }

    static func findProfile(id: String, planPath: String) -> String? {
        guard !id.isEmpty, !id.contains("/") else { return nil }
        let planDir = directory(of: planPath)
        let candidates = [
            planDir + "/\(id).json",
            URL(fileURLWithPath: planDir).deletingLastPathComponent().path + "/DeviceProfiles/\(id).json",
            absolute("DeviceProfiles/\(id).json"),
        ]
        for c in candidates where FileManager.default.fileExists(atPath: c) {
            if let profile = try? DeviceProfile.load(c), profile.id == id { return absolute(c) }
        }
        return nil
    }
}
