import AutoGLMPlanner
import AutoGLMSpecs
import Foundation
import Testing

@testable import AutoGLMEngine

/// A GLM-4.1V-shaped manifest small enough for unit tests.
enum TinyGLM4V {
    static let json = """
    {
      "schema_version": 1, "id": "tiny-glm4v", "name": "Tiny GLM-4.1V", "architecture": "glm4v", "source": "tests",
      "modules": [
        { "name": "vision", "kind": "vision_encoder", "layers": 2, "hidden": 32, "heads": 2, "head_dim": 16,
          "mlp_hidden": 64, "mlp": "swiglu", "norm": "rms", "patch_size": 4, "temporal_patch": 2, "channels": 3,
          "patch_bias": true, "position_grid": 3, "extra_norms": 2 },
        { "name": "projector", "kind": "projector", "style": "conv_merger", "input_hidden": 32, "output_hidden": 64,
          "merge": 2, "ffn": 96 },
        { "name": "embedding", "kind": "embedding", "vocab": 256, "hidden": 64 },
        { "name": "decoder", "kind": "text_decoder", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2,
          "head_dim": 16, "ffn": 96, "qkv_bias": true, "norms_per_layer": 4, "fused_gate_up": true,
          "rotary_fraction": 0.5, "rotary_interleaved": true, "max_positions": 256 },
        { "name": "head", "kind": "head", "vocab": 256, "hidden": 64, "tied": false }
      ],
      "vision": { "patch_size": 4, "merge": 2, "temporal_patch": 2, "min_pixels": 64, "max_pixels": 100000 }
    }
    """

    static func manifest() throws -> ModelManifest {
        try JSONDecoder().decode(ModelManifest.self, from: Data(json.utf8))
    }

    static func plan(_ formats: [(String, WeightFormat)]) -> Plan {
        var p = Plan()
        p.model = Plan.ModelRef(id: "tiny-glm4v", parameters: 0)
        p.feasible = true
        p.modules = formats.map { name, format in
            var m = Plan.Module()
            m.name = name
            m.format = format
            return m
        }
        return p
    }

    static func temporaryPath(_ suffix: String) -> String {
        NSTemporaryDirectory() + "autoglm-synth-\(UUID().uuidString)-\(suffix).gguf"
    }

    /// The text decoder of a synthetic F32 checkpoint with random weights (the file is removed once mapped).
    static func f32Decoder(seed: UInt64) throws -> DecoderModel {
        let path = temporaryPath("decoder")
        defer { unlink(path) }
        try SyntheticCheckpoint.write(manifest: try manifest(), plan: plan([("decoder", .f32), ("embedding", .f32),
                                                                           ("head", .f32)]),
                                      planSHA256: "x", seed: seed, to: path)
        let source = try CheckpointSource(path: path, mode: .mmap)
        return try DecoderModel.load(config: try DecoderConfig(gguf: source.file), source: source)
    }
}

struct SyntheticCheckpointTests {
    static let mixed: [(String, WeightFormat)] = [
        ("vision", .f16), ("projector", .int8), ("embedding", .q8_0), ("decoder", .int4g32), ("head", .q4_0),
    ]

    @Test func writesEveryTensorInThePlansFormats() throws {
        let manifest = try TinyGLM4V.manifest()
        let plan = TinyGLM4V.plan(Self.mixed)
        let path = TinyGLM4V.temporaryPath("formats")
        defer { unlink(path) }
        try SyntheticCheckpoint.write(manifest: manifest, plan: plan, planSHA256: "abc", seed: 5, to: path)
        let source = try CheckpointSource(path: path, mode: .mmap)
        #expect(source.isSynthetic)
        #expect(try source.file.string(SyntheticCheckpoint.planHashKey) == "abc")
        #expect(try source.file.int("glm4v.vision.block_count") == 2)
        #expect(Set(source.sourceTensorNames) == Set(manifest.tensors.map(\.name)))
        for t in manifest.tensors {
            let s = try #require(try source.sourceTensor(named: t.name))
            #expect(s.columns == t.columns && s.rows == t.rows, "\(t.name): \(s.dimensions)")
            let expected: PackedFormat
            if !t.isQuantizable {
                expected = .f32
            } else if t.name == "v.patch_embd.weight" {
                expected = .f16   // 96 columns, f16 is element-wise anyway
            } else {
                expected = PackedFormat(rawValue: (plan.format(for: t) ?? .f16).rawValue) ?? .f16
            }
            #expect(s.format == expected, "\(t.name): \(s.format) vs \(expected)")
            // Values are finite with the intended magnitude.
            let m = try s.matrix()
            let values = m.dequantize()
            #expect(values.allSatisfy { $0.isFinite })
            if t.role != .vector {
                let rms = (values.reduce(0) { $0 + Double($1) * Double($1) } / Double(values.count)).squareRoot()
                #expect(rms > 0.01 && rms < 0.04, "\(t.name) rms \(rms)")
            }
        }
    }

