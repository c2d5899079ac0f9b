import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("Kernel benchmark")
struct KernelBenchmarkTests {
    @Test("benchmark results are well-formed (no timing assertions)")
    func wellFormed() throws {
        let pool = ComputePool(threadCount: 2)
        for batch in [1, 6] {
            let r = try KernelBenchmark.run(format: .q4_0, rows: 64, columns: 256, batch: batch, repeats: 3, pool: pool)
            #expect(r.batch == batch && r.threads == 2 && r.repeats == 3)
            #expect(r.weightBytes == 64 * 8 * 18)
            #expect(r.medianSeconds > 0 && r.medianSeconds.isFinite && r.stddevSeconds >= 0)
            #expect(r.minSeconds > 0 && r.minSeconds <= r.medianSeconds)
            #expect(r.gigabytesPerSecond > 0 && r.gflopsPerSecond > 0)
            let decoded = try JSONDecoder().decode(KernelBenchmarkResult.self, from: JSONEncoder().encode(r))
            #expect(decoded == r)
        }
        #expect(throws: KernelError.self) { try KernelBenchmark.run(format: .f32, rows: 4, columns: 4, batch: 0, pool: nil) }
        let overhead = KernelBenchmark.parallelForOverhead(pool: pool, calls: 50)
        #expect(overhead > 0 && overhead.isFinite)
        #expect(throws: QuantError.self) { try KernelBenchmark.run(format: .q8_0, rows: 4, columns: 40, pool: nil) }
    }

    @Test("copies called in turn multiply like the original and are recorded")
    func copies() throws {
        var rng = SplitMix64(seed: 7)
        let w = (0..<(40 * 64)).map { _ in Float.random(in: -1...1, using: &rng) }
        let x = (0..<64).map { _ in Float.random(in: -1...1, using: &rng) }
        let packed = try PackedMatrix.quantize(w, rows: 40, columns: 64, format: .q4_0)
        let laid = try KernelBenchmark.laidOut(packed, copies: 3)
        #expect(laid.count == 3)
        var expected = [Float](repeating: 0, count: 40)
        MatrixKernels.matvec(packed, x, into: &expected, pool: nil)
        for (i, m) in laid.enumerated() {
            #expect((Int(bitPattern: m.data) - Int(bitPattern: laid[0].data)) % 4096 == 0, "copy \(i)")
            #expect(i == 0 || Int(bitPattern: m.data) - Int(bitPattern: laid[i - 1].data) >= packed.byteCount)
            var y = [Float](repeating: 0, count: 40)
            MatrixKernels.matvec(m, x, into: &y, pool: nil)
            #expect(y == expected, "copy \(i)")
        }
        let r = try KernelBenchmark.run(format: .q4_0, rows: 40, columns: 64, repeats: 4, pool: nil, copies: 3)
        #expect(r.copies == 3 && r.weightBytes == packed.byteCount)
        #expect(try KernelBenchmark.run(format: .q4_0, rows: 40, columns: 64, repeats: 1, pool: nil).copies == nil)
        #expect(throws: KernelError.self) {
            try KernelBenchmark.run(format: .q4_0, rows: 40, columns: 64, pool: nil, copies: 0)
        }
    }

    @Test("a result says when its matmul rounded the activations to 8 bits, and only then")
    func activations() throws {
        let int8 = try KernelBenchmark.run(format: .q4_0, rows: 32, columns: 64, batch: 6, repeats: 1, pool: nil,
                                           activations: .int8)
        #expect(int8.activations == (MatrixKernels.effectiveActivations(.int8) == .int8 ? .int8 : nil))
        let decode = try KernelBenchmark.run(format: .q4_0, rows: 32, columns: 64, batch: 1, repeats: 1, pool: nil,
                                             activations: .int8)
        #expect(decode.activations == nil)
        let float = try KernelBenchmark.run(format: .f16, rows: 32, columns: 64, batch: 6, repeats: 1, pool: nil,
                                            activations: .int8)
        #expect(float.activations == nil)
        let old = Data(#"{"format":"q4_0","rows":1,"columns":32,"batch":1,"threads":1,"repeats":1,"median_seconds":1,"stddev_seconds":0,"min_seconds":1,"weight_bytes":18}"#.utf8)
        #expect(try JSONDecoder().decode(KernelBenchmarkResult.self, from: old).activations == nil)
    }

    /// Prints the kernel table when AUTOGLM_KERNEL_BENCH is set (for example `AUTOGLM_KERNEL_BENCH=1 swift test
    /// -c release --filter kernelReport`); otherwise it returns at once. It asserts nothing about speed.
    @Test("kernel benchmark report (set AUTOGLM_KERNEL_BENCH=1 to print)")
    func kernelReport() throws {
        guard let spec = ProcessInfo.processInfo.environment["AUTOGLM_KERNEL_BENCH"] else { return }
        let threads = Int(ProcessInfo.processInfo.environment["AUTOGLM_KERNEL_THREADS"] ?? "") ?? 2
        let pool = ComputePool(threadCount: threads)
        let shapes = spec == "small" ? [(1536, 576), (576, 1536)] : [(1536, 576), (576, 1536), (4096, 4096)]
        print(String(format: "parallelFor overhead: %.2f µs per call", KernelBenchmark.parallelForOverhead(pool: pool) * 1e6))
        print("format     rows  cols   matvec GB/s (median, best)  matvec µs (median)  matmul64 GFLOP/s (median, best)  (threads \(threads))")
        for (rows, columns) in shapes {
            for format in PackedFormat.allCases where format.supports(columns: columns) {
                let big = rows * columns > 4_000_000
                let mv = try KernelBenchmark.run(format: format, rows: rows, columns: columns, batch: 1,
                                                 repeats: big ? 30 : 200, pool: pool)
                let mm = try KernelBenchmark.run(format: format, rows: rows, columns: columns, batch: 64,
                                                 repeats: big ? 3 : 20, pool: pool)
                let name = format.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                let bestGB = Double(mv.weightBytes) / mv.minSeconds / 1e9
                let bestGF = 2 * Double(rows * columns * 64) / mm.minSeconds / 1e9
                print(name + String(format: "%5d %5d   %8.2f %8.2f   %9.2f   %10.1f %8.1f", rows, columns,
                                    mv.gigabytesPerSecond, bestGB, mv.medianSeconds * 1e6, mm.gflopsPerSecond, bestGF))
            }
        }
    }
}
