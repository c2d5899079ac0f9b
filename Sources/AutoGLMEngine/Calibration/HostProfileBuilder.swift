// Turns a calibration run into a device profile of kind "host".
//
// Definitions (every figure is a measurement of this machine, none is an estimate):
// - memory.bandwidth: median multi-threaded streaming read rate over the calibration buffer.
// - memory.total / app budget: MemTotal / MemAvailable at calibration time; the OS reserve is their difference.
// - peak_ops_per_second[p]: the best matmul (prefill) throughput measured among the engine formats whose compute
//   precision is p. It is achieved, not theoretical, throughput of this engine.
// - efficiency.matvec_bandwidth: median over formats of (matvec weight bytes/s ÷ stream read bandwidth), at most 1.
// - matvec_bandwidth_by_format[f]: format f's matvec weight bytes/s ÷ stream read bandwidth, at most 1 (what the
//   planner prices that format's decode at).
// - efficiency.matmul_compute: median over formats of (matmul FLOP/s ÷ peak of the format's precision).
// - efficiency.attention_compute: attention prefill FLOP/s ÷ the peak a planner prices attention against (the f16
//   peak when one was measured, else f32), at most 1, so that peak × factor reproduces the measured rate.
// - sustained_factor: median of the last third of the stream-read passes ÷ median of the first third, at most 1.
// - runtime_overhead_bytes: this process's resident set before any calibration buffer was allocated.

import Foundation
import AutoGLMSpecs

