#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import AutoGLMSpecs

/// Measures the attention kernels of one layer on synthetic data: time per call, scratch allocated, the KV cache's
/// bytes and the growth of the process's peak resident set, for a setting (format, kernel, window, block sparsity,
/// shape) at a sequence length. Decoder layers run causally over a `KVCache`; vision-encoder layers (`.encode`) run
/// bidirectionally over explicit K/V.
public enum AttentionBenchmark {
    public enum Mode: String, Codable, Sendable, CaseIterable {
        /// One call over `sequenceLength` new tokens on an empty cache.
        case prefill
        /// One new token with `sequenceLength − 1` tokens already cached.
        case decode
        /// One bidirectional call in which `sequenceLength` tokens attend each other with no mask (a vision-encoder
        /// layer over that many patches); K/V are F32 activations, not a cache.
        case encode
    }

    /// One configuration to measure. The default shape is one GLM-4 decoder layer: 32 query heads, 2 KV heads,
    /// head_dim 128.
    public struct Setting: Codable, Sendable, Equatable {
        public var name: String
        public var mode: Mode
        public var kvCacheFormat: KVCacheFormat
        public var kernel: AttentionKernel
        public var window: Int?
        public var globalTokens: Int
        public var blockSparse: Plan.BlockSparse?
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var threads: Int
        /// Decode only: the layer's keys and values are removed from every cache level before each timed call
        /// (`KVCache.evictFromCaches`), as a model's decode step finds them after the rest of the model has streamed
        /// through; otherwise the calls repeat on one layer and keep what fits in cache.
        public var coldKV: Bool

        enum CodingKeys: String, CodingKey {
            case name, mode, kvCacheFormat = "kv_cache_format", kernel, window, globalTokens = "global_tokens"
            case blockSparse = "block_sparse", heads, kvHeads = "kv_heads", headDim = "head_dim", threads
            case coldKV = "cold_kv"
        }

