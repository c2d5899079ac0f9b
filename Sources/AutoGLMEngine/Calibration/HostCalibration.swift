// Measures this machine: streaming read bandwidth, matrix kernel throughput per format, attention throughput.

import Foundation
import AutoGLMSpecs

/// Shapes, sizes and repeat counts of a calibration run.
public struct CalibrationOptions: Sendable, Codable, Equatable {
    /// Threads for every measurement (the compute pool's size, the attention kernel's thread count).
    public var threads: Int
    /// Bytes of the streaming-read buffer.
    public var bandwidthBytes: Int
    /// Timed passes over that buffer.
    public var bandwidthPasses: Int
    /// Matvec (decode) shape: rows × columns, one token.
    public var matvecRows: Int
    public var matvecColumns: Int
    public var matvecRepeats: Int
    /// Matmul (prefill) shape and batch.
    public var matmulRows: Int
    public var matmulColumns: Int
    public var matmulBatch: Int
    public var matmulRepeats: Int
    /// Attention: one decoder layer's prefill over `attentionTokens` tokens with this head layout.
    public var attentionTokens: Int
    public var attentionHeads: Int
    public var attentionKVHeads: Int
    public var attentionHeadDim: Int
    public var attentionRepeats: Int
    /// Formats to measure.
    public var formats: [PackedFormat]
    /// Passes over the formats (alternately in list and reverse order); each figure is the pass with the median
    /// time, so a spell of other work on a shared machine lands on one pass rather than on one format's figure.
    /// Nil (files written before passes existed) means one.
    public var formatPasses: Int?

    enum CodingKeys: String, CodingKey {
        case threads, bandwidthBytes = "bandwidth_bytes", bandwidthPasses = "bandwidth_passes"
        case matvecRows = "matvec_rows", matvecColumns = "matvec_columns", matvecRepeats = "matvec_repeats"
        case matmulRows = "matmul_rows", matmulColumns = "matmul_columns", matmulBatch = "matmul_batch"
        case matmulRepeats = "matmul_repeats", attentionTokens = "attention_tokens"
        case attentionHeads = "attention_heads", attentionKVHeads = "attention_kv_heads"
        case attentionHeadDim = "attention_head_dim", attentionRepeats = "attention_repeats", formats
        case formatPasses = "format_passes"
    }

    /// The full calibration: a 1 GiB read buffer; matvec on a GLM-4 fused gate/up matrix (27392 × 4096, larger than
    /// any last-level cache in every format); matmul 4096 × 4096 over 512 tokens (the planner's prefill chunk: a
    /// batch of 64 ran at about three quarters of its rate here, 138–159 against 196–212 GFLOP/s, its packing less
    /// amortised); attention prefill of one GLM-4 layer (32 heads, 2 KV heads, head_dim 128) over 1024 tokens; three
    /// passes over the formats.
    public static func full(threads: Int) -> CalibrationOptions {
        CalibrationOptions(threads: threads, bandwidthBytes: 1 << 30, bandwidthPasses: 9,
                           matvecRows: 27392, matvecColumns: 4096, matvecRepeats: 9,
                           matmulRows: 4096, matmulColumns: 4096, matmulBatch: 512, matmulRepeats: 5,
                           attentionTokens: 1024, attentionHeads: 32, attentionKVHeads: 2, attentionHeadDim: 128,
                           attentionRepeats: 5, formats: PackedFormat.allCases, formatPasses: 3)
    }

    /// A seconds-long run with small sizes, for tests and smoke checks; its figures are not representative.
    public static func quick(threads: Int) -> CalibrationOptions {
        CalibrationOptions(threads: threads, bandwidthBytes: 32 << 20, bandwidthPasses: 3,
                           matvecRows: 512, matvecColumns: 512, matvecRepeats: 3,
                           matmulRows: 256, matmulColumns: 512, matmulBatch: 64, matmulRepeats: 3,
                           attentionTokens: 128, attentionHeads: 8, attentionKVHeads: 2, attentionHeadDim: 64,
                           attentionRepeats: 3, formats: PackedFormat.allCases)
    }

