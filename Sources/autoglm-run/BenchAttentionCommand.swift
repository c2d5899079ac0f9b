import ArgumentParser
import AutoGLMEngine
import AutoGLMPlanner
import AutoGLMProcess
import AutoGLMSpecs
import Foundation

/// `autoglm-run bench-attention`: each attention setting measured at several sequence lengths on one decoder layer
/// of the model, beside the planner's prediction for the same setting on the given device profile; with `--vit`, the
/// vision encoder's bidirectional attention at several patch counts, tiled against materialised, each measurement in
/// a process of its own.
struct BenchAttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-attention",
        abstract: "Measure attention settings (peak memory, tokens/s, KL) beside the planner's predictions.",
        discussion: """
            Decoder rows: peak memory is the layer's KV cache plus the kernel's scratch; tokens/s is new tokens \
            through one layer's attention at the median of the repetitions (prefill: all n at once; decode: one token \
            over n − 1 cached). KL comes from a measure-attention results file. --vit rows: one vision-encoder layer's \
            attention over n patches (no mask), measured as the kernel's scratch high-water mark and the growth of the \
            peak resident set of a fresh process, beside the predicted scratch and working set (queries, keys, \
            values, output, scratch). Predicted times use the calibration file written by calibrate-attention. \
            Exit status: 0, or 1 when a file cannot be read or a run fails.
            """
    )

    @Option(help: """
        Device profile the planner predicts for (default: this machine's measured host profile, \
        DeviceProfiles/<host id>.json; see autoglm-run kernels).
        """)
    var device: String?

    @Option(help: "Model manifest: decoder layer shape and accuracy table.")
    var model: String = "Models/smollm2-135m.json"

    @Option(help: "measure-attention results (KL per setting); optional.")
    var accuracy: String = "Models/smollm2-135m.attention-accuracy.json"

    @Option(help: "Comma-separated sequence lengths (decoder rows).")
    var lengths: String = "256,512,1024"

    @Option(help: "Timed calls per measurement at least (the median is compared).")
    var repetitions: Int = 5

    @Option(name: .customLong("min-time"),
            help: "More timed calls until they add up to this many seconds (short calls get many).")
    var minTime: Double = 0.2

    @Option(help: "Decoder rows: measure every row this many times, one pass over all rows after another, each pass in its own shuffled order, and keep the pass with the median time (spreads bursts of other work, and effects of a row's place in the pass, over the rows).")
    var rounds: Int = 3

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(help: """
        Time calibration from calibrate-attention (default: \
        DeviceProfiles/measurements/<host id>.attention-calibration.json; missing file: the plain roofline).
        """)
    var calibration: String?

    @Option(name: .customLong("compare-calibration"), help: """
        A second calibration file whose predictions are set beside --calibration's for the same measured rows \
        (another column, and its own count within the bar): two calibrations judged on one set of measurements \
        rather than on two runs in different spells of the machine.
        """)
    var compareCalibration: String?

    @Option(name: .customLong("calibrate-at"),
            help: "Instead of --calibration, correct the roofline rate per (KV format, kernel, mode) from the full-attention settings measured at this length (0: off).")
    var calibrateAt: Int = 0

    @Option(help: "Decoder rows: comma-separated modes to measure (prefill, decode), for example decode alone with many repetitions at long lengths.")
    var modes: String = "prefill,decode"

    @Flag(name: .customLong("cold-kv"),
          help: "Decoder rows: flush the layer's K/V from every cache before each timed decode call, as a model's decode step finds them (otherwise the calls repeat on one layer and keep what fits in cache); the predictions then price all of the call's K/V beyond the cache with the calibration's constants, which were fitted to repeated calls.")
    var coldKV = false

    @Option(help: "Decoder rows: comma-separated settings instead of the default seven, in measure-attention's names (full, kv:f16, kv:int8, kv:int4, kernel:materialised, window:W+G, block-sparse:C/K), for example full,block-sparse:1024/4 at long lengths.")
    var settings: String?

    @Flag(help: "Measure the vision encoder's attention (the --vit-model manifest's ViT shape) at --patches.")
    var vit = false

    @Option(help: "Comma-separated patch counts for --vit.")
    var patches: String = "1024,4096,12432"

    @Option(name: .customLong("vit-model"), help: "Manifest with the vision encoder for --vit.")
    var vitModel: String = "Models/autoglm-phone-9b.json"

    @Flag(name: .customLong("in-process"), help: "--vit: measure in this process instead of one child process each.")
    var inProcess = false

    @Flag(help: "Print the rows as JSON.")
    var json = false

    /// Set by the parent of a --vit measurement: one measurement as JSON; prints its result as JSON.
    @Option(name: .customLong("measure-one"), help: .hidden)
    var measureOne: String?

    /// The decoder rows' settings: `--settings` parsed, or the default seven.
    func decoderSettings() throws -> [AttentionSettingSpec] {
        guard let settings else { return Self.settings }
        let names = settings.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, !names.contains(where: \.isEmpty) else {
            throw ValidationError("--settings must be comma-separated setting names, got '\(settings)'")
        }
        return try names.map { name in
            if name == "full" { return AttentionSettingSpec(name: "f32 tiled", kv: .f32) }
            let a = try MeasureAttentionCommand.parse(setting: name)
            var label = "\(a.kvCacheFormat.rawValue) \(a.kernel.rawValue)"
            if let w = a.window { label = "\(a.kvCacheFormat.rawValue) window \(w)+\(a.globalTokens)" }
            if let b = a.blockSparse { label = "\(a.kvCacheFormat.rawValue) moba \(b.chunk)/\(b.topK)" }
            return AttentionSettingSpec(name: label, kv: a.kvCacheFormat, kernel: a.kernel, window: a.window,
                                        globalTokens: a.globalTokens, blockSparse: a.blockSparse)
        }
    }

    static let settings: [AttentionSettingSpec] = [
        AttentionSettingSpec(name: "f32 tiled", kv: .f32),
        AttentionSettingSpec(name: "f16 tiled", kv: .f16),
        AttentionSettingSpec(name: "int8 tiled", kv: .int8),
        AttentionSettingSpec(name: "int4 tiled", kv: .int4),
        AttentionSettingSpec(name: "f32 materialised", kv: .f32, kernel: .materialised),
        AttentionSettingSpec(name: "f32 window 256+4", kv: .f32, window: 256, globalTokens: 4),
        AttentionSettingSpec(name: "f32 moba 128/4", kv: .f32, blockSparse: Plan.BlockSparse(chunk: 128, topK: 4)),
    ]

    static let vitSettings: [AttentionSettingSpec] = [
        AttentionSettingSpec(name: "vit tiled", kv: .f32, kernel: .tiled),
        AttentionSettingSpec(name: "vit materialised", kv: .f32, kernel: .materialised),
    ]

    func run() throws {
        if let measureOne {
            try Self.childMeasurement(measureOne)
            return
        }
        guard repetitions > 0 else { throw ValidationError("--repetitions must be positive, got \(repetitions)") }
        guard minTime >= 0, minTime.isFinite else { throw ValidationError("--min-time must be ≥ 0, got \(minTime)") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive, got \(rounds)") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive, got \(threads)") }
        let lengthList = try Self.positiveList(vit ? patches : lengths, option: vit ? "--patches" : "--lengths")
        let decoderSettings = try decoderSettings()
        do {
            let profile = try DeviceProfile.load(device ?? HostFiles.profile)
            let n = threads ?? ComputePool.availableCores
            let loadBefore = HostInfo.loadAverage()
            let table: BenchTable
            if vit {
                table = try vitTable(profile: profile, patchCounts: lengthList, threads: n)
            } else {
                table = try decoderTable(profile: profile, lengthList: lengthList, settings: decoderSettings, threads: n)
            }
            var out = table
            out.loadAverageBefore = loadBefore
            out.loadAverageAfter = HostInfo.loadAverage()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(out), as: UTF8.self))
            } else {
                out.printText()
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("bench-attention: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    static func positiveList(_ text: String, option: String) throws -> [Int] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Int($0) }
        guard !values.isEmpty, values.count == parts.count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("\(option) must be comma-separated positive integers, got '\(text)'")
        }
        return values
    }

    /// The decoder modes of a comma-separated list (`prefill`, `decode`), in the order given, each once.
    static func decoderModes(_ list: String) throws -> [AttentionCostModel.Mode] {
        var modes: [AttentionCostModel.Mode] = []
        for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            guard let mode = AttentionCostModel.Mode(rawValue: item), mode != .encode else {
                throw ValidationError("--modes: expected prefill or decode, got '\(item)'")
            }
            if !modes.contains(mode) { modes.append(mode) }
        }
        guard !modes.isEmpty else { throw ValidationError("--modes: expected at least one of prefill, decode") }
        return modes
    }

    /// The time calibration: from --calibrate-at (filled in by the caller), else the file, else none; a warning
    /// when it was measured with other kernels, on another CPU or against another roofline than `profile`'s.
    private func loadCalibration(profile: DeviceProfile) throws -> AttentionCalibration? {
        guard calibrateAt == 0 else { return nil }
        let calibration = self.calibration ?? HostFiles.attentionCalibration
        guard FileManager.default.fileExists(atPath: calibration) else {
            FileHandle.standardError.write(Data(("bench-attention: no time calibration (\(calibration) missing; run "
                + "autoglm-run calibrate-attention -o \(calibration)); predicting the plain roofline\n").utf8))
            return nil
        }
        return try Self.loadCalibration(calibration, profile: profile)
    }

    /// The --compare-calibration file, or nil when none was given.
    private func loadComparedCalibration(profile: DeviceProfile) throws -> AttentionCalibration? {
        try compareCalibration.map { try Self.loadCalibration($0, profile: profile) }
    }

    /// A calibration file, with a warning when it was measured with other kernels, on another CPU or against
    /// another roofline than `profile`'s.
    private static func loadCalibration(_ path: String, profile: DeviceProfile) throws -> AttentionCalibration {
        let loaded = try SpecLoader.load(AttentionCalibration.self, from: path)
        if let why = loaded.mismatch(kernels: KernelISA.active.rawValue, cpu: (try? HostInfo.current())?.cpuModel) {
            FileHandle.standardError.write(Data("bench-attention: warning: \(path): \(why)\n".utf8))
        }
        if let why = loaded.rooflineMismatch(device: profile) {
            FileHandle.standardError.write(Data("bench-attention: warning: \(path): \(why)\n".utf8))
        }
        return loaded
    }

    // MARK: Decoder rows

    private func decoderTable(profile: DeviceProfile, lengthList: [Int], settings: [AttentionSettingSpec],
                              threads n: Int) throws -> BenchTable {
        let manifest = try ModelManifest.load(model)
        guard let decoder = manifest.textDecoder else { throw ValidationError("\(model) has no text decoder") }
        let kl = loadKL()
        let shape = AttentionLayerShape(decoder)
        var costs = AttentionCostModel(device: profile, accuracy: AccuracyModel(manifest: manifest), threads: n,
                                       calibration: try loadCalibration(profile: profile),
                                       tileLanes: KernelISA.active.attentionLanes)
        costs.decodeKVFromMemory = coldKV
        let compared = try loadComparedCalibration(profile: profile).map { other -> AttentionCostModel in
            var model = costs
            model.calibration = other
            return model
        }
        var table = BenchTable(
            title: "attention of one \(manifest.name) layer (\(shape.heads) heads, \(shape.kvHeads) KV heads, head_dim "
                + "\(shape.headDim)), \(n) threads, median of ≥ \(repetitions) calls and ≥ \(minTime) s per row, "
                + "median of \(rounds) passes in shuffled orders; "
                + (coldKV ? "decode with the layer's K/V flushed from the caches before each call (as in a model), "
                    + "predicted as read from memory; " : "")
                + "predictions: planner on \(profile.id)",
            shape: "decoder", threads: n, repetitions: repetitions, calibration: costs.calibration?.source)
        table.comparedCalibration = compared?.calibration?.source
        func measure(_ s: AttentionSettingSpec, _ mode: AttentionCostModel.Mode, _ length: Int) throws
            -> AttentionBenchmark.Result {
            let setting = AttentionBenchmark.Setting(
                name: s.name, mode: mode == .prefill ? .prefill : .decode, kvCacheFormat: s.kv,
                kernel: s.kernel, window: s.window, globalTokens: s.globalTokens,
                blockSparse: s.blockSparse, heads: shape.heads, kvHeads: shape.kvHeads,
                headDim: shape.headDim, threads: n, coldKV: coldKV && mode == .decode)
            return try AttentionBenchmark.run(setting: setting, sequenceLength: length, repetitions: repetitions,
                                              minimumSeconds: minTime)
        }
        let modes = try Self.decoderModes(self.modes)
        var lengthsToRun = lengthList
        if calibrateAt > 0 && !lengthsToRun.contains(calibrateAt) { lengthsToRun.append(calibrateAt) }
        struct RowKey: Hashable { var setting: Int; var mode: AttentionCostModel.Mode; var length: Int }
        var passes: [RowKey: [AttentionBenchmark.Result]] = [:]
        let rows = settings.indices.flatMap { i in
            modes.flatMap { mode in lengthsToRun.map { RowKey(setting: i, mode: mode, length: $0) } }
        }
        for round in 0..<rounds {
            for row in AttentionBenchmark.passOrder(count: rows.count, pass: round).map({ rows[$0] }) {
                passes[row, default: []].append(try measure(settings[row.setting], row.mode, row.length))
            }
        }
        let measured = passes.mapValues(Self.medianPass)
        // One-point calibration: the full-attention settings at the reference length, the same measurements the
        // table shows (those rows are then not counted).
        if calibrateAt > 0 {
            var c = AttentionCalibration(referenceLength: calibrateAt)
            for (i, s) in settings.enumerated() where s.window == nil && s.blockSparse == nil {
                for mode in modes {
                    guard let m = measured[RowKey(setting: i, mode: mode, length: calibrateAt)] else { continue }
                    c.record(s, mode: mode, measuredSeconds: m.medianSecondsPerCall, model: costs, shape: shape)
                }
            }
            c.source = "one point per (KV format, kernel, mode) at \(calibrateAt) tokens, from this run"
            costs.calibration = c
            table.calibration = c.source
        }
        for (i, s) in settings.enumerated() {
            for mode in modes {
                for length in lengthsToRun.sorted() {
                    guard let m = measured[RowKey(setting: i, mode: mode, length: length)] else { continue }
                    let isCalibrationPoint = calibrateAt > 0 && length == calibrateAt && s.window == nil
                        && s.blockSparse == nil
                    let p = costs.predict(s, shape: shape, mode: mode, length: length)
                    let klValue = s.accuracyKeys.isEmpty ? (s.kernel == .materialised ? kl["kernel:materialised"] : 0)
                        : s.accuracyKeys.count == 1 ? kl[s.accuracyKeys[0]] : nil
                    let all = passes[RowKey(setting: i, mode: mode, length: length)] ?? []
                    var row = BenchRow(setting: s.name, mode: mode, length: length, measured: m, passes: all,
                                       predicted: p, kl: klValue, calibrationPoint: isCalibrationPoint)
                    row.compared = compared.map {
                        .init($0.predict(s, shape: shape, mode: mode, length: length))
                    }
                    row.paceReference = s.blockSparse == nil && s.window == nil && s.kernel == .tiled && s.kv == .f32
                    // Block-sparse prefill: the engine's counted work over full prefill's at the same length (same
                    // KV format) beside the cost model's, a check of the model's work count that no clock enters.
                    if mode == .prefill, let b = s.blockSparse, s.kernel == .tiled, let work = m.work,
                       let full = settings.indices.first(where: {
                           settings[$0].blockSparse == nil && settings[$0].window == nil
                               && settings[$0].kernel == .tiled && settings[$0].kv == s.kv }),
                       let fullWork = measured[RowKey(setting: full, mode: .prefill, length: length)]?.work {
                        let share = costs.calibration?.sparsePrefill?.vectorShare
                        let predicted = AttentionCostModel.blockSparseWork(
                            b, shape: shape, mode: .prefill, length: length,
                            tileLanes: KernelISA.active.attentionLanes, vectorShare: share).laneKeys
                        row.blockSparseWork = .init(
                            counted: work.pricedLaneKeys(vectorShare: share)
                                / fullWork.pricedLaneKeys(vectorShare: share),
                            predicted: predicted / (Double(shape.heads) * Double(length) * Double(length + 1) / 2))
                    }
                    // Block-sparse decode: the keys the engine read (the union of the KV head's query heads'
                    // blocks) and the (head, key) pairs it ran, beside the cost model's expected ones.
                    if mode == .decode, let b = s.blockSparse, s.kernel == .tiled, let work = m.work {
                        let predicted = AttentionCostModel.blockSparseWork(
                            b, shape: shape, mode: .decode, length: length,
                            tileLanes: KernelISA.active.attentionLanes)
                        let keys = Double(shape.kvHeads) * Double(length)
                        row.blockSparseDecodeWork = .init(
                            countedRead: Double(work.readKeys) / keys, predictedRead: predicted.keysRead / keys,
                            countedLaneKeys: work.pricedLaneKeys() / (Double(shape.heads) * Double(length)),
                            predictedLaneKeys: predicted.laneKeys / (Double(shape.heads) * Double(length)))
                    }
                    table.rows.append(row)
                }
            }
        }
        return table
    }

    // MARK: Vision-encoder rows

    private func vitTable(profile: DeviceProfile, patchCounts: [Int], threads n: Int) throws -> BenchTable {
        let manifest = try ModelManifest.load(vitModel)
        guard let v = manifest.visionEncoder else { throw ValidationError("\(vitModel) has no vision encoder") }
        let shape = AttentionLayerShape(heads: v.heads, kvHeads: v.heads, headDim: v.headDim)
        let lanes = KernelISA.active.attentionLanes
        let costs = AttentionCostModel(device: profile, threads: n, calibration: try loadCalibration(profile: profile),
                                       tileLanes: lanes)
        let compared = try loadComparedCalibration(profile: profile).map {
            AttentionCostModel(device: profile, threads: n, calibration: $0, tileLanes: lanes)
        }
        var table = BenchTable(
            title: "bidirectional attention of one \(manifest.name) ViT layer (hidden \(v.hidden), \(v.heads) heads, "
                + "head_dim \(v.headDim), no mask), \(n) threads, median of ≥ \(repetitions) calls and ≥ \(minTime) s per row, "
                + (inProcess ? "all measurements in one process" : "one process per measurement")
                + "; predictions: planner on \(profile.id)",
            shape: "vit", threads: n, repetitions: repetitions, calibration: costs.calibration?.source)
        table.comparedCalibration = compared?.calibration?.source
        for patches in patchCounts {
            for s in Self.vitSettings {
                let setting = AttentionBenchmark.Setting(
                    name: s.name, mode: .encode, kvCacheFormat: .f32, kernel: s.kernel, heads: shape.heads,
                    kvHeads: shape.kvHeads, headDim: shape.headDim, threads: n)
                let result = inProcess
                    ? try AttentionBenchmark.run(setting: setting, sequenceLength: patches, repetitions: repetitions,
                                                 minimumSeconds: minTime)
                    : try Self.measureInChild(setting: setting, length: patches, repetitions: repetitions,
                                              minimumSeconds: minTime)
                let p = costs.predict(s, shape: shape, mode: .encode, length: patches)
                var row = BenchRow(setting: s.name, mode: .encode, length: patches, measured: result, predicted: p,
                                   kl: nil, calibrationPoint: false)
                row.compared = compared.map { .init($0.predict(s, shape: shape, mode: .encode, length: patches)) }
                table.rows.append(row)
            }
            // What the plan's memory model prices: every head's score matrix at once (F32 on a CPU host, F16 on
            // a GPU/NPU), against the engine's worker-at-a-time matrices.
            let all32 = MemoryModel.scoreBytes(queries: patches, keys: patches, heads: v.heads, kernel: .materialised,
                                               elementBytes: 4)
            table.notes.append(String(
                format: "%d patches: one head's F32 scores %.0f MB; all %d heads at once (the plan's activation "
                    + "figure) %.2f GiB in F32, %.2f GiB in F16; the engine holds %d at a time (one per worker)",
                patches, Double(patches * patches * 4) / 1e6, v.heads, Double(all32) / 1_073_741_824,
                Double(all32 / 2) / 1_073_741_824, AttentionCostModel.chunks(v.heads, threads: n)))
        }
        return table
    }

    /// One measurement in a fresh process of this executable, so that its peak resident set is its own.
    static func measureInChild(setting: AttentionBenchmark.Setting, length: Int, repetitions: Int,
                               minimumSeconds: Double) throws -> AttentionBenchmark.Result {
        let request = ChildRequest(setting: setting, sequenceLength: length, repetitions: repetitions,
                                   minimumSeconds: minimumSeconds)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
        let child = try CapturedProcess.run(executable, ["bench-attention", "--measure-one",
                                                         String(decoding: try JSONEncoder().encode(request), as: UTF8.self)])
        guard child.status == 0, !child.uncaughtSignal else {
            throw BenchAttentionError.childFailed(setting: setting.name, length: length,
                                                  status: child.uncaughtSignal ? 128 + child.status : child.status,
                                                  stderr: child.stderrText)
        }
        do {
            return try JSONDecoder().decode(AttentionBenchmark.Result.self, from: child.stdout)
        } catch {
            throw BenchAttentionError.childOutput(setting: setting.name, length: length, reason: "\(error)")
        }
    }

    struct ChildRequest: Codable {
        var setting: AttentionBenchmark.Setting
        var sequenceLength: Int
        var repetitions: Int
        var minimumSeconds: Double
        enum CodingKeys: String, CodingKey {
            case setting, sequenceLength = "sequence_length", repetitions, minimumSeconds = "minimum_seconds"
        }
    }

    static func childMeasurement(_ text: String) throws {
        do {
            let request = try JSONDecoder().decode(ChildRequest.self, from: Data(text.utf8))
            let result = try AttentionBenchmark.run(setting: request.setting, sequenceLength: request.sequenceLength,
                                                    repetitions: request.repetitions,
                                                    minimumSeconds: request.minimumSeconds)
            print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
        } catch {
            FileHandle.standardError.write(Data("bench-attention --measure-one: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// The measurement whose median time is the median of the passes (the lower middle one for an even count).
    static func medianPass(_ passes: [AttentionBenchmark.Result]) -> AttentionBenchmark.Result {
        let sorted = passes.sorted { $0.medianSecondsPerCall < $1.medianSecondsPerCall }
        return sorted[(sorted.count - 1) / 2]
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
        for s in file.records { out[s.setting] = s.figures.klMean }
        return out
    }
}

/// Failures of bench-attention's child measurements.
enum BenchAttentionError: Error, CustomStringConvertible {
    case childFailed(setting: String, length: Int, status: Int32, stderr: String)
    case childOutput(setting: String, length: Int, reason: String)

    var description: String {
        switch self {
        case let .childFailed(setting, length, status, stderr):
            return "measuring \(setting) at \(length) in a child process failed (exit \(status)): "
                + stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        case let .childOutput(setting, length, reason):
            return "measuring \(setting) at \(length): unreadable child output (\(reason))"
        }
    }
}

/// One row of bench-attention: what was measured and what the planner predicted, kept apart.
struct BenchRow: Codable {
    struct Measured: Codable {
        var peakBytes: Int
        var kvBytes: Int
        var scratchBytes: Int
        var operandBytes: Int
        var residentGrowthBytes: Int?
        var medianSeconds: Double
        var fastestSeconds: Double
        var tokensPerSecond: Double
        /// Tokens per second of every pass, slowest first (the row's figure is the median pass); nil for rows
        /// measured once.
        var passTokensPerSecond: [Double]?
        var kl: Double?
        enum CodingKeys: String, CodingKey {
            case peakBytes = "peak_bytes", kvBytes = "kv_bytes", scratchBytes = "scratch_bytes"
            case operandBytes = "operand_bytes", residentGrowthBytes = "resident_growth_bytes"
            case medianSeconds = "median_seconds", fastestSeconds = "fastest_seconds"
            case tokensPerSecond = "tokens_per_second", passTokensPerSecond = "pass_tokens_per_second", kl
        }
    }
    struct Predicted: Codable {
        var peakBytes: Int
        var kvBytes: Int
        var scratchBytes: Int
        var workingSetBytes: Int
        var seconds: Double
        var tokensPerSecond: Double
        var loss: Double?
        enum CodingKeys: String, CodingKey {
            case peakBytes = "peak_bytes", kvBytes = "kv_bytes", scratchBytes = "scratch_bytes"
            case workingSetBytes = "working_set_bytes", seconds, tokensPerSecond = "tokens_per_second", loss
        }
    }
    /// The time predicted with the --compare-calibration file for the same row.
    struct Compared: Codable {
        var seconds: Double
        var tokensPerSecond: Double
        init(_ p: AttentionCostPrediction) { seconds = p.seconds; tokensPerSecond = p.tokensPerSecond }
        enum CodingKeys: String, CodingKey { case seconds, tokensPerSecond = "tokens_per_second" }
    }
    var setting: String
    var mode: String
    var length: Int
    var calibrationPoint: Bool
    var measured: Measured
    var predicted: Predicted
    var compared: Compared?
    var blockSparseWork: BlockSparseWork?

    /// Block-sparse prefill rows: the (lane, key) pairs the engine's tiles ran (`AttentionWorkTally`, a lone
    /// vector's score step priced as a pair's), as a fraction of full prefill's at the same length, beside the cost
    /// model's lane-key work over full attention's (query, key) pairs (`AttentionCostModel.blockSparseWork`).
    struct BlockSparseWork: Codable {
        var counted: Double
        var predicted: Double
        /// (predicted − counted) ÷ counted, in percent.
        var errorPercent: Double { BenchRow.errorPercent(predicted, counted) }
        enum CodingKeys: String, CodingKey {
            case counted = "counted_fraction_of_full", predicted = "predicted_fraction_of_full"
        }
    }

    /// Block-sparse decode rows: the keys whose K/V rows the engine read (once per KV head however many of its
    /// query heads chose them) over the layer's cached keys, and the (query head, key) pairs it ran over the query
    /// heads times the cached keys, counted (`AttentionWorkTally`) and as the cost model expects them over
    /// independent uniform choices (`AttentionCostModel.blockSparseWork`). One decode call is one draw of the
    /// blocks: the counted union can lie either side of the expected one.
    struct BlockSparseDecodeWork: Codable {
        var countedRead: Double
        var predictedRead: Double
        var countedLaneKeys: Double
        var predictedLaneKeys: Double
        /// (predicted − counted) ÷ counted keys read, in percent.
        var readErrorPercent: Double { BenchRow.errorPercent(predictedRead, countedRead) }
        enum CodingKeys: String, CodingKey {
            case countedRead = "counted_read_fraction", predictedRead = "predicted_read_fraction"
            case countedLaneKeys = "counted_head_key_fraction", predictedLaneKeys = "predicted_head_key_fraction"
        }
    }
    var blockSparseDecodeWork: BlockSparseDecodeWork?
    /// A row of full attention with the tiled kernel and an F32 cache, the calibration's reference kernel: its
    /// measured ÷ predicted times set the run's pace (`BenchTable.pace`).
    var paceReference = false

    enum CodingKeys: String, CodingKey {
        case setting, mode, length, calibrationPoint = "calibration_point", measured, predicted
        case compared = "compared_calibration_predicted", blockSparseWork = "block_sparse_prefill_work"
        case blockSparseDecodeWork = "block_sparse_decode_work", paceReference = "pace_reference"
    }

    init(setting: String, mode: AttentionCostModel.Mode, length: Int, measured m: AttentionBenchmark.Result,
         passes: [AttentionBenchmark.Result] = [], predicted p: AttentionCostPrediction, kl: Double?,
         calibrationPoint: Bool) {
        self.setting = setting; self.mode = mode.rawValue; self.length = length
        self.calibrationPoint = calibrationPoint
        measured = Measured(peakBytes: m.kvBytes + m.peakScratchBytes, kvBytes: m.kvBytes,
                            scratchBytes: m.peakScratchBytes, operandBytes: m.operandBytes,
                            residentGrowthBytes: m.residentGrowthBytes, medianSeconds: m.medianSecondsPerCall,
                            fastestSeconds: m.secondsPerCall, tokensPerSecond: m.tokensPerSecond,
                            passTokensPerSecond: passes.count > 1 ? passes.map(\.tokensPerSecond).sorted() : nil,
                            kl: kl)
        predicted = Predicted(peakBytes: p.peakBytes, kvBytes: p.kvBytes, scratchBytes: p.scratchBytes,
                              workingSetBytes: p.workingSetBytes, seconds: p.seconds,
                              tokensPerSecond: p.tokensPerSecond, loss: p.loss)
    }

    /// (predicted − measured) ÷ measured, in percent.
    static func errorPercent(_ predicted: Double, _ measured: Double) -> Double {
        measured != 0 ? (predicted - measured) / measured * 100 : .nan
    }
    var memoryErrorPercent: Double { Self.errorPercent(Double(predicted.peakBytes), Double(measured.peakBytes)) }
    var residentErrorPercent: Double? {
        measured.residentGrowthBytes.map { Self.errorPercent(Double(predicted.workingSetBytes), Double($0)) }
    }
    var speedErrorPercent: Double { Self.errorPercent(predicted.tokensPerSecond, measured.tokensPerSecond) }
    var comparedSpeedErrorPercent: Double? {
        compared.map { Self.errorPercent($0.tokensPerSecond, measured.tokensPerSecond) }
    }
    /// (fastest − slowest pass) ÷ the median pass, in percent: how far the row's own measurements moved between
    /// passes; nil for rows measured once.
    var passSpreadPercent: Double? {
        guard let p = measured.passTokensPerSecond, let lo = p.first, let hi = p.last, measured.tokensPerSecond > 0
        else { return nil }
        return (hi - lo) / measured.tokensPerSecond * 100
    }
    /// Whether the prediction is within `bar` percent of at least one pass (of the median for rows measured once).
    func speedWithinAPass(bar: Double) -> Bool { Self.withinAPass(predicted.tokensPerSecond, measured, bar: bar) }
    /// The same for the --compare-calibration prediction; nil without one.
    func comparedWithinAPass(bar: Double) -> Bool? {
        compared.map { Self.withinAPass($0.tokensPerSecond, measured, bar: bar) }
    }
    private static func withinAPass(_ tokensPerSecond: Double, _ measured: Measured, bar: Double) -> Bool {
        (measured.passTokensPerSecond ?? [measured.tokensPerSecond])
            .contains { abs(errorPercent(tokensPerSecond, $0)) <= bar }
    }
}

/// The rows of one bench-attention run with how they were measured and the fidelity count.
struct BenchTable: Encodable {
    var title: String
    var shape: String
    var threads: Int
    var repetitions: Int
    /// Where the predicted times' calibration comes from; nil: the plain roofline.
    var calibration: String?
    /// The --compare-calibration file's source, whose predictions each row also carries; nil without one.
    var comparedCalibration: String?
    var loadAverageBefore: Double?
    var loadAverageAfter: Double?
    var rows: [BenchRow] = []
    var notes: [String] = []

    static let memoryBar = 5.0, speedBar = 15.0
    /// Block-sparse prefill work, counted against predicted: the model takes choices as independent, an upper
    /// bound a few percent above what the engine's tiles do.
    static let workBar = 10.0

    struct Summary: Codable {
        var memoryWithin: Int
        var memoryRows: Int
        var residentWithin: Int
        var residentRows: Int
        var speedWithin: Int
        var speedRows: Int
        /// Counted rows whose prediction is within the bar of at least one of its passes: the misses beyond
        /// `speedWithin` are as far off as the row's measurements are from each other.
        var speedWithinAPass: Int
        /// Counted rows whose passes spread by more than the bar (fastest − slowest over the median).
        var speedSpreadBeyondBar: Int
        /// With --compare-calibration: counted rows whose compared prediction is within the bar of the median
        /// pass, and of at least one pass.
        var comparedSpeedWithin: Int?
        var comparedSpeedWithinAPass: Int?
        /// Block-sparse prefill rows with a full prefill row beside them: how many have the model's work fraction
        /// within `workBar` of the counted one (nil without such rows).
        var blockSparseWorkWithin: Int?
        var blockSparseWorkRows: Int?
        /// The run's pace per mode (`BenchTable.pace`), and the counted rows other than the pace's own whose
        /// prediction times the pace is within the bar of the median pass (nil without reference rows).
        var prefillPace: Double?
        var decodePace: Double?
        var pacedSpeedWithin: Int?
        var pacedSpeedRows: Int?
        enum CodingKeys: String, CodingKey {
            case memoryWithin = "memory_within_5_percent", memoryRows = "memory_rows"
            case residentWithin = "resident_within_5_percent", residentRows = "resident_rows"
            case speedWithin = "speed_within_15_percent", speedRows = "speed_rows"
            case speedWithinAPass = "speed_within_15_percent_of_a_pass"
            case speedSpreadBeyondBar = "speed_pass_spread_over_15_percent"
            case comparedSpeedWithin = "compared_speed_within_15_percent"
            case comparedSpeedWithinAPass = "compared_speed_within_15_percent_of_a_pass"
            case blockSparseWorkWithin = "block_sparse_prefill_work_within_10_percent"
            case blockSparseWorkRows = "block_sparse_prefill_work_rows"
            case prefillPace = "pace_prefill", decodePace = "pace_decode"
            case pacedSpeedWithin = "speed_within_15_percent_at_pace", pacedSpeedRows = "speed_rows_at_pace"
        }
    }

    /// The run's pace for `mode`: the median over the full-attention F32 tiled rows of measured ÷ predicted time
    /// (how much slower or faster the machine ran this time than when the calibration was measured, on the kernel
    /// it was measured with); nil without such rows. Predictions times the pace take out the machine's overall
    /// speed in this run, which a shared machine moves by tens of percent between spells, and leave the cost
    /// model's account of one setting against another: a view beside the fidelity count, not in place of it.
    func pace(_ mode: String) -> Double? {
        let reference = rows.filter { $0.paceReference && $0.mode == mode && !$0.calibrationPoint }
        guard !reference.isEmpty else { return nil }
        return AttentionCalibration.pace(reference.map { ($0.measured.medianSeconds, $0.predicted.seconds) })
    }

    var summary: Summary {
        let memory = rows.map { abs($0.memoryErrorPercent) }
        let resident = rows.compactMap { $0.residentErrorPercent.map(abs) }
        let counted = rows.filter { !$0.calibrationPoint }
        let speed = counted.map { abs($0.speedErrorPercent) }
        let work = rows.compactMap { $0.blockSparseWork.map { abs($0.errorPercent) } }
        let paces = ["prefill": pace("prefill"), "decode": pace("decode")]
        let paced = counted.filter { !$0.paceReference }.compactMap { r -> Double? in
            (paces[r.mode] ?? nil).map { abs(BenchRow.errorPercent(r.predicted.tokensPerSecond / $0,
                                                                   r.measured.tokensPerSecond)) }
        }
        let anyPace = paces.values.contains { $0 != nil }
        return Summary(memoryWithin: memory.filter { $0 <= Self.memoryBar }.count, memoryRows: memory.count,
                       residentWithin: resident.filter { $0 <= Self.memoryBar }.count, residentRows: resident.count,
                       speedWithin: speed.filter { $0 <= Self.speedBar }.count, speedRows: speed.count,
                       speedWithinAPass: counted.filter { $0.speedWithinAPass(bar: Self.speedBar) }.count,
                       speedSpreadBeyondBar: counted.filter { ($0.passSpreadPercent ?? 0) > Self.speedBar }.count,
                       comparedSpeedWithin: comparedCalibration == nil ? nil : counted.filter {
                           abs($0.comparedSpeedErrorPercent ?? .infinity) <= Self.speedBar }.count,
                       comparedSpeedWithinAPass: comparedCalibration == nil ? nil : counted.filter {
                           $0.comparedWithinAPass(bar: Self.speedBar) ?? false }.count,
                       blockSparseWorkWithin: work.isEmpty ? nil : work.filter { $0 <= Self.workBar }.count,
                       blockSparseWorkRows: work.isEmpty ? nil : work.count,
                       prefillPace: paces["prefill"] ?? nil, decodePace: paces["decode"] ?? nil,
                       pacedSpeedWithin: anyPace ? paced.filter { $0 <= Self.speedBar }.count : nil,
                       pacedSpeedRows: anyPace ? paced.count : nil)
    }

    enum CodingKeys: String, CodingKey {
        case title, shape, threads, repetitions, calibration, comparedCalibration = "compared_calibration"
        case loadAverageBefore = "load_average_before"
        case loadAverageAfter = "load_average_after", rows, notes, summary
    }

    init(title: String, shape: String, threads: Int, repetitions: Int, calibration: String?) {
        self.title = title; self.shape = shape; self.threads = threads; self.repetitions = repetitions
        self.calibration = calibration
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(title, forKey: .title)
        try c.encode(shape, forKey: .shape)
        try c.encode(threads, forKey: .threads)
        try c.encode(repetitions, forKey: .repetitions)
        try c.encodeIfPresent(calibration, forKey: .calibration)
        try c.encodeIfPresent(comparedCalibration, forKey: .comparedCalibration)
        try c.encodeIfPresent(loadAverageBefore, forKey: .loadAverageBefore)
        try c.encodeIfPresent(loadAverageAfter, forKey: .loadAverageAfter)
        try c.encode(rows, forKey: .rows)
        try c.encode(notes, forKey: .notes)
        try c.encode(summary, forKey: .summary)
    }

    private static func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
    private static func padLeft(_ s: String, _ n: Int) -> String {
        String(repeating: " ", count: max(0, n - s.count)) + s
    }

    func printText() {
        print(title)
        print("time: " + (calibration.map { "calibrated (\($0))" } ?? "plain roofline, no calibration"))
        if let comparedCalibration { print("compared (cmp err%): calibrated (\(comparedCalibration))") }
        let cmpHeader = comparedCalibration == nil ? "" : "  cmp err%"
        func cmp(_ r: BenchRow) -> String {
            r.comparedSpeedErrorPercent.map { String(format: "  %8.1f", $0) } ?? ""
        }
        let s = summary
        let cmpSummary = comparedCalibration == nil ? "" : "; compared calibration, the same measurements: "
            + "speed within ±15%: \(s.comparedSpeedWithin ?? 0) of \(s.speedRows)"
        print(String(format: "1-minute load average %@ before, %@ after, on %d cores",
                     (loadAverageBefore.map { String(format: "%.2f", $0) } ?? "?") as NSString,
                     (loadAverageAfter.map { String(format: "%.2f", $0) } ?? "?") as NSString,
                     ProcessInfo.processInfo.activeProcessorCount))
        if shape == "vit" {
            print("setting            patches  scratch MB   pred MB   err%   RSS+ MB   pred MB   err%   "
                  + "seconds   pred s  patches/s     pred/s   err%" + cmpHeader)
            for r in rows {
                let rss = r.measured.residentGrowthBytes.map { String(format: "%9.1f", Double($0) / 1e6) } ?? "        -"
                let rssErr = r.residentErrorPercent.map { String(format: "%6.1f", $0) } ?? "     -"
                print(Self.pad(r.setting, 18) + String(
                    format: " %7d %11.3f %9.3f %6.1f %@ %9.1f %@ %9.3f %8.3f %10.0f %10.0f %6.1f", r.length,
                    Double(r.measured.scratchBytes) / 1e6, Double(r.predicted.scratchBytes) / 1e6,
                    r.memoryErrorPercent, rss as NSString, Double(r.predicted.workingSetBytes) / 1e6, rssErr as NSString,
                    r.measured.medianSeconds, r.predicted.seconds, r.measured.tokensPerSecond,
                    r.predicted.tokensPerSecond, r.speedErrorPercent) + cmp(r))
            }
            for note in notes { print(note) }
            print("(err% = (predicted − measured) ÷ measured; RSS+ = peak resident set growth of the measuring process, "
                  + "pred = queries, keys, values, output and scratch)")
            print("scratch within ±5%: \(s.memoryWithin) of \(s.memoryRows); resident growth within ±5%: "
                  + "\(s.residentWithin) of \(s.residentRows); speed within ±15%: \(s.speedWithin) of \(s.speedRows)"
                  + cmpSummary)
            return
        }
        if rows.contains(where: \.calibrationPoint) {
            print("(rows marked * are the calibration points themselves; their speed is not counted)")
        }
        print("setting            mode      len   mem MB   pred MB   err%     tok/s    pred tok/s   err% spread%   "
              + "KL        pred loss" + (comparedCalibration == nil ? "" : "   cmp err%"))
        for r in rows {
            let name = Self.pad(r.setting + (r.calibrationPoint ? " *" : ""), 18)
            print(name + " " + Self.pad(r.mode, 8) + String(
                format: " %5d %8.3f %9.3f %6.1f %10.1f %12.1f %6.1f %@   %@ %@", r.length,
                Double(r.measured.peakBytes) / 1e6, Double(r.predicted.peakBytes) / 1e6, r.memoryErrorPercent,
                r.measured.tokensPerSecond, r.predicted.tokensPerSecond, r.speedErrorPercent,
                Self.padLeft(r.passSpreadPercent.map { String(format: "%.1f", $0) } ?? "-", 7) as NSString,
                (r.measured.kl.map { String(format: "%.6f", $0) } ?? "-       ") as NSString,
                (Self.pad(r.predicted.loss.map { String(format: "%.4f", $0) } ?? "-",
                          comparedCalibration == nil ? 0 : 9)) as NSString) + cmp(r))
        }
        print("(spread% = (fastest − slowest pass) ÷ the median pass, the row's own run-to-run movement)")
        let worked = rows.compactMap { r in r.blockSparseWork.map { (r, $0) } }
        if !worked.isEmpty {
            print("block-sparse prefill work: (lane, key) pairs the tiles ran as a fraction of full prefill's, counted "
                  + "by the engine, beside the cost model's (no clock involved)")
            for (r, w) in worked {
                print(Self.pad(r.setting, 18) + " " + Self.pad(r.mode, 8) + String(
                    format: " %5d   counted %.3f   predicted %.3f   err%% %+.1f", r.length, w.counted, w.predicted,
                    w.errorPercent))
            }
        }
        let decodeWork = rows.compactMap { r in r.blockSparseDecodeWork.map { (r, $0) } }
        if !decodeWork.isEmpty {
            print("block-sparse decode work: keys read (per KV head, once for its query heads) over the cached keys "
                  + "and (head, key) pairs over heads × cached keys, counted by the engine for this call's draw of "
                  + "blocks, beside the cost model's expectation (no clock involved)")
            for (r, w) in decodeWork {
                print(Self.pad(r.setting, 18) + " " + Self.pad(r.mode, 8) + String(
                    format: " %5d   read counted %.3f predicted %.3f err%% %+.1f   pairs counted %.3f predicted %.3f",
                    r.length, w.countedRead, w.predictedRead, w.readErrorPercent, w.countedLaneKeys,
                    w.predictedLaneKeys))
            }
        }
        print("memory within ±5%: \(s.memoryWithin) of \(s.memoryRows); speed within ±15%: \(s.speedWithin) of "
              + "\(s.speedRows) (of a pass: \(s.speedWithinAPass); passes spread over 15%: \(s.speedSpreadBeyondBar))"
              + cmpSummary + (comparedCalibration == nil ? "" : " (of a pass: \(s.comparedSpeedWithinAPass ?? 0))")
              + (s.blockSparseWorkRows.map { "; block-sparse prefill work within ±10%: \(s.blockSparseWorkWithin ?? 0) "
                    + "of \($0)" } ?? ""))
        if let rows = s.pacedSpeedRows {
            let paces = [("prefill", s.prefillPace), ("decode", s.decodePace)].compactMap { mode, pace in
                pace.map { String(format: "%@ ×%.2f", mode, $0) }
            }
            print("at this run's pace (measured ÷ predicted time, median of the full F32 tiled rows: "
                  + paces.joined(separator: ", ") + "): speed within ±15%: \(s.pacedSpeedWithin ?? 0) of \(rows) other "
                  + "rows (takes out the machine's overall speed in this run; the fidelity count is the line above)")
        }
    }
}
