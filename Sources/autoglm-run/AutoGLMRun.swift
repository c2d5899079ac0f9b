import ArgumentParser

@main
struct AutoGLMRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm-run",
        abstract: "Run a plan with the engine, under phone emulation, and sign off the result.",
        subcommands: [RunCommand.self, ConvertCommand.self, BenchCommand.self, ExecCommand.self, EmulateCommand.self,
                      SynthCommand.self, EngineRunCommand.self, MapPlanCommand.self],
        defaultSubcommand: RunCommand.self
    )

    /// `autoglm-run --emulate phone …` is the `emulate` subcommand (see `autoglm-run emulate --help`).
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains(where: { $0 == "--emulate" || $0.hasPrefix("--emulate=") }),
           arguments.first.map({ !["emulate", "run", "exec", "synth", "bench", "convert", "engine-run", "map-plan"].contains($0) }) ?? false {
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