    public init(threads: Int, bandwidthBytes: Int, bandwidthPasses: Int, matvecRows: Int, matvecColumns: Int,
                matvecRepeats: Int, matmulRows: Int, matmulColumns: Int, matmulBatch: Int, matmulRepeats: Int,
                attentionTokens: Int, attentionHeads: Int, attentionKVHeads: Int, attentionHeadDim: Int,
                attentionRepeats: Int, formats: [PackedFormat], formatPasses: Int? = nil) {
        self.threads = threads; self.bandwidthBytes = bandwidthBytes; self.bandwidthPasses = bandwidthPasses
        self.matvecRows = matvecRows; self.matvecColumns = matvecColumns; self.matvecRepeats = matvecRepeats
        self.matmulRows = matmulRows; self.matmulColumns = matmulColumns; self.matmulBatch = matmulBatch
        self.matmulRepeats = matmulRepeats; self.attentionTokens = attentionTokens
        self.attentionHeads = attentionHeads; self.attentionKVHeads = attentionKVHeads
        self.attentionHeadDim = attentionHeadDim; self.attentionRepeats = attentionRepeats; self.formats = formats
        self.formatPasses = formatPasses
    }

    /// Throws for any count or size that is not positive, a batch of 1 for matmul, or shapes a format cannot store.
    public func validate() throws {
        let positive: [(String, Int)] = [
            ("threads", threads), ("bandwidth bytes", bandwidthBytes), ("bandwidth passes", bandwidthPasses),
            ("matvec rows", matvecRows), ("matvec columns", matvecColumns), ("matvec repeats", matvecRepeats),
            ("matmul rows", matmulRows), ("matmul columns", matmulColumns), ("matmul repeats", matmulRepeats),
            ("attention tokens", attentionTokens), ("attention heads", attentionHeads),
            ("attention KV heads", attentionKVHeads), ("attention head dim", attentionHeadDim),
            ("attention repeats", attentionRepeats), ("format passes", formatPasses ?? 1),
        ]
        for (name, value) in positive where value <= 0 {
            throw CalibrationError.invalidOption(name: name, expected: "a positive number", got: "\(value)")
        }
        if matmulBatch < 2 {
            throw CalibrationError.invalidOption(name: "matmul batch", expected: "at least 2", got: "\(matmulBatch)")
        }
        if attentionHeads % attentionKVHeads != 0 {
            throw CalibrationError.invalidOption(name: "attention heads",
                                                 expected: "a multiple of the KV heads (\(attentionKVHeads))",
                                                 got: "\(attentionHeads)")
        }
        if formats.isEmpty {
            throw CalibrationError.invalidOption(name: "formats", expected: "at least one format", got: "none")
        }
        for format in formats {
            for (name, columns) in [("matvec columns", matvecColumns), ("matmul columns", matmulColumns)]
            where !format.supports(columns: columns) {
                throw CalibrationError.invalidOption(
                    name: name, expected: "a multiple of \(format.blockElements) for \(format)", got: "\(columns)")
            }
        }
    }
}

/// Matvec and matmul timings of one format.
public struct FormatThroughput: Sendable, Codable, Equatable {
    public var format: PackedFormat
    public var matvec: KernelBenchmarkResult
    public var matmul: KernelBenchmarkResult
    /// A small matvec (`HostCalibration.smallMatvecShape`) whose copies are called in turn, so each call reads its
    /// weights from memory: its time beyond its bytes at `matvec`'s rate is the fixed cost of a call. Nil in files
    /// written before it was measured.
    public var smallMatvec: KernelBenchmarkResult?

    enum CodingKeys: String, CodingKey {
        case format, matvec, matmul, smallMatvec = "small_matvec"
    }

    public init(format: PackedFormat, matvec: KernelBenchmarkResult, matmul: KernelBenchmarkResult,
                smallMatvec: KernelBenchmarkResult? = nil) {
        self.format = format; self.matvec = matvec; self.matmul = matmul; self.smallMatvec = smallMatvec
    }

