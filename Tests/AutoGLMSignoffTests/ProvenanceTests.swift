import AutoGLMSignoff
import AutoGLMSpecs
import Foundation
import Testing

@Suite struct ProvenanceTests {
    /// A fixture with a passing report, a policy, a key and a ledger holding one record.
    func signed() throws -> (Fixture, String, SignoffRecord) {
        let fx = try Fixture()
        let reportPath = try fx.write(try fx.passingReport(), as: "report.json")
        let policyPath = try fx.write(text: #"{"max_kl_mean": 0.05}"#, as: "signoff.json")
        let loaded = try SignoffInputs.load(reports: [reportPath], devices: [fx.path("device.json")])
        let policy = try SignoffPolicy.load(policyPath)
        let result = GateEvaluator.evaluate(loaded.map { (path: $0.path, report: $0.report) }, policy: policy)
        let ledger = Ledger(directory: fx.path("ledger"))
        try ledger.prepare()
        let record = try SignoffRecord.make(
            result: result, loaded: loaded, policyPath: policyPath, key: SigningKey(),
            build: BuildInfo(commit: "abc", dirty: false, source: "env"), recordDirectory: ledger.directory)
        let path = try ledger.append(record)
        return (fx, path, record)
    }

    @Test func recordBindsEveryFileWithRelativePaths() throws {
        let (fx, path, record) = try signed()
        defer { fx.remove() }
        #expect(record.files.map(\.role) == [.policy, .runReport, .plan, .deviceProfile, .checkpoint])
        #expect(record.files.allSatisfy { $0.path.hasPrefix("../") })
        for f in record.files {
            #expect(f.sha256 == (try sha256(RecordPaths.resolve(f.path, recordDirectory: fx.path("ledger")))))
        }
        #expect(record.verdict == .pass)
        #expect(record.devices == [deviceId])
        #expect(record.engineBuilds == ["0123456789abcdef0123456789abcdef01234567"])
        let report = try VerificationReport.verify(recordAt: path)
        #expect(report.ok, "\(report.problems)")
    }

    @Test(arguments: ["report.json", "plan.json", "device.json", "weights.bin", "signoff.json"])
    func changingOneByteNamesTheFile(name: String) throws {
        let (fx, path, _) = try signed()
        defer { fx.remove() }
        var data = try Data(contentsOf: URL(fileURLWithPath: fx.path(name)))
        data[data.count / 2] ^= 0x01
        try data.write(to: URL(fileURLWithPath: fx.path(name)))
        let report = try VerificationReport.verify(recordAt: path)
        #expect(!report.ok)
        #expect(report.signatureValid)
        let changed = report.files.filter { $0.status != .ok }
        #expect(changed.map(\.resolvedPath) == [fx.path(name)])
        #expect(report.problems.contains { $0.hasPrefix(fx.path(name)) && $0.contains("changed") })
    }

    @Test func missingFileIsNamed() throws {
        let (fx, path, _) = try signed()
        defer { fx.remove() }
        try FileManager.default.removeItem(atPath: fx.path("weights.bin"))
        let report = try VerificationReport.verify(recordAt: path)
        #expect(report.problems == ["\(fx.path("weights.bin")): checkpoint is missing"])
    }

    @Test func editingTheRecordBreaksTheSignature() throws {
        let (fx, path, _) = try signed()
        defer { fx.remove() }
        var text = try String(contentsOfFile: path, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"verdict\" : \"pass\"", with: "\"verdict\" : \"fail\"")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let report = try VerificationReport.verify(recordAt: path)
        #expect(!report.signatureValid)
        #expect(!report.ok)
    }

    @Test func trustedKeyMustMatch() throws {
        let (fx, path, record) = try signed()
        defer { fx.remove() }
        #expect(try VerificationReport.verify(recordAt: path, trustedPublicKey: record.publicKey).ok)
        let other = SigningKey().publicKeyBase64
        let report = try VerificationReport.verify(recordAt: path, trustedPublicKey: other)
        #expect(report.trustedKeyMatches == false)
        #expect(!report.ok)
    }

    @Test func ledgerNeverOverwrites() throws {
        let (fx, path, record) = try signed()
        defer { fx.remove() }
        #expect(throws: SignoffError.self) { try Ledger(directory: fx.path("ledger")).append(record) }
        let entries = try Ledger(directory: fx.path("ledger")).entries()
        #expect(entries.map(\.file) == [path])
        #expect(entries[0].record?.signatureIsValid == true)
        #expect(URL(fileURLWithPath: path).lastPathComponent.range(
            of: #"^\d{8}T\d{6}Z-[0-9a-f]{12}\.json$"#, options: .regularExpression) != nil)
    }

    @Test func keyFileRoundTripAndErrors() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let key = SigningKey()
        try key.write(to: fx.path("key"))
        let attrs = try FileManager.default.attributesOfItem(atPath: fx.path("key"))
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try SigningKey.load(file: fx.path("key")).publicKeyBase64 == key.publicKeyBase64)
        #expect(throws: SignoffError.self) { try key.write(to: fx.path("key")) }
        let fromEnv = try SigningKey.resolve(
            file: nil, environment: [SigningKey.environmentVariable: try String(contentsOfFile: fx.path("key"), encoding: .utf8)])
        #expect(fromEnv?.publicKeyBase64 == key.publicKeyBase64)
        #expect(try SigningKey.resolve(file: nil, environment: [:]) == nil)
        do {
            _ = try SigningKey(base64: "c2hvcnQ=", source: "test")
            Issue.record("a 5-byte key was accepted")
        } catch let e as SignoffError {
            #expect(e.description.contains("decodes to 5 bytes"))
            #expect(!e.description.contains("c2hvcnQ="))
        }
    }

    @Test func inputsCheckTheReportsRecordedHashes() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var report = try fx.passingReport()
        report.plan.sha256 = String(repeating: "0", count: 64)
        let path = try fx.write(report, as: "report.json")
        do {
            _ = try SignoffInputs.load(reports: [path], devices: [fx.path("device.json")])
            Issue.record("a plan with the wrong hash was accepted")
        } catch let e as SignoffError {
            #expect(e.description.contains("plan.json"))
            #expect(e.description.contains("changed"))
        }
    }

    @Test func relativePaths() {
        #expect(RecordPaths.relative("/a/b/c.json", from: "/a/d") == "../b/c.json")
        #expect(RecordPaths.relative("/a/d/e/c.json", from: "/a/d") == "e/c.json")
        #expect(RecordPaths.relative("/x/c.json", from: "/a/d") == "/x/c.json")
        #expect(RecordPaths.resolve("../b/c.json", recordDirectory: "/a/d") == "/a/b/c.json")
    }
}

@Suite struct BuildInfoTests {
    @Test func environmentVariableTakesPrecedence() {
        let b = BuildInfo.current(environment: [BuildInfo.environmentVariable: " 1234abcd \n"])
        #expect(b == BuildInfo(commit: "1234abcd", dirty: nil, source: "env"))
    }

    @Test func otherwiseGitOrUnknown() {
        let b = BuildInfo.current(environment: [:])
        if b.source == "git" {
            #expect(b.commit.count == 40 && b.commit.allSatisfy(\.isHexDigit))
            #expect(b.dirty != nil)
        } else {
            #expect(b == BuildInfo(commit: "unknown", dirty: nil, source: "unknown"))
        }
    }
}
