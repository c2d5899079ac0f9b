import ArgumentParser
import AutoGLMEngine
import Foundation

/// `autoglm-run bench-kernel`: one matrix kernel (matvec or matmul) on a random matrix, per weight format. The
/// whole-model `bench` mixes every kernel with attention and synchronisation; this isolates one shape, for example
/// a matrix small enough to stay in cache (compute-bound) against a large one (memory-bound).
struct BenchKernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernel",
        abstract: "Time matvec (batch 1) or matmul (batch > 1) of one matrix shape in each weight format.")

    @Option(help: "Comma-separated formats.")
    var formats: String = "f32,f16,bf16,q8_0,q4_0,q4_1,int8,int4-g32,int4-g128"

    @Option(help: "Matrix rows (outputs).")
    var rows: Int = 1536

    @Option(help: "Matrix columns (inputs); a multiple of the formats' block size.")
    var columns: Int = 576

    @Option(help: "Tokens per call: 1 runs matvec, more run matmul.")
    var batch: Int = 1

    @Option(help: "Timed calls per format (after one warm-up call).")
    var repeats: Int = 200

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: "Kernel family: avx512 or simd8 (default: the widest the CPU runs; AUTOGLM_KERNELS also selects).")
    var kernels: String?

    @Option(help: "Matmul activations: f32 (exact) or int8 (rounded to 8 bits per block of 32; quantised formats, AVX-512 kernels; a batch of 1 stays f32).")
    var activations: String = "f32"

    @Option(help: """
        Copies of the matrix called in turn: enough that their bytes exceed the last-level cache makes every call \
        read its weights from memory, as a model's layers do; with one, small shapes stay in cache.
        """)
    var copies: Int = 1

    @Flag(help: "Print JSON records.")
    var json = false

    func validate() throws {
        if rows < 1 || columns < 1 { throw ValidationError("--rows and --columns must be positive") }
        if batch < 1 { throw ValidationError("--batch must be at least 1, got \(batch)") }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        if copies < 1 { throw ValidationError("--copies must be at least 1, got \(copies)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        _ = try activationPrecision(named: activations)
        if let kernels, KernelISA(rawValue: kernels) == nil {
            throw ValidationError("--kernels must be avx512 or simd8, got '\(kernels)'")
        }
    }

    func run() throws {
        let list = try formatNames(formats).map { try packedFormat(named: $0) }
        let isa = kernels.flatMap(KernelISA.init(rawValue:)) ?? .active
        guard isa.isSupported() else { throw ValidationError("this CPU cannot run the \(isa.rawValue) kernels") }
        let pool = ComputePool(threadCount: threads)
        var results: [KernelBenchmarkResult] = []
        for format in list {
            if columns % format.blockElements != 0 {
                FileHandle.standardError.write(Data("skipped \(format.rawValue): \(columns) columns are not a multiple of its block of \(format.blockElements)\n".utf8))
                continue
            }
            do {
                results.append(try KernelBenchmark.run(format: format, rows: rows, columns: columns, batch: batch,
                                                       repeats: repeats, pool: pool, isa: isa,
                                                       activations: try activationPrecision(named: activations),
                                                       copies: copies))
            } catch {
                FileHandle.standardError.write(Data("error: \(format.rawValue): \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
            return
        }
        let kind = batch == 1 ? "matvec" : "matmul ×\(batch)"
        print("\(kind) \(rows)×\(columns)" + (copies > 1 ? " (\(copies) copies in turn)" : "")
              + ", \(pool.threadCount) thread(s), \(isa.rawValue) kernels, median of \(repeats)"
              + (results.contains { $0.activations == .int8 } ? "; a8: activations rounded to 8 bits" : ""))
        print("| format    | weights KiB | median µs | ± µs    | GFLOP/s | weight GB/s |")
        print("| --------- | ----------: | --------: | ------: | ------: | ----------: |")
        for r in results {
            let label = r.format.rawValue + (r.activations == .int8 ? " a8" : "")
            let name = label.padding(toLength: 9, withPad: " ", startingAt: 0)
            print("| \(name) | " + String(format: "%11.1f | %9.2f | %7.2f | %7.2f | %11.2f |",
                                             Double(r.weightBytes) / 1024, r.medianSeconds * 1e6,
                                             r.stddevSeconds * 1e6, r.gflopsPerSecond, r.gigabytesPerSecond))
        }
    }
}
