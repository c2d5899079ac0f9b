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

@Suite("Attention cost model: vision encoder, scratch and time")
struct AttentionEncodeCostsTests {
    /// GLM-4.1V's ViT attention: 12 heads of 128, bidirectional.
    static let vit = AttentionLayerShape(heads: 12, kvHeads: 12, headDim: 128)

    @Test("encode: every patch sees every patch, no KV cache, operands are Q, K, V and output in F32")
    func encodeCosts() throws {
        let m = try AttentionCostsTests.model()
        let s = AttentionSettingSpec(name: "vit")
        let p = m.predict(s, shape: Self.vit, mode: .encode, length: 1000)
        #expect(p.kvBytes == 0)
        #expect(p.operandBytes == 4 * 1000 * 128 * (2 * 12 + 2 * 12))
        #expect(p.workingSetBytes == p.operandBytes + p.scratchBytes)
        // n² pairs: the roofline of 4 · heads · head_dim FLOPs per pair.
        let flops = 4.0 * 12 * 128 * 1000 * 1000
        #expect(abs(p.seconds / m.latency.attentionSeconds(flops: flops, bytes: 0) - 1) < 1e-9)
    }

    @Test("encode scratch: materialised holds one n² F32 matrix per worker, tiled a fixed set of buffers per worker",
          arguments: [1, 2, 3, 5])
    func encodeScratch(threads: Int) throws {
        let m = try AttentionCostsTests.model(threads: threads)
        // One worker, 32 lanes (32 rows of one head; pitch 32): queries and accumulators 2 × 32 × 128, max / sum /
        // rescale 3 × 32, scores 64 × 32, transposed queries 128 × 32, a decoded key and value tile 2 × 64 × 128,
        // 1 block score (floats); visible-key bounds 2 × 32 (Int32); intervals 32 × 4, counts 32, interval cursors
        // 32, 1 flag (Int).
        let floats = 2 * 32 * 128 + 3 * 32 + 64 * 32 + 128 * 32 + 2 * 64 * 128 + 1
        let worker = floats * 4 + 2 * 32 * 4 + (32 * 2 * 2 + 32 + 32 + 1) * 8
        #expect(AttentionCostModel.workerScratchBytes(Self.vit, keys: 0, blockSparse: nil) == worker)
        let workers = AttentionCostModel.chunks(12, threads: threads)
        for n in [1024, 4096, 12432] {
            let mat = m.predict(AttentionSettingSpec(name: "m", kernel: .materialised), shape: Self.vit, mode: .encode,
                                length: n)
            #expect(mat.scratchBytes == workers * (n * n * 4 + worker))
            let tiled = m.predict(AttentionSettingSpec(name: "t"), shape: Self.vit, mode: .encode, length: n)
            #expect(tiled.scratchBytes == min(threads, 12 * ((n + 31) / 32)) * worker)
        }
        // 12 heads over 5 threads: ⌈12/5⌉ = 3 heads each, so 4 workers.
        #expect(AttentionCostModel.chunks(12, threads: 5) == 4)
        // The full screenshot (12,432 patches): 618 MB of scores per head.
        #expect(12432 * 12432 * 4 == 618_218_496)
    }

