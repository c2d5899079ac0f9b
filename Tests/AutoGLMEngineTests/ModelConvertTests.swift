import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("Checkpoint conversion", .serialized)
struct ModelConvertTests {
    @Test(arguments: [PackedFormat.f32, .q4_0])
    func realModelConvertedCheckpointMatchesLoadTimeConversion(format: PackedFormat) throws {
        let source = try ModelTestSupport.smolLM2()
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("smol-\(format).gguf").path
        let summary = try CheckpointConverter.convert(source, to: format, output: path)
        let converted = try GGUFFile(path: path)
        // Matrices change type; norms stay F32; metadata and tokenizer are carried over.
        #expect(summary.convertedTensors == 30 * 7 + 1)
        #expect(converted.tensor(named: "blk.3.ffn_down.weight")?.type == format.ggmlType)
        #expect(converted.tensor(named: "token_embd.weight")?.type == format.ggmlType)
        #expect(converted.tensor(named: "blk.3.ffn_norm.weight")?.type == .f32)
        #expect(try converted.int("general.file_type") == Int(CheckpointConverter.fileType(format)!))
        #expect(try converted.stringArray("tokenizer.ggml.tokens")?.count == 49152)
        // The converted file runs exactly like the original converted at load time.
        let prompt: [Int32] = [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]
        let fromFile = try InferenceSession(model: try DecoderModel.load(gguf: converted), capacity: 32,
                                            pool: ModelTestSupport.pool)
        let atLoad = try InferenceSession(model: try DecoderModel.load(gguf: source, policy: .uniform(format)),
                                          capacity: 32, pool: ModelTestSupport.pool)
        let a = Array(try fromFile.forward(prompt))
        let b = Array(try atLoad.forward(prompt))
        #expect(a == b)
    }

    @Test func engineOnlyFormatsCannotBeWrittenToGGUF() throws {
        let source = try ModelTestSupport.smolLM2()
        #expect(throws: ModelError.self) {
            try CheckpointConverter.convert(source, to: .int4g32, output: "/tmp/never-written.gguf")
        }
    }
}
