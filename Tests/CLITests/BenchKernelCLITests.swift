import Foundation
import Testing

/// `autoglm-run bench-kernel` on shapes that take milliseconds. Times are printed, never asserted; the records'
/// shapes, byte counts and derived rates are checked.
@Suite("autoglm-run bench-kernel")
struct BenchKernelCLITests {
    static func run(_ arguments: [String]) throws -> CLITool.Output {
        try CLITool.run("autoglm-run", arguments, currentDirectory: CLITool.packageRoot)
    }

    @Test("--json: one record per format, with the shape, thread count and the format's weight bytes",
          arguments: [1, 8])
    func jsonRecords(batch: Int) throws {
        let r = try Self.run(["bench-kernel", "--formats", "f32,q4_0,q4_1", "--rows", "64", "--columns", "64",
                              "--batch", "\(batch)", "--repeats", "3", "--threads", "2", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let records = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        #expect(records.map { $0["format"] as? String ?? "" } == ["f32", "q4_0", "q4_1"])
        // 64 × 64 weights: F32 4 bytes each; Q4_0 18 bytes and Q4_1 20 bytes per 32.
        #expect(records.map { $0["weight_bytes"] as? Int ?? 0 } == [64 * 64 * 4, 64 * 2 * 18, 64 * 2 * 20])
        for record in records {
            #expect(record["rows"] as? Int == 64)
            #expect(record["batch"] as? Int == batch)
            #expect(record["threads"] as? Int == 2)
            #expect(record["repeats"] as? Int == 3)
            let median = try #require(record["median_seconds"] as? Double)
            let fastest = try #require(record["min_seconds"] as? Double)
            #expect(median > 0 && fastest <= median)
        }
    }

    @Test("table: a header naming the kernel and shape; formats whose block does not divide the row are skipped")
    func tableAndSkip() throws {
        let r = try Self.run(["bench-kernel", "--formats", "f32,int4-g128", "--rows", "16", "--columns", "96",
                              "--repeats", "2", "--threads", "1", "--kernels", "simd8"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout.contains("matvec 16×96, 1 thread(s), simd8 kernels"))
        #expect(r.stdout.contains("| f32       |"))
        #expect(!r.stdout.contains("int4-g128 |"))
        #expect(r.stderr.contains("skipped int4-g128: 96 columns are not a multiple of its block of 128"))
    }

    @Test("bad arguments: one line naming the option, non-zero exit", arguments: [
        (["--formats", "q3_k"], "unknown format 'q3_k'"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--rows", "0"], "--rows and --columns must be positive"),
        (["--kernels", "sse"], "--kernels must be avx512 or simd8"),
    ])
    func badArguments(arguments: [String], message: String) throws {
        let r = try Self.run(["bench-kernel", "--repeats", "1"] + arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }
}
