import ArgumentParser

@main
struct AutoGLMRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm-run",
        abstract: "Run a plan with the engine, under phone emulation, and sign off the result.",
        subcommands: [ExecCommand.self, EmulateCommand.self, SynthCommand.self, EngineRunCommand.self]
    )

    /// `autoglm-run --emulate phone …` is the `emulate` subcommand.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--emulate" || arguments.first?.hasPrefix("--emulate=") == true {
            arguments.insert("emulate", at: 0)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