        public init(name: String, mode: Mode, kvCacheFormat: KVCacheFormat = .f32, kernel: AttentionKernel = .tiled,
                    window: Int? = nil, globalTokens: Int = 0, blockSparse: Plan.BlockSparse? = nil,
                    heads: Int = 32, kvHeads: Int = 2, headDim: Int = 128, threads: Int = Attention.defaultThreads,
                    coldKV: Bool = false) {
            self.name = name; self.mode = mode; self.kvCacheFormat = kvCacheFormat; self.kernel = kernel
            self.window = window; self.globalTokens = globalTokens; self.blockSparse = blockSparse
            self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.threads = threads
            self.coldKV = coldKV
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), mode: try c.decode(Mode.self, forKey: .mode))
            kvCacheFormat = try c.decodeIfPresent(KVCacheFormat.self, forKey: .kvCacheFormat) ?? kvCacheFormat
            kernel = try c.decodeIfPresent(AttentionKernel.self, forKey: .kernel) ?? kernel
            window = try c.decodeIfPresent(Int.self, forKey: .window)
            globalTokens = try c.decodeIfPresent(Int.self, forKey: .globalTokens) ?? 0
            blockSparse = try c.decodeIfPresent(Plan.BlockSparse.self, forKey: .blockSparse)
            heads = try c.decodeIfPresent(Int.self, forKey: .heads) ?? heads
            kvHeads = try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? kvHeads
            headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? headDim
            threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? threads
            coldKV = try c.decodeIfPresent(Bool.self, forKey: .coldKV) ?? false
            if coldKV && mode != .decode {
                throw DecodingError.dataCorruptedError(
                    forKey: .coldKV, in: c, debugDescription: "only decode reads a cache from memory, got mode \(mode)")
            }
            for (key, value) in [(CodingKeys.heads, heads), (.kvHeads, kvHeads), (.headDim, headDim), (.threads, threads)]
            where value <= 0 {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be > 0, got \(value)")
            }
            if heads % kvHeads != 0 {
                throw DecodingError.dataCorruptedError(
                    forKey: .heads, in: c, debugDescription: "\(heads) heads is not a multiple of \(kvHeads) KV heads")
            }
        }
    }

    /// What one measurement found.
    public struct Result: Codable, Sendable, Equatable {
        public var setting: Setting
        public var sequenceLength: Int
        /// Scratch the kernel allocated during the call, all workers together (its high-water mark).
        public var peakScratchBytes: Int
        /// Bytes the KV cache held for this layer (0 for `.encode`: its K/V are activations, in `operandBytes`).
        public var kvBytes: Int
        /// F32 tensors the caller holds for the call: queries and output, and for `.encode` keys and values too.
        public var operandBytes: Int
        /// Growth of the process's peak resident set over the measurement: VmHWM after the calls minus VmRSS before
        /// the buffers were allocated, with the peak reset through /proc/self/clear_refs first. It counts what the
        /// kernel really touched (operands, cache, scratch, thread stacks). Nil where /proc is unavailable or the
        /// peak cannot be reset. In a process that measured before, memory the allocator kept can be reused and
        /// hide growth; run one measurement per process to keep them apart.
        public var residentGrowthBytes: Int?
        /// New tokens per second through this layer's attention at the median time (prefill and encode: n / time;
        /// decode: 1 / time).
        public var tokensPerSecond: Double
        /// Wall-clock seconds of the fastest call.
        public var secondsPerCall: Double
        /// Wall-clock seconds of the median call.
        public var medianSecondsPerCall: Double
        /// Process CPU seconds (all threads) of the call with the least CPU time; on a shared machine this shows the
        /// work done when wall time includes waiting for a core.
        public var cpuSecondsPerCall: Double
        /// Timed calls.
        public var repetitions: Int
        /// The work the tiled kernel's tiles did in one call (decoder rows; every call does the same); nil where
        /// no counted step ran: the materialised kernel, decode read slot by slot, the vision encoder.
        public var work: AttentionWorkTally.Counts?

        enum CodingKeys: String, CodingKey {
            case setting, sequenceLength = "sequence_length", peakScratchBytes = "peak_scratch_bytes"
            case kvBytes = "kv_bytes", operandBytes = "operand_bytes", residentGrowthBytes = "resident_growth_bytes"
            case tokensPerSecond = "tokens_per_second", secondsPerCall = "seconds_per_call"
            case medianSecondsPerCall = "median_seconds_per_call"
            case cpuSecondsPerCall = "cpu_seconds_per_call", repetitions, work
        }
    }

    /// Resident KV bytes after a number of tokens.
    public struct MemoryPoint: Codable, Sendable, Equatable {
        public var tokens: Int
        public var residentTokens: Int
        public var residentBytes: Int
        enum CodingKeys: String, CodingKey {
            case tokens, residentTokens = "resident_tokens", residentBytes = "resident_bytes"
        }
    }

    /// The order in which measuring pass `pass` visits `count` rows: a shuffle drawn from a seed fixed per pass.
    /// Rows measured in several passes keep their median pass, which only removes a disturbance that does not
    /// strike the same rows in every pass; in a fixed order, an effect tied to a row's place in the pass (the
    /// machine slowing after seconds of load, the rows that follow a memory-heavy one) would. The same pass always
    /// gets the same order.
    public static func passOrder(count: Int, pass: Int) -> [Int] {
        var order = Array(0..<max(0, count))
        var rng = SplitMix64(seed: 0xA77E_0000_0000 &+ UInt64(truncatingIfNeeded: pass))
        order.shuffle(using: &rng)
        return order
    }

    /// Measures one setting at one sequence length: `repetitions` timed calls at least, more until they add up to
    /// `minimumSeconds` (at most `maximumRepetitions`), so that the median of short calls is not at the mercy of a
    /// few preempted ones. A first, untimed call warms the worker threads and the pages up unless it takes longer
    /// than `warmUpLimit` seconds (then it is timed and counted: start-up is a negligible part of it). Decode calls
    /// all see the same `sequenceLength − 1` cached tokens.
    public static func run(setting: Setting, sequenceLength: Int, repetitions: Int = 3, minimumSeconds: Double = 0,
                           maximumRepetitions: Int = 2000) throws -> Result {
        guard sequenceLength > 0 else {
            throw AttentionError.invalidParameter(name: "sequenceLength", expected: "> 0", got: sequenceLength)
        }
        guard repetitions > 0 else {
            throw AttentionError.invalidParameter(name: "repetitions", expected: "> 0", got: repetitions)
        }
        let s = setting
        let cap = max(repetitions, maximumRepetitions)
        /// Calls `body` (which times one call through `times`) until the counts are met; the first call is a
        /// warm-up when it is short.
        func repeatCalls(_ times: inout Timings, _ body: (inout Timings) throws -> Void) rethrows {
            var warm = Timings()
            try body(&warm)
            if warm.fastest > warmUpLimit { times = warm }
            while times.wall.count < repetitions
                    || (times.wall.reduce(0, +) < minimumSeconds && times.wall.count < cap) {
                try body(&times)
            }
        }
        guard s.headDim > 0 else { throw AttentionError.invalidParameter(name: "headDim", expected: "> 0", got: s.headDim) }
        guard s.threads > 0 else { throw AttentionError.invalidParameter(name: "threads", expected: "> 0", got: s.threads) }
        guard s.heads > 0, s.kvHeads > 0, s.heads % s.kvHeads == 0 else {
            throw AttentionError.headsNotMultipleOfKVHeads(heads: s.heads, kvHeads: s.kvHeads)
        }
        guard !s.coldKV || s.mode == .decode else {
            throw AttentionError.unsupportedSetting(name: s.name, mode: s.mode.rawValue,
                                                    reason: "a cold K/V cache is a decode measurement")
        }
        // The engine's threads: a compute pool whose idle workers spin briefly between calls (Dispatch's threads
        // park, and waking them cost a decode call of a few microseconds up to tens more, call to call).
        let pool = s.threads > 1 ? ComputePool(threadCount: s.threads) : nil
        // Where the cache lines cannot be flushed one by one, a cold call follows a sweep over a buffer twice the
        // largest last-level cache of these machines (allocated and touched before the resident baseline).
        var sweep: [UInt8] = []
        let coldSweepBytes = 64 << 20
        if s.coldKV && !KVCache.flushesLines { sweep = [UInt8](repeating: 1, count: coldSweepBytes) }
        let peakReset = ProcessMemory.resetPeak()
        let residentBefore = ProcessMemory.residentBytes
        var times = Timings()
        var scratch = 0, kvBytes = 0, operandBytes = 0
        var work: AttentionWorkTally.Counts?
        switch s.mode {
        case .encode:
            guard s.kvCacheFormat == .f32, s.window == nil, s.blockSparse == nil else {
                throw AttentionError.unsupportedSetting(
                    name: s.name, mode: s.mode.rawValue,
                    reason: "the vision encoder attends F32 activations with no window and no block sparsity")
            }
            let n = sequenceLength
            var rng = SyntheticData(seed: 0x5EED)
            let query = rng.array(n * s.heads * s.headDim)
            let keys = rng.array(n * s.kvHeads * s.headDim), values = rng.array(n * s.kvHeads * s.headDim)
            var out = [Float](repeating: 0, count: n * s.heads * s.headDim)
            operandBytes = (query.count + keys.count + values.count + out.count) * MemoryLayout<Float>.stride
            try repeatCalls(&times) { times in
                let bytes = try times.measure {
                    try query.withUnsafeBufferPointer { q in
                        try keys.withUnsafeBufferPointer { k in
                            try values.withUnsafeBufferPointer { v in
                                try out.withUnsafeMutableBufferPointer { o in
                                    try Attention.fullMeasuringScratch(
                                        q: q.baseAddress!, k: k.baseAddress!, v: v.baseAddress!, n: n, m: n,
                                        heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, out: o.baseAddress!,
                                        kernel: s.kernel, scale: nil, threads: s.threads, pool: pool)
                                }
                            }
                        }
                    }
                }
                scratch = max(scratch, bytes)
            }
        case .prefill, .decode:
            let newTokens = s.mode == .prefill ? sequenceLength : 1
            let cache = try KVCache(layers: 1, kvHeads: s.kvHeads, headDim: s.headDim,
                                    capacity: sequenceLength, format: s.kvCacheFormat,
                                    window: s.window, globalTokens: s.globalTokens)
            var rng = SyntheticData(seed: 0x5EED)
            let kvWidth = s.kvHeads * s.headDim
            let query = rng.array(newTokens * s.heads * s.headDim)
            var out = [Float](repeating: 0, count: newTokens * s.heads * s.headDim)
            operandBytes = (query.count + out.count) * MemoryLayout<Float>.stride
            // Decode: fill all but the last token without running attention.
            if s.mode == .decode {
                var filled = 0
                while filled < sequenceLength - 1 {
                    let n = min(512, sequenceLength - 1 - filled)
                    let k = rng.array(n * kvWidth), v = rng.array(n * kvWidth)
                    try cache.append(layer: 0, keys: k, values: v, count: n)
                    try cache.commit(n)
                    filled += n
                }
            }
            let keys = rng.array(newTokens * kvWidth), values = rng.array(newTokens * kvWidth)
            try repeatCalls(&times) { times in
                if s.mode == .prefill { cache.reset() } else { cache.discardPending() }
                try cache.append(layer: 0, keys: keys, values: values, count: newTokens)
                if s.coldKV && !cache.evictFromCaches(layer: 0) { Self.sweepThrough(&sweep) }
                let tally = s.kernel == .tiled ? AttentionWorkTally() : nil
                let bytes = try times.measure {
                    try query.withUnsafeBufferPointer { q in
                        try out.withUnsafeMutableBufferPointer { o in
                            try Attention.causalMeasuringScratch(
                                q: q.baseAddress!, n: newTokens, heads: s.heads, cache: cache, layer: 0,
                                out: o.baseAddress!, kernel: s.kernel, scale: nil, blockSparse: s.blockSparse,
                                threads: s.threads, pool: pool, tally: tally)
                        }
                    }
                }
                scratch = max(scratch, bytes)
                kvBytes = max(kvBytes, cache.residentBytes)
                work = tally.map(\.counts).flatMap { $0 == AttentionWorkTally.Counts() ? nil : $0 }
            }
        }
        var growth: Int?
        if peakReset, let before = residentBefore, let peak = ProcessMemory.peakResidentBytes {
            growth = max(0, peak - before)
        }
        let newTokens = s.mode == .decode ? 1 : sequenceLength
        let median = times.median
        return Result(setting: s, sequenceLength: sequenceLength, peakScratchBytes: scratch, kvBytes: kvBytes,
                      operandBytes: operandBytes, residentGrowthBytes: growth,
                      tokensPerSecond: Double(newTokens) / median, secondsPerCall: times.fastest,
                      medianSecondsPerCall: median, cpuSecondsPerCall: times.fastestCPU,
                      repetitions: times.wall.count, work: work)
    }

    /// Reads and writes one byte per cache line of `buffer`, pushing what the caches held out of them.
    static func sweepThrough(_ buffer: inout [UInt8]) {
        buffer.withUnsafeMutableBufferPointer { b in
            var i = 0
            while i < b.count { b[i] &+= 1; i += 64 }
        }
    }

    /// A first call longer than this is timed rather than thrown away as a warm-up.
    public static let warmUpLimit = 1.0

    /// Wall-clock and process CPU time of each measured call.
    struct Timings {
        var wall: [Double] = []
        var cpu: [Double] = []
        mutating func measure<T>(_ body: () throws -> T) rethrows -> T {
            let startCPU = processCPUSeconds()
            let start = DispatchTime.now().uptimeNanoseconds
            let value = try body()
            wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            cpu.append(processCPUSeconds() - startCPU)
            return value
        }
        var fastest: Double { wall.min() ?? .nan }
        var fastestCPU: Double { cpu.min() ?? .nan }
        /// The middle value (the mean of the two middle values for an even count).
        var median: Double { Timings.median(wall) }
        static func median(_ values: [Double]) -> Double {
            values.isEmpty ? .nan : Statistics.median(values)
        }
    }

    /// Measures each setting at each length.
    public static func sweep(settings: [Setting], lengths: [Int], repetitions: Int = 3) throws -> [Result] {
        var results: [Result] = []
        for setting in settings {
            for length in lengths {
                results.append(try run(setting: setting, sequenceLength: length, repetitions: repetitions))
            }
        }
        return results
    }

    /// Feeds a cache of the setting's format and window one `step`-token chunk at a time and records its resident
    /// bytes at each of `lengths` (ascending): the measured memory curve of the KV cache for one layer.
    public static func memoryCurve(setting: Setting, lengths: [Int], step: Int = 64) throws -> [MemoryPoint] {
        guard step > 0 else { throw AttentionError.invalidParameter(name: "step", expected: "> 0", got: step) }
        guard let last = lengths.max() else { return [] }
        let s = setting
        let cache = try KVCache(layers: 1, kvHeads: s.kvHeads, headDim: s.headDim, capacity: last,
                                format: s.kvCacheFormat, window: s.window, globalTokens: s.globalTokens)
        var rng = SyntheticData(seed: 0xC0DE)
        let chunk = rng.array(step * s.kvHeads * s.headDim)
        var points: [MemoryPoint] = []
        for target in lengths.sorted() {
            while cache.length < target {
                let n = min(step, target - cache.length)
                try cache.append(layer: 0, keys: chunk, values: chunk, count: n)
                try cache.commit(n)
            }
            points.append(MemoryPoint(tokens: cache.length, residentTokens: cache.residentTokens,
                                      residentBytes: cache.residentBytes))
        }
        return points
    }

    static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Deterministic uniform values in [-1, 1).
    struct SyntheticData {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func array(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(state >> 40) / Float(1 << 23) - 1
            }
        }
    }
}
