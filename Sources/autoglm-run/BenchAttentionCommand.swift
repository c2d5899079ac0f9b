import ArgumentParser
import AutoGLMEngine
import AutoGLMPlanner
import AutoGLMSpecs
import Foundation

/// `autoglm-run bench-attention`: each attention setting measured at several sequence lengths on one decoder layer
/// of the model, beside the planner's prediction for the same setting on the given device profile.
struct BenchAttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-attention",
        abstract: "Measure attention settings (peak memory, tokens/s, KL) beside the planner's predictions.",
        discussion: """
            Peak memory is the layer's KV cache plus the kernel's scratch; tokens/s is new tokens through one \
            layer's attention (prefill: all n at once; decode: one token over n − 1 cached). KL comes from a \
            measure-attention results file. Exit status: 0, or 1 when a file cannot be read or a run fails.
            """
    )

    @Option(help: "Device profile the planner predicts for (normally this host's measured profile).")
    var device: String = "DeviceProfiles/host.json"

    @Option(help: "Model manifest: layer shape and accuracy table.")
    var model: String = "Models/smollm2-135m.json"

    @Option(help: "measure-attention results (KL per setting); optional.")
    var accuracy: String = "Models/smollm2-135m.attention-accuracy.json"

    @Option(help: "Comma-separated sequence lengths.")
    var lengths: String = "256,512,1024"

    @Option(help: "Repetitions per measurement (the fastest is kept).")
    var repetitions: Int = 3

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("calibrate-at"),
            help: "Correct the roofline time per (KV format, kernel, mode) from the full-attention settings measured at this length (0: off).")
    var calibrateAt: Int = 512

    static let settings: [AttentionSettingSpec] = [
        AttentionSettingSpec(name: "f32 tiled", kv: .f32),
        AttentionSettingSpec(name: "f16 tiled", kv: .f16),
        AttentionSettingSpec(name: "int8 tiled", kv: .int8),
        AttentionSettingSpec(name: "int4 tiled", kv: .int4),
        AttentionSettingSpec(name: "f32 materialised", kv: .f32, kernel: .materialised),
        AttentionSettingSpec(name: "f32 window 256+4", kv: .f32, window: 256, globalTokens: 4),
        AttentionSettingSpec(name: "f32 moba 128/4", kv: .f32, blockSparse: Plan.BlockSparse(chunk: 128, topK: 4)),
    ]

    func run() throws {
        let lengthList = lengths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !lengthList.isEmpty, lengthList.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--lengths must be positive integers, got '\(lengths)'")
        }
        guard repetitions > 0 else { throw ValidationError("--repetitions must be positive, got \(repetitions)") }
        do {
            let profile = try DeviceProfile.load(device)
            let manifest = try ModelManifest.load(model)
            guard let decoder = manifest.textDecoder else {
                throw ValidationError("\(model) has no text decoder")
            }
            let kl = loadKL()
            let n = threads ?? ComputePool.availableCores
            let costs = AttentionCostModel(device: profile, accuracy: AccuracyModel(manifest: manifest), threads: n)
            let shape = AttentionLayerShape(decoder)
            print("attention of one \(manifest.name) layer (\(shape.heads) heads, \(shape.kvHeads) KV heads, head_dim "
                  + "\(shape.headDim)), \(n) threads; predictions: planner on \(profile.id)")
            func measure(_ s: AttentionSettingSpec, _ mode: AttentionCostModel.Mode, _ length: Int) throws
                -> AttentionBenchmark.Result {
                let setting = AttentionBenchmark.Setting(
                    name: s.name, mode: mode == .prefill ? .prefill : .decode, kvCacheFormat: s.kv,
                    kernel: s.kernel, window: s.window, globalTokens: s.globalTokens,
                    blockSparse: s.blockSparse, heads: shape.heads, kvHeads: shape.kvHeads,
                    headDim: shape.headDim, threads: n)
                return try AttentionBenchmark.run(setting: setting, sequenceLength: length, repetitions: repetitions)
            }
            let modes: [AttentionCostModel.Mode] = [.prefill, .decode]
            var lengthsToRun = lengthList
            if calibrateAt > 0 && !lengthsToRun.contains(calibrateAt) { lengthsToRun.append(calibrateAt) }
            struct RowKey: Hashable { var setting: Int; var mode: AttentionCostModel.Mode; var length: Int }
            var measured: [RowKey: AttentionBenchmark.Result] = [:]
            for (i, s) in Self.settings.enumerated() {
                for mode in modes {
                    for length in lengthsToRun { measured[RowKey(setting: i, mode: mode, length: length)] = try measure(s, mode, length) }
                }
            }
            // Calibration points: the full-attention settings at the reference length, the same measurements the
            // table shows.
            var calibration = AttentionCalibration(referenceLength: calibrateAt)
            if calibrateAt > 0 {
                for (i, s) in Self.settings.enumerated() where s.window == nil && s.blockSparse == nil {
                    for mode in modes {
                        guard let m = measured[RowKey(setting: i, mode: mode, length: calibrateAt)] else { continue }
                        calibration.record(s, mode: mode, measuredSeconds: m.secondsPerCall, model: costs, shape: shape)
                    }
                }
                print("time calibrated per (KV format, kernel, mode) at \(calibrateAt) tokens: "
                      + calibration.factors.sorted { "\($0.key)" < "\($1.key)" }
                        .map { String(format: "%@/%@/%@ ×%.2f", $0.key.kv.rawValue as NSString,
                                      $0.key.kernel.rawValue as NSString, $0.key.mode.rawValue as NSString, $0.value) }
                        .joined(separator: ", "))
                print("(rows marked * are the calibration points themselves; their speed is not counted)")
            }
            print("setting            mode      len   mem MB   pred MB   err%     tok/s    pred tok/s   err%   KL        pred loss")
            var memoryErrors: [Double] = [], speedErrors: [Double] = []
            for (i, s) in Self.settings.enumerated() {
                for mode in modes {
                    for length in lengthsToRun.sorted() {
                        guard let m = measured[RowKey(setting: i, mode: mode, length: length)] else { continue }
                        let isCalibrationPoint = calibrateAt > 0 && length == calibrateAt && s.window == nil
                            && s.blockSparse == nil
                        let p = calibration.apply(costs.predict(s, shape: shape, mode: mode, length: length), s,
                                                  mode: mode)
                        let measuredBytes = Double(m.kvBytes + m.peakScratchBytes)
                        let memErr = (Double(p.peakBytes) - measuredBytes) / measuredBytes * 100
                        let speedErr = (p.tokensPerSecond - m.tokensPerSecond) / m.tokensPerSecond * 100
                        memoryErrors.append(abs(memErr))
                        if !isCalibrationPoint { speedErrors.append(abs(speedErr)) }
                        let klText = s.accuracyKeys.isEmpty ? (s.kernel == .materialised ? kl["kernel:materialised"] : 0)
                            : s.accuracyKeys.count == 1 ? kl[s.accuracyKeys[0]] : nil
                        let name = (s.name + (isCalibrationPoint ? " *" : "")).padding(toLength: 18, withPad: " ",
                                                                                       startingAt: 0)
                        let modeText = mode.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                        print(name + " " + modeText + String(
                            format: " %5d %8.3f %9.3f %6.1f %10.1f %12.1f %6.1f   %@ %@", length,
                            measuredBytes / 1e6, Double(p.peakBytes) / 1e6, memErr, m.tokensPerSecond,
                            p.tokensPerSecond, speedErr,
                            (klText.map { String(format: "%.6f", $0) } ?? "-       ") as NSString,
                            (p.loss.map { String(format: "%.4f", $0) } ?? "-") as NSString))
                    }
                }
            }
            let within = { (errors: [Double], limit: Double) in errors.filter { $0 <= limit }.count }
            print("memory within ±5%: \(within(memoryErrors, 5)) of \(memoryErrors.count); "
                  + "speed within ±15%: \(within(speedErrors, 15)) of \(speedErrors.count)")
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("bench-attention: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// KL per setting name from a measure-attention results file; empty when the file is missing.
    private func loadKL() -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: accuracy),
              let file = try? JSONDecoder().decode(AttentionAccuracyFile.self, from: data) else {
            let line = "bench-attention: no KL figures (\(accuracy) missing or unreadable; "
                + "run autoglm-run measure-attention -o \(accuracy))\n"
            FileHandle.standardError.write(Data(line.utf8))
            return [:]
        }
        var out: [String: Double] = [:]
        for s in file.settings { out[s.setting] = s.klMean }
        return out
    }
}
