import AutoGLMProcess
import AutoGLMSpecs
import Foundation

/// The source revision a sign-off was made from.
///
/// Resolution order: the `AUTOGLM_BUILD_COMMIT` environment variable (for CI and for builds outside a checkout),
/// else `git rev-parse HEAD` in the working directory (with `dirty` from `git status --porcelain`), else "unknown".
public struct BuildInfo: Codable, Sendable, Equatable {
    public static let environmentVariable = "AUTOGLM_BUILD_COMMIT"

    public var commit: String
    /// nil when not known (from the environment variable or unknown).
    public var dirty: Bool?
    /// "env", "git" or "unknown".
    public var source: String

    enum CodingKeys: String, CodingKey { case commit, dirty, source }

    public init(commit: String, dirty: Bool?, source: String) {
        self.commit = commit; self.dirty = dirty; self.source = source
    }

    public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> BuildInfo {
        if let value = environment[environmentVariable]?.trimmingCharacters(in: .whitespacesAndNewlines),
           !value.isEmpty {
            return BuildInfo(commit: value, dirty: nil, source: "env")
        }
        if let head = git(["rev-parse", "HEAD"]), !head.isEmpty {
            let status = git(["status", "--porcelain", "--untracked-files=no"])
            return BuildInfo(commit: head, dirty: status.map { !$0.isEmpty }, source: "git")
        }
        return BuildInfo(commit: "unknown", dirty: nil, source: "unknown")
    }

    static func git(_ args: [String]) -> String? {
        guard let r = try? CapturedProcess.run("/usr/bin/env", ["git"] + args, captureStandardError: false),
              !r.uncaughtSignal, r.status == 0 else { return nil }
        return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A file whose bytes a record binds.
public struct BoundFile: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable {
        case plan
        case deviceProfile = "device_profile"
        case checkpoint
        case runReport = "run_report"
        case policy
    }

    public var role: Role
    /// Relative to the record's folder, or absolute when the file shares no folder with it but the root.
    public var path: String
    /// Lowercase hex SHA-256 of the file's bytes.
    public var sha256: String
    public var bytes: Int

    enum CodingKeys: String, CodingKey, CaseIterable { case role, path, sha256, bytes }

    public init(role: Role, path: String, sha256: String, bytes: Int) {
        self.role = role; self.path = path; self.sha256 = sha256; self.bytes = bytes
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(Role.self, forKey: .role)
        path = try c.decode(String.self, forKey: .path, expected: "a non-empty path") { !$0.isEmpty }
        sha256 = try c.decode(String.self, forKey: .sha256, expected: "64 lowercase hex digits") {
            $0.count == 64 && $0.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
        }
        bytes = try c.decode(Int.self, forKey: .bytes, expected: "a non-negative byte count") { $0 >= 0 }
    }
}

/// A signed sign-off: the verdict, the gates, and the hashes of everything it depended on.
public struct SignoffRecord: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int = SignoffRecord.currentSchemaVersion
    public var createdAt: String
    public var verdict: Verdict
    /// The revision the sign-off was made from.
    public var build: BuildInfo
    /// The `build.commit` of each run report, deduplicated in report order.
    public var engineBuilds: [String]
    public var devices: [String]
    public var models: [String]
    public var result: SignoffResult
    public var files: [BoundFile]
    /// Base64 of the raw 32-byte Ed25519 public key.
    public var publicKey: String
    /// Base64 Ed25519 signature over `signedBytes()`; nil only while signing.
    public var signature: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version", createdAt = "created_at", verdict, build
        case engineBuilds = "engine_builds", devices, models, result, files, publicKey = "public_key", signature
    }

    public init(
        createdAt: String, verdict: Verdict, build: BuildInfo, engineBuilds: [String], devices: [String],
        models: [String], result: SignoffResult, files: [BoundFile], publicKey: String
    ) {
        self.createdAt = createdAt; self.verdict = verdict; self.build = build; self.engineBuilds = engineBuilds
        self.devices = devices; self.models = models; self.result = result; self.files = files
        self.publicKey = publicKey
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(
            Int.self, forKey: .schemaVersion, expected: "record schema version \(Self.currentSchemaVersion)"
        ) { $0 == Self.currentSchemaVersion }
        createdAt = try c.decode(String.self, forKey: .createdAt)
        verdict = try c.decode(Verdict.self, forKey: .verdict)
        build = try c.decode(BuildInfo.self, forKey: .build)
        engineBuilds = try c.decode([String].self, forKey: .engineBuilds)
        devices = try c.decode([String].self, forKey: .devices)
        models = try c.decode([String].self, forKey: .models)
        result = try c.decode(SignoffResult.self, forKey: .result)
        files = try c.decode([BoundFile].self, forKey: .files)
        publicKey = try c.decode(String.self, forKey: .publicKey)
        signature = try c.decodeIfPresent(String.self, forKey: .signature)
    }

    /// The bytes the signature covers: the record without its signature, as deterministic JSON.
    public func signedBytes() throws -> Data {
        var unsigned = self
        unsigned.signature = nil
        return try SpecLoader.encode(unsigned)
    }

    public mutating func sign(with key: SigningKey) throws {
        publicKey = key.publicKeyBase64
        signature = try key.signature(for: signedBytes()).base64EncodedString()
    }

    public var signatureIsValid: Bool {
        guard let signature, let bytes = try? signedBytes() else { return false }
        return SignatureCheck.isValid(signatureBase64: signature, data: bytes, publicKeyBase64: publicKey)
    }

    public static func load(_ path: String) throws -> SignoffRecord {
        do {
            return try SpecLoader.load(SignoffRecord.self, from: path)
        } catch let error as SpecError {
            throw SignoffError.badRecord(file: path, reason: error.description)
        }
    }

    /// Builds and signs the record for `loaded` reports. Paths are stored relative to `recordDirectory`.
    public static func make(
        result: SignoffResult, loaded: [LoadedReport], policyPath: String?, key: SigningKey, build: BuildInfo,
        recordDirectory: String, createdAt: String = SignoffFormat.timestamp()
    ) throws -> SignoffRecord {
        var files: [BoundFile] = []
        var seen = Set<String>()
        func bind(_ role: BoundFile.Role, _ path: String) throws {
            let abs = SignoffInputs.absolute(path)
            guard seen.insert(role.rawValue + "\u{0}" + abs).inserted else { return }
            let hash = try FileIO.sha256(file: abs)
            files.append(BoundFile(
                role: role, path: RecordPaths.relative(abs, from: recordDirectory), sha256: hash.hex, bytes: hash.bytes))
        }
        if let policyPath { try bind(.policy, policyPath) }
        for l in loaded {
            try bind(.runReport, l.path)
            try bind(.plan, l.planPath)
            try bind(.deviceProfile, l.deviceProfilePath)
            if let c = l.checkpointPath { try bind(.checkpoint, c) }
        }
        var record = SignoffRecord(
            createdAt: createdAt, verdict: result.verdict, build: build,
            engineBuilds: unique(loaded.map(\.report.build.commit)), devices: unique(result.evaluations.map(\.deviceId)),
            models: unique(result.evaluations.map(\.modelId)), result: result, files: files, publicKey: key.publicKeyBase64)
        try record.sign(with: key)
        return record
    }

    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}

