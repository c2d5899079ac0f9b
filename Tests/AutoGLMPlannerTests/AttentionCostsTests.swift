import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Attention cost model")
struct AttentionCostsTests {
    /// SmolLM2's layer: 9 query heads sharing 3 KV heads, head_dim 64.
    static let shape = AttentionLayerShape(heads: 9, kvHeads: 3, headDim: 64)

    static func model(threads: Int = 2) throws -> AttentionCostModel {
        AttentionCostModel(device: try profile(phone), accuracy: AccuracyModel(manifest: try manifest("smollm2-135m")),
                           threads: threads)
    }

    @Test("visible keys: causal, windowed with global tokens, block-sparse")
    func visibleKeys() {
        let full = AttentionSettingSpec(name: "full")
        #expect(AttentionCostModel.visibleKeys(full, position: 0) == 1)
        #expect(AttentionCostModel.visibleKeys(full, position: 999) == 1000)
        let window = AttentionSettingSpec(name: "w", window: 256, globalTokens: 4)
        #expect(AttentionCostModel.visibleKeys(window, position: 100) == 101)
        #expect(AttentionCostModel.visibleKeys(window, position: 999) == 260)
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        // Own block (causally) plus at most three earlier whole blocks.
        #expect(AttentionCostModel.visibleKeys(moba, position: 130) == 131)
        #expect(AttentionCostModel.visibleKeys(moba, position: 1000) == 1000 % 128 + 1 + 3 * 128)
    }

    @Test("KV bytes follow the format's bytes per element and the window", arguments: KVCacheFormat.allCases)
    func kvBytes(format: KVCacheFormat) throws {
        let m = try Self.model()
        let s = AttentionSettingSpec(name: format.rawValue, kv: format)
        let p = m.predict(s, shape: Self.shape, mode: .prefill, length: 1024)
        #expect(p.kvBytes == Int((Double(1024 * 2 * 3 * 64) * format.bytesPerElement).rounded(.up)))
        // Decode under a window keeps window + global committed tokens plus the new one.
        let w = AttentionSettingSpec(name: "w", kv: format, window: 256, globalTokens: 4)
        let d = m.predict(w, shape: Self.shape, mode: .decode, length: 4096)
        #expect(d.kvBytes == Int((Double(261 * 2 * 3 * 64) * format.bytesPerElement).rounded(.up)))
    }

    @Test("tiled scratch does not grow with length; materialised grows with n × m")
    func scratch() throws {
        let m = try Self.model()
        let tiled = AttentionSettingSpec(name: "tiled")
        let a = m.predict(tiled, shape: Self.shape, mode: .prefill, length: 512)
        let b = m.predict(tiled, shape: Self.shape, mode: .prefill, length: 4096)
        #expect(a.scratchBytes == b.scratchBytes && a.scratchBytes > 0)
        let mat = AttentionSettingSpec(name: "mat", kernel: .materialised)
        let c = m.predict(mat, shape: Self.shape, mode: .prefill, length: 1024)
        let d = m.predict(mat, shape: Self.shape, mode: .prefill, length: 2048)
        #expect(c.scratchBytes >= 2 * 1024 * 1024 * 4)
        #expect(d.scratchBytes > 3 * c.scratchBytes)
        // Materialised scores cost traffic, so never less time than tiled.
        #expect(d.seconds >= m.predict(tiled, shape: Self.shape, mode: .prefill, length: 2048).seconds)
    }

    @Test("windows and block sparsity cut prefill FLOPs and so time")
    func sparsityIsFaster() throws {
        let m = try Self.model()
        let full = m.predict(AttentionSettingSpec(name: "full"), shape: Self.shape, mode: .prefill, length: 4096)
        let w = m.predict(AttentionSettingSpec(name: "w", window: 256, globalTokens: 4), shape: Self.shape,
                          mode: .prefill, length: 4096)
        let moba = m.predict(AttentionSettingSpec(name: "m", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4)),
                             shape: Self.shape, mode: .prefill, length: 4096)
        #expect(w.seconds < full.seconds && moba.seconds < full.seconds)
        #expect(full.tokensPerSecond > 0 && full.tokensPerSecond.isFinite)
    }

    @Test("accuracy cost sums the table entries of a setting's parts; unknown parts give no figure")
    func accuracy() throws {
        let m = try Self.model()
        let table = AccuracyModel(manifest: try manifest("smollm2-135m"))
        let int8 = m.predict(AttentionSettingSpec(name: "int8", kv: .int8), shape: Self.shape, mode: .decode, length: 64)
        #expect(int8.loss == table.setting("kv:int8")?.loss)
        let f32 = m.predict(AttentionSettingSpec(name: "f32"), shape: Self.shape, mode: .decode, length: 64)
        #expect(f32.loss == 0)
        let odd = m.predict(AttentionSettingSpec(name: "odd", window: 77, globalTokens: 3), shape: Self.shape,
                            mode: .decode, length: 64)
        #expect(odd.loss == nil)
    }
}

@Suite("Attention time calibration")
struct AttentionCalibrationTests {
    @Test("a recorded point is reproduced exactly and applies to other lengths and sparse settings of its key")
    func calibration() throws {
        let shape = AttentionCostsTests.shape
        let model = try AttentionCostsTests.model()
        let full = AttentionSettingSpec(name: "f16", kv: .f16)
        let base = model.predict(full, shape: shape, mode: .prefill, length: 1024)
        var c = AttentionCalibration(referenceLength: 1024)
        c.record(full, mode: .prefill, measuredSeconds: base.seconds * 3, model: model, shape: shape)
        #expect(abs(c.apply(base, full, mode: .prefill).seconds - base.seconds * 3) < 1e-12)
        let window = AttentionSettingSpec(name: "w", kv: .f16, window: 256, globalTokens: 4)
        let w = model.predict(window, shape: shape, mode: .prefill, length: 2048)
        let corrected = c.apply(w, window, mode: .prefill)
        #expect(abs(corrected.seconds / w.seconds - 3) < 1e-9)
        #expect(abs(corrected.tokensPerSecond * corrected.seconds - 2048) < 1e-6)
        // Other keys are untouched; unusable measurements are ignored.
        let f32 = AttentionSettingSpec(name: "f32")
        let p = model.predict(f32, shape: shape, mode: .decode, length: 512)
        #expect(c.apply(p, f32, mode: .decode) == p)
        c.record(f32, mode: .decode, measuredSeconds: .nan, model: model, shape: shape)
        #expect(c.factors.count == 1)
    }
}
