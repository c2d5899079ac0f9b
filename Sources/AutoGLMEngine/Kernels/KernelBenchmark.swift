// Microbenchmark of the matrix kernels, for `make bench` and host calibration.

/// Timing of one kernel configuration. Seconds are per call (one matvec, or one matmul over `batch` tokens).
public struct KernelBenchmarkResult: Sendable, Codable, Equatable {
    public let format: PackedFormat
    public let rows: Int
    public let columns: Int
    public let batch: Int
    public let threads: Int
    public let repeats: Int
    public let medianSeconds: Double
    public let stddevSeconds: Double
    /// Fastest call; on a busy host the least disturbed by other processes.
    public let minSeconds: Double
    /// Packed weight bytes read per call.
    public let weightBytes: Int
    /// `int8` when the matmul rounded its activations to 8 bits (`ActivationPrecision`); nil for Float32 (and in
    /// records written before the choice existed).
    public var activations: ActivationPrecision?
    /// Copies of the matrix called in turn (weights read from memory once they exceed the caches); nil for one.
    public var copies: Int?

    enum CodingKeys: String, CodingKey {
        case format, rows, columns, batch, threads, repeats, activations, copies
        case medianSeconds = "median_seconds"
        case stddevSeconds = "stddev_seconds"
        case minSeconds = "min_seconds"
        case weightBytes = "weight_bytes"
    }

    /// Weight bytes per second at the median time, in 1e9 bytes/s.
    public var gigabytesPerSecond: Double { Double(weightBytes) / medianSeconds / 1e9 }
    /// Multiply-adds counted as 2 FLOP: 2·rows·columns·batch per call, in 1e9 FLOP/s.
    public var gflopsPerSecond: Double { 2 * Double(rows) * Double(columns) * Double(batch) / medianSeconds / 1e9 }
    /// Tokens per second through this one matrix (batch / median).
    public var tokensPerSecond: Double { Double(batch) / medianSeconds }
}

public enum KernelBenchmark {
    /// Times `repeats` calls (after one warm-up call) of matvec (batch 1) or matmul (batch > 1) on a random matrix
    /// of the given shape in `format`. Throws if the shape does not fit the format or an argument is not positive.
    /// `activations: .int8` marks the matrix for 8-bit activations (used where `MatrixKernels.usesInt8Activations`).
    /// `copies` > 1 lays that many copies of the packed matrix side by side and calls them in turn, so that with
    /// enough copies (their bytes well beyond the last-level cache) every call reads its weights from memory, as a
    /// decoding model does layer after layer; with 1 the same matrix is called again and small shapes stay in cache.
    public static func run(format: PackedFormat, rows: Int, columns: Int, batch: Int = 1, repeats: Int = 20,
                           pool: ComputePool?, isa: KernelISA = .active,
                           activations: ActivationPrecision = .float32,
                           copies: Int = 1) throws -> KernelBenchmarkResult {
        guard batch > 0 else { throw KernelError.invalidArgument("batch must be positive, got \(batch)") }
        guard repeats > 0 else { throw KernelError.invalidArgument("repeats must be positive, got \(repeats)") }
        guard copies > 0 else { throw KernelError.invalidArgument("copies must be positive, got \(copies)") }
        var rng = SplitMix64(seed: 0x5EED_0000 &+ UInt64(rows &* 31 &+ columns))
        let weights = (0..<(rows * columns)).map { _ in Float.random(in: -1...1, using: &rng) }
        var packed = try PackedMatrix.quantize(weights, rows: rows, columns: columns, format: format)
        packed.activations = MatrixKernels.effectiveActivations(activations, isa: isa)
        packed = try packed.executionLayout(isa: isa)
        let matrices = copies > 1 ? try laidOut(packed, copies: copies) : [packed]
        let x = (0..<(batch * columns)).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = [Float](repeating: 0, count: batch * rows)
        var times: [Double] = []
        times.reserveCapacity(repeats)
        let clock = ContinuousClock()
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                for i in 0...repeats {
                    let m = matrices[i % matrices.count]
                    let start = clock.now
                    if batch == 1 {
                        MatrixKernels.matvec(m, xp, into: yp, pool: pool, isa: isa)
                    } else {
                        MatrixKernels.matmul(m, xp, count: batch, into: yp, pool: pool, isa: isa)
                    }
                    let elapsed = clock.now - start
                    if i > 0 {
                        let c = elapsed.components
                        times.append(Double(c.seconds) + Double(c.attoseconds) * 1e-18)
                    }
                }
            }
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2]
            : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let mean = times.reduce(0, +) / Double(times.count)
        let variance = times.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, times.count - 1))
        var result = KernelBenchmarkResult(format: format, rows: rows, columns: columns, batch: batch,
                                           threads: pool?.threadCount ?? 1, repeats: repeats, medianSeconds: median,
                                           stddevSeconds: variance.squareRoot(), minSeconds: times[0],
                                           weightBytes: packed.byteCount)
        if MatrixKernels.usesInt8Activations(packed, count: batch, isa: isa) { result.activations = .int8 }
        if copies > 1 { result.copies = copies }
        return result
    }
}

extension KernelBenchmark {
    /// `copies` copies of a packed matrix side by side in one allocation, a whole number of 4 KiB pages apart (no
    /// two copies share a page, as separately allocated tensors do not).
    static func laidOut(_ packed: PackedMatrix, copies: Int) throws -> [PackedMatrix] {
        let stride = (packed.byteCount + 4095) / 4096 * 4096
        let arena = PackedStorage(byteCount: stride * copies)
        return try (0..<copies).map { c in
            let base = arena.pointer + c * stride
            base.copyMemory(from: packed.data, byteCount: packed.byteCount)
            var m = try PackedMatrix(format: packed.format, rows: packed.rows, columns: packed.columns,
                                     data: UnsafeRawPointer(base), availableBytes: stride, owner: arena)
            m.activations = packed.activations
            m.rowGroup = packed.rowGroup
            return m
        }
    }

    /// Median wall time of one `parallelFor` over `pool.threadCount` empty bodies, i.e. the fixed cost a kernel
    /// pays for going parallel (wake-up, hand-out, completion wait), measured over `calls` back-to-back calls.
    public static func parallelForOverhead(pool: ComputePool, calls: Int = 2000) -> Double {
        let clock = ContinuousClock()
        var times: [Double] = []
        times.reserveCapacity(max(calls, 1))
        for _ in 0..<max(calls, 1) {
            let start = clock.now
            pool.parallelFor(pool.threadCount) { _ in }
            let c = (clock.now - start).components
            times.append(Double(c.seconds) + Double(c.attoseconds) * 1e-18)
        }
        times.sort()
        return times[times.count / 2]
    }
}

/// A small, fast, seedable generator (SplitMix64) for reproducible test and benchmark data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
