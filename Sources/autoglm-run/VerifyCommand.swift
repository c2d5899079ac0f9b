import ArgumentParser
import AutoGLMSignoff
import AutoGLMSpecs
import Foundation

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a sign-off record's signature and the SHA-256 of every file it binds.",
        discussion: """
            Relative paths in the record are resolved against the record's folder. Each file that changed or is \
            missing is named. Exit status: 0 all good, 1 a signature or hash check failed, 2 the record is \
            unreadable or malformed.
            """
    )

    @Argument(help: "The sign-off record (a ledger file).")
    var record: String

    @Option(name: .customLong("public-key"),
            help: "Trusted public key (base64 of the raw 32 bytes, or a file holding it); the record must be signed by it.")
    var publicKey: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        let trusted = publicKey.map { value -> String in
            if FileManager.default.fileExists(atPath: value), let text = try? String(contentsOfFile: value, encoding: .utf8) {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return value
        }
        let report = try SignoffCLISupport.badInputExits { try VerificationReport.verify(recordAt: record, trustedPublicKey: trusted) }
        if json {
            FileHandle.standardOutput.write(try SpecLoader.encode(report))
        } else {
            print("\(report.signatureValid ? "OK     " : "BAD    ") signature (\(record))")
            if let t = report.trustedKeyMatches { print("\(t ? "OK     " : "BAD    ") signed by the trusted key") }
            for f in report.files {
                let status = f.status == .ok ? "OK     " : (f.status == .changed ? "CHANGED" : "MISSING")
                print("\(status) \(f.role.rawValue) \(f.resolvedPath)")
            }
            for p in report.problems { SignoffCLISupport.printError("error: \(p)") }
            print(report.ok ? "verified" : "verification FAILED")
        }
        if !report.ok { throw ExitCode(1) }
    }
}
