import ArgumentParser
import AutoGLMSignoff
import AutoGLMSpecs
import Foundation

/// Output and exit-status helpers shared by the sign-off subcommands.
enum SignoffCLISupport {
    /// Prints to standard error.
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
    }

    /// Runs `body`; a `SignoffError` or `SpecError` is printed and becomes exit status 2 (bad input).
    static func badInputExits<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SignoffError {
            SignoffCLISupport.printError("error: \(error)")
            throw ExitCode(2)
        } catch let error as SpecError {
            SignoffCLISupport.printError("error: \(error)")
            throw ExitCode(2)
        }
    }
}

struct SignoffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signoff",
        abstract: "Check run reports against a policy's gates, write CI reports, and record a signed sign-off.",
        discussion: """
            Every gate is evaluated on every report (several devices give a matrix). Limits come from the policy \
            file, else from the plan's own constraints (accuracy loss, TTFT, decode rate, memory budget). A gate \
            whose figure was not measured is reported as NOT MEASURED and fails only when the policy sets \
            "require_measured": true.

            With --ledger, a record binding the SHA-256 of the policy, every run report, its plan, device profile \
            and checkpoint is signed with Ed25519 (key from --key or AUTOGLM_SIGNING_KEY) and added to the ledger \
            folder. The build commit comes from AUTOGLM_BUILD_COMMIT, else `git rev-parse HEAD`, else "unknown".

            Exit status: 0 every gate passes, 1 a gate fails, 2 bad input (unreadable or malformed files, missing \
            key, refused write).
            """
    )

    @Option(name: .customLong("report"), parsing: .upToNextOption, help: "Run report files (one or more).")
    var reports: [String]

    @Option(help: "Policy file (JSON). Default: limits from each plan's constraints, peak within the app budget, no OOM.")
    var policy: String?

    @Option(name: .customLong("device"), help: "Device profile file; repeat for several devices. Matched by id.")
    var devices: [String] = []

    @Option(help: "Checkpoint file to bind instead of each report's checkpoint.path.")
    var checkpoint: String?

    @Option(help: "Write JUnit XML here.")
    var junit: String?

    @Option(help: "Write the self-contained HTML report here.")
    var html: String?

    @Option(help: "Write a Markdown summary here.")
    var markdown: String?

    @Flag(help: "Print the result as JSON instead of text.")
    var json = false

    @Option(help: "Ledger folder: add a signed sign-off record there (needs a signing key).")
    var ledger: String?

    @Option(help: "Signing key file (base64 raw Ed25519 key, see `keygen`). Default: $AUTOGLM_SIGNING_KEY.")
    var key: String?

    struct Output: Encodable {
        var verdict: Verdict
        var result: SignoffResult
        var build: BuildInfo
        var record: String?
    }

    func run() throws {
        let signingKey = try SignoffCLISupport.badInputExits { () -> SigningKey? in
            let k = try SigningKey.resolve(file: key, warn: SignoffCLISupport.printError)
            if ledger != nil && k == nil {
                throw SignoffError.badKey(
                    source: "--key / \(SigningKey.environmentVariable)",
                    reason: "a signing key is needed to add a record to the ledger (create one with `autoglm-run keygen -o FILE`)")
            }
            return k
        }
        let policyValue = try SignoffCLISupport.badInputExits { try policy.map(SignoffPolicy.load) ?? SignoffPolicy() }
        let loaded = try SignoffCLISupport.badInputExits { try SignoffInputs.load(reports: reports, devices: devices, checkpoint: checkpoint) }
        let result = GateEvaluator.evaluate(loaded.map { (path: $0.path, report: $0.report) }, policy: policyValue)
        let build = BuildInfo.current()
        let createdAt = SignoffFormat.timestamp()
        var recordPath: String?
        try SignoffCLISupport.badInputExits {
            if let junit { try FileIO.writeOutput(JUnitReport.render(result, timestamp: createdAt), to: junit) }
            if let markdown { try FileIO.writeOutput(SummaryReport.markdown(result, build: build), to: markdown) }
            if let html {
                let text = HTMLReport.render(
                    result, reports: loaded.map { (report: $0.report, plan: $0.plan) }, build: build, createdAt: createdAt)
                try FileIO.writeOutput(text, to: html)
            }
            if let ledger, let signingKey {
                let book = Ledger(directory: ledger)
                try book.prepare()
                let record = try SignoffRecord.make(
                    result: result, loaded: loaded, policyPath: policy, key: signingKey, build: build,
                    recordDirectory: book.directory, createdAt: createdAt)
                recordPath = try book.append(record)
            }
        }
        if json {
            let data = try SpecLoader.encode(Output(verdict: result.verdict, result: result, build: build, record: recordPath))
            FileHandle.standardOutput.write(data)
        } else {
            print(SummaryReport.text(result), terminator: "")
            if let recordPath { print("record: \(recordPath)") }
        }
        if result.verdict == .fail { throw ExitCode(1) }
    }
}

struct SignoffKeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an Ed25519 signing key for sign-off records.",
        discussion: """
            The key file holds one line: the base64 of the 32-byte raw Ed25519 private key. It is created with \
            mode 0600 and never overwritten. The same text can be given in AUTOGLM_SIGNING_KEY. Only the public \
            key is printed.
            """
    )

    @Option(name: .shortAndLong, help: "Where to write the private key.")
    var output: String

    func run() throws {
        let key = SigningKey()
        try SignoffCLISupport.badInputExits { try key.write(to: output) }
        print("wrote \(output) (mode 0600)")
        print("public key: \(key.publicKeyBase64)")
    }
}
