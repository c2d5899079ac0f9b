import ArgumentParser
import AutoGLMEngine
import Foundation

/// `autoglm-run convert`: rewrites a GGUF checkpoint with its weight matrices in another GGUF type.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Rewrite a GGUF checkpoint's matrices as f32, f16, bf16, q8_0, q4_0 or q4_1 (metadata and tokenizer kept).")

    @Option(help: "Input GGUF checkpoint.")
    var checkpoint: String

    @Option(help: "Target type: f32, f16, bf16, q8_0, q4_0 or q4_1.")
    var to: String

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output GGUF file.")
    var output: String

    func run() throws {
        guard let format = PackedFormat(rawValue: to.lowercased()), CheckpointConverter.targets.contains(format) else {
            throw ValidationError("--to must be one of \(CheckpointConverter.targets.map(\.rawValue).joined(separator: ", ")), got '\(to)'")
        }
        do {
            let input = try GGUFFile(path: checkpoint)
            let start = Date()
            let summary = try CheckpointConverter.convert(input, to: format, output: output)
            print(String(format: "%@: %d tensors converted to %@, %d kept, %.1f MiB of tensor data, %.1f s", output,
                         summary.convertedTensors, format.rawValue, summary.keptTensors,
                         Double(summary.bytesWritten) / 1_048_576, Date().timeIntervalSince(start)))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
