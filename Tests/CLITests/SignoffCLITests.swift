import AutoGLMProcess
import AutoGLMSpecs
import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Helpers for the sign-off command tests, kept in a namespace.
enum SignoffCLI {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let deviceId = "snapdragon-8-gen-3-12gb"

    /// The built `autoglm-run`: next to the running test bundle, else `<root>/.build/{debug,release}/autoglm-run`.
    static func binary() throws -> String {
        var candidates: [String] = []
        if let exe = Bundle.main.executableURL {
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent("autoglm-run").path)
                dir.deleteLastPathComponent()
            }
        }
        let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        candidates.append(arg0.appendingPathComponent("autoglm-run").path)
        for config in ["debug", "release"] { candidates.append(packageRoot + "/.build/\(config)/autoglm-run") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CLIError.missingBinary(candidates)
        }
        return found
    }

    enum CLIError: Error, CustomStringConvertible {
        case missingBinary([String])
        var description: String {
            switch self {
            case let .missingBinary(paths):
                return "autoglm-run not built; looked in: \(paths.joined(separator: ", ")) (run `swift build`)"
            }
        }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `autoglm-run` with `args` in `cwd`; `env` entries are added to (or, when nil, removed from) the environment.
    static func run(_ args: [String], cwd: String, env: [String: String?] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary())
        process.arguments = args
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        var environment = ProcessInfo.processInfo.environment
        environment["AUTOGLM_SIGNING_KEY"] = nil
        environment["AUTOGLM_BUILD_COMMIT"] = "cafe0000cafe0000cafe0000cafe0000cafe0000"
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        // Outputs go to files so neither stream can fill a pipe and block the child.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-run-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        let o = try Data(contentsOf: URL(fileURLWithPath: base + ".out"))
        let e = try Data(contentsOf: URL(fileURLWithPath: base + ".err"))
        return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }

    /// A temporary folder with a plan, a device profile, a checkpoint and a passing run report (`report.json`).
    struct Fixture {
        let dir: String

        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-signoff-cli-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: packageRoot + "/DeviceProfiles/\(deviceId).json", toPath: dir + "/device.json")
            try Data((0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) })
                .write(to: URL(fileURLWithPath: dir + "/weights.bin"))
            try SpecLoader.encode(Fixture.plan()).write(to: URL(fileURLWithPath: dir + "/plan.json"))
            try write(try report(), as: "report.json")
        }

        func path(_ name: String) -> String { dir + "/" + name }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }

        static func prediction() -> Plan.Prediction {
            var pr = Plan.Prediction()
            pr.peakMemoryBytes = 5_900_000_000
            pr.weightBytes = 5_420_000_000
            pr.kvCacheBytes = 180_000_000
            pr.ttftSeconds = 4.2
            pr.decodeTokensPerSecond = 9.5
            pr.accuracyLoss = 0.021
            pr.stages = [
                .init(stage: "vision_encode", seconds: 1.6, activationBytes: 90_000_000, unit: "gpu", bound: "compute"),
                .init(stage: "prefill", seconds: 2.6, activationBytes: 150_000_000, unit: "cpu", bound: "compute"),
                .init(stage: "decode_token", seconds: 0.105, activationBytes: 2_000_000, unit: "cpu", bound: "bandwidth"),
            ]
            return pr
        }

        static func plan() -> Plan {
            var p = Plan()
            p.generator = "fixture"
            p.model = .init(id: "autoglm-phone-9b", parameters: 9_000_000_000)
            p.device = .init(id: deviceId, appBudgetBytes: 6_500_000_000)
            p.workload = Workload(id: "screenshot-agent", description: "fixture", image: nil, promptTokens: 300,
                                  outputTokens: 64)
            p.constraints.maxAccuracyLoss = 0.05
            p.constraints.maxTTFTSeconds = 8
            p.constraints.minDecodeTokensPerSecond = 5
            p.feasible = true
            p.modules = [("vision_encoder", 420_000_000), ("text_decoder[0-19]", 2_100_000_000),
                         ("text_decoder[20-39]", 2_300_000_000), ("lm_head", 600_000_000)].map {
                var m = Plan.Module()
                m.name = $0.0
                m.weightBytes = $0.1
                return m
            }
            p.predicted = prediction()
            return p
        }

        func report() throws -> RunReport {
            var r = RunReport()
            r.kind = .emulation
            r.createdAt = "2026-11-23T05:00:00Z"
            r.build.commit = "0123456789abcdef0123456789abcdef01234567"
            r.plan.path = "plan.json"
            r.plan.modelId = "autoglm-phone-9b"
            r.plan.deviceId = deviceId
            r.plan.appBudgetBytes = 6_500_000_000
            r.plan.constraints = Fixture.plan().constraints
            r.checkpoint.path = "weights.bin"
            r.checkpoint.bytes = 2048
            r.host.cpu = "x86_64 test host"
            r.host.threads = 2
            r.workload.id = "screenshot-agent"
            r.predicted = Fixture.prediction()
            r.measured.ttftSeconds = Statistic([5.1, 5.3, 5.2])
            r.measured.decodeTokensPerSecond = Statistic([7.9, 8.1, 8.0])
            r.measured.peakMemoryBytes = 5_700_000_000
            r.measured.weightBytes = 5_430_000_000
            r.measured.kvCacheBytes = 180_000_000
            r.measured.residentBytesByModule = ["vision_encoder": 421_000_000, "text_decoder": 4_402_000_000,
                                                "lm_head": 601_000_000]
            r.measured.stages = [
                .init(stage: "vision_encode", seconds: Statistic([1.9, 2.0, 2.1]), tokens: 1024),
                .init(stage: "prefill", seconds: Statistic([3.1, 3.2, 3.3]), tokens: 1324),
                .init(stage: "decode_token", seconds: Statistic([0.12, 0.125, 0.13]), tokens: 64),
            ]
            r.measured.repeats = 3
            var acc = RunReport.Accuracy()
            acc.measured = false
            acc.reason = "synthetic weights: no reference run"
            r.accuracy = acc
            var em = RunReport.Emulation()
            em.cgroupVersion = "v2"
            em.memoryCapBytes = 6_500_000_000
            em.peakBytes = 5_750_000_000
            em.peakSource = "memory.peak"
            em.wallSeconds = 20
            em.timeline = (0...40).map { i in
                let t = Double(i) * 0.5
                let phase = t < 3 ? "load" : (t < 8 ? "prefill" : "decode")
                let bytes = t < 3 ? 5_200_000_000 * t / 3 : (t < 8 ? 5_200_000_000 + 110_000_000 * (t - 3)
                                                                   : 5_600_000_000 + 5_000_000 * (t - 8))
                return .init(seconds: t, bytes: Int(bytes), phase: phase)
            }
            r.emulation = em
            return r
        }

        @discardableResult
        func write(_ report: RunReport, as name: String) throws -> String {
            try SpecLoader.encode(report).write(to: URL(fileURLWithPath: path(name)))
            return path(name)
        }

        @discardableResult
        func write(text: String, as name: String) throws -> String {
            try text.write(toFile: path(name), atomically: true, encoding: .utf8)
            return path(name)
        }

        func signoff(_ extra: [String], reports: [String] = ["report.json"], env: [String: String?] = [:]) throws -> Result {
            try SignoffCLI.run(["signoff", "--report"] + reports + ["--device", "device.json"] + extra, cwd: dir, env: env)
        }
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// The common JUnit XML schema (the layout Jenkins and Ant consume), written out for validation with xmllint.
    static let junitSchema = """
        <?xml version="1.0" encoding="UTF-8"?>
        <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
          <xs:simpleType name="decimalTime"><xs:restriction base="xs:decimal"><xs:minInclusive value="0"/></xs:restriction></xs:simpleType>
          <xs:simpleType name="localTimestamp">
            <xs:restriction base="xs:dateTime"><xs:pattern value="[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"/></xs:restriction>
          </xs:simpleType>
          <xs:complexType name="resultType" mixed="true">
            <xs:attribute name="message" type="xs:string"/>
            <xs:attribute name="type" type="xs:string"/>
          </xs:complexType>
          <xs:element name="failure" type="resultType"/>
          <xs:element name="error" type="resultType"/>
          <xs:element name="skipped">
            <xs:complexType mixed="true"><xs:attribute name="message" type="xs:string"/></xs:complexType>
          </xs:element>
          <xs:element name="system-out" type="xs:string"/>
          <xs:element name="system-err" type="xs:string"/>
          <xs:element name="properties">
            <xs:complexType><xs:sequence>
              <xs:element name="property" maxOccurs="unbounded">
                <xs:complexType>
                  <xs:attribute name="name" type="xs:string" use="required"/>
                  <xs:attribute name="value" type="xs:string" use="required"/>
                </xs:complexType>
              </xs:element>
            </xs:sequence></xs:complexType>
          </xs:element>
          <xs:element name="testcase">
            <xs:complexType>
              <xs:sequence>
                <xs:choice minOccurs="0" maxOccurs="unbounded">
                  <xs:element ref="skipped"/><xs:element ref="error"/><xs:element ref="failure"/>
                  <xs:element ref="system-out"/><xs:element ref="system-err"/>
                </xs:choice>
              </xs:sequence>
              <xs:attribute name="name" type="xs:string" use="required"/>
              <xs:attribute name="assertions" type="xs:string"/>
              <xs:attribute name="time" type="decimalTime"/>
              <xs:attribute name="classname" type="xs:string"/>
              <xs:attribute name="status" type="xs:string"/>
            </xs:complexType>
          </xs:element>
          <xs:element name="testsuite">
            <xs:complexType>
              <xs:sequence>
                <xs:element ref="properties" minOccurs="0"/>
                <xs:element ref="testcase" minOccurs="0" maxOccurs="unbounded"/>
                <xs:element ref="system-out" minOccurs="0"/>
                <xs:element ref="system-err" minOccurs="0"/>
              </xs:sequence>
              <xs:attribute name="name" type="xs:string" use="required"/>
              <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
              <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
              <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
              <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
              <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
              <xs:attribute name="time" type="decimalTime"/>
              <xs:attribute name="timestamp" type="localTimestamp"/>
              <xs:attribute name="hostname" type="xs:token"/>
              <xs:attribute name="id" type="xs:string"/>
              <xs:attribute name="package" type="xs:token"/>
            </xs:complexType>
          </xs:element>
          <xs:element name="testsuites">
            <xs:complexType>
              <xs:sequence><xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
              <xs:attribute name="name" type="xs:string"/>
              <xs:attribute name="time" type="decimalTime"/>
              <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
              <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
              <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
              <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
            </xs:complexType>
          </xs:element>
        </xs:schema>
        """
}

