import Foundation
import Testing
import AutoGLMSpecs
@testable import AutoGLMEngine

@Suite("Host calibration")
struct CalibrationTests {
    static let cpuinfo = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        model name\t: AMD EPYC 9B14
        cpu MHz\t\t: 2596.100

        processor\t: 1
        model name\t: AMD EPYC 9B14
        cpu MHz\t\t: 2596.100
        """
    static let meminfo = """
        MemTotal:       24684092 kB
        MemFree:         1000000 kB
        MemAvailable:   22177976 kB
        """
    static let status = "Name:\tautoglm-plan\nVmRSS:\t   12000 kB\nRssAnon:\t    3000 kB\nRssFile:\t    9000 kB\n"

    @Test("host facts are parsed from /proc texts")
    func parsesHostInfo() throws {
        let info = try HostInfo.parse(cpuinfo: Self.cpuinfo, meminfo: Self.meminfo, status: Self.status,
                                      loadavg: "3.52 2.10 1.00 3/200 1234\n", cores: 2)
        #expect(info.loadAverage == 3.52)
        #expect(info.cpuModel == "AMD EPYC 9B14")
        #expect(info.cores == 2)
        #expect(abs((info.clockGHz ?? 0) - 2.5961) < 1e-9)
        #expect(info.memTotalBytes == 24_684_092 * 1024)
        #expect(info.memAvailableBytes == 22_177_976 * 1024)
        #expect(info.processResidentBytes == 12_000 * 1024)
        #expect(info.processFileResidentBytes == 9_000 * 1024)
        let old = try HostInfo.parse(cpuinfo: Self.cpuinfo, meminfo: Self.meminfo, status: "VmRSS:\t 12000 kB\n",
                                     cores: 2)
        #expect(old.processFileResidentBytes == nil)
    }

    @Test("a missing or malformed /proc field is a clear error")
    func missingFields() {
        #expect(throws: CalibrationError.missingSystemField(path: "/proc/meminfo", field: "MemAvailable")) {
            try HostInfo.parse(cpuinfo: Self.cpuinfo, meminfo: "MemTotal: 100 kB\n", status: Self.status, cores: 2)
        }
        #expect(throws: CalibrationError.self) {
            try HostInfo.parse(cpuinfo: Self.cpuinfo, meminfo: "MemTotal: lots\nMemAvailable: 5 kB\n",
                               status: Self.status, cores: 2)
        }
        // No model name: the architecture stands in, and no clock is reported.
        let bare = try? HostInfo.parse(cpuinfo: "processor : 0\n", meminfo: Self.meminfo, status: Self.status, cores: 1)
        #expect(bare?.clockGHz == nil && bare?.cpuModel.isEmpty == false)
    }

    @Test("stream-read probe reports one positive rate per pass and rejects bad arguments")
    func bandwidthProbe() throws {
        let pool = ComputePool(threadCount: 2)
        let m = try MemoryBandwidthProbe.measure(bytes: 4 << 20, passes: 3, pool: pool)
        #expect(m.passBytesPerSecond.count == 3 && m.threads == 2 && m.bytes == 4 << 20)
        #expect(m.passBytesPerSecond.allSatisfy { $0 > 0 && $0.isFinite })
        #expect(m.medianBytesPerSecond > 0 && m.sustainedRatio > 0 && m.sustainedRatio <= 1)
        #expect(throws: CalibrationError.self) { try MemoryBandwidthProbe.measure(bytes: 16, passes: 3, pool: pool) }
        #expect(throws: CalibrationError.self) { try MemoryBandwidthProbe.measure(bytes: 1 << 20, passes: 0, pool: pool) }
    }

    @Test("the probe's summation reads every byte (sum checked against a scalar loop)")
    func probeSumIsComplete() {
        let count = 16 * 37   // 37 vectors: the four-way loop plus a remainder
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        defer { buffer.deallocate() }
        let f = buffer.bindMemory(to: Float.self, capacity: count)
        var expected: Float = 0
        for i in 0..<count { f[i] = Float(i % 7); expected += Float(i % 7) }
        #expect(MemoryBandwidthProbe.sumVectors(UnsafeRawPointer(buffer), 0, 37) == expected)
    }

    @Test("statistics: median of odd, even and empty lists; sustained ratio from pass order")
    func statistics() {
        #expect(Statistics.median([3, 1, 2]) == 2)
        #expect(Statistics.median([4, 1, 3, 2]) == 2.5)
        #expect(Statistics.median([]) == 0)
        let slowing = BandwidthMeasurement(bytes: 1, threads: 1, passBytesPerSecond: [10, 10, 10, 8, 8, 8])
        #expect(abs(slowing.sustainedRatio - 0.8) < 1e-12)
        let steady = BandwidthMeasurement(bytes: 1, threads: 1, passBytesPerSecond: [8, 8, 9, 10, 10, 10])
        #expect(steady.sustainedRatio == 1)
    }

    @Test("invalid options are rejected before anything runs",
          arguments: [
            { (o: inout CalibrationOptions) in o.threads = 0 },
            { (o: inout CalibrationOptions) in o.matmulBatch = 1 },
            { (o: inout CalibrationOptions) in o.matvecColumns = 40 },
            { (o: inout CalibrationOptions) in o.attentionHeads = 7 },
            { (o: inout CalibrationOptions) in o.formats = [] },
            { (o: inout CalibrationOptions) in o.bandwidthPasses = -1 },
            { (o: inout CalibrationOptions) in o.formatPasses = 0 },
          ] as [@Sendable (inout CalibrationOptions) -> Void])
    func invalidOptions(change: @Sendable (inout CalibrationOptions) -> Void) {
        var options = CalibrationOptions.quick(threads: 2)
        change(&options)
        #expect(throws: CalibrationError.self) { try HostCalibration.run(options: options) }
    }

    @Test("a quick calibration builds a host profile that loads back with positive, finite, measured figures")
    func quickProfileRoundTrip() throws {
        var options = CalibrationOptions.quick(threads: 2)
        options.formats = [.f32, .f16, .q8_0, .q4_0, .int4g64]
        options.bandwidthBytes = 8 << 20
        options.formatPasses = 3
        var lines: [String] = []
        let result = try HostCalibration.run(options: options) { lines.append($0) }
        #expect(lines.filter { $0.hasPrefix("pass 3 of 3, ") }.count == options.formats.count)
        #expect(CalibrationOptions.full(threads: 2).formatPasses == 3)
        #expect(result.formats.map(\.format) == options.formats)
        #expect(result.bandwidth.passBytesPerSecond.count == options.bandwidthPasses)
        #expect(result.attention.secondsPerCall.count == options.attentionRepeats)

        let profile = try HostProfileBuilder.profile(from: result)
        let data = try SpecLoader.encode(profile)
        let loaded = try SpecLoader.decode(DeviceProfile.self, from: data, file: "host.json")
        #expect(loaded == profile)
        #expect(loaded.kind == .host && loaded.id == "host")
        #expect(loaded.measuredWith == .init(kernels: KernelISA.active.rawValue, cpu: result.host.cpuModel))
        #expect(loaded.memory.appBudgetBytes.value == result.host.memAvailableBytes)
        #expect(loaded.memory.bandwidthBytesPerSecond.value == result.bandwidth.medianBytesPerSecond)
        let cpu = try #require(loaded.computeUnits.first)
        #expect(Set(cpu.peakOpsPerSecond.keys) == [.f32, .f16, .int8, .int4])
        // The int4 peak is the best of the two int4 formats' matmul throughput.
        let int4Best = result.formats.filter { [.q4_0, .int4g64].contains($0.format) }.map(\.matmul.gflopsPerSecond).max()
        #expect(cpu.peakOpsPerSecond[.int4]?.value == (int4Best ?? 0) * 1e9)
        var figures: [Sourced<Double>] = [loaded.memory.bandwidthBytesPerSecond, loaded.sustainedFactor]
        figures += Array(cpu.peakOpsPerSecond.values) + Array(loaded.efficiency.values)
        for figure in figures {
            #expect(figure.value > 0 && figure.value.isFinite)
            #expect(!figure.estimate)
            #expect(figure.source.hasPrefix("measured: autoglm-plan profile-host on \(result.host.cpuModel)"))
        }
        for op in DeviceProfile.OpClass.allCases { #expect((loaded.efficiency[op]?.value ?? 0) <= 1) }
        // Each format's own matvec efficiency: its weight GB/s over the stream rate, at most 1.
        #expect(Set(loaded.matvecBandwidthByFormat.keys) == Set(cpu.formats))
        for f in result.formats {
            let figure = try #require(loaded.matvecBandwidthByFormat[WeightFormat(rawValue: f.format.rawValue)!])
            let ratio = f.matvec.gigabytesPerSecond * 1e9 / result.bandwidth.medianBytesPerSecond
            #expect(abs(figure.value - min(1, ratio)) < 1e-12)
            #expect(figure.source.hasPrefix("measured: autoglm-plan profile-host on \(result.host.cpuModel)"))
        }
        #expect(loaded.memory.bandwidthBytesPerSecond.source.contains("median of \(options.bandwidthPasses), 2 threads"))
        // The fixed cost of a call: the small matrix's time beyond its bytes at the large matrix's rate.
        #expect(Set(loaded.matvecCallSecondsByFormat.keys) == Set(cpu.formats))
        for f in result.formats {
            let small = try #require(f.smallMatvec)
            #expect(small.rows == HostCalibration.smallMatvecShape.rows && (small.copies ?? 1) >= 2)
            let figure = try #require(loaded.matvecCallSecondsByFormat[WeightFormat(rawValue: f.format.rawValue)!])
            let rate = Double(f.matvec.weightBytes) / f.matvec.medianSeconds
            #expect(abs(figure.value - max(0, small.medianSeconds - Double(small.weightBytes) / rate)) < 1e-15)
            #expect(figure.source.contains("copies in turn"))
        }
        // The runtime: the resident set before the buffers plus the code the measurements paged in after it.
        let before = try #require(result.host.processFileResidentBytes)
        let after = try #require(result.fileResidentAfterBytes)
        #expect(loaded.runtimeOverheadBytes.value == result.host.processResidentBytes + max(0, after - before))
        #expect(loaded.runtimeOverheadBytes.source.contains("RssFile after − before"))
        // A measurement file from before the code pages were recorded keeps the resident set alone.
        var older = result
        older.fileResidentAfterBytes = nil
        let olderProfile = try HostProfileBuilder.profile(from: older)
        #expect(olderProfile.runtimeOverheadBytes.value == result.host.processResidentBytes)
    }
}

@Suite("Host cache size")
struct HostCacheTests {
    @Test("sysfs sizes are read in bytes; the highest data or unified level is the last-level cache")
    func lastLevelCache() throws {
        #expect(HostInfo.cacheSizeBytes("32768K\n") == 32 << 20)
        #expect(HostInfo.cacheSizeBytes("1M") == 1 << 20)
        #expect(HostInfo.cacheSizeBytes("512") == 512)
        #expect(HostInfo.cacheSizeBytes("") == nil && HostInfo.cacheSizeBytes("K") == nil
                && HostInfo.cacheSizeBytes("-4K") == nil && HostInfo.cacheSizeBytes("big") == nil)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        func index(_ i: Int, level: Int, type: String, size: String) throws {
            let dir = root.appendingPathComponent("index\(i)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try "\(level)\n".write(to: dir.appendingPathComponent("level"), atomically: true, encoding: .utf8)
            try "\(type)\n".write(to: dir.appendingPathComponent("type"), atomically: true, encoding: .utf8)
            try "\(size)\n".write(to: dir.appendingPathComponent("size"), atomically: true, encoding: .utf8)
        }
        #expect(HostInfo.lastLevelCacheBytes(root: root.path) == nil)
        try index(0, level: 1, type: "Data", size: "32K")
        try index(1, level: 1, type: "Instruction", size: "32K")
        try index(2, level: 2, type: "Unified", size: "512K")
        #expect(HostInfo.lastLevelCacheBytes(root: root.path) == 512 << 10)
        try index(3, level: 3, type: "Unified", size: "32768K")
        #expect(HostInfo.lastLevelCacheBytes(root: root.path) == 32 << 20)
        #expect(HostInfo.lastLevelCacheBytes(root: root.appendingPathComponent("missing").path) == nil)
        // A level's data or unified cache, never the instruction cache.
        #expect(HostInfo.cacheBytes(level: 2, root: root.path) == 512 << 10)
        #expect(HostInfo.cacheBytes(level: 1, root: root.path) == 32 << 10)
        #expect(HostInfo.cacheBytes(level: 4, root: root.path) == nil)
    }
}
