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
            ExecCommand.self,
            SignoffCommand.self,
            VerifyCommand.self,
            HistoryCommand.self,
            SignoffKeygenCommand.self,
            MeasureAttentionCommand.self,
            BenchAttentionCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )
}
