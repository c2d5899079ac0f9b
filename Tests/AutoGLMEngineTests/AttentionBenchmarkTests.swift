import Foundation
import Testing
import AutoGLMSpecs
@testable import AutoGLMEngine

@Suite("Attention benchmark")
struct AttentionBenchmarkTests {
    @Test("Reported scratch equals the kernel's scratch accounting", arguments: AttentionKernel.allCases)
    func scratchMatchesAccounting(kernel: AttentionKernel) throws {
        let setting = AttentionBenchmark.Setting(name: "small", mode: .prefill, kernel: kernel, heads: 4, kvHeads: 2,
                                                 headDim: 32, threads: 2)
        let result = try AttentionBenchmark.run(setting: setting, sequenceLength: 100, repetitions: 1)
        #expect(result.peakScratchBytes == Attention.scratchBytes(n: 100, m: 100, heads: 4, kernel: kernel, threads: 2,
                                                                  headDim: 32, kvHeads: 2))
        #expect(result.tokensPerSecond > 0 && result.tokensPerSecond.isFinite)
        #expect(result.cpuSecondsPerCall > 0)
    }

    @Test("Each measuring pass visits every row once, in an order of its own that repeats for the same pass",
          arguments: [0, 1, 2, 42])
    func passOrder(count: Int) {
        let passes = (0..<5).map { AttentionBenchmark.passOrder(count: count, pass: $0) }
        for order in passes { #expect(order.sorted() == Array(0..<count)) }
        #expect(AttentionBenchmark.passOrder(count: count, pass: 3) == passes[3])
        if count == 42 {
            #expect(Set(passes).count == passes.count)
            #expect(!passes.contains(Array(0..<count)))
        }
    }

    @Test("Block-sparse scratch accounting matches too")
    func blockSparseScratch() throws {
        let sparse = Plan.BlockSparse(chunk: 16, topK: 2)
        let setting = AttentionBenchmark.Setting(name: "moba", mode: .decode, blockSparse: sparse, heads: 4, kvHeads: 2,
                                                 headDim: 32, threads: 1)
        let result = try AttentionBenchmark.run(setting: setting, sequenceLength: 200, repetitions: 1)
        #expect(result.peakScratchBytes == Attention.scratchBytes(n: 1, m: 200, heads: 4, kernel: .tiled, threads: 1,
                                                                  headDim: 32, kvHeads: 2, blockSparse: sparse))
    }

    @Test("KV bytes reflect the format", arguments: [(KVCacheFormat.f32, 4.0), (.int8, 1.0625), (.int4, 0.625)])
    func kvBytes(format: KVCacheFormat, bytesPerElement: Double) throws {
        let setting = AttentionBenchmark.Setting(name: "kv", mode: .decode, kvCacheFormat: format, heads: 2, kvHeads: 1,
                                                 headDim: 64, threads: 1)
        let result = try AttentionBenchmark.run(setting: setting, sequenceLength: 256, repetitions: 1)
        #expect(Double(result.kvBytes) == 2 * 256 * 64 * bytesPerElement)
    }

    @Test("The memory curve grows without a window and is flat with one")
    func memoryCurve() throws {
        let lengths = [256, 512, 1024, 2048]
        let full = try AttentionBenchmark.memoryCurve(
            setting: .init(name: "full", mode: .decode, kvCacheFormat: .int8, heads: 2, kvHeads: 1, headDim: 64),
            lengths: lengths)
        let windowed = try AttentionBenchmark.memoryCurve(
            setting: .init(name: "window", mode: .decode, kvCacheFormat: .int8, window: 256, globalTokens: 4, heads: 2,
                           kvHeads: 1, headDim: 64),
            lengths: lengths)
        #expect(full.map(\.tokens) == lengths)
        #expect(zip(full, full.dropFirst()).allSatisfy { $0.residentBytes < $1.residentBytes })
        #expect(Set(windowed.dropFirst().map(\.residentBytes)).count == 1)
        #expect(windowed.allSatisfy { $0.residentTokens <= 260 })
    }

    @Test("Settings decode from snake_case JSON with defaults, and invalid shapes are rejected")
    func settingCodable() throws {
        let json = #"{"name": "d", "mode": "decode", "kv_cache_format": "int4", "block_sparse": {"chunk": 64, "top_k": 4}}"#
        let setting = try JSONDecoder().decode(AttentionBenchmark.Setting.self, from: Data(json.utf8))
        #expect(setting.kvCacheFormat == .int4 && setting.heads == 32 && setting.blockSparse?.topK == 4)
        let bad = #"{"name": "d", "mode": "decode", "heads": 3, "kv_heads": 2}"#
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AttentionBenchmark.Setting.self, from: Data(bad.utf8))
        }
        #expect(!setting.coldKV)
        let cold = #"{"name": "d", "mode": "decode", "cold_kv": true}"#
        #expect(try JSONDecoder().decode(AttentionBenchmark.Setting.self, from: Data(cold.utf8)).coldKV)
        let coldPrefill = #"{"name": "p", "mode": "prefill", "cold_kv": true}"#
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AttentionBenchmark.Setting.self, from: Data(coldPrefill.utf8))
        }
    }

    /// A cold decode call finds the layer's K/V in memory (flushed line by line, or swept out of the caches): the
    /// same kernel and scratch as a warm one, and a prefill with a cold cache is refused.
    @Test("Cold-cache decode: same scratch accounting as warm (slot-major split decode), prefill refused")
    func coldDecode() throws {
        let warm = AttentionBenchmark.Setting(name: "warm", mode: .decode, kvCacheFormat: .f16, heads: 6, kvHeads: 3,
                                              headDim: 64, threads: 2)
        var cold = warm
        cold.coldKV = true
        let expected = Attention.scratchBytes(n: 1, m: 1100, heads: 6, kernel: .tiled, threads: 2, headDim: 64,
                                              kvHeads: 3)
        for setting in [warm, cold] {
            let result = try AttentionBenchmark.run(setting: setting, sequenceLength: 1100, repetitions: 2)
            #expect(result.peakScratchBytes == expected, "\(setting.name)")
            #expect(result.kvBytes == 2 * 1100 * 3 * 64 * 2)
            #expect(result.tokensPerSecond > 0 && result.tokensPerSecond.isFinite)
        }
        var prefill = cold
        prefill.mode = .prefill
        #expect(throws: AttentionError.self) {
            try AttentionBenchmark.run(setting: prefill, sequenceLength: 64, repetitions: 1)
        }
    }

    /// The GLM-4.1V ViT attention shape: 12 heads of 128, one KV head per query head, no mask.
    static let vit = (heads: 12, kvHeads: 12, headDim: 128)

    @Test("ViT shape, no mask: tiled equals materialised and both match the reference", arguments: [1, 2, 3])
    func vitTiledEqualsMaterialised(threads: Int) throws {
        var rng = AttentionRandom(seed: 41)
        // 37 patches: not a multiple of the 16-row work items, so the last item is partial.
        let n = 37, (heads, kvHeads, d) = Self.vit
        let q = rng.array(n * heads * d, amplitude: 2), k = rng.array(n * kvHeads * d, amplitude: 2)
        let v = rng.array(n * kvHeads * d)
        var tiled = [Float](repeating: .nan, count: n * heads * d), materialised = tiled
        try Attention.full(q: q, k: k, v: v, n: n, m: n, heads: heads, kvHeads: kvHeads, headDim: d, out: &tiled,
                           kernel: .tiled, threads: threads)
        try Attention.full(q: q, k: k, v: v, n: n, m: n, heads: heads, kvHeads: kvHeads, headDim: d,
                           out: &materialised, kernel: .materialised, threads: threads)
        let reference = AttentionReference.attention(q: q, n: n, heads: heads, kvHeads: kvHeads, headDim: d, keys: k,
                                                     values: v, t: n, scale: 1 / Float(d).squareRoot(),
                                                     mask: .init(causal: false))
        #expect(relativeError(tiled, materialised) < 1e-5)
        #expect(relativeError(tiled, reference) < 1e-5)
        #expect(relativeError(materialised, reference) < 1e-5)
        // Bidirectional: the first patch sees the last one, so changing the last value row changes the first output.
        var v2 = v
        for j in ((n - 1) * kvHeads * d)..<(n * kvHeads * d) { v2[j] += 1 }
        var moved = tiled
        try Attention.full(q: q, k: k, v: v2, n: n, m: n, heads: heads, kvHeads: kvHeads, headDim: d, out: &moved,
                           kernel: .tiled, threads: threads)
        #expect(moved[0] != tiled[0])
    }

    @Test("ViT encode measurement: scratch is the formula (n² F32 per worker materialised, fixed tiled), operands counted",
          arguments: AttentionKernel.allCases)
    func vitEncodeScratch(kernel: AttentionKernel) throws {
        let (heads, kvHeads, d) = Self.vit
        let setting = AttentionBenchmark.Setting(name: "vit", mode: .encode, kernel: kernel, heads: heads,
                                                 kvHeads: kvHeads, headDim: d, threads: 2)
        for n in [20, 48] {
            let r = try AttentionBenchmark.run(setting: setting, sequenceLength: n, repetitions: 2)
            #expect(r.peakScratchBytes == Attention.scratchBytes(n: n, m: n, heads: heads, kernel: kernel, threads: 2,
                                                                 headDim: d, kvHeads: kvHeads))
            // One worker's buffers, 32 lanes (pitch 32): queries and accumulators 2 × 32 × head_dim, max / sum /
            // rescale 3 × 32, scores 64 × 32, transposed queries head_dim × 32, decoded key and value tiles
            // 2 × 64 × head_dim, 1 block score (floats); bounds 2 × 32 Int32; 32 × (2 × 2 + 2) + 1 ints (intervals,
            // count and interval cursor per lane, one flag).
            let floats = 2 * 32 * d + 3 * 32 + 64 * 32 + d * 32 + 2 * 64 * d + 1
            let worker = floats * 4 + 2 * 32 * 4 + (32 * 2 * 2 + 32 + 32 + 1) * 8
            let expected = kernel == .materialised ? 2 * (n * n * 4 + worker) : 2 * worker
            #expect(r.peakScratchBytes == expected)
            #expect(r.kvBytes == 0)
            #expect(r.operandBytes == 4 * n * d * (2 * heads + 2 * kvHeads))
            #expect(r.medianSecondsPerCall >= r.secondsPerCall && r.tokensPerSecond > 0)
            if FileManager.default.isWritableFile(atPath: "/proc/self/clear_refs") {
                #expect(r.residentGrowthBytes != nil)
            }
        }
    }

    @Test("Encode settings with a quantised cache, a window or block sparsity are refused")
    func encodeRejectsCacheSettings() {
        let bad = [
            AttentionBenchmark.Setting(name: "int8", mode: .encode, kvCacheFormat: .int8, heads: 2, kvHeads: 2, headDim: 8),
            AttentionBenchmark.Setting(name: "w", mode: .encode, window: 4, heads: 2, kvHeads: 2, headDim: 8),
            AttentionBenchmark.Setting(name: "m", mode: .encode, blockSparse: .init(chunk: 4, topK: 2), heads: 2,
                                       kvHeads: 2, headDim: 8),
        ]
        for s in bad {
            #expect(throws: AttentionError.self) { try AttentionBenchmark.run(setting: s, sequenceLength: 8) }
        }
        #expect(AttentionError.unsupportedSetting(name: "int8", mode: "encode", reason: "F32 only").description
                    .contains("'int8' cannot run in encode mode"))
    }

    /// Prints the figures for a report when AUTOGLM_BENCH_ATTENTION is set; asserts nothing about speed.
    @Test("Figures for the report", .enabled(if: ProcessInfo.processInfo.environment["AUTOGLM_BENCH_ATTENTION"] != nil))
    func figures() throws {
        func show(_ r: AttentionBenchmark.Result) {
            let s = r.setting
            print(String(format: "%-24@ L=%6d  %9.3f ms/call (cpu %9.3f ms)  %10.1f tok/s  scratch %9d B  kv %10d B",
                         s.name as NSString, r.sequenceLength, r.secondsPerCall * 1e3, r.cpuSecondsPerCall * 1e3,
                         r.tokensPerSecond, r.peakScratchBytes, r.kvBytes))
        }
        for format in [KVCacheFormat.f32, .f16, .int8, .int4] {
            for r in try AttentionBenchmark.sweep(
                settings: [.init(name: "decode \(format)", mode: .decode, kvCacheFormat: format)],
                lengths: [1024, 4096, 16384], repetitions: 5) { show(r) }
        }
        for kernel in AttentionKernel.allCases {
            show(try AttentionBenchmark.run(setting: .init(name: "prefill \(kernel)", mode: .prefill, kernel: kernel),
                                            sequenceLength: 2048, repetitions: 1))
        }
        let moba = Plan.BlockSparse(chunk: 512, topK: 3)
        for length in [8192, 16384] {
            show(try AttentionBenchmark.run(setting: .init(name: "decode full", mode: .decode), sequenceLength: length))
            show(try AttentionBenchmark.run(setting: .init(name: "decode moba 512x3", mode: .decode, blockSparse: moba),
                                            sequenceLength: length))
        }
        show(try AttentionBenchmark.run(setting: .init(name: "prefill full", mode: .prefill), sequenceLength: 4096,
                                        repetitions: 1))
        show(try AttentionBenchmark.run(setting: .init(name: "prefill moba 512x3", mode: .prefill, blockSparse: moba),
                                        sequenceLength: 4096, repetitions: 1))
        for p in try AttentionBenchmark.memoryCurve(
            setting: .init(name: "window", mode: .decode, kvCacheFormat: .int8, window: 1024, globalTokens: 4),
            lengths: [512, 1024, 2048, 4096, 8192, 16384]) {
            print("window 1024+4 int8: tokens \(p.tokens) resident \(p.residentTokens) bytes \(p.residentBytes)")
        }
    }
}
