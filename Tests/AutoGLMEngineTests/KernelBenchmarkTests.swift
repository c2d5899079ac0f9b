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
            #expect(r.gigabytesPerSecond > 0 && r.gflopsPerSecond > 0)
            let decoded = try JSONDecoder().decode(KernelBenchmarkResult.self, from: JSONEncoder().encode(r))
            #expect(decoded == r)
        }
        #expect(throws: KernelError.self) { try KernelBenchmark.run(format: .f32, rows: 4, columns: 4, batch: 0, pool: nil) }
        #expect(throws: QuantError.self) { try KernelBenchmark.run(format: .q8_0, rows: 4, columns: 40, pool: nil) }
    }

    /// Prints the kernel table when AUTOGLM_KERNEL_BENCH is set (for example `AUTOGLM_KERNEL_BENCH=1 swift test
    /// -c release --filter kernelReport`); otherwise it returns at once. It asserts nothing about speed.
    @Test("kernel benchmark report (set AUTOGLM_KERNEL_BENCH=1 to print)")
    func kernelReport() throws {
        guard let spec = ProcessInfo.processInfo.environment["AUTOGLM_KERNEL_BENCH"] else { return }
        let threads = Int(ProcessInfo.processInfo.environment["AUTOGLM_KERNEL_THREADS"] ?? "") ?? 2
        let pool = ComputePool(threadCount: threads)
        let shapes = spec == "small" ? [(1536, 576), (576, 1536)] : [(1536, 576), (576, 1536), (4096, 4096)]
        print("format     rows  cols   matvec GB/s  matvec µs   matmul64 GFLOP/s  (threads \(threads))")
        for (rows, columns) in shapes {
            for format in PackedFormat.allCases {
                let big = rows * columns > 4_000_000
                let mv = try KernelBenchmark.run(format: format, rows: rows, columns: columns, batch: 1,
                                                 repeats: big ? 30 : 200, pool: pool)
                let mm = try KernelBenchmark.run(format: format, rows: rows, columns: columns, batch: 64,
                                                 repeats: big ? 3 : 20, pool: pool)
                print(String(format: "%-9@ %5d %5d   %8.2f   %9.2f   %10.1f", format.rawValue as NSString, rows, columns,
                             mv.gigabytesPerSecond, mv.medianSeconds * 1e6, mm.gflopsPerSecond))
            }
        }
    }
}
