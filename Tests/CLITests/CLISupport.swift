import Foundation
import Testing

/// Finds and runs the built executables (`autoglm-run`, `autoglm-plan`) next to the test bundle.
enum CLITool {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The executable `name` in the test bundle's directory or its parent.
    static func binary(_ name: String) throws -> String {
        var dirs: [String] = []
        if let exe = Bundle.main.executablePath { dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent().path) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path)
        for d in dirs {
            for candidate in [d, URL(fileURLWithPath: d).deletingLastPathComponent().path] {
                let path = candidate + "/" + name
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
        }
        Issue.record("\(name) executable not found next to the test bundle (looked in \(dirs))")
        throw CocoaError(.fileNoSuchFile)
    }

    /// Runs `name` with `arguments` and collects its exit status and output.
    static func run(_ name: String, _ arguments: [String], currentDirectory: URL? = nil) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary(name))
        process.arguments = arguments
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}