    @Test func sameSeedGivesTheSameBytes() throws {
        let manifest = try TinyGLM4V.manifest()
        let plan = TinyGLM4V.plan(Self.mixed)
        let a = TinyGLM4V.temporaryPath("a"), b = TinyGLM4V.temporaryPath("b"), c = TinyGLM4V.temporaryPath("c")
        defer { unlink(a); unlink(b); unlink(c) }
        try SyntheticCheckpoint.write(manifest: manifest, plan: plan, planSHA256: "x", seed: 9, to: a)
        try SyntheticCheckpoint.write(manifest: manifest, plan: plan, planSHA256: "x", seed: 9, to: b)
        try SyntheticCheckpoint.write(manifest: manifest, plan: plan, planSHA256: "x", seed: 10, to: c)
        let da = try Data(contentsOf: URL(fileURLWithPath: a)), db = try Data(contentsOf: URL(fileURLWithPath: b))
        #expect(da == db)
        #expect(da != (try Data(contentsOf: URL(fileURLWithPath: c))))
    }

    @Test func copyAndMmapLoadTheSameWeights() throws {
        let manifest = try TinyGLM4V.manifest()
        let path = TinyGLM4V.temporaryPath("modes")
        defer { unlink(path) }
        try SyntheticCheckpoint.write(manifest: manifest, plan: TinyGLM4V.plan(Self.mixed), planSHA256: "x", seed: 1,
                                      to: path)
        let copy = try CheckpointSource(path: path, mode: .copy)
        let mapped = try CheckpointSource(path: path, mode: .mmap)
        for name in ["blk.1.ffn_up.weight", "mm.proj.weight", "token_embd.weight", "v.blk.0.attn_qkv.weight"] {
            let a = try #require(try copy.sourceTensor(named: name))
            let b = try #require(try mapped.sourceTensor(named: name))
            #expect(a.format == b.format && a.byteCount == b.byteCount)
            #expect(memcmp(a.data, b.data, a.byteCount) == 0)
            // The copy lives in its own memory, not in the file's mapping.
            #expect(a.data != b.data)
        }
        #expect(copy.copiedBytes > 0)
    }

