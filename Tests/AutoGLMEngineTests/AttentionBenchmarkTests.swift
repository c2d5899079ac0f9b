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
