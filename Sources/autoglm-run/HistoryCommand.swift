import ArgumentParser
import AutoGLMSignoff
import AutoGLMSpecs
import Foundation

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List the sign-off records in a ledger: time, verdict, devices, builds, signature check.",
        discussion: "Only each record's signature is checked here; use `verify` to check the bound files too."
    )

    @Option(help: "Ledger folder.")
    var ledger: String = "ledger"

    @Flag(help: "Print the entries as JSON.")
    var json = false

    struct Row: Encodable {
        var file: String
        var createdAt: String?
        var verdict: Verdict?
        var devices: [String]
        var build: String?
        var engineBuilds: [String]
        var signatureValid: Bool
        var error: String?
        enum CodingKeys: String, CodingKey {
            case file, createdAt = "created_at", verdict, devices, build, engineBuilds = "engine_builds"
            case signatureValid = "signature_valid", error
        }
    }

    func run() throws {
        let entries = try SignoffCLISupport.badInputExits { try Ledger(directory: ledger).entries() }
        let rows = entries.map { e -> Row in
            guard let r = e.record else {
                return Row(file: e.file, createdAt: nil, verdict: nil, devices: [], build: nil, engineBuilds: [],
                           signatureValid: false, error: e.error)
            }
            return Row(file: e.file, createdAt: r.createdAt, verdict: r.verdict, devices: r.devices,
                       build: r.build.commit + (r.build.dirty == true ? "+dirty" : ""), engineBuilds: r.engineBuilds,
                       signatureValid: r.signatureIsValid, error: nil)
        }
        if json {
            FileHandle.standardOutput.write(try SpecLoader.encode(rows))
            return
        }
        if rows.isEmpty { print("no records in \(ledger)"); return }
        for row in rows {
            let name = URL(fileURLWithPath: row.file).lastPathComponent
            if let error = row.error {
                print("UNREADABLE  \(name): \(error)")
                continue
            }
            let verdict = row.verdict?.label ?? "?"
            let sig = row.signatureValid ? "signed" : "BAD SIGNATURE"
            print("\(row.createdAt ?? "")  \(verdict.padding(toLength: 4, withPad: " ", startingAt: 0))  "
                + "devices \(row.devices.joined(separator: ","))  build \(shortCommit(row.build ?? ""))  "
                + "engine \(row.engineBuilds.map(shortCommit).joined(separator: ","))  \(sig)  \(name)")
        }
    }

    func shortCommit(_ c: String) -> String { c.count > 12 && !c.contains("+") ? String(c.prefix(12)) : c }
}
