import ArgumentParser

@main
struct AutoGLMPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm-plan",
        abstract: "Plan per-module weight formats and attention settings for a model on a device.",
        subcommands: [ProfileHostCommand.self]
    )
}
