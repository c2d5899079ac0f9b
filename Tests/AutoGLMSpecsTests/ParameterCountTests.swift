import Testing
import AutoGLMSpecs

@Suite("Parameter counts computed from the manifests")
struct ParameterCountTests {
    @Test func autoglmPhone9BModules() throws {
        let m = try manifest("autoglm-phone-9b")
        let decoder = try #require(m.textDecoder)
        #expect(decoder.parametersPerLayer == 203_969_024)
        let layers = m.tensors.filter { $0.module == "decoder" && $0.layer != nil }.reduce(0) { $0 + $1.parameters }
        #expect(layers == 8_158_760_960)
        #expect(m.module(named: "embedding")?.parameters == 620_756_992)
        #expect(m.module(named: "head")?.parameters == 620_756_992)
        let vision = (m.module(named: "vision")?.parameters ?? 0) + (m.module(named: "projector")?.parameters ?? 0)
        #expect(vision == 892_498_432)
        #expect(m.parameters == 10_292_777_472)
    }

    @Test func autoglmPhone9BVisionParts() throws {
        let m = try manifest("autoglm-phone-9b")
        let vision = try #require(m.visionEncoder)
        let block = vision.tensors(module: "v").filter { $0.layer == 0 }.reduce(0) { $0 + $1.parameters }
        #expect(block == 28_314_624)
        let patchAndPosition = vision.tensors(module: "v").filter { $0.name.hasPrefix("v.p") }
            .reduce(0) { $0 + $1.parameters }
        #expect(patchAndPosition == 2_692_608)
        let projector = try #require(m.module(named: "projector"))
        let downsample = projector.tensors.filter { $0.name.hasPrefix("mm.downsample") }.reduce(0) { $0 + $1.parameters }
        #expect(downsample == 25_169_920)
        #expect(projector.parameters - downsample == 185_081_856)
    }

    @Test func bf16SizeIs20Point59GB() throws {
        let m = try manifest("autoglm-phone-9b")
        #expect(m.bf16Bytes == 20_585_554_944)
        #expect(abs(Double(m.bf16Bytes) / 1e9 - 20.59) < 0.005)
    }

    @Test func glm4TextOnly() throws {
        #expect(try manifest("glm-4-9b").parameters == 9_399_951_360)
    }

    @Test func smolLM2() throws {
        let m = try manifest("smollm2-135m")
        let decoder = try #require(m.textDecoder)
        #expect(decoder.layers == 30 && decoder.hidden == 576 && decoder.heads == 9 && decoder.kvHeads == 3)
        // Tied head: embedding counted once. 134,515,008 is SmolLM2-135M's published parameter count.
        #expect(m.parameters == 134_515_008)
        #expect(m.module(named: "head")?.parameters == 0)
    }

    @Test func voiceVariantIsMarkedHypothetical() throws {
        let m = try manifest("autoglm-phone-9b-voice")
        #expect(m.hypothetical)
        #expect(m.hypotheticalNote?.contains("no audio encoder") == true)
        #expect(try manifest("autoglm-phone-9b").hypothetical == false)
        #expect(try manifest("autoglm-phone-9b").modules.contains { $0.kind == .audioEncoder } == false)
        #expect(m.parameters > 10_292_777_472)
    }
}

@Suite("Design-document arithmetic, corrected")
struct DesignArithmeticTests {
    @Test func groupedQueryAttentionSavings() throws {
        let d = try #require(try manifest("autoglm-phone-9b").textDecoder)
        // 32 query heads sharing 4 KV groups: 1 − 4/32 = 87.5%, not 75%.
        var four = d
        four.kvHeads = 4
        #expect(four.kvSavingFraction == 0.875)
        // The released model's 2 KV heads: 93.75%, 40,960 bytes per token in BF16.
        #expect(d.kvSavingFraction == 0.9375)
        #expect(d.kvBytesPerToken(bytesPerElement: 2) == 40_960)
    }

    @Test func attentionMatrixFor704Tokens() {
        let perHead = 704.0 * 704.0 * 2
        #expect(abs(perHead / 1e6 - 0.99) < 0.005)
        #expect(abs(perHead * 32 / 1e6 - 31.7) < 0.05)
        #expect(perHead * 32 < 800e6 / 25)
    }

    @Test func fullPrecisionSizes() throws {
        let m = try manifest("autoglm-phone-9b")
        #expect(abs(9e9 * 4 / 1e9 - 36) < 1e-9)
        #expect(abs(Double(m.parameters) * 4 / 1e9 - 41.17) < 0.01)
        #expect(abs(Double(m.bf16Bytes) / 1e9 - 20.59) < 0.005)
    }

    @Test func screenshotTokens() throws {
        let m = try manifest("autoglm-phone-9b")
        let pre = try #require(m.vision)
        let r = pre.resized(height: 2400, width: 1080)
        #expect(r.height == 2408 && r.width == 1092)
        #expect(pre.patches(height: 2400, width: 1080) == 13_416)
        #expect(pre.tokens(height: 2400, width: 1080) == 3_354)
        // Materialised ViT attention for a full screenshot: ~4.0 GiB per layer in FP16 with 12 heads.
        let bytes = 13_416.0 * 13_416.0 * 2 * 12
        #expect(abs(bytes / Double(1 << 30) - 4.02) < 0.01)
    }

    @Test func perTokenDecodeFLOPs() throws {
        let d = try #require(try manifest("autoglm-phone-9b").textDecoder)
        #expect(d.attentionFLOPsPerContextToken == 655_360)
    }
}
