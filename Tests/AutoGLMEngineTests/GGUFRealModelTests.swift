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

    /// Re-writing the checkpoint from its own metadata and tensors, streamed from the mapping, reproduces the file
    /// byte for byte.
    @Test func realModelRewriteIsByteIdentical() throws {
        let file = try GGUFTestFixtures.requireSmolLM2()
        let path = GGUFTestFixtures.temporaryPath("smollm2-rewrite.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let descriptors = file.tensors.map { GGUFTensorDescriptor(name: $0.name, dimensions: $0.dimensions, type: $0.type) }
        try GGUFWriter.write(to: path, metadata: file.metadataEntries, tensors: descriptors,
                             alignment: file.alignment) { index, sink in
            let data = file.data(for: file.tensors[index])
            // Stream in 64 KiB pieces, as a converter would.
            var start = 0
            while start < data.count {
                let end = min(start + 65_536, data.count)
                try sink.write(UnsafeRawBufferPointer(rebasing: data[start..<end]))
                start = end
            }
        }
        let copy = try MappedFile(path: path)
        #expect(copy.count == file.mapping.count)
        let a = try #require(copy.bytes.baseAddress)
        let b = try #require(file.mapping.bytes.baseAddress)
        #expect(memcmp(a, b, copy.count) == 0)
    }
}