    @Test("a call lasts as long as its busiest worker; an unsplit decode runs on one worker, as the engine runs it")
    func busiestWorker() throws {
        let m = try AttentionCostsTests.model(threads: 2)
        let shape = AttentionCostsTests.shape
        let full = AttentionSettingSpec(name: "full")
        let materialised = AttentionSettingSpec(name: "m", kernel: .materialised)
        #expect(AttentionCostModel.busiestShare(units: 3, threads: 2) == 4.0 / 3)
        #expect(AttentionCostModel.busiestShare(units: 6, threads: 2) == 1)
        #expect(AttentionCostModel.busiestShare(units: 1, threads: 2) == 2)
        #expect(AttentionCostModel.busiestShare(units: 5, threads: 1) == 1)
        #expect(AttentionCostModel.busiestShare(units: 0, threads: 2) == 1)
        // Below 1,024 stored keys the 3 decode items (one per KV head) are not split: an F32 cache is read slot by
        // slot on one worker, INT4 and block-sparse decode deal the 3 items over both; from 1,024 each is split in
        // two over both. Materialised decode deals its 9 heads; prefill runs on all.
        let int4 = AttentionSettingSpec(name: "int4", kv: .int4)
        let sparse = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 2))
        #expect(m.workUnits(full, shape: shape, mode: .decode, length: 512) == 3)
        #expect(m.workUnits(full, shape: shape, mode: .decode, length: 1024) == 6)
        #expect(m.workUnits(materialised, shape: shape, mode: .decode, length: 1024) == 9)
        #expect(m.workers(full, shape: shape, mode: .decode, length: 512) == 1)
        #expect(m.workers(full, shape: shape, mode: .decode, length: 1024) == 2)
        #expect(m.workers(int4, shape: shape, mode: .decode, length: 512) == 2)
        #expect(m.workers(sparse, shape: shape, mode: .decode, length: 512) == 2)
        #expect(m.workers(materialised, shape: shape, mode: .decode, length: 512) == 2)
        #expect(m.workers(full, shape: shape, mode: .prefill, length: 512) == 2)
        // One worker has one core's share of the unit: twice the even spread on 2 threads, so the unsplit call at
        // 512 keys takes as long as the split one at 1,024 (the plain roofline: its 6 units spread evenly).
        #expect(m.busiestFactor(full, shape: shape, mode: .decode, length: 512) == 2)
        #expect(m.busiestFactor(full, shape: shape, mode: .decode, length: 1024) == 1)
        #expect(m.busiestFactor(int4, shape: shape, mode: .decode, length: 512) == 4.0 / 3)
        #expect(m.busiestFactor(materialised, shape: shape, mode: .decode, length: 1024) == 10.0 / 9)
        #expect(m.busiestFactor(full, shape: shape, mode: .prefill, length: 4096) == 1)
        let kvBytesPerKey = 2.0 * 3 * 64 * 4
        func flops(_ keys: Int) -> Double { 4.0 * 9 * 64 * Double(keys) }
        let t512 = m.predict(full, shape: shape, mode: .decode, length: 512).seconds
        let t1024 = m.predict(full, shape: shape, mode: .decode, length: 1024).seconds
        #expect(abs(t512 / m.latency.attentionSeconds(flops: flops(512), bytes: 512 * kvBytesPerKey) - 2) < 1e-9)
        #expect(abs(t1024 / m.latency.attentionSeconds(flops: flops(1024), bytes: 1024 * kvBytesPerKey) - 1) < 1e-9)
        #expect(abs(t1024 / t512 - 1) < 1e-9)
        // Spread evenly (device plans), twice the keys cost twice the time, split or not.
        var even = m
        even.busiestWorker = false
        let e512 = even.predict(full, shape: shape, mode: .decode, length: 512).seconds
        #expect(abs(even.predict(full, shape: shape, mode: .decode, length: 1024).seconds / e512 - 2) < 1e-9)
        #expect(abs(e512 / m.latency.attentionSeconds(flops: flops(512), bytes: 512 * kvBytesPerKey) - 1) < 1e-9)
        #expect(even.busiestFactor(full, shape: shape, mode: .decode, length: 512) == 1)
        // Prefill's 3 × 410 items of 10 rows divide evenly: the plain FLOP roofline.
        let flops = 4.0 * 9 * 64 * (4096.0 * 4097 / 2)
        let prefill = m.predict(full, shape: shape, mode: .prefill, length: 4096).seconds
        #expect(abs(prefill / m.latency.attentionSeconds(flops: flops, bytes: 0) - 1) < 1e-9)
        #expect(AttentionCostModel.keySplits(items: 3, threads: 2, keys: 1024) == 2)
        #expect(AttentionCostModel.keySplits(items: 3, threads: 2, keys: 1023) == 1)
        #expect(AttentionCostModel.keySplits(items: 24, threads: 2, keys: 1 << 20) == 1)
    }

    @Test("key splits and their partial softmax states are in the scratch")
    func splitScratch() throws {
        let m = try AttentionCostsTests.model(threads: 2)
        let shape = AttentionCostsTests.shape
        let worker = AttentionCostModel.workerScratchBytes(shape, keys: 1024, blockSparse: nil)
        let lanes = AttentionCostModel.rowsPerItem(shape) * 3
        let d = m.predict(AttentionSettingSpec(name: "f"), shape: shape, mode: .decode, length: 1024)
        #expect(d.scratchBytes == 2 * worker + 3 * 2 * lanes * (64 + 2) * 4)
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

@Suite("Attention time calibration: fitted overheads")
struct AttentionCalibrationFitTests {
    static func points(fixed: Double, perRow: Double, scale: Double, lengths: [Int], decode: Bool = false)
        -> [AttentionCalibration.Point] {
        lengths.map { n in
            let rows = decode ? 1 : n
            let model = 1e-9 * Double(n) * Double(n)
            return .init(length: n, rows: rows, modelSeconds: model,
                         measuredSeconds: fixed + perRow * Double(rows) + scale * model)
        }
    }

    @Test("exact points give back the constants that made them")
    func recovers() throws {
        let shape = AttentionCostsTests.shape
        let pts = Self.points(fixed: 20e-6, perRow: 0.3e-6, scale: 1.7, lengths: [96, 192, 384, 768, 1536])
        let fit = try #require(AttentionCalibration.fit(points: pts, shape: shape))
        #expect(abs(fit.fixedSeconds - 20e-6) < 1e-10)
        #expect(abs(fit.perRowSeconds - 0.3e-6) < 1e-12)
        #expect(abs(fit.scale - 1.7) < 1e-7)
        #expect(fit.worstPointError < 1e-6)
        #expect(fit.heads == 9 && fit.kvHeads == 3 && fit.headDim == 64)
        // Decode: one row per call, so no per-row term.
        let d = try #require(AttentionCalibration.fit(
            points: Self.points(fixed: 8e-6, perRow: 0, scale: 2, lengths: [96, 384, 1536], decode: true), shape: shape))
        #expect(d.perRowSeconds == 0 && abs(d.fixedSeconds - 8e-6) < 1e-10 && abs(d.scale - 2) < 1e-7)
    }

    @Test("no term goes negative: points that want a negative overhead drop it")
    func nonNegative() throws {
        // Measured time below the model's line at short lengths → the unconstrained intercept is negative.
        let pts = Self.points(fixed: -30e-6, perRow: 0, scale: 1.2, lengths: [200, 400, 800, 1600])
        let fit = try #require(AttentionCalibration.fit(points: pts, shape: AttentionCostsTests.shape))
        #expect(fit.fixedSeconds >= 0 && fit.perRowSeconds >= 0 && fit.scale > 0)
        // Too few usable points: nothing.
        let one = [AttentionCalibration.Point(length: 8, rows: 8, modelSeconds: 1e-6, measuredSeconds: 2e-6),
                   AttentionCalibration.Point(length: 9, rows: 9, modelSeconds: 1e-6, measuredSeconds: .nan)]
        #expect(AttentionCalibration.fit(points: one, shape: AttentionCostsTests.shape) == nil)
    }

    @Test("a calibrated model adds the overheads to its roofline; short calls are dominated by them")
    func calibratedModel() throws {
        let shape = AttentionCostsTests.shape
        var model = try AttentionCostsTests.model()
        let s = AttentionSettingSpec(name: "f32")
        let plain = model.predict(s, shape: shape, mode: .prefill, length: 256)
        let fit = AttentionCalibration.Fit(fixedSeconds: 50e-6, perRowSeconds: 1e-6, scale: 2)
        model.calibration = AttentionCalibration(fits: [.init(s, mode: .prefill): fit], source: "test")
        let p = model.predict(s, shape: shape, mode: .prefill, length: 256)
        #expect(abs(p.seconds - (50e-6 + 256e-6 + 2 * plain.seconds)) < 1e-12)
        #expect(abs(p.tokensPerSecond - 256 / p.seconds) < 1e-6)
        // Memory is not touched; other keys keep the roofline.
        #expect(p.scratchBytes == plain.scratchBytes && p.kvBytes == plain.kvBytes)
        let uncalibrated = try AttentionCostsTests.model()
        #expect(model.predict(s, shape: shape, mode: .decode, length: 256).seconds
                    == uncalibrated.predict(s, shape: shape, mode: .decode, length: 256).seconds)
    }

    @Test("the calibration file round-trips and bad files are refused with the field named")
    func codable() throws {
        let shape = AttentionCostsTests.shape
        let fit = try #require(AttentionCalibration.fit(
            points: Self.points(fixed: 1e-5, perRow: 1e-7, scale: 1.5, lengths: [100, 200, 400, 800]), shape: shape))
        let c = AttentionCalibration(fits: [.init(kv: .int8, kernel: .tiled, mode: .prefill): fit,
                                            .init(kv: .f32, kernel: .materialised, mode: .encode): fit],
                                     source: "measured: test")
        let data = try JSONEncoder().encode(c)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"fixed_seconds\"") && text.contains("\"per_row_seconds\"") && text.contains("\"schema_version\":1"))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: data) == c)
        let path = try temporaryFile(text, name: "calibration.json")
        #expect(try SpecLoader.load(AttentionCalibration.self, from: path) == c)
        let entry = #"{"kv": "f32", "kernel": "tiled", "mode": "decode", "fit": {"fixed_seconds": 0, "per_row_seconds": 0, "scale": SCALE, "heads": 9, "kv_heads": 3, "head_dim": 64, "points": []}}"#
        let negative = #"{"schema_version": 1, "source": "x", "fits": [ENTRY]}"#
            .replacingOccurrences(of: "ENTRY", with: entry.replacingOccurrences(of: "SCALE", with: "-1"))
        #expect(throws: SpecError.self) {
            try SpecLoader.load(AttentionCalibration.self, from: try temporaryFile(negative, name: "neg.json"))
        }
        let one = entry.replacingOccurrences(of: "SCALE", with: "1")
        let twice = #"{"schema_version": 1, "source": "x", "fits": [E, E]}"#.replacingOccurrences(of: "E", with: one)
        #expect(throws: SpecError.self) {
            try SpecLoader.load(AttentionCalibration.self, from: try temporaryFile(twice, name: "twice.json"))
        }
        let version = #"{"schema_version": 2, "source": "x", "fits": []}"#
        #expect(throws: SpecError.self) {
            try SpecLoader.load(AttentionCalibration.self, from: try temporaryFile(version, name: "v2.json"))
        }
    }

    @Test("where a calibration was measured round-trips, and a run on other kernels or another CPU is told so")
    func measuredOn() throws {
        let c = AttentionCalibration(source: "measured: test", kernels: "avx512", cpu: "CPU A")
        let decoded = try JSONDecoder().decode(AttentionCalibration.self, from: try JSONEncoder().encode(c))
        #expect(decoded.kernels == "avx512" && decoded.cpu == "CPU A")
        #expect(c.mismatch(kernels: "avx512", cpu: "CPU A") == nil)
        let kernels = try #require(c.mismatch(kernels: "simd8", cpu: "CPU A"))
        #expect(kernels.contains("avx512 kernels, this run simd8") && !kernels.contains("CPU"))
        let cpu = try #require(c.mismatch(kernels: "avx512", cpu: "CPU B"))
        #expect(cpu.contains("CPU 'CPU A', this host 'CPU B'"))
        // Files written before the fields existed say nothing about where they were measured.
        let old = try JSONDecoder().decode(AttentionCalibration.self,
                                           from: Data(#"{"schema_version": 1, "source": "x", "fits": []}"#.utf8))
        #expect(old.kernels == nil && old.cpu == nil && old.mismatch(kernels: "simd8", cpu: "CPU B") == nil)
    }

    @Test("block-sparse decode from memory takes a cold-sweep factor of its own; full decode keeps the key's")
    func sparseColdSweep() throws {
        // The factor comes back from points at a + 1.7 · b, and none from points with nothing to scale.
        let points = [(a: 2e-5, b: 1e-5), (a: 4e-5, b: 3e-5), (a: 9e-5, b: 5e-5)]
            .map { ($0.a, $0.b, $0.a + 1.7 * $0.b) }
        #expect(abs((AttentionCalibration.SparseDecode.linearFactor(points) ?? 0) - 1.7) < 1e-9)
        #expect(AttentionCalibration.SparseDecode.linearFactor(points.map { ($0.0, $0.1, $0.0 * 0.5) }) == 0)
        #expect(AttentionCalibration.SparseDecode.linearFactor(points.map { ($0.0, 0, $0.2) }) == nil)
        // Through the cost model: cold block-sparse decode takes it, cold full decode the key's own, warm neither.
        let shape = AttentionCostsTests.shape
        var fit = AttentionCalibration.Fit(fixedSeconds: 1e-6, perRowSeconds: 0, scale: 1.2, spill: 0.3,
                                           heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
        fit.coldSpill = 0.5
        let key = AttentionCalibration.Key(kv: .f32, kernel: .tiled, mode: .decode)
        func model(sparseCold: Double?, fromMemory: Bool) throws -> AttentionCostModel {
            let sparse = AttentionCalibration.SparseDecode(share: 0.5, scoreSeconds: 2e-9, rate: 1.1,
                                                           coldSpill: sparseCold, points: [])
            var m = AttentionCostModel(device: try profile("host-simd8"), threads: 2, calibration: AttentionCalibration(
                fits: [key: fit], source: "t", cacheBytes: 1 << 20, sparseDecode: sparse))
            m.decodeKVFromMemory = fromMemory
            return m
        }
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        let full = AttentionSettingSpec(name: "full")
        func seconds(_ s: AttentionSettingSpec, _ factor: Double?, _ fromMemory: Bool) throws -> Double {
            try model(sparseCold: factor, fromMemory: fromMemory).predict(s, shape: shape, mode: .decode, length: 4096)
                .seconds
        }
        let m = try model(sparseCold: 1.7, fromMemory: true)
        let sweep = m.spillSeconds(moba, shape: shape, mode: .decode, length: 4096, cacheBytes: 1 << 20)
        #expect(sweep > 0)
        // Linear in the factor, at the rate: 1.1 · (1.7 − 0.5) · sweep more than with the key's factor.
        #expect(abs(try seconds(moba, 1.7, true) - (try seconds(moba, nil, true)) - 1.1 * (1.7 - 0.5) * sweep) < 1e-12)
        #expect(try seconds(full, 1.7, true) == (try seconds(full, nil, true)))
        #expect(try seconds(moba, 1.7, false) == (try seconds(moba, nil, false)))
        // The file keeps it; a negative one is refused.
        let c = try #require(m.calibration)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        let file = #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_decode": {"share": 0.5, "#
            + #""score_seconds": 1e-9, "cold_spill": -0.5}}"#
        try AttentionSparseAndSpillTests.expectRefused(file)
    }

    @Test("a decode key's cold-sweep factor is fitted on calls that read their K/V from memory and prices them")
    func coldSweep() throws {
        let shape = AttentionCostsTests.shape
        var fit = AttentionCalibration.Fit(fixedSeconds: 2e-6, perRowSeconds: 0, scale: 1.4, spill: 0.5,
                                           heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
        // Cold calls measured at exactly fixed + scale · roofline + 0.9 · sweep: the factor comes back.
        let cold = [(3e-5, 2e-5), (6e-5, 4e-5), (1.2e-4, 9e-5)].enumerated().map { i, p in
            AttentionCalibration.Point(length: 256 << i, rows: 1, modelSeconds: p.0, spillSeconds: p.1,
                                       measuredSeconds: 2e-6 + 1.4 * p.0 + 0.9 * p.1)
        }
        let factor = try #require(fit.fittingColdSpill(cold))
        #expect(abs(factor - 0.9) < 1e-9)
        // The same calls measured in a spell 1.3× slower than the warm fit's: undivided, the factor takes in the
        // spell; divided by the pace of warm decode measured beside them (as calibrate-attention does), it comes back.
        let spell = cold.map { var p = $0; p.measuredSeconds *= 1.3; return p }
        #expect(try #require(fit.fittingColdSpill(spell)) > 1.5)
        let pace = AttentionCalibration.pace(cold.map { (measured: 1.3 * $0.modelSeconds, predicted: $0.modelSeconds) })
        let paced = spell.map { var p = $0; p.measuredSeconds /= pace; return p }
        #expect(abs(try #require(fit.fittingColdSpill(paced)) - 0.9) < 1e-9)
        #expect(fit.fittingColdSpill([]) == nil)
        // Calls faster than the constants without any sweep: no negative factor.
        let fast = cold.map { var p = $0; p.measuredSeconds = 1e-6; return p }
        #expect(fit.fittingColdSpill(fast) == 0)
        fit.coldSpill = factor
        fit.coldPoints = cold
        #expect(fit.seconds(roofline: 1e-4, rows: 1, spill: 1e-4, cold: true) == 2e-6 + 1.4e-4 + factor * 1e-4)
        #expect(fit.seconds(roofline: 1e-4, rows: 1, spill: 1e-4) == 2e-6 + 1.4e-4 + 0.5e-4)
        // Round trip, and through the cost model: decode reading from memory takes the cold factor, prefill never.
        let key = AttentionCalibration.Key(kv: .f16, kernel: .tiled, mode: .decode)
        let c = AttentionCalibration(fits: [key: fit, .init(kv: .f16, kernel: .tiled, mode: .prefill): fit],
                                     source: "measured: test", cacheBytes: 1 << 20)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"cold_spill\"") && text.contains("\"cold_points\""))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        let device = try profile("host-simd8")
        var model = AttentionCostModel(device: device, threads: 2, calibration: c)
        let s = AttentionSettingSpec(name: "f16", kv: .f16)
        let warm = model.predict(s, shape: shape, mode: .decode, length: 4096).seconds
        let warmPrefill = model.predict(s, shape: shape, mode: .prefill, length: 512).seconds
        model.decodeKVFromMemory = true
        let sweep = model.spillSeconds(s, shape: shape, mode: .decode, length: 4096, cacheBytes: 1 << 20)
        var plain = model
        plain.calibration = nil
        let roofline = plain.predict(s, shape: shape, mode: .decode, length: 4096).seconds
        let coldSeconds = model.predict(s, shape: shape, mode: .decode, length: 4096).seconds
        #expect(abs(coldSeconds - (2e-6 + 1.4 * roofline + factor * sweep)) < 1e-12 && coldSeconds != warm)
        #expect(model.predict(s, shape: shape, mode: .prefill, length: 512).seconds == warmPrefill)
        // A negative factor in a file is refused; files without the fields read as before.
        let entry = #"{"kv": "f32", "kernel": "tiled", "mode": "decode", "fit": {"fixed_seconds": 0, "#
            + #""per_row_seconds": 0, "scale": 1, "heads": 9, "kv_heads": 3, "head_dim": 64, "points": [], "#
            + #""cold_spill": -1}}"#
        #expect(throws: SpecError.self) {
            try SpecLoader.load(AttentionCalibration.self, from: try temporaryFile(
                #"{"schema_version": 1, "source": "x", "fits": [E]}"#.replacingOccurrences(of: "E", with: entry),
                name: "cold.json"))
        }
    }

    @Test("block-sparse prefill's own rate and beyond-cache factor price block-sparse prefill only")
    func sparsePrefillSpill() throws {
        let shape = AttentionCostsTests.shape
        let fit = AttentionCalibration.Fit(fixedSeconds: 1e-5, perRowSeconds: 0, scale: 1.1, spill: 5,
                                           heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
        let keys = [AttentionCostModel.Mode.prefill, .decode].map { AttentionCalibration.Key(kv: .f32, kernel: .tiled,
                                                                                             mode: $0) }
        // A cache of 1 MiB: at 8,192 tokens the layer's 12 MiB of K/V go beyond it.
        var c = AttentionCalibration(fits: Dictionary(uniqueKeysWithValues: keys.map { ($0, fit) }),
                                     source: "measured: test", cacheBytes: 1 << 20)
        var model = AttentionCostModel(device: try profile("host-simd8"), threads: 2, calibration: c)
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        let full = AttentionSettingSpec(name: "full")
        func seconds(_ factor: Double?, _ s: AttentionSettingSpec, _ mode: AttentionCostModel.Mode) -> Double {
            model.calibration?.sparsePrefill = factor.map { .init(spill: $0, points: []) }
            return model.predict(s, shape: shape, mode: mode, length: 8192).seconds
        }
        let sweep = model.spillSeconds(moba, shape: shape, mode: .prefill, length: 8192, cacheBytes: 1 << 20)
        #expect(sweep > 0)
        // Without one the prefill fit's factor prices the sweep; with one, its own, linearly.
        #expect(abs(seconds(1.5, moba, .prefill) - (seconds(nil, moba, .prefill) - 3.5 * sweep))
                < 1e-9 * seconds(nil, moba, .prefill))
        #expect(seconds(5, moba, .prefill) == seconds(nil, moba, .prefill))
        // Full prefill and block-sparse decode keep the fit's factor.
        #expect(seconds(1.5, full, .prefill) == seconds(nil, full, .prefill))
        #expect(seconds(1.5, moba, .decode) == seconds(nil, moba, .decode))
        // Its rate scales the passes over blocks only some lanes chose: at 256 tokens (every block chosen) none.
        func rated(_ rate: Double, _ length: Int) -> Double {
            model.calibration?.sparsePrefill = .init(rate: rate, spill: 5, points: [])
            return model.predict(moba, shape: shape, mode: .prefill, length: length).seconds
        }
        #expect(rated(1.3, 256) == rated(1, 256) && rated(1.3, 4096) > rated(1, 4096))
        let work = AttentionCostModel.blockSparseWork(Plan.BlockSparse(chunk: 128, topK: 4), shape: shape,
                                                      mode: .prefill, length: 4096, tileLanes: 8)
        #expect(work.sparseLaneKeys > 0 && work.sparseLaneKeys < work.laneKeys)
        // The fit gives back a rate and a factor from calls made with them; where the factor would be negative, the
        // rate alone.
        let made = [(1.0, 0.5, 0.0), (2.0, 1.0, 0.2), (4.0, 2.0, 1.0)].map { a, b, c in
            (a: a, b: b, c: c, measured: a + 1.3 * b + 2 * c)
        }
        let both = try #require(AttentionCalibration.SparsePrefill.fitRateAndSpill(made))
        #expect(abs(both.rate - 1.3) < 1e-9 && abs(both.spill - 2) < 1e-9)
        // The same calls in a spell 1.4× slower than the prefill fit's: undivided, the rate and factor take in the
        // spell; divided by the pace of full prefill measured beside them (as calibrate-attention does), they come
        // back.
        let slow = made.map { (a: $0.a, b: $0.b, c: $0.c, measured: 1.4 * $0.measured) }
        let undivided = try #require(AttentionCalibration.SparsePrefill.fitRateAndSpill(slow))
        #expect(undivided.rate > 1.5 && undivided.spill > 2.5)
        let prefillPace = AttentionCalibration.pace([0.8, 2.0, 5.0].map { (measured: 1.4 * $0, predicted: $0) })
        let paced = try #require(AttentionCalibration.SparsePrefill.fitRateAndSpill(slow.map {
            (a: $0.a, b: $0.b, c: $0.c, measured: $0.measured / prefillPace)
        }))
        #expect(abs(paced.rate - 1.3) < 1e-9 && abs(paced.spill - 2) < 1e-9)
        let lighter = made.map { (a: $0.a, b: $0.b, c: $0.c, measured: $0.a + 1.3 * $0.b - 0.5 * $0.c) }
        let rateOnly = try #require(AttentionCalibration.SparsePrefill.fitRateAndSpill(lighter))
        #expect(rateOnly.spill == 0 && rateOnly.rate > 0)
        #expect(AttentionCalibration.SparsePrefill.fitRateAndSpill([]) == nil)
        #expect(AttentionCalibration.SparsePrefill.fitRateAndSpill(made.map { (a: $0.a, b: $0.b, c: 0, measured: 1) })
                == nil, "no point beyond the cache: nothing to fit")
        // The file keeps it with its points; a negative factor is refused.
        c.sparsePrefill = .init(spill: 2.5, points: [.init(chunk: 128, topK: 4, length: 12288, measuredSeconds: 0.7,
                                                           predictedSeconds: 0.6)])
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"block_sparse_prefill\""))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        try AttentionSparseAndSpillTests.expectRefused(
            #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_prefill": {"spill": -1}}"#)
        try AttentionSparseAndSpillTests.expectRefused(
            #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_prefill": {"spill": 1, "rate": 0}}"#)
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(
            #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_prefill": {"spill": 2}}"#.utf8))
            .sparsePrefill == .init(spill: 2, points: []))
    }

    @Test("block-sparse prefill tile vector share: fitted from tile times, priced by vector and lane, kept in the file")
    func sparsePrefillVectorShare() throws {
        // Times per key α · vectors + β · lanes give back s = α / (α + β · width) for either family's width; the
        // lane counts must tell the terms apart.
        typealias TileTime = AttentionCalibration.SparsePrefill.TileTime
        for width in [8, 16] {
            let (alpha, beta) = (9.2e-9, 0.39e-9)
            let times = (1...30).map { a in
                TileTime(lanes: a, secondsPerKey: alpha * Double((a + width - 1) / width) + beta * Double(a))
            }
            let share = try #require(AttentionCalibration.SparsePrefill.fitVectorShare(times, width: width))
            #expect(abs(share - alpha / (alpha + beta * Double(width))) < 1e-9, "width \(width): \(share)")
            #expect(AttentionCalibration.SparsePrefill.fitVectorShare(
                times.filter { $0.lanes % width == 0 }, width: width) == nil, "whole vectors only")
        }
        #expect(AttentionCalibration.SparsePrefill.fitVectorShare([TileTime(lanes: 3, secondsPerKey: 1e-8)],
                                                                  width: 16) == nil)
        // A cost that falls with the lanes leaves the lane term at 0: all of it by vector.
        let falling = (1...16).map { TileTime(lanes: $0, secondsPerKey: 2e-8 - 1e-10 * Double($0)) }
        #expect(AttentionCalibration.SparsePrefill.fitVectorShare(falling, width: 16) == 1)
        // Priced: with a share, a long 128/4 prefill's passes over blocks few lanes chose cost less than whole
        // vectors with a lone one at a pair's cost; blocks every lane chose (256 tokens) are pairs either way; the
        // larger the share, the more a pass costs.
        let shape = AttentionCostsTests.shape, moba = Plan.BlockSparse(chunk: 128, topK: 4)
        func work(_ share: Double?, _ length: Int) -> AttentionCostModel.BlockSparseWork {
            AttentionCostModel.blockSparseWork(moba, shape: shape, mode: .prefill, length: length, tileLanes: 16,
                                               vectorShare: share)
        }
        #expect(work(0.6, 8192).sparseLaneKeys < work(nil, 8192).sparseLaneKeys)
        #expect(work(0.3, 8192).sparseLaneKeys < work(0.6, 8192).sparseLaneKeys)
        #expect(work(0.6, 512) == work(nil, 512) && work(0.6, 512).sparseLaneKeys == 0,
                "below 4 blocks of 128 every earlier block is chosen: pairs either way")
        // The model reads the share from the calibration; files without it price as before.
        let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1, spill: 0,
                                           heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
        var c = AttentionCalibration(fits: [.init(kv: .f32, kernel: .tiled, mode: .prefill): fit],
                                     source: "measured: test")
        var model = AttentionCostModel(device: try profile("host"), threads: 2, calibration: c, tileLanes: 16)
        let setting = AttentionSettingSpec(name: "moba", blockSparse: moba)
        func seconds(_ share: Double?) -> Double {
            model.calibration?.sparsePrefill = .init(spill: 0, vectorShare: share, points: [])
            return model.predict(setting, shape: shape, mode: .prefill, length: 8192).seconds
        }
        #expect(seconds(0.6) < seconds(nil))
        model.calibration?.sparsePrefill = nil
        let without = model.predict(setting, shape: shape, mode: .prefill, length: 8192).seconds
        #expect(without == seconds(nil), "no share: priced as before")
        // The file keeps the share and the times; a share outside [0, 1] or a time of 0 is refused.
        c.sparsePrefill = .init(rate: 1.2, spill: 2.5, vectorShare: 0.61,
                                tileTimes: [TileTime(lanes: 1, secondsPerKey: 9e-9),
                                            TileTime(lanes: 17, secondsPerKey: 2.4e-8)], points: [])
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"tile_vector_share\"") && text.contains("\"seconds_per_key\""))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        for bad in [#"{"spill": 1, "tile_vector_share": 1.5}"#, #"{"spill": 1, "tile_vector_share": -0.1}"#,
                    #"{"spill": 1, "tile_times": [{"lanes": 0, "seconds_per_key": 1e-8}]}"#,
                    #"{"spill": 1, "tile_times": [{"lanes": 3, "seconds_per_key": 0}]}"#] {
            try AttentionSparseAndSpillTests.expectRefused(
                #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_prefill": B}"#
                    .replacingOccurrences(of: "B", with: bad))
        }
    }

    @Test("the roofline a calibration corrects round-trips, and a prediction on another roofline is told so")
    func fittedAgainst() throws {
        let device = try profile("host-simd8")
        let roofline = try #require(AttentionCostModel(device: device, threads: 2).roofline)
        #expect(roofline.profile == "host-simd8")
        // The attention unit's f16 peak × attention efficiency; its bandwidth × the matvec efficiency.
        let cpu = try #require(device.computeUnits.first)
        let f16 = try #require(cpu.peakOpsPerSecond[.f16]).value * Double(cpu.count)
        #expect(roofline.attentionOpsPerSecond == f16 * (device.efficiency[.attentionCompute]?.value ?? 0))
        #expect(roofline.bandwidthBytesPerSecond == device.memory.bandwidthBytesPerSecond.value * Double(cpu.count)
                * (device.efficiency[.matvecBandwidth]?.value ?? 0))
        let c = AttentionCalibration(source: "measured: test", kernels: "simd8", roofline: roofline)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"attention_ops_per_second\"") && text.contains("\"bandwidth_bytes_per_second\""))
        let decoded = try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8))
        #expect(decoded == c && decoded.rooflineMismatch(roofline) == nil)
        var moved = roofline
        moved.bandwidthBytesPerSecond *= 1.02
        let why = try #require(c.rooflineMismatch(moved))
        #expect(why.contains("profile 'host-simd8'") && why.contains("measured again since"), "\(why)")
        var other = roofline
        other.profile = "host"
        #expect(c.rooflineMismatch(other) != nil)
        // Files written before it was recorded say nothing; a non-positive rate is refused.
        #expect(AttentionCalibration(source: "x").rooflineMismatch(moved) == nil)
        let bad = #"{"schema_version": 1, "source": "x", "fits": [], "roofline": {"profile": "p", "#
            + #""attention_ops_per_second": 0, "bandwidth_bytes_per_second": 1e10}}"#
        #expect(throws: SpecError.self) {
            try SpecLoader.load(AttentionCalibration.self, from: try temporaryFile(bad, name: "roofline.json"))
        }
    }
}