    @Test(arguments: [AttentionKernel.tiled, .materialised])
    func multimodalRunProducesTokensAndFiniteFigures(visionKernel: AttentionKernel) throws {
        let manifest = try TinyGLM4V.manifest()
        let path = TinyGLM4V.temporaryPath("run")
        defer { unlink(path) }
        try SyntheticCheckpoint.write(manifest: manifest, plan: TinyGLM4V.plan(Self.mixed), planSHA256: "x", seed: 2,
                                      to: path)
        let vision = try VisionConfig(vision: try #require(manifest.visionEncoder),
                                      projector: try #require(manifest.modules.compactMap {
                                          if case let .projector(s) = $0.body { s } else { nil }
                                      }.first))
        let model = try MultimodalModel.load(source: try CheckpointSource(path: path, mode: .copy), vision: vision)
        #expect(model.vision != nil)
        var phases: [String] = []
        let r = try model.run(imageHeight: 16, imageWidth: 24, promptTokens: 5, outputTokens: 4,
                              attention: AttentionSettings(kvCacheFormat: .f16), visionKernel: visionKernel, seed: 3,
                              pool: ComputePool(threadCount: 2), phase: { phases.append($0) })
        #expect(phases == ["vision-encode", "prefill", "decode"])
        #expect(r.patches == 24 && r.imageTokens == 6)
        #expect(r.generated.count == 4)
        #expect(r.generated.allSatisfy { $0 >= 0 && $0 < 256 })
        #expect(r.weightBytesByModule["vision"] ?? 0 > 0 && r.weightBytesByModule["projector"] ?? 0 > 0)
        #expect(r.kvCacheBytes > 0)
    }

    @Test func imageEmbeddingsChangeTheOutput() throws {
        // Prefilling image embeddings must reach the decoder: the same prompt after two different images gives
        // different logits (checked through a different first-token distribution on random weights).
        let decoder = try TinyGLM4V.f32Decoder(seed: 4)
        func logits(after image: Float) throws -> [Float] {
            let s = try InferenceSession(model: decoder, capacity: 16, pool: nil)
            let e = [Float](repeating: image, count: 2 * 64)
            try e.withUnsafeBufferPointer { try s.appendEmbeddings($0.baseAddress!, count: 2) }
            let length = s.length
            #expect(length == 2)
            return Array(try s.forward([1, 2, 3]))
        }
        let a = try logits(after: 0.5), b = try logits(after: -0.5)
        #expect(a.allSatisfy { $0.isFinite })
        #expect(zip(a, b).contains { abs($0 - $1) > 1e-6 })
    }

    @Test("the planner's decoder activation is the buffers a session holds, for several chunks and contexts")
    func plannerActivationMatchesTheSessionsBuffers() throws {
        let spec = try #require(try TinyGLM4V.manifest().textDecoder)
        let decoder = try TinyGLM4V.f32Decoder(seed: 5)
        for (capacity, batch) in [(16, 8), (200, 64), (256, 256)] {
            let s = try InferenceSession(model: decoder, capacity: capacity, batch: batch, pool: nil)
            // Besides the planner's figure the session holds one row of logits and one normed row.
            let rows = (decoder.config.vocab + decoder.config.hidden) * 4
            #expect(s.scratchBytes == MemoryModel.decoderActivation(spec, chunk: batch, positions: capacity,
                                                                    attentionScratch: 0, elementBytes: 4) + rows,
                    "capacity \(capacity), batch \(batch)")
        }
    }

    @Test func rejectsFormatsTheEngineDoesNotExecute() throws {
        let manifest = try TinyGLM4V.manifest()
        #expect(throws: ModelError.self) {
            _ = try SyntheticCheckpoint.entries(manifest: manifest, plan: TinyGLM4V.plan([("decoder", .q4K)]))
        }
    }

    @Test func projectionScalesByEfficiency() {
        let host = Roofline(peakFLOPs: 100e9, bandwidth: 20e9, source: "test")
        let device = Roofline(peakFLOPs: 400e9, bandwidth: 80e9, source: "test")
        // 50 GFLOP in 1 s on a 100 GFLOP/s host: efficiency 0.5; on the device 50e9 / (400e9 · 0.5) = 0.25 s.
        let s = StageWork(stage: "prefill", work: 50e9, bound: .compute, hostSeconds: 1)
        #expect(abs(LatencyProjection.efficiency(s, host: host) - 0.5) < 1e-12)
        #expect(abs(LatencyProjection.deviceSeconds(s, host: host, device: device) - 0.25) < 1e-12)
        // 10 GB streamed in 2 s at 20 GB/s peak: efficiency 0.25; device 10e9 / (80e9 · 0.25) = 0.5 s.
        let d = StageWork(stage: "decode", work: 10e9, bound: .bandwidth, hostSeconds: 2)
        #expect(abs(LatencyProjection.deviceSeconds(d, host: host, device: device) - 0.5) < 1e-12)
        #expect(LatencyProjection.deviceSeconds(StageWork(stage: "x", work: 1, bound: .compute, hostSeconds: 0),
                                                host: host, device: device) == 0)
    }
}