@Suite struct SignoffCLITests {
    typealias Fixture = SignoffCLI.Fixture

    @Test func passingReportExitsZero() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let r = try fx.signoff([])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("sign-off: PASS (1 of 1 reports pass)"))
        #expect(r.stdout.contains("NOT MEASURED"))  // accuracy on synthetic weights is reported, not failed
        #expect(r.stdout.contains("peak_memory"))
    }

    @Test func missedGateExitsOneWithReason() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        try fx.write(text: #"{"max_peak_budget_fraction": 0.8}"#, as: "signoff.json")
        let r = try fx.signoff(["--policy", "signoff.json"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("reason: Peak memory 5.75 GB exceeds the limit ≤ 5.20 GB"), "\(r.stdout)")
        #expect(r.stdout.contains("sign-off: FAIL"))
    }

    @Test func unmeasuredGateFailsWhenRequired() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        try fx.write(text: #"{"require_measured": true}"#, as: "signoff.json")
        let r = try fx.signoff(["--policy", "signoff.json"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("FAIL (not measured)"))
        #expect(r.stdout.contains("synthetic weights: no reference run"))
    }

    @Test func matrixOfTwoDevicesFailsIfOneFails() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var second = try fx.report()
        second.emulation?.oomKilled = true
        second.emulation?.phaseAtExit = "prefill"
        try fx.write(second, as: "report-b.json")
        let r = try fx.signoff(["--json"], reports: ["report.json", "report-b.json"])
        #expect(r.status == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["verdict"] as? String == "fail")
        let evaluations = try #require((json["result"] as? [String: Any])?["evaluations"] as? [[String: Any]])
        #expect(evaluations.map { $0["verdict"] as? String } == ["pass", "fail"])
    }

    @Test func junitOutputHasTheSchemasStructure() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var second = try fx.report()
        second.emulation?.peakBytes = 7_100_000_000
        try fx.write(second, as: "report-b.json")
        let r = try fx.signoff(["--junit", "junit.xml", "--markdown", "summary.md", "--html", "report.html"],
                               reports: ["report.json", "report-b.json"])
        #expect(r.status == 1)
        let xml = try String(contentsOfFile: fx.path("junit.xml"), encoding: .utf8)
        let doc = try XMLDocument(xmlString: xml, options: [])
        let root = try #require(doc.rootElement())
        #expect(root.name == "testsuites")
        let suites = root.elements(forName: "testsuite")
        #expect(suites.count == 2)
        for s in suites {
            #expect(s.attribute(forName: "name") != nil)
            #expect(s.elements(forName: "testcase").count == 10)
            #expect(s.elements(forName: "properties").count == 1)
        }
        let failures = suites[1].elements(forName: "testcase").filter { !$0.elements(forName: "failure").isEmpty }
        #expect(failures.map { $0.attribute(forName: "name")?.stringValue } == ["peak_memory"])
        #expect(failures.first?.elements(forName: "failure").first?.attribute(forName: "message")?.stringValue?
            .contains("exceeds") == true)
        #expect(suites[0].elements(forName: "testcase").allSatisfy { $0.elements(forName: "failure").isEmpty })
        // Validate against the JUnit schema where xmllint is installed.
        if let xmllint = SignoffCLI.which("xmllint") {
            try SignoffCLI.junitSchema.write(toFile: fx.path("junit.xsd"), atomically: true, encoding: .utf8)
            let r = try CapturedProcess.run(xmllint, ["--noout", "--schema", fx.path("junit.xsd"), fx.path("junit.xml")])
            #expect(r.status == 0, "xmllint: \(r.stderrText)")
        }
        let md = try String(contentsOfFile: fx.path("summary.md"), encoding: .utf8)
        #expect(md.hasPrefix("# Sign-off: FAIL"))
        let html = try String(contentsOfFile: fx.path("report.html"), encoding: .utf8)
        #expect(html.components(separatedBy: "<svg").count - 1 == 8)
    }

    @Test(arguments: [
        (#"{"max_peak_budget_fraction": 0}"#, "max_peak_budget_fraction"),
        (#"{"min_decode_tokens_per_second": "fast"}"#, "min_decode_tokens_per_second"),
        (#"{"require_measurement": true}"#, "require_measurement"),
    ])
    func malformedPolicyExitsTwoNamingTheField(policy: String, field: String) throws {
        let fx = try Fixture()
        defer { fx.remove() }
        try fx.write(text: policy, as: "signoff.json")
        let r = try fx.signoff(["--policy", "signoff.json"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("signoff.json"), "\(r.stderr)")
        #expect(r.stderr.contains("'\(field)'"), "\(r.stderr)")
    }

    @Test func malformedReportExitsTwoNamingTheField() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var text = try String(contentsOfFile: fx.path("report.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "\"peak_memory_bytes\" : 5700000000", with: "\"peak_memory_bytes\" : \"big\"")
        try fx.write(text: text, as: "bad.json")
        let r = try fx.signoff([], reports: ["bad.json"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("bad.json"), "\(r.stderr)")
        #expect(r.stderr.contains("measured.peak_memory_bytes"), "\(r.stderr)")
        let missing = try fx.signoff([], reports: ["nowhere.json"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nowhere.json"))
    }

    @Test func reportWithoutItsPlanExitsTwo() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var r = try fx.report()
        r.plan.path = "missing-plan.json"
        try fx.write(r, as: "orphan.json")
        let out = try fx.signoff([], reports: ["orphan.json"])
        #expect(out.status == 2)
        #expect(out.stderr.contains("plan.path"), "\(out.stderr)")
        #expect(out.stderr.contains("missing-plan.json"))
    }

    @Test func ledgerNeedsAKey() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let r = try fx.signoff(["--ledger", "ledger"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("signing key"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fx.path("ledger")))
    }

    @Test func signVerifyTamperAndHistory() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        let keygen = try SignoffCLI.run(["keygen", "-o", "key.txt"], cwd: fx.dir)
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let keyText = try String(contentsOfFile: fx.path("key.txt"), encoding: .utf8)
        #expect(!keygen.stdout.contains(keyText.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try SignoffCLI.run(["keygen", "-o", "key.txt"], cwd: fx.dir).status == 2)

        try fx.write(text: #"{"max_ttft_seconds": 6}"#, as: "signoff.json")
        let signed = try fx.signoff(["--policy", "signoff.json", "--ledger", "ledger", "--key", "key.txt"])
        #expect(signed.status == 0, "\(signed.stdout)\(signed.stderr)")
        let records = try FileManager.default.contentsOfDirectory(atPath: fx.path("ledger"))
        #expect(records.count == 1)
        let record = fx.path("ledger/" + records[0])
        #expect(!(try String(contentsOfFile: record, encoding: .utf8)).contains(keyText.trimmingCharacters(in: .whitespacesAndNewlines)))

        // A second sign-off with the key in the environment, failing this time, is recorded beside the first.
        try fx.write(text: #"{"max_ttft_seconds": 5}"#, as: "strict.json")
        let second = try fx.signoff(["--policy", "strict.json", "--ledger", "ledger"], env: ["AUTOGLM_SIGNING_KEY": keyText])
        #expect(second.status == 1)
        let history = try SignoffCLI.run(["history", "--ledger", "ledger"], cwd: fx.dir)
        #expect(history.status == 0)
        let lines = history.stdout.split(separator: "\n")
        #expect(lines.count == 2, "\(history.stdout)")
        #expect(history.stdout.contains("PASS") && history.stdout.contains("FAIL"))
        #expect(history.stdout.contains(SignoffCLI.deviceId))
        #expect(history.stdout.contains("cafe0000cafe"))  // the build, from AUTOGLM_BUILD_COMMIT
        #expect(history.stdout.contains("0123456789ab"))  // the engine build, from the report
        let historyJSON = try SignoffCLI.run(["history", "--ledger", "ledger", "--json"], cwd: fx.dir)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(historyJSON.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0["signature_valid"] as? Bool == true })

        let ok = try SignoffCLI.run(["verify", record], cwd: fx.dir)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("verified"))

        // Changing one byte of any bound file makes verify fail and name that file.
        for name in ["report.json", "plan.json", "device.json", "weights.bin", "signoff.json"] {
            let url = URL(fileURLWithPath: fx.path(name))
            let original = try Data(contentsOf: url)
            var changed = original
            changed[changed.count - 2] ^= 0x20
            try changed.write(to: url)
            let bad = try SignoffCLI.run(["verify", record], cwd: fx.dir)
            #expect(bad.status == 1, "\(name): \(bad.stdout)")
            #expect(bad.stderr.contains("\(fx.path(name)): "), "\(name): \(bad.stderr)")
            #expect(bad.stdout.contains("CHANGED"))
            #expect(bad.stdout.split(separator: "\n").filter { $0.hasPrefix("CHANGED") }.count == 1)
            try original.write(to: url)
        }
        #expect(try SignoffCLI.run(["verify", record], cwd: fx.dir).status == 0)
        let verifyJSON = try SignoffCLI.run(["verify", record, "--json"], cwd: fx.dir)
        let verified = try #require(try JSONSerialization.jsonObject(with: Data(verifyJSON.stdout.utf8)) as? [String: Any])
        #expect(verified["signature_valid"] as? Bool == true)
        #expect((verified["files"] as? [[String: Any]])?.map { $0["role"] as? String }
            == ["policy", "run_report", "plan", "device_profile", "checkpoint"])
        let publicKey = try #require(keygen.stdout.split(separator: "\n").first { $0.hasPrefix("public key: ") })
            .dropFirst("public key: ".count)
        #expect(try SignoffCLI.run(["verify", record, "--public-key", String(publicKey)], cwd: fx.dir).status == 0)
        let otherKey = try SignoffCLI.run(["keygen", "-o", "other.txt"], cwd: fx.dir)
        let otherPublic = try #require(otherKey.stdout.split(separator: "\n").first { $0.hasPrefix("public key: ") })
            .dropFirst("public key: ".count)
        let untrusted = try SignoffCLI.run(["verify", record, "--public-key", String(otherPublic)], cwd: fx.dir)
        #expect(untrusted.status == 1)
        #expect(untrusted.stderr.contains("trusted public key"))

        // Changing the record itself breaks the signature.
        let recordText = try String(contentsOfFile: record, encoding: .utf8)
        try recordText.replacingOccurrences(of: "\"verdict\" : \"pass\"", with: "\"verdict\" : \"fail\"")
            .write(toFile: record, atomically: true, encoding: .utf8)
        let forged = try SignoffCLI.run(["verify", record], cwd: fx.dir)
        #expect(forged.status == 1)
        #expect(forged.stderr.contains("signature"))

        // A file that is not a record is bad input.
        let notRecord = try SignoffCLI.run(["verify", fx.path("plan.json")], cwd: fx.dir)
        #expect(notRecord.status == 2)
        #expect(notRecord.stderr.contains("not a valid sign-off record"))
    }
}