    /// Seconds a matvec call costs beyond its bytes at the large matrix's streaming rate (at least 0); nil without
    /// the small measurement.
    public var matvecCallSeconds: Double? {
        guard let small = smallMatvec else { return nil }
        let rate = Double(matvec.weightBytes) / matvec.medianSeconds
        return max(0, small.medianSeconds - Double(small.weightBytes) / rate)
    }
}

/// Attention prefill timing of one layer.
public struct AttentionThroughput: Sendable, Codable, Equatable {
    public var tokens: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var threads: Int
    /// Seconds per call of each repeat, and their median.
    public var secondsPerCall: [Double]

    enum CodingKeys: String, CodingKey {
        case tokens, heads, kvHeads = "kv_heads", headDim = "head_dim", threads
        case secondsPerCall = "seconds_per_call"
    }

    public var medianSeconds: Double { Statistics.median(secondsPerCall) }
    /// FLOPs of one causal prefill: QKᵀ and AV over the n(n+1)/2 visible pairs, 2 FLOP per multiply-add, all heads.
    public var flops: Double {
        let n = Double(tokens)
        return Double(heads) * 2 * Double(headDim) * n * (n + 1)
    }
    public var gflopsPerSecond: Double { flops / medianSeconds / 1e9 }
    public var tokensPerSecond: Double { Double(tokens) / medianSeconds }
}

/// Everything one calibration run measured.
public struct HostCalibrationResult: Sendable, Codable, Equatable {
    public var host: HostInfo
    public var options: CalibrationOptions
    /// When the run started (ISO 8601, UTC).
    public var date: String
    public var bandwidth: BandwidthMeasurement
    public var formats: [FormatThroughput]
    public var attention: AttentionThroughput
    /// The matrix-kernel family measured (`KernelISA`); absent in files written before it was recorded.
    public var kernels: String?
    /// The calibrating process's file-backed resident set after every measurement (RssFile): the program and
    /// libraries as far as running the engine's kernels, pool and attention paged them in. Nil where not reported,
    /// and in files written before it was recorded.
    public var fileResidentAfterBytes: Int?

    enum CodingKeys: String, CodingKey {
        case host, options, date, bandwidth, formats, attention, kernels
        case fileResidentAfterBytes = "file_resident_after_bytes"
    }

    public init(host: HostInfo, options: CalibrationOptions, date: String, bandwidth: BandwidthMeasurement,
                formats: [FormatThroughput], attention: AttentionThroughput,
                kernels: String? = KernelISA.active.rawValue, fileResidentAfterBytes: Int? = nil) {
        self.host = host; self.options = options; self.date = date; self.bandwidth = bandwidth
        self.formats = formats; self.attention = attention; self.kernels = kernels
        self.fileResidentAfterBytes = fileResidentAfterBytes
    }
}

public enum HostCalibration {
    /// The small matvec whose copies measure the fixed cost of a call: about a small model's projection (SmolLM2's
    /// are 576–3,072 × 576), with 1,024 columns so that every group size divides it.
    public static let smallMatvecShape = (rows: 1_024, columns: 1_024)