@Suite("Attention cost model: block-sparse work and the beyond-cache sweep")
struct AttentionSparseAndSpillTests {
    /// Four query heads per KV head: eight rows per work item (32 lanes), so 64-token blocks never split an item.
    static let grouped = AttentionLayerShape(heads: 8, kvHeads: 2, headDim: 64)

    @Test("choosing every earlier block costs exactly the causal pairs of full attention")
    func allBlocksIsFull() throws {
        let b = Plan.BlockSparse(chunk: 64, topK: 100)
        let length = 1024
        let work = AttentionCostModel.blockSparseWork(b, shape: Self.grouped, mode: .prefill, length: length, tileLanes: 8)
        let pairs = (0..<length).reduce(0.0) { $0 + Double($1 + 1) } * Double(Self.grouped.heads)
        #expect(abs(work.laneKeys - pairs) < 1e-6)
        #expect(work.laneBlocks == 0)
        let model = try AttentionCostsTests.model()
        let full = model.predict(AttentionSettingSpec(name: "full"), shape: Self.grouped, mode: .prefill, length: length)
        let sparse = model.predict(AttentionSettingSpec(name: "all", blockSparse: b), shape: Self.grouped, mode: .prefill,
                                   length: length)
        #expect(abs(sparse.seconds / full.seconds - 1) < 1e-9)
    }