/// Path arithmetic for records.
public enum RecordPaths {
    /// `file` relative to `directory` (with `..` as needed), or absolute when they share only the root.
    public static func relative(_ file: String, from directory: String) -> String {
        let f = URL(fileURLWithPath: SignoffInputs.absolute(file)).pathComponents
        let d = URL(fileURLWithPath: SignoffInputs.absolute(directory)).pathComponents
        var common = 0
        while common < f.count && common < d.count && f[common] == d[common] { common += 1 }
        guard common > 1 else { return SignoffInputs.absolute(file) }
        let ups = Array(repeating: "..", count: d.count - common)
        return (ups + f[common...]).joined(separator: "/")
    }

    /// A stored path resolved against the record's folder.
    public static func resolve(_ stored: String, recordDirectory: String) -> String {
        SignoffInputs.absolute(stored, relativeTo: recordDirectory)
    }
}

/// The outcome of checking a record.
public struct VerificationReport: Codable, Sendable, Equatable {
    public enum FileStatus: String, Codable, Sendable { case ok, changed, missing }

    public struct FileCheck: Codable, Sendable, Equatable {
        public var role: BoundFile.Role
        public var path: String
        public var resolvedPath: String
        public var status: FileStatus
        public var expectedSHA256: String
        public var foundSHA256: String?
        enum CodingKeys: String, CodingKey {
            case role, path, resolvedPath = "resolved_path", status, expectedSHA256 = "expected_sha256"
            case foundSHA256 = "found_sha256"
        }
    }

    public var record: String
    public var signatureValid: Bool
    /// nil when no trusted key was given.
    public var trustedKeyMatches: Bool?
    public var files: [FileCheck]

    enum CodingKeys: String, CodingKey {
        case record, signatureValid = "signature_valid", trustedKeyMatches = "trusted_key_matches", files
    }

    public var ok: Bool { signatureValid && trustedKeyMatches != false && files.allSatisfy { $0.status == .ok } }

    /// One line per problem, naming the file.
    public var problems: [String] {
        var out: [String] = []
        if !signatureValid { out.append("\(record): signature does not match the record's contents or public key") }
        if trustedKeyMatches == false { out.append("\(record): signed with a key other than the trusted public key") }
        for f in files where f.status != .ok {
            switch f.status {
            case .missing: out.append("\(f.resolvedPath): \(f.role.rawValue) is missing")
            case .changed:
                out.append("\(f.resolvedPath): \(f.role.rawValue) changed (sha256 \(f.foundSHA256 ?? "?"), "
                    + "recorded \(f.expectedSHA256))")
            case .ok: break
            }
        }
        return out
    }

    /// Checks the signature and every bound file of the record at `path`.
    public static func verify(recordAt path: String, trustedPublicKey: String? = nil) throws -> VerificationReport {
        let record = try SignoffRecord.load(path)
        let dir = SignoffInputs.directory(of: path)
        var checks: [FileCheck] = []
        for f in record.files {
            let resolved = RecordPaths.resolve(f.path, recordDirectory: dir)
            var check = FileCheck(
                role: f.role, path: f.path, resolvedPath: resolved, status: .missing, expectedSHA256: f.sha256,
                foundSHA256: nil)
            if let hash = try? FileIO.sha256(file: resolved) {
                check.foundSHA256 = hash.hex
                check.status = hash.hex == f.sha256.lowercased() ? .ok : .changed
            }
            checks.append(check)
        }
        let trusted = trustedPublicKey.map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines) == record.publicKey
        }
        return VerificationReport(
            record: path, signatureValid: record.signatureIsValid, trustedKeyMatches: trusted, files: checks)
    }
}