public enum HostProfileBuilder {
    /// Builds the profile. `id` and `name` default to "host" and a name from the CPU model.
    public static func profile(from r: HostCalibrationResult, id: String = "host", name: String? = nil) throws
        -> DeviceProfile {
        let host = r.host
        let threads = r.options.threads
        let day = String(r.date.prefix(10))
        func source(_ what: String, count: Int) -> String {
            "measured: autoglm-plan profile-host on \(host.cpuModel), \(day), median of \(count), \(threads) threads"
                + (r.kernels.map { ", \($0) kernels" } ?? "") + (what.isEmpty ? "" : "; " + what)
        }
        func system(_ what: String) -> String {
            "measured: autoglm-plan profile-host on \(host.cpuModel), \(day), \(what)"
        }

        let stream = r.bandwidth.medianBytesPerSecond
        let memory = DeviceProfile.Memory(
            totalBytes: Sourced(host.memTotalBytes, source: system("MemTotal from /proc/meminfo")),
            appBudgetBytes: Sourced(host.memAvailableBytes, source: system("MemAvailable from /proc/meminfo")),
            osReserveBytes: Sourced(host.memTotalBytes - host.memAvailableBytes,
                                    source: system("MemTotal − MemAvailable from /proc/meminfo")),
            bandwidthBytesPerSecond: Sourced(stream, source: source(
                "streaming read of \(r.bandwidth.bytes >> 20) MiB per pass", count: r.bandwidth.passBytesPerSecond.count)))

        // Peak per precision: best matmul among formats of that precision.
        var peaks: [ComputePrecision: (gflops: Double, format: PackedFormat, repeats: Int)] = [:]
        var weightFormats: [WeightFormat] = []
        for f in r.formats {
            guard let wf = WeightFormat(rawValue: f.format.rawValue) else { continue }
            weightFormats.append(wf)
            let p = wf.computePrecision
            let g = f.matmul.gflopsPerSecond
            if g > (peaks[p]?.gflops ?? 0) { peaks[p] = (g, f.format, f.matmul.repeats) }
        }
        guard !weightFormats.isEmpty, peaks[.f32] != nil || !peaks.isEmpty else {
            throw CalibrationError.invalidOption(name: "formats", expected: "at least one engine weight format",
                                                 got: r.formats.map(\.format.rawValue).joined(separator: ", "))
        }
        var peakOps: [ComputePrecision: Sourced<Double>] = [:]
        for (p, best) in peaks {
            peakOps[p] = Sourced(best.gflops * 1e9, source: source(
                "achieved, not theoretical: best matmul among \(p.rawValue) formats (\(best.format), "
                + "\(r.options.matmulRows)×\(r.options.matmulColumns) × batch \(r.options.matmulBatch))",
                count: best.repeats))
        }

        var clusters: [DeviceProfile.Cluster] = []
        if let ghz = host.clockGHz { clusters = [DeviceProfile.Cluster(name: host.cpuModel, cores: host.cores, clockGHz: ghz)] }
        let cpu = DeviceProfile.ComputeUnit(id: "cpu", kind: .cpu, clusters: clusters, peakOpsPerSecond: peakOps,
                                            formats: weightFormats)

        let matvecRatios = r.formats.map { min(1, $0.matvec.gigabytesPerSecond * 1e9 / stream) }
        var matmulRatios: [Double] = []
        for f in r.formats {
            guard let wf = WeightFormat(rawValue: f.format.rawValue), let peak = peaks[wf.computePrecision] else { continue }
            matmulRatios.append(f.matmul.gflopsPerSecond / peak.gflops)
        }
        let attentionPeakPrecision: ComputePrecision = peaks[.f16] != nil ? .f16 : .f32
        let attentionPeak = peaks[attentionPeakPrecision]?.gflops ?? peaks.values.map(\.gflops).max() ?? 0
        let attentionRatio = min(1, r.attention.gflopsPerSecond / attentionPeak)
        let matvecFactor = Statistics.median(matvecRatios)
        let matmulFactor = Statistics.median(matmulRatios)
        for (what, v) in [("matvec_bandwidth", matvecFactor), ("matmul_compute", matmulFactor),
                          ("attention_compute", attentionRatio)] {
            try HostCalibration.requireUsable(what, v)
        }
        let efficiency: [DeviceProfile.OpClass: Sourced<Double>] = [
            .matvecBandwidth: Sourced(matvecFactor, source: source(
                "median over \(matvecRatios.count) formats of matvec weight GB/s ÷ stream read GB/s "
                + "(\(r.options.matvecRows)×\(r.options.matvecColumns))", count: r.options.matvecRepeats)),
            .matmulCompute: Sourced(matmulFactor, source: source(
                "median over \(matmulRatios.count) formats of matmul GFLOP/s ÷ the peak of the format's precision",
                count: r.options.matmulRepeats)),
            .attentionCompute: Sourced(attentionRatio, source: source(
                "tiled causal prefill of \(r.attention.tokens) tokens (\(r.attention.heads) heads, "
                + "\(r.attention.kvHeads) KV heads, head_dim \(r.attention.headDim)) GFLOP/s ÷ "
                + "\(attentionPeakPrecision.rawValue) peak",
                count: r.attention.secondsPerCall.count)),
        ]
        var byFormat: [WeightFormat: Sourced<Double>] = [:]
        for f in r.formats {
            guard let wf = WeightFormat(rawValue: f.format.rawValue) else { continue }
            let ratio = min(1, f.matvec.gigabytesPerSecond * 1e9 / stream)
            try HostCalibration.requireUsable("matvec_bandwidth_by_format." + wf.rawValue, ratio)
            byFormat[wf] = Sourced(ratio, source: source(String(
                format: "%@ matvec %.1f GB/s (%d×%d) ÷ stream read %.1f GB/s, at most 1", wf.rawValue as NSString,
                f.matvec.gigabytesPerSecond, r.options.matvecRows, r.options.matvecColumns, stream / 1e9),
                count: r.options.matvecRepeats))
        }
        var callSeconds: [WeightFormat: Sourced<Double>] = [:]
        for f in r.formats {
            guard let wf = WeightFormat(rawValue: f.format.rawValue), let small = f.smallMatvec,
                  let seconds = f.matvecCallSeconds else { continue }
            callSeconds[wf] = Sourced(seconds, source: source(String(
                format: "%@ matvec %d×%d from memory (%d copies in turn) %.1f µs − its %.0f KiB at the %d×%d rate "
                    + "(%.1f GB/s), at least 0", wf.rawValue as NSString, small.rows, small.columns, small.copies ?? 1,
                small.medianSeconds * 1e6, Double(small.weightBytes) / 1024, f.matvec.rows, f.matvec.columns,
                f.matvec.gigabytesPerSecond), count: small.repeats))
        }
        let sustained = Sourced(r.bandwidth.sustainedRatio, source: source(
            "last third ÷ first third of the stream-read passes, at most 1", count: r.bandwidth.passBytesPerSecond.count))
        let overhead: Sourced<Int>
        if let before = host.processFileResidentBytes, let after = r.fileResidentAfterBytes {
            let paged = max(0, after - before)
            overhead = Sourced(host.processResidentBytes + paged, source: system(String(
                format: "VmRSS of the calibrating process before its buffers (runtime, libraries: %.1f MiB) + the "
                    + "program and library pages the measurements paged in after it (RssFile after − before: %.1f "
                    + "MiB); the engine's code is resident while it runs", Double(host.processResidentBytes) / 1048576,
                Double(paged) / 1048576)))
        } else {
            overhead = Sourced(host.processResidentBytes, source: system(
                "VmRSS of the calibrating process before its buffers (runtime, libraries)"))
        }

        let load = host.loadAverage.map {
            String(format: ", with a 1-minute load average of %.1f on %d processors", $0, host.cores)
                + ($0 > Double(host.cores) ? " (other work competed for the CPU, so these figures are low)" : "")
        } ?? ""
        let notes = """
            Measured on this build machine (\(host.cpuModel), \(host.cores) processors, \
            \(String(format: "%.1f", Double(host.memTotalBytes) / 1073741824)) GiB) by `autoglm-plan profile-host` \
            on \(r.date)\(load). Peaks are achieved engine matmul throughput, not theoretical. Efficiencies: matvec_bandwidth \
            = matvec GB/s ÷ stream GB/s; matmul_compute = matmul GFLOP/s ÷ precision peak; attention_compute = \
            attention GFLOP/s ÷ \(attentionPeakPrecision.rawValue) peak, the precision attention is priced at (the first two are medians over formats). Per format (matvec GB/s, matmul GFLOP/s): \
            \(r.formats.map { String(format: "%@ %.1f/%.1f", $0.format.rawValue as NSString, $0.matvec.gigabytesPerSecond, $0.matmul.gflopsPerSecond) }.joined(separator: ", ")).
            """
        return DeviceProfile(id: id, name: name ?? "This host: \(host.cpuModel), \(host.cores) threads", kind: .host,
                             memory: memory, computeUnits: [cpu], efficiency: efficiency,
                             matvecBandwidthByFormat: byFormat, matvecCallSecondsByFormat: callSeconds,
                             sustainedFactor: sustained,
                             runtimeOverheadBytes: overhead,
                             measuredWith: r.kernels.map { .init(kernels: $0, cpu: host.cpuModel) }, notes: notes)
    }
}