    /// Runs every measurement. `progress` receives one line per step (nil: silent).
    public static func run(options: CalibrationOptions, progress: ((String) -> Void)? = nil) throws
        -> HostCalibrationResult {
        try options.validate()
        let host = try HostInfo.current()
        let date = UTCTimestamp.string()
        let pool = ComputePool(threadCount: options.threads)

        progress?("stream read: \(options.bandwidthBytes >> 20) MiB × \(options.bandwidthPasses) passes, "
                  + "\(options.threads) threads")
        let bandwidth = try MemoryBandwidthProbe.measure(bytes: options.bandwidthBytes,
                                                         passes: options.bandwidthPasses, pool: pool)
        try requireUsable("stream read bandwidth", bandwidth.medianBytesPerSecond)

        let passes = options.formatPasses ?? 1
        let cacheBytes = HostInfo.lastLevelCacheBytes() ?? 32 << 20
        var measured: [PackedFormat: [FormatThroughput]] = [:]
        for pass in 0..<passes {
            for format in pass % 2 == 0 ? options.formats : options.formats.reversed() {
                progress?((passes > 1 ? "pass \(pass + 1) of \(passes), " : "")
                          + "\(format): matvec \(options.matvecRows)×\(options.matvecColumns), "
                          + "matmul \(options.matmulRows)×\(options.matmulColumns)×\(options.matmulBatch)")
                measured[format, default: []].append(try measure(format, options: options, cacheBytes: cacheBytes,
                                                                  pool: pool))
            }
        }
        // Per format and kernel, the pass with the median time.
        func median(_ runs: [KernelBenchmarkResult]) -> KernelBenchmarkResult {
            runs.sorted { $0.medianSeconds < $1.medianSeconds }[runs.count / 2]
        }
        let formats = options.formats.map { format in
            let runs = measured[format] ?? []
            return FormatThroughput(format: format, matvec: median(runs.map(\.matvec)),
                                    matmul: median(runs.map(\.matmul)),
                                    smallMatvec: median(runs.compactMap(\.smallMatvec)))
        }

        progress?("attention: prefill \(options.attentionTokens) tokens, \(options.attentionHeads) heads / "
                  + "\(options.attentionKVHeads) KV heads × \(options.attentionHeadDim)")
        let setting = AttentionBenchmark.Setting(name: "calibration", mode: .prefill, kvCacheFormat: .f32,
                                                 kernel: .tiled, heads: options.attentionHeads,
                                                 kvHeads: options.attentionKVHeads,
                                                 headDim: options.attentionHeadDim, threads: options.threads)
        // One untimed call, then `attentionRepeats` single-repetition calls whose median is used.
        _ = try AttentionBenchmark.run(setting: setting, sequenceLength: options.attentionTokens, repetitions: 1)
        var seconds: [Double] = []
        for _ in 0..<options.attentionRepeats {
            let r = try AttentionBenchmark.run(setting: setting, sequenceLength: options.attentionTokens,
                                               repetitions: 1)
            seconds.append(r.secondsPerCall)
        }
        let attention = AttentionThroughput(tokens: options.attentionTokens, heads: options.attentionHeads,
                                            kvHeads: options.attentionKVHeads, headDim: options.attentionHeadDim,
                                            threads: options.threads, secondsPerCall: seconds)
        try requireUsable("attention time", attention.medianSeconds)
        return HostCalibrationResult(host: host, options: options, date: date, bandwidth: bandwidth,
                                     formats: formats, attention: attention,
                                     fileResidentAfterBytes: HostInfo.fileResidentBytes())
    }

    /// One format's large matvec, matmul and small matvec from memory (enough copies for 4× `cacheBytes`, the
    /// last-level cache).
    static func measure(_ format: PackedFormat, options: CalibrationOptions, cacheBytes: Int, pool: ComputePool)
        throws -> FormatThroughput {
        let mv = try KernelBenchmark.run(format: format, rows: options.matvecRows, columns: options.matvecColumns,
                                         batch: 1, repeats: options.matvecRepeats, pool: pool)
        let mm = try KernelBenchmark.run(format: format, rows: options.matmulRows, columns: options.matmulColumns,
                                         batch: options.matmulBatch, repeats: options.matmulRepeats, pool: pool)
        let shape = smallMatvecShape
        let bytes = format.rowBytes(columns: shape.columns) * shape.rows
        let copies = min(2_048, max(2, 4 * cacheBytes / bytes + 1))
        let small = try KernelBenchmark.run(format: format, rows: shape.rows, columns: shape.columns, batch: 1,
                                            repeats: max(options.matvecRepeats, 4 * copies), pool: pool,
                                            copies: copies)
        try requireUsable("\(format) matvec time", mv.medianSeconds)
        try requireUsable("\(format) matmul time", mm.medianSeconds)
        try requireUsable("\(format) small matvec time", small.medianSeconds)
        return FormatThroughput(format: format, matvec: mv, matmul: mm, smallMatvec: small)
    }

    static func requireUsable(_ what: String, _ value: Double) throws {
        if !(value > 0 && value.isFinite) { throw CalibrationError.unusableMeasurement(what: what, value: value) }
    }
}
