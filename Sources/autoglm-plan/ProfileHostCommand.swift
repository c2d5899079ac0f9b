import ArgumentParser
import AutoGLMEngine
import AutoGLMSpecs
import Foundation

/// `autoglm-plan profile-host`: measure this machine and write a device profile of kind "host".
///
/// Exit status: 0 on success; 2 for invalid options; 1 when a measurement or the write fails.
struct ProfileHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile-host",
        abstract: "Measure this machine (memory bandwidth, kernel and attention throughput) and write a device profile.",
        discussion: """
            Every figure in the profile is a measurement of this machine, sourced with the CPU model, date, number \
            of repeats and thread count. Peak throughput per precision is the best achieved matmul throughput, not \
            a theoretical figure. --quick uses small sizes (seconds); its figures are not representative.
            """
    )

    @Option(name: .shortAndLong, help: "Where to write the profile.")
    var output: String = "DeviceProfiles/host.json"

    @Option(name: .long, help: "Threads for every measurement (default: the available processors).")
    var threads: Int?

    @Flag(name: .long, help: "Small sizes and few repeats: a smoke check in seconds, not a calibration.")
    var quick = false

    @Option(name: .long, help: "Also write every raw measurement (all passes and repeats) as JSON to this file.")
    var measurements: String?

    @Option(name: .customLong("from-measurements"),
            help: "Build the profile from a raw measurements file written earlier with --measurements; measure nothing.")
    var fromMeasurements: String?

    @Option(name: .long, help: "Profile id.")
    var id: String = "host"

    @Flag(name: .long, help: "Print only errors.")
    var quiet = false

    func validate() throws {
        if let threads, threads <= 0 || threads > 256 {
            throw ValidationError("--threads must be in 1...256, got \(threads)")
        }
        if id.isEmpty { throw ValidationError("--id must not be empty") }
    }

    func run() throws {
        let n = threads ?? ComputePool.availableCores
        let options = quick ? CalibrationOptions.quick(threads: n) : CalibrationOptions.full(threads: n)
        let log: ((String) -> Void)? = quiet ? nil : { line in Self.printError("profile-host: " + line) }
        do {
            let result: HostCalibrationResult
            if let fromMeasurements {
                result = try SpecLoader.load(HostCalibrationResult.self, from: fromMeasurements)
            } else {
                result = try HostCalibration.run(options: options, progress: log)
            }
            let profile = try HostProfileBuilder.profile(from: result, id: id)
            let data = try SpecLoader.encode(profile)
            // The file must load back through the same validation as any checked-in profile.
            _ = try SpecLoader.decode(DeviceProfile.self, from: data, file: output)
            try write(data, to: output)
            if let measurements {
                try write(try SpecLoader.encode(result), to: measurements)
            }
            if !quiet { print(Self.summary(result, profile: profile, path: output)) }
        } catch {
            // Calibration, spec, kernel, quantisation and attention errors all describe themselves in one line.
            Self.printError("profile-host: \(error)")
            throw TerminateWith(code: 1)
        }
    }

    private func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try data.write(to: url, options: .atomic)
        } catch {
            throw CalibrationError.unreadableSystemFile(path: path,
                                                        reason: "cannot write: " + (error as NSError).localizedDescription)
        }
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func summary(_ r: HostCalibrationResult, profile: DeviceProfile, path: String) -> String {
        var lines: [String] = []
        lines.append("host: \(r.host.cpuModel), \(r.options.threads) threads, MemAvailable "
                     + String(format: "%.2f GiB", Double(r.host.memAvailableBytes) / 1073741824)
                     + (r.host.loadAverage.map { String(format: ", load average %.1f", $0) } ?? ""))
        lines.append(String(format: "stream read: %.2f GB/s (median of %d passes over %d MiB)",
                            r.bandwidth.medianBytesPerSecond / 1e9, r.bandwidth.passBytesPerSecond.count,
                            r.bandwidth.bytes >> 20))
        lines.append("format      matvec GB/s    matvec ms  matmul GFLOP/s")
        for f in r.formats {
            let name = f.format.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
            lines.append(name + String(format: " %12.2f %12.3f %15.1f", f.matvec.gigabytesPerSecond,
                                       f.matvec.medianSeconds * 1e3, f.matmul.gflopsPerSecond))
        }
        lines.append(String(format: "attention prefill %d tokens: %.1f GFLOP/s, %.0f tokens/s per layer",
                            r.attention.tokens, r.attention.gflopsPerSecond, r.attention.tokensPerSecond))
        for op in DeviceProfile.OpClass.allCases {
            if let e = profile.efficiency[op] { lines.append(String(format: "efficiency %@: %.3f", op.rawValue, e.value)) }
        }
        lines.append(String(format: "sustained factor: %.3f", profile.sustainedFactor.value))
        lines.append("wrote \(path)")
        return lines.joined(separator: "\n")
    }
}