    @Test("few choosers per block pay whole vectors: between the pairs themselves and a vector pair per chooser")
    func paddedVectors() throws {
        let b = Plan.BlockSparse(chunk: 64, topK: 2)
        let length = 64 * 400
        let w8 = AttentionCostModel.blockSparseWork(b, shape: Self.grouped, mode: .prefill, length: length, tileLanes: 8)
        // The pairs: own block causally, one earlier block per lane of every row past the first block.
        var exact = 0.0
        for t in 0..<length { exact += Double(t % 64 + 1) + (t >= 64 ? 64 : 0) }
        exact *= Double(Self.grouped.heads)
        #expect(w8.laneKeys > exact)
        // A lone chooser of a block costs one vector with the score step at half rate: 8 · 3 / 2 = 12 lanes.
        let ownOnly = (0..<length).reduce(0.0) { $0 + Double($1 % 64 + 1) } * Double(Self.grouped.heads)
        let perChooser = (w8.laneKeys - ownOnly) / (exact - ownOnly)
        #expect(perChooser > 9 && perChooser <= 12)
        // Sixteen-lane vectors waste more on the same choices.
        let w16 = AttentionCostModel.blockSparseWork(b, shape: Self.grouped, mode: .prefill, length: length, tileLanes: 16)
        #expect(w16.laneKeys > w8.laneKeys)
        // Scores: one per lane and earlier block, where there are more earlier blocks than it takes.
        var blocks = 0.0
        for t in 0..<length where t / 64 > 1 { blocks += Double(t / 64) }
        blocks *= Double(Self.grouped.heads)
        #expect(abs(w8.laneBlocks - blocks) < 1e-6)
    }

