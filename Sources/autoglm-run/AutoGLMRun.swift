import ArgumentParser

@main
struct AutoGLMRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm-run",
        abstract: "Run a plan with the engine, under phone emulation, and sign off the result.",
        subcommands: [
            RunCommand.self,
            ConvertCommand.self,
            BenchCommand.self,
            BenchKernelCommand.self,
            KernelsCommand.self,
            ExecCommand.self,
            SignoffCommand.self,
            VerifyCommand.self,
            HistoryCommand.self,
            SignoffKeygenCommand.self,
            MeasureAttentionCommand.self,
            MeasureFormatsCommand.self,
            BenchAttentionCommand.self,
            CalibrateAttentionCommand.self,
            EmulateCommand.self,
            SynthCommand.self,
            EngineRunCommand.self,
            MapPlanCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )

    static var subcommandNames: Set<String> {
        Set(configuration.subcommands.compactMap { $0.configuration.commandName })
    }

    /// `autoglm-run --emulate phone …` is the `emulate` subcommand (see `autoglm-run emulate --help`).
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains(where: { $0 == "--emulate" || $0.hasPrefix("--emulate=") }),
           !arguments.isEmpty, !subcommandNames.contains(arguments[0]) {
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
