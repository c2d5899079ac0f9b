import AutoGLMProcess
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
        let r = try CapturedProcess.run(try binary(name), arguments, currentDirectory: currentDirectory?.path)
        return Output(status: r.status, stdout: r.stdoutText, stderr: r.stderrText)
    }
}