    @Test("decode reads the union of the heads' blocks and scores every earlier block once per key range")
    func decodeWork() throws {
        let b = Plan.BlockSparse(chunk: 128, topK: 4)
        let shape = AttentionCostsTests.shape
        let length = 128 * 64 + 1
        let one = AttentionCostModel.blockSparseWork(b, shape: shape, mode: .decode, length: length, tileLanes: 8)
        let two = AttentionCostModel.blockSparseWork(b, shape: shape, mode: .decode, length: length, tileLanes: 8,
                                                     splits: 2)
        #expect(one.laneKeys == Double(shape.heads * (1 + 3 * 128)))
        #expect(one.laneBlocks == Double(shape.heads * 64) && two.laneBlocks == 2 * one.laneBlocks)
        // Three heads of a KV head choosing 3 of 64 blocks each: 64 · (1 − (61/64)³) blocks expected, plus the own.
        let remaining: Double = 61.0 / 64.0
        let union: Double = 64 * (1 - remaining * remaining * remaining)
        #expect(abs(one.keysRead - Double(shape.kvHeads) * (union * 128 + 1)) < 1e-6)
        #expect(one.keysRead < Double(shape.kvHeads * 3 * 3 * 128 + shape.kvHeads))
    }

    @Test("block-sparse decode with a cache share of its own: the lane share whole, the union beyond it from memory")
    func decodeSparseCacheShare() throws {
        let model = try AttentionCostsTests.model()
        let shape = AttentionCostsTests.shape
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        let length = 4096
        let work = AttentionCostModel.blockSparseWork(moba.blockSparse!, shape: shape, mode: .decode, length: length,
                                                      tileLanes: model.tileLanes)
        let unionBytes = Int((work.keysRead * Double(2 * shape.headDim * 4)).rounded(.up))
        func predicted(share: Double, sparseCache: Int?, cache: Int = 1 << 30, privateCache: Int? = 1) -> Double {
            var m = model
            let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1, spill: 1)
            m.calibration = AttentionCalibration(
                fits: [.init(moba, mode: .decode): fit], cacheBytes: cache, privateCacheBytes: privateCache,
                sparseDecode: .init(share: share, scoreSeconds: 0, cacheBytes: sparseCache, points: []))
            return m.predict(moba, shape: shape, mode: .decode, length: length).seconds
        }
        // Without one (files fitted before it), a tiny private cache takes the share away; with one it stays whole.
        #expect(abs(predicted(share: 0.7, sparseCache: nil) / predicted(share: 0, sparseCache: nil) - 1) < 1e-3)
        let whole = predicted(share: 0.7, sparseCache: 1 << 30)
        #expect(whole < predicted(share: 0, sparseCache: 1 << 30) * 0.9)
        #expect(whole == predicted(share: 0.7, sparseCache: 1 << 30, privateCache: nil))
        // The union's reads beyond its own share (not the calibration's) are priced: half of them with half room.
        #expect(predicted(share: 0.7, sparseCache: unionBytes) == whole)
        let spilled = predicted(share: 0.7, sparseCache: unionBytes / 2)
        let beyond = model.spillSeconds(moba, shape: shape, mode: .decode, length: length, cacheBytes: unionBytes / 2)
        #expect(beyond > 0 && abs((spilled - whole) / beyond - 1) < 1e-9)
        #expect(predicted(share: 0.7, sparseCache: 1 << 30, cache: 1) == whole)
        // Full decode keeps the calibration's share.
        let full = AttentionSettingSpec(name: "full")
        var a = model, b = model
        let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1, spill: 1)
        a.calibration = AttentionCalibration(fits: [.init(full, mode: .decode): fit], cacheBytes: 1,
                                             sparseDecode: .init(share: 0.7, scoreSeconds: 0, cacheBytes: 1 << 30,
                                                                 points: []))
        b.calibration = AttentionCalibration(fits: [.init(full, mode: .decode): fit], cacheBytes: 1)
        #expect(a.predict(full, shape: shape, mode: .decode, length: length).seconds
                == b.predict(full, shape: shape, mode: .decode, length: length).seconds)
    }

    @Test("block-sparse decode: rows read and head-keys weighed by the measured lane share; block scores priced apart")
    func decodeLaneShare() throws {
        let model = try AttentionCostsTests.model()
        let shape = AttentionCostsTests.shape
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        let length = 4096
        func predicted(share: Double?, score: Double = 0, _ s: AttentionSettingSpec = moba,
                       privateCache: Int? = nil) -> Double {
            var m = model
            let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1)
            m.calibration = AttentionCalibration(
                fits: [.init(s, mode: .decode): fit], privateCacheBytes: privateCache,
                sparseDecode: share.map { .init(share: $0, scoreSeconds: score, points: []) })
            return m.predict(s, shape: shape, mode: .decode, length: length).seconds
        }
        // By hand: the key loop as a full sweep of (1 − share) · rows read + share · head-keys / group keys, on the
        // busiest of the two workers, plus the scores of every earlier block at the measured seconds each (without
        // a measurement: on the roofline, reading the mean keys).
        let (_, splits) = model.tiledPartition(moba, shape: shape, mode: .decode, length: length)
        let work = AttentionCostModel.blockSparseWork(moba.blockSparse!, shape: shape, mode: .decode, length: length,
                                                      tileLanes: model.tileLanes, splits: splits)
        let rowBytes = Double(2 * shape.headDim * 4)
        let busiest = AttentionCostModel.busiestShare(
            units: model.workUnits(moba, shape: shape, mode: .decode, length: length), threads: model.threads)
        func loop(_ share: Double) -> Double {
            let rows = (1 - share) * work.keysRead + share * work.laneKeys / 3
            return model.latency.attentionSeconds(flops: 4 * 64 * work.laneKeys, bytes: rows * rowBytes) * busiest
        }
        for share in [0.0, 0.7, 1.0] {
            #expect(model.blockScores(moba, shape: shape, length: length) == work.laneBlocks * busiest)
            let expected = loop(share) + 3e-9 * work.laneBlocks * busiest
            #expect(abs(predicted(share: share, score: 3e-9) / expected - 1) < 1e-12, "share \(share)")
        }
        let meanBytes = Double((length / 128 + 1) * shape.kvHeads * shape.headDim * 4)
        let roofScores = model.latency.attentionSeconds(flops: 4 * 64 * work.laneBlocks, bytes: meanBytes) * busiest
        #expect(abs(predicted(share: nil) / (loop(0) + roofScores) - 1) < 1e-12)
        // The share holds for the part of the union's K/V the workers' private caches hold: all of it with room
        // to spare, none with hardly any room, half when they hold half.
        let unionBytes = work.keysRead * rowBytes
        #expect(predicted(share: 0.7, privateCache: Int(unionBytes)) == predicted(share: 0.7))
        #expect(abs(predicted(share: 0.7, privateCache: 1) / predicted(share: 0) - 1) < 1e-3)
        let half = Int(unionBytes / 2 / Double(model.threads))
        #expect(abs(predicted(share: 0.7, privateCache: half) / predicted(share: 0.35) - 1) < 1e-6)
        // Prefill is not touched by the decode constants.
        var withSparse = model, without = model
        let prefillFit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1)
        without.calibration = AttentionCalibration(fits: [.init(moba, mode: .prefill): prefillFit])
        withSparse.calibration = AttentionCalibration(fits: [.init(moba, mode: .prefill): prefillFit],
                                                      sparseDecode: .init(share: 0.7, scoreSeconds: 3e-9, points: []))
        #expect(withSparse.predict(moba, shape: shape, mode: .prefill, length: length).seconds
                == without.predict(moba, shape: shape, mode: .prefill, length: length).seconds)
        // The heads apart make a row read cost less than the group's: the larger the share, the faster.
        #expect(predicted(share: 0.8) < predicted(share: 0.5) && predicted(share: 0.5) < predicted(share: 0))
        // The rate scales block-sparse decode's time and nothing else (full decode shares its fit).
        func rated(_ rate: Double, _ s: AttentionSettingSpec, _ mode: AttentionCostModel.Mode) -> Double {
            var m = model
            let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1)
            let sparse = AttentionCalibration.SparseDecode(share: 0.5, scoreSeconds: 0, rate: rate, points: [])
            m.calibration = AttentionCalibration(fits: [.init(s, mode: mode): fit], sparseDecode: sparse)
            return m.predict(s, shape: shape, mode: mode, length: length).seconds
        }
        #expect(abs(rated(2, moba, .decode) / rated(1, moba, .decode) - 2) < 1e-12)
        let full = AttentionSettingSpec(name: "full")
        #expect(rated(2, full, .decode) == rated(1, full, .decode))
        #expect(rated(2, moba, .prefill) == rated(1, moba, .prefill))
        // Top-k covering every block: no choice, every head reads every row: full decode, whatever the constants.
        let everything = AttentionSettingSpec(name: "all", blockSparse: Plan.BlockSparse(chunk: 128, topK: 1000))
        for share in [0.0, 0.8] {
            #expect(abs(predicted(share: share, score: 3e-9, everything) / predicted(share: share, full) - 1) < 1e-12)
        }
    }

    @Test("block-sparse decode's constants are fitted to measured calls, kept in the file, and checked on load")
    func sparseDecodeFit() throws {
        // A model whose prediction is linear in the share, and a host at share 0.7 and 3 ns per score.
        let settings = [Plan.BlockSparse(chunk: 128, topK: 4), Plan.BlockSparse(chunk: 32, topK: 16)]
        func predict(_ share: Double, _ b: Plan.BlockSparse, _ n: Int) -> (seconds: Double, scores: Double) {
            let keysRead = Double(b.chunk * b.topK) * 4 + Double(n) / 8, headKeys = 512.0
            return (1e-6 + 2e-8 * ((1 - share) * keysRead + share * headKeys), Double(9 * n / b.chunk))
        }
        let measured = settings.flatMap { b in
            [1536, 3072, 12288].map { n in
                AttentionCalibration.SparseDecode.Measured(
                    setting: b, length: n, seconds: predict(0.7, b, n).seconds + 3e-9 * predict(0.7, b, n).scores)
            }
        }
        let fit = try #require(AttentionCalibration.SparseDecode.fit(measured: measured, predict: predict))
        #expect(abs(fit.share - 0.7) < 1e-9 && abs(fit.scoreSeconds / 3e-9 - 1) < 1e-6)
        #expect(fit.points.count == 6 && fit.points.allSatisfy { abs($0.predictedSeconds / $0.measuredSeconds - 1) < 1e-6 })
        // Uniformly cheaper calls: a rate below 1; a score that would be negative is 0; nothing without a point.
        let cheap = measured.map { m in
            AttentionCalibration.SparseDecode.Measured(setting: m.setting, length: m.length,
                                                       seconds: predict(0.7, m.setting, m.length).seconds * 0.9)
        }
        let cheapFit = try #require(AttentionCalibration.SparseDecode.fit(measured: cheap, predict: predict))
        #expect(cheapFit.scoreSeconds < 1e-15 && abs(cheapFit.rate - 0.9) < 1e-6)
        let negative = measured.map { m in
            AttentionCalibration.SparseDecode.Measured(setting: m.setting, length: m.length, seconds:
                predict(0.7, m.setting, m.length).seconds - 1e-9 * predict(0.7, m.setting, m.length).scores)
        }
        #expect(AttentionCalibration.SparseDecode.fit(measured: negative, predict: predict)?.scoreSeconds == 0)
        #expect(AttentionCalibration.SparseDecode.fit(measured: [], predict: predict) == nil)
        #expect(abs(fit.rate - 1) < 1e-6)
        // A kernel slower than the full decode fit by a constant factor: the rate recovers it with the other two.
        let slower = settings.flatMap { b in
            [1536, 3072, 12288].map { n in
                AttentionCalibration.SparseDecode.Measured(
                    setting: b, length: n,
                    seconds: 1.25 * predict(0.7, b, n).seconds + 3e-9 * predict(0.7, b, n).scores)
            }
        }
        let slowFit = try #require(AttentionCalibration.SparseDecode.fit(measured: slower, predict: predict))
        #expect(abs(slowFit.share - 0.7) < 1e-9 && abs(slowFit.rate - 1.25) < 1e-6
                && abs(slowFit.scoreSeconds / 3e-9 - 1) < 1e-6)
        #expect(AttentionCalibration.SparseDecode.fitRateAndScore([(0.5, 0), (0.5, 0)]) == (2, 0))
        // The same kernel measured in a spell 1.3× slower than the full decode fit's: the full decode measured in the
        // same passes gives the pace, and the times divided by it give back the kernel's own rate (undivided, the
        // rate would absorb the spell: 1.25 × 1.3).
        let fullPairs = [1536, 3072, 12288].map { n in (measured: 1.3 * Double(n) * 1e-8, predicted: Double(n) * 1e-8) }
        let pace = AttentionCalibration.pace(fullPairs + [(measured: 2.0, predicted: 1.0), (measured: 0, predicted: 1)])
        #expect(abs(pace - 1.3) < 1e-12, "median of 1.3, 1.3, 1.3, 2.0; the zero time ignored")
        typealias Measured = AttentionCalibration.SparseDecode.Measured
        let spell = slower.map { Measured(setting: $0.setting, length: $0.length, seconds: 1.3 * $0.seconds) }
        let spellFit = try #require(AttentionCalibration.SparseDecode.fit(measured: spell, predict: predict))
        #expect(abs(spellFit.rate - 1.25 * 1.3) < 1e-6)
        let paced = spell.map { Measured(setting: $0.setting, length: $0.length, seconds: $0.seconds / pace) }
        let pacedFit = try #require(AttentionCalibration.SparseDecode.fit(measured: paced, predict: predict))
        #expect(abs(pacedFit.rate - 1.25) < 1e-6 && abs(pacedFit.share - 0.7) < 1e-9)
        #expect(AttentionCalibration.pace([]) == 1 && AttentionCalibration.pace([(measured: .nan, predicted: 1)]) == 1)
        #expect(AttentionCalibration.pace([(measured: 1, predicted: 1), (measured: 3, predicted: 1)]) == 2)
        // The file keeps it; a share outside 0 … 1 or negative seconds are refused with the field named.
        let c = AttentionCalibration(source: "t", sparseDecode: fit)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"block_sparse_decode\"") && text.contains("\"score_seconds\""))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        let file = #"{"schema_version": 1, "source": "x", "fits": [], "block_sparse_decode": {"share": SHARE, "score_seconds": SCORE}}"#
        func fileText(_ share: String, _ score: String) -> String {
            file.replacingOccurrences(of: "SHARE", with: share).replacingOccurrences(of: "SCORE", with: score)
        }
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(fileText("0.5", "3e-9").utf8))
            .sparseDecode?.share == 0.5)
        try Self.expectRefused(fileText("1.5", "3e-9"))
        try Self.expectRefused(fileText("0.5", "-1e-9"))
        // A file from before the rate was fitted reads rate 1; a rate that is not positive is refused.
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(fileText("0.5", "3e-9").utf8))
            .sparseDecode?.rate == 1)
        try Self.expectRefused(fileText("0.5", "3e-9, \"rate\": 0"))
    }

    @Test("the sweep beyond the cache: none while the layer's K/V fit, the outside share of the keys read beyond")
    func spill() throws {
        let model = try AttentionCostsTests.model()
        let shape = AttentionCostsTests.shape
        let full = AttentionSettingSpec(name: "full")
        let length = 32768
        let workingSet = Double(length * shape.kvHeads * 2 * shape.headDim * 4)
        #expect(model.spillSeconds(full, shape: shape, mode: .decode, length: length, cacheBytes: Int(workingSet)) == 0)
        let cache = 16 << 20
        let beyond = 1 - Double(cache) / workingSet
        let expected = model.latency.attentionSeconds(
            flops: 0, bytes: Double(shape.kvHeads * length) * Double(2 * shape.headDim * 4) * beyond)
        let decode = model.spillSeconds(full, shape: shape, mode: .decode, length: length, cacheBytes: cache)
        #expect(abs(decode / expected - 1) < 1e-12)
        // A decode call that finds its K/V in memory (as in a model) reads all of them from beyond the cache, even
        // where they would fit; prefill is not affected.
        var cold = model
        cold.decodeKVFromMemory = true
        let all = model.latency.attentionSeconds(flops: 0, bytes: workingSet)
        let coldDecode = cold.spillSeconds(full, shape: shape, mode: .decode, length: length, cacheBytes: cache)
        #expect(abs(coldDecode / all - 1) < 1e-12)
        #expect(abs(cold.spillSeconds(full, shape: shape, mode: .decode, length: length,
                                      cacheBytes: Int(workingSet)) / all - 1) < 1e-12)
        #expect(cold.spillSeconds(full, shape: shape, mode: .prefill, length: 5000, cacheBytes: cache) == 0)
        // Prefill sweeps each KV head's visible keys once per work item (ten rows here), each item against the
        // prefix its rows see, of all KV heads: rows whose prefix fits in the cache add nothing.
        let tokenBytes = Double(shape.kvHeads * 2 * shape.headDim * 4)
        func priced(_ keys: (Int) -> Double) -> Double {      // keys of one KV head for the item ending at `last`
            var bytes = 0.0, r0 = 0
            while r0 < length {
                let last = min(length, r0 + 10) - 1
                bytes += keys(last) * tokenBytes * max(0, 1 - Double(cache) / (Double(last + 1) * tokenBytes))
                r0 += 10
            }
            return model.latency.attentionSeconds(flops: 0, bytes: bytes)
        }
        let prefill = model.spillSeconds(full, shape: shape, mode: .prefill, length: length, cacheBytes: cache)
        #expect(abs(prefill / priced { Double($0 + 1) } - 1) < 1e-9)
        // Below pricing every item against the whole layer's cache; nothing while the layer's K/V fit.
        #expect(prefill > 0 && prefill < decode * Double(length / 10) / 2)
        #expect(model.spillSeconds(full, shape: shape, mode: .prefill, length: 5000, cacheBytes: cache) == 0)
        // Block-sparse prefill sweeps its own block and the union of the earlier blocks its 30 lanes (10 rows × 3
        // heads) chose: choosing every block sweeps what full attention does; top-4 of 128-key blocks much less, but
        // far more than one lane's 4 blocks.
        let everything = AttentionSettingSpec(name: "all", blockSparse: Plan.BlockSparse(chunk: 128, topK: 1000))
        let allBlocks = model.spillSeconds(everything, shape: shape, mode: .prefill, length: length, cacheBytes: cache)
        #expect(abs(allBlocks / prefill - 1) < 1e-9)
        let moba = AttentionSettingSpec(name: "moba", blockSparse: Plan.BlockSparse(chunk: 128, topK: 4))
        let sparse = model.spillSeconds(moba, shape: shape, mode: .prefill, length: length, cacheBytes: cache)
        let expectedSparse = priced { last in
            let own = last / 128
            let union = Double(own) * (1 - pow(1 - Double(min(3, own)) / Double(max(1, own)), 30))
            return union * 128 + Double(last % 128 + 1)
        }
        #expect(abs(sparse / expectedSparse - 1) < 1e-9)
        let oneLane = priced { Double(min(3, $0 / 128) * 128 + $0 % 128 + 1) }
        #expect(sparse < prefill / 2 && sparse > 5 * oneLane)
        // Encode (a ViT layer: 12 heads of 128, no grouping, 32 rows per item): every item reads its head's keys and
        // values; nothing beyond a cache that holds all heads'.
        let vit = AttentionLayerShape(heads: 12, kvHeads: 12, headDim: 128)
        let patches = 4096, vitSet = Double(patches * 12 * 2 * 128 * 4)
        #expect(model.spillSeconds(full, shape: vit, mode: .encode, length: patches, cacheBytes: Int(vitSet)) == 0)
        let encode = model.spillSeconds(full, shape: vit, mode: .encode, length: patches, cacheBytes: cache)
        let sweep = Double(12 * (patches / 32) * patches * 2 * 128 * 4) * (1 - Double(cache) / vitSet)
        #expect(abs(encode / model.latency.attentionSeconds(flops: 0, bytes: sweep) - 1) < 1e-12)
        // The materialised kernel sweeps its head's keys and values once per block of 32 query rows; their working
        // set is the keys, values and block score rows of the two heads its two workers hold. Its score matrices
        // (4,096² floats, 64 MiB per head) are written and read back once beyond the cache, in the part the two
        // workers' overflow it: nothing beyond a cache that holds both matrices (and so the keys).
        let materialised = AttentionSettingSpec(name: "m", kernel: .materialised)
        let twoHeads = Double(2 * patches * (2 * 128 * 4 + 32 * 4)), matrix = Double(patches * patches * 4)
        #expect(model.spillSeconds(materialised, shape: vit, mode: .encode, length: patches,
                                   cacheBytes: Int(2 * matrix)) == 0)
        let small = 1 << 20
        let perBlock = Double(12 * (patches / 32) * patches * 2 * 128 * 4) * (1 - Double(small) / twoHeads)
        let matrices = 2 * matrix * 12 * (1 - Double(small) / (2 * matrix))
        let blockSweep = model.spillSeconds(materialised, shape: vit, mode: .encode, length: patches, cacheBytes: small)
        #expect(abs(blockSweep / model.latency.attentionSeconds(flops: 0, bytes: perBlock + matrices) - 1) < 1e-12)
        // Prefill: SmolLM2's 9 heads in blocks of 30 rows (a work item's lanes: 10 rows × 3 heads), each block
        // sweeping the keys its last row sees; 9 matrices of 4,096² floats.
        let prefillRows = model.spillSeconds(materialised, shape: shape, mode: .prefill, length: 4096, cacheBytes: small)
        var visible = 0.0
        for first in stride(from: 0, to: 4096, by: 30) { visible += Double(min(4096, first + 30)) }
        let prefillSet = Double(2 * 4096 * (2 * 64 * 4 + 30 * 4))
        let prefillBytes = 9 * visible * Double(2 * 64 * 4) * (1 - Double(small) / prefillSet)
            + 2 * matrix * 9 * (1 - Double(small) / (2 * matrix))
        #expect(abs(prefillRows / model.latency.attentionSeconds(flops: 0, bytes: prefillBytes) - 1) < 1e-12)
        // A calibration with a cache prices the sweep with its key's spill factor.
        var calibrated = model
        let fit = AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1, spill: 2)
        calibrated.calibration = AttentionCalibration(fits: [.init(full, mode: .decode): fit], cacheBytes: cache)
        let plain = model.predict(full, shape: shape, mode: .decode, length: length).seconds
        let p = calibrated.predict(full, shape: shape, mode: .decode, length: length).seconds
        #expect(abs(p - (plain + 2 * decode)) < 1e-12)
    }

    @Test("a key whose points all fit in the cache borrows a spill factor: its kernel's prefill, decode, other kernel")
    func borrowedSpill() throws {
        func fit(spill: Double, beyond: Bool) -> AttentionCalibration.Fit {
            AttentionCalibration.Fit(fixedSeconds: 0, perRowSeconds: 0, scale: 1, spill: spill, points: [
                .init(length: 512, rows: 512, modelSeconds: 1, spillSeconds: 0, measuredSeconds: 1),
                .init(length: 4096, rows: 4096, modelSeconds: 2, spillSeconds: beyond ? 0.5 : 0, measuredSeconds: 3),
            ])
        }
        typealias Key = AttentionCalibration.Key
        let tiledEncode = Key(kv: .f32, kernel: .tiled, mode: .encode)
        let materialisedEncode = Key(kv: .f32, kernel: .materialised, mode: .encode)
        let tiledPrefill = Key(kv: .f32, kernel: .tiled, mode: .prefill)
        let tiledDecode = Key(kv: .f32, kernel: .tiled, mode: .decode)
        let int8Prefill = Key(kv: .int8, kernel: .tiled, mode: .prefill)
        let fitted = Key(kv: .f16, kernel: .tiled, mode: .prefill)
        let fits: [Key: AttentionCalibration.Fit] = [
            tiledEncode: fit(spill: 2, beyond: true), materialisedEncode: fit(spill: 0, beyond: false),
            tiledDecode: fit(spill: 1.5, beyond: true), tiledPrefill: fit(spill: 0, beyond: false),
            int8Prefill: fit(spill: 0, beyond: false), fitted: fit(spill: 0, beyond: true),
            Key(kv: .f32, kernel: .materialised, mode: .decode): fit(spill: 9, beyond: true),
            Key(kv: .f32, kernel: .materialised, mode: .prefill): fit(spill: 7, beyond: true),
        ]
        let out = AttentionCalibration.borrowingSpill(fits)
        // Encode: the other kernel's encode first (the decode fits are another layer's). Prefill: its own kernel's
        // decode first, though the materialised prefill measured a factor (which prices its score matrices too).
        #expect(out[materialisedEncode]?.spill == 2 && out[materialisedEncode]?.spillFrom == "f32 tiled encode")
        #expect(out[tiledPrefill]?.spill == 1.5 && out[tiledPrefill]?.spillFrom == "f32 tiled decode")
        // No donor measured beyond the cache for INT8; a key that had points beyond and fitted no spill keeps 0.
        #expect(out[int8Prefill]?.spill == 0 && out[int8Prefill]?.spillFrom == nil)
        #expect(out[fitted]?.spill == 0 && out[fitted]?.spillFrom == nil)
        // Donors are unchanged, and the source survives the file.
        #expect(out[tiledEncode] == fits[tiledEncode] && out[tiledDecode] == fits[tiledDecode])
        // A prefill measured beyond the cache lends its factor to the other formats' prefill of its kernel first
        // (same read order), before any decode.
        var measuredPrefill = fits
        measuredPrefill[tiledPrefill] = fit(spill: 4, beyond: true)
        let lent = AttentionCalibration.borrowingSpill(measuredPrefill)
        #expect(lent[int8Prefill]?.spill == 4 && lent[int8Prefill]?.spillFrom == "f32 tiled prefill")
        #expect(lent[tiledPrefill] == measuredPrefill[tiledPrefill])
        let c = AttentionCalibration(fits: out, source: "test", cacheBytes: 8 << 20)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"spill_from\":\"f32 tiled decode\""))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
    }

    @Test("a fit recovers the beyond-cache factor from points on both sides of the cache; the file keeps it")
    func fitsSpill() throws {
        let shape = AttentionCostsTests.shape
        let lengths = [96, 384, 1536, 3072, 12288, 24576, 49152]
        let points: [AttentionCalibration.Point] = lengths.map { n in
            let model = 1e-9 * Double(n), spill = n > 6000 ? 2e-10 * Double(n - 6000) : 0
            return .init(length: n, rows: 1, modelSeconds: model, spillSeconds: spill,
                         measuredSeconds: 5e-6 + 0.8 * model + 3 * spill)
        }
        let fit = try #require(AttentionCalibration.fit(points: points, shape: shape))
        #expect(abs(fit.spill - 3) < 1e-6 && abs(fit.scale - 0.8) < 1e-6 && abs(fit.fixedSeconds - 5e-6) < 1e-10)
        #expect(fit.worstPointError < 1e-6)
        let c = AttentionCalibration(fits: [.init(kv: .f32, kernel: .tiled, mode: .decode): fit], source: "test",
                                     cacheBytes: 8 << 20)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"cache_bytes\":8388608") && text.contains("\"spill_seconds\"") && text.contains("\"spill\":"))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        // Older files: no spill, no cache.
        let entry = #"{"kv": "f32", "kernel": "tiled", "mode": "decode", "fit": {"fixed_seconds": 0, "per_row_seconds": 0, "scale": 1, SPILL "heads": 9, "kv_heads": 3, "head_dim": 64, "points": [{"length": 8, "rows": 1, "model_seconds": 1, "measured_seconds": 1}]}}"#
        let file = #"{"schema_version": 1, "source": "x", CACHE "fits": [ENTRY]}"#
        let old = try JSONDecoder().decode(AttentionCalibration.self, from: Data(
            Self.calibrationFile(file, "CACHE", "", entry: entry, "SPILL", "").utf8))
        #expect(old.cacheBytes == nil && old.fits.values.first?.spill == 0 && old.fits.values.first?.points.first?.spillSeconds == 0)
        // Refused: a negative spill factor, a cache of no bytes.
        try Self.expectRefused(Self.calibrationFile(file, "CACHE", "", entry: entry, "SPILL", #""spill": -1,"#))
        try Self.expectRefused(Self.calibrationFile(file, "CACHE", #""cache_bytes": 0,"#, entry: entry, "SPILL", ""))
    }

    @Test("the materialised kernel's blocks: 32 rows (a work item's lanes at most), keys as the engine scores them")
    func materialisedBlocks() throws {
        let vit = AttentionLayerShape(heads: 12, kvHeads: 12, headDim: 128)
        let full = AttentionSettingSpec(name: "m", kernel: .materialised)
        func blocks(_ s: AttentionSettingSpec, _ shape: AttentionLayerShape, _ mode: AttentionCostModel.Mode,
                    _ length: Int) -> [[Int]] {
            var out: [[Int]] = []
            AttentionCostModel.materialisedBlocks(s, shape: shape, mode: mode, length: length) { out.append([$0, $1]) }
            return out
        }
        // Encode: 100 patches in blocks of 32, 32, 32, 4, every block against all 100 keys.
        #expect(blocks(full, vit, .encode, 100) == [[32, 100], [32, 100], [32, 100], [4, 100]])
        // SmolLM2 (9 heads over 3 KV heads): a work item holds 30 lanes, so blocks of 30; causal: up to the last row.
        #expect(AttentionCostModel.materialisedBlockRows(full, shape: AttentionCostsTests.shape) == 30)
        #expect(blocks(full, AttentionCostsTests.shape, .prefill, 70) == [[30, 30], [30, 60], [10, 70]])
        // A window of 16 with 3 global tokens: rows 30–59 see from 30 − 15 = 15 through 59 and the 3 globals.
        let window = AttentionSettingSpec(name: "w", kernel: .materialised, window: 16, globalTokens: 3)
        #expect(blocks(window, AttentionCostsTests.shape, .prefill, 70) == [[30, 30], [30, 48], [10, 28]])
        // Block-sparse: one row at a time, each against the keys it sees; decode: one row.
        let sparse = AttentionSettingSpec(name: "b", kernel: .materialised, blockSparse: .init(chunk: 4, topK: 2))
        #expect(blocks(sparse, AttentionCostsTests.shape, .prefill, 10)
                == [[1, 1], [1, 2], [1, 3], [1, 4], [1, 5], [1, 6], [1, 7], [1, 8], [1, 5], [1, 6]])
        #expect(blocks(full, AttentionCostsTests.shape, .decode, 70) == [[1, 70]])
        // Their pairs are the work the prediction prices, the masked corner of each causal block included:
        // 30·30 + 30·60 + 10·70 = 3,400 (query, key) pairs per head against the 2,485 visible ones.
        let model = try AttentionCostsTests.model()
        let predicted = model.predict(full, shape: AttentionCostsTests.shape, mode: .prefill, length: 70).seconds
        let roofline = model.latency.attentionSeconds(flops: 4 * 9 * 64 * 3_400, bytes: 2 * 70 * 70 * 4 * 9)
        #expect(abs(predicted / (roofline * AttentionCostModel.busiestShare(units: 9, threads: 2)) - 1) < 1e-12)
    }

    @Test("the materialised kernel's sweeps beyond the private cache: per block of rows, fitted, kept in the file")
    func nearCache() throws {
        let model = try AttentionCostsTests.model()
        let vit = AttentionLayerShape(heads: 12, kvHeads: 12, headDim: 128)
        let materialised = AttentionSettingSpec(name: "m", kernel: .materialised)
        let tiled = AttentionSettingSpec(name: "t")
        let half = 512 << 10
        // Between one block's read of a key and the next block's come the head's keys, its values and the block's
        // score rows: at 512 patches 256 + 256 + 64 KiB, nothing beyond a 1 MiB share; tiled and decode never.
        #expect(model.nearSeconds(materialised, shape: vit, mode: .encode, length: 512,
                                  privateCacheBytes: 1 << 20) == 0)
        #expect(model.nearSeconds(tiled, shape: vit, mode: .encode, length: 4096, privateCacheBytes: half) == 0)
        #expect(model.nearSeconds(materialised, shape: AttentionCostsTests.shape, mode: .decode, length: 65536,
                                  privateCacheBytes: half) == 0)
        // 4,096 patches: every block of 32 rows sweeps 2 MiB of keys and 2 MiB of values of its head, with 0.5 MiB
        // of scores a reuse distance of 4.5 MiB: 8/9 beyond a 512 KiB share.
        let rowBytes = 4096.0 * 128 * 4
        let encode = model.nearSeconds(materialised, shape: vit, mode: .encode, length: 4096, privateCacheBytes: half)
        let expected = model.latency.attentionSeconds(flops: 0, bytes: 12 * (4096 / 32) * 2 * rowBytes * 8 / 9)
        #expect(abs(encode / expected - 1) < 1e-12)
        // Causal prefill: a block's sweep is the keys and values its last row sees (blocks of 30 rows for
        // SmolLM2), so blocks up to the share's worth add nothing.
        let shape = AttentionCostsTests.shape
        let prefill = model.nearSeconds(materialised, shape: shape, mode: .prefill, length: 4096,
                                        privateCacheBytes: half)
        var bytes = 0.0
        for first in stride(from: 0, to: 4096, by: 30) {
            let keys = Double(min(4096, first + 30)), rows = Double(min(30, 4096 - first))
            let sweep = 2 * keys * 64 * 4
            bytes += sweep * max(0, 1 - Double(half) / (sweep + rows * keys * 4))
        }
        #expect(abs(prefill / model.latency.attentionSeconds(flops: 0, bytes: 9 * bytes) - 1) < 1e-12)
        #expect(model.nearSeconds(materialised, shape: shape, mode: .prefill, length: 768,
                                  privateCacheBytes: half) == 0)
        // A fit recovers the factor from points on both sides of the share, and the file keeps share and factor.
        let points: [AttentionCalibration.Point] = [512, 1536, 3072, 6144].map { n in
            let roofline = 1e-11 * Double(n * n)
            let near = model.nearSeconds(materialised, shape: vit, mode: .encode, length: n, privateCacheBytes: half)
            return .init(length: n, rows: n, modelSeconds: roofline, nearSeconds: near,
                         measuredSeconds: 7 * roofline + 0.5 * near)
        }
        let fit = try #require(AttentionCalibration.fit(points: points, shape: vit))
        #expect(abs(fit.near - 0.5) < 1e-6 && abs(fit.scale - 7) < 1e-6 && fit.worstPointError < 1e-6)
        let c = AttentionCalibration(fits: [.init(kv: .f32, kernel: .materialised, mode: .encode): fit], source: "t",
                                     cacheBytes: 8 << 20, privateCacheBytes: half)
        let text = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(text.contains("\"private_cache_bytes\":524288") && text.contains("\"near_seconds\"")
                && text.contains("\"near\":"))
        #expect(try JSONDecoder().decode(AttentionCalibration.self, from: Data(text.utf8)) == c)
        // A calibrated model adds the term to its prediction.
        var calibrated = model
        calibrated.calibration = c
        let plain = model.predict(materialised, shape: vit, mode: .encode, length: 4096).seconds
        let withNear = calibrated.predict(materialised, shape: vit, mode: .encode, length: 4096).seconds
        #expect(abs(withNear - (7 * plain + 0.5 * encode)) < 1e-9 * withNear)
        // Refused: a negative factor, a private cache of no bytes.
        let entry = #"{"kv": "f32", "kernel": "materialised", "mode": "encode", "fit": {"fixed_seconds": 0, "per_row_seconds": 0, "scale": 1, NEAR "heads": 12, "kv_heads": 12, "head_dim": 128, "points": []}}"#
        let file = #"{"schema_version": 1, "source": "x", PRIVATE "fits": [ENTRY]}"#
        try Self.expectRefused(Self.calibrationFile(file, "PRIVATE", "", entry: entry, "NEAR", #""near": -1,"#))
        try Self.expectRefused(Self.calibrationFile(file, "PRIVATE", #""private_cache_bytes": 0,"#, entry: entry,
                                                    "NEAR", ""))
    }

    /// Calibration file text from a template: `top` in place of the placeholder `topSlot`, and as its `ENTRY` the
    /// fit `entry` with `field` in place of `fieldSlot`.
    static func calibrationFile(_ file: String, _ topSlot: String, _ top: String, entry: String, _ fieldSlot: String,
                                _ field: String) -> String {
        file.replacingOccurrences(of: topSlot, with: top)
            .replacingOccurrences(of: "ENTRY", with: entry.replacingOccurrences(of: fieldSlot, with: field))
    }

    /// Loading `text` as a calibration file throws a spec error.
    static func expectRefused(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try temporaryFile(text, name: "calibration.json")
        #expect(throws: SpecError.self, sourceLocation: sourceLocation) {
            try SpecLoader.load(AttentionCalibration.self, from: path)
        }
    }
}
