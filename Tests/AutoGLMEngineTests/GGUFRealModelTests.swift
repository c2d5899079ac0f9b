import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("GGUF on the real SmolLM2 checkpoint")
struct GGUFRealModelTests {
    @Test func realModelHeaderAndConfig() throws {
        let file = try GGUFTestFixtures.requireSmolLM2()
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(file.tensors.count == 272)
        #expect(file.metadata.count == 33)
        let config = try GGUFModelConfig(file: file)
        #expect(config.architecture == "llama")
        #expect(config.blockCount == 30)
        #expect(config.embeddingLength == 576)
        #expect(config.headCount == 9)
        #expect(config.headCountKV == 3)
        #expect(config.headDimension == 64)
        #expect(config.feedForwardLength == 1536)
        #expect(config.vocabularySize == 49152)
        #expect(config.contextLength == 8192)
        #expect(config.ropeFreqBase == 100_000)
        #expect(config.ropeDimensionCount == 64)
        #expect(abs(config.rmsNormEpsilon - 1e-5) < 1e-9)
        #expect(config.tiedOutput)
        #expect(config.fileType == 3)
    }

    @Test func realModelTensorDirectory() throws {
        let file = try GGUFTestFixtures.requireSmolLM2()
        #expect(file.tensor(named: "output.weight") == nil)
        let embedding = try file.requireTensor("token_embd.weight")
        #expect(embedding.type == .q8_0)
        #expect(embedding.dimensions == [576, 49152])
        #expect(embedding.byteCount == 576 / 32 * 34 * 49152)
        let perLayer = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
        for layer in 0..<30 {
            for name in perLayer {
                let info = try file.requireTensor("blk.\(layer).\(name).weight")
                #expect(info.type == .q4_1, "\(info)")
            }
            #expect(try file.requireTensor("blk.\(layer).attn_norm.weight").type == .f32)
            #expect(try file.requireTensor("blk.\(layer).ffn_norm.weight").type == .f32)
        }
        #expect(try file.requireTensor("blk.0.attn_k.weight").dimensions == [576, 192])
        #expect(try file.requireTensor("blk.0.ffn_down.weight").dimensions == [1536, 576])
        #expect(try file.requireTensor("output_norm.weight").type == .f32)
        // Every tensor lies inside the file, aligned, and the last one ends at the end of the file.
        let end = file.tensors.map { $0.offset + $0.byteCount }.max()
        #expect(end == file.mapping.count)
        #expect(file.tensors.allSatisfy { $0.offset % 32 == 0 })
        // RMSNorm weights are ordinary floats: finite and mostly positive.
        let norm = try file.data(named: "blk.0.attn_norm.weight").bindMemory(to: Float.self)
        #expect(norm.count == 576)
        #expect(norm.allSatisfy { $0.isFinite })
    }
}
