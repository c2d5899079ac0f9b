import ArgumentParser
import AutoGLMEngine
import AutoGLMPlanner
import AutoGLMSpecs
import Foundation

/// `autoglm-run calibrate-attention`: measures the full-attention kernels at several lengths and fits, per (KV
/// format, kernel, mode), the fixed per-call time, the per-row time and the rate correction of the attention cost
/// model; writes them with their points and provenance for bench-attention and the planner.
struct CalibrateAttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate-attention",
        abstract: "Fit the attention cost model's per-call and per-row overheads and rate to measurements.",
        discussion: """
            Decoder points: every KV format with the tiled kernel and F32 with the materialised kernel, prefill and \
            decode, on one layer of --model at --lengths, and decode alone at --decode-lengths, where the layer's K/V \
            outgrows the last-level cache; the share of that cache behind the beyond-cache term is the one whose fits \
            leave the smallest error. Encoder points: the --vit-model ViT layer, both kernels, at \
            --patches. Block-sparse decode (128/4, 32/16, 256/4, 512/4 and 1024/4, F32) at the decoder lengths up \
            to 32,768 fits its rate, lane share, seconds per block score and the cache share its union of chosen \
            blocks stays in against the decode fit (when one of them leaves blocks out), its times divided by the \
            pace of full F32 decode measured in the same passes against that fit. F32 prefill \
            of 128/4 at the --lengths where it leaves blocks out and of 128/4 and 1024/4 at --prefill-lengths fits \
            block-sparse prefill's rate (its passes over blocks some lanes chose) and its own beyond-cache factor, \
            its times divided by the pace of full F32 prefill measured in the same passes, after the wide attention \
            tile is timed alone at each lane count of a work item (the share of its cost that runs by whole \
            vectors prices those passes). Decode with the layer's \
            K/V flushed from the caches before each call (as a model's decode finds them) at --cold-lengths fits each \
            decode key's cold-sweep factor, which prices decode inside a model (the planner's host plans, \
            bench-attention --cold-kv), its times divided by the pace of warm F32 decode measured in the same \
            passes. --block-sparse-only measures only the block-sparse points and adds their constants to an \
            existing --output, keeping its fits; --block-sparse-prefill-only, only block-sparse prefill's; \
            --materialised-only \
            measures and refits only the materialised kernel's points and keeps the rest of --output; --decode-only \
            measures and refits every decode point (full, block-sparse and cold) and keeps the prefill and encode \
            fits and the cache shares; --cold-decode-only measures only the cold points. Choose lengths other than \
            the ones bench-attention reports, so that its table tests the fit rather than repeating it. Exit status: 0, or 1 when a file cannot be read or written or a run fails.
            """
    )

    @Option(help: """
        Device profile whose roofline is corrected (default: this machine's measured host profile, \
        DeviceProfiles/<host id>.json; see autoglm-run kernels).
        """)
    var device: String?

    @Option(help: "Model manifest whose decoder layer is measured.")
    var model: String = "Models/smollm2-135m.json"

    @Option(name: .customLong("vit-model"), help: "Manifest whose vision encoder layer is measured ('' to skip).")
    var vitModel: String = "Models/autoglm-phone-9b.json"

    @Option(help: "Comma-separated decoder sequence lengths.")
    var lengths: String = "96,192,384,768,1536,3072"

    @Option(name: .customLong("decode-lengths"),
            help: "Comma-separated decoder lengths measured in decode only, long enough that the layer's K/V outgrows the last-level cache ('' for none): they fit the beyond-cache term.")
    var decodeLengths: String = "12288,24576,49152,98304"

    @Option(name: .customLong("prefill-lengths"),
            help: """
                Comma-separated decoder lengths measured in F32 tiled prefill only (one timed call each), long enough \
                that the layer's K/V outgrows the last-level cache ('' for none): prefill's own beyond-cache factor, \
                which the other formats' prefill borrow, and with 128/4 and 1024/4 block-sparse prefill's. The \
                defaults lie between bench-attention-long's 8,192, 16,384 and 32,768, the last close below 32,768 so \
                that the fit interpolates there.
                """)
    var prefillLengths: String = "12288,20480,28672"

    @Option(help: "Comma-separated ViT patch counts (12,432: a phone screenshot's size that fits this machine, where the materialised kernel's K/V sweeps begin to leave the last-level cache).")
    var patches: String = "512,1024,1536,2048,3072,6144,12432"

    @Option(name: .customLong("encode-repetitions"), help: "Timed calls per ViT point at least (long calls).")
    var encodeRepetitions: Int = 3

    @Option(help: "Measure every point this many times, one pass over all points after another, each pass in its own shuffled order, and fit the pass with the median time (decoder and ViT points alike).")
    var rounds: Int = 3

    @Option(help: "Timed calls per point at least (the median is fitted).")
    var repetitions: Int = 7

    @Option(name: .customLong("min-time"),
            help: "More timed calls until they add up to this many seconds (short calls get many).")
    var minTime: Double = 0.3

    @Option(help: "Threads (default: all cores).")
    var threads: Int?

    @Option(name: .shortAndLong, help: """
        Where to write the calibration (default: DeviceProfiles/measurements/<host id>.attention-calibration.json).
        """)
    var output: String?

    /// --output, or this machine's calibration file.
    private var outputPath: String { output ?? HostFiles.attentionCalibration }

    /// Shares of the last-level cache tried as the cache a repeated call's K/V stays in.
    static let cacheFractions: [Double] = [0.125, 0.25, 0.375, 0.5, 0.75, 1]
    /// Shares of a core's private (L2) cache tried as the cache a materialised row sweep stays in.
    static let privateCacheFractions: [Double] = [0.25, 0.5, 0.75, 1]

    @Flag(name: .customLong("block-sparse-only"),
          help: """
              Keep the fits in --output and measure and fit only block-sparse decode's constants and block-sparse \
              prefill's rate and beyond-cache factor against them.
              """)
    var blockSparseOnly = false

    @Flag(name: .customLong("block-sparse-prefill-only"),
          help: """
              Keep everything in --output, block-sparse decode's constants included, and measure and fit only \
              block-sparse prefill's rate and beyond-cache factor (needs --prefill-lengths).
              """)
    var blockSparsePrefillOnly = false

    @Flag(name: .customLong("materialised-only"),
          help: "Keep the other fits in --output, its cache shares and block-sparse decode constants, and measure and fit only the materialised kernel's (F32 prefill and decode, ViT encode), after a change to that kernel.")
    var materialisedOnly = false

    @Flag(name: .customLong("encode-only"),
          help: """
              Keep every decoder fit in --output, its cache shares and block-sparse constants, and measure and fit \
              only the ViT encode points of both kernels (needs --vit-model and --patches); F32 tiled prefill is \
              measured at --lengths in the same passes and the encode times are divided by its times over its fit.
              """)
    var encodeOnly = false

    @Flag(name: .customLong("decode-only"),
          help: "Keep the prefill and encode fits in --output and its cache shares, and measure and fit every decode point (full decode of each KV format and kernel, and block-sparse decode's constants), after a change to decode.")
    var decodeRefitOnly = false

    @Flag(name: .customLong("cold-decode-only"),
          help: ArgumentHelp(
            "Keep every fit in --output and fit only each decode key's cold-sweep factor.",
            discussion: "Measures decode with the layer's K/V flushed from the caches before each call, as a model's "
                + "decode finds them."))
    var coldDecodeOnly = false

    @Option(name: .customLong("cold-lengths"),
            help: "Comma-separated decoder lengths of the cold decode points ('' for none).")
    var coldLengths: String = "192,384,768,1536,3072,6144"

    func validate() throws {
        let partial = [blockSparseOnly, blockSparsePrefillOnly, materialisedOnly, encodeOnly, decodeRefitOnly,
                       coldDecodeOnly]
        if partial.filter({ $0 }).count > 1 {
            throw ValidationError("--block-sparse-only, --block-sparse-prefill-only, --materialised-only, "
                                  + "--encode-only, --decode-only and --cold-decode-only refit different parts; "
                                  + "give one")
        }
    }

    /// `source` with the part that starts with `marker` (up to the next part a refit adds, or the end) replaced
    /// by `text`, or `text` appended when there is none.
    static func replacingPart(_ source: String, marker: String, with text: String) -> String {
        let markers = [Self.sparseMarker, Self.sparsePrefillMarker, Self.materialisedMarker, Self.encodeMarker,
                       Self.decodeMarker, Self.coldMarker]
        guard let start = source.range(of: marker) else { return source + text }
        let rest = source[start.upperBound...]
        let end = markers.compactMap { rest.range(of: $0)?.lowerBound }.min() ?? source.endIndex
        return String(source[..<start.lowerBound]) + text + String(source[end...])
    }
    static let sparseMarker = "; block-sparse decode"
    static let sparsePrefillMarker = "; block-sparse prefill"
    static let materialisedMarker = "; materialised kernel refitted"
    static let encodeMarker = "; encode refitted"
    static let decodeMarker = "; decode refitted"
    static let coldMarker = "; cold decode"

    /// The 1-minute load averages before and after, two decimals ("?" where unknown).
    static func loadText(_ before: Double?, _ after: Double?) -> [String] {
        [before, after].map { $0.map { String(format: "%.2f", $0) } ?? "?" }
    }

    /// Writes `calibration` to `path` (pretty, sorted keys) and says so.
    static func write(_ calibration: AttentionCalibration, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(calibration)
        do {
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot write \(path): \((error as NSError).localizedDescription)")
        }
        print("wrote \(path)")
    }

    /// The block-sparse settings whose decode points fit block-sparse decode's constants: few large blocks, many
    /// small ones (the score per block is only told apart from the key loop where there are many), and blocks of
    /// 256 to 1,024 keys, whose unions of chosen blocks (about 3.5, 7 and 14 MB over SmolLM2's three KV heads at
    /// 32K tokens) run from beyond the private caches to beyond part of the last-level cache: they tell the cache
    /// share the union stays in from the private-cache scaling (fitted on 128/4, 32/16 and 1024/4 alone, the two
    /// models left errors within 2% of each other on this host, one of them pricing 256/4 and 512/4 20–58% slow).
    static let sparseDecodeSettings = [Plan.BlockSparse(chunk: 128, topK: 4), Plan.BlockSparse(chunk: 32, topK: 16),
                                       Plan.BlockSparse(chunk: 256, topK: 4), Plan.BlockSparse(chunk: 512, topK: 4),
                                       Plan.BlockSparse(chunk: 1024, topK: 4)]
    /// Those settings as the calibration's words name them ("128/4, 32/16, 256/4, 512/4 and 1024/4").
    static let sparseDecodeLabel = label(sparseDecodeSettings)
    /// The block-sparse settings whose cold decode points fit block-sparse decode's cold-sweep factor (from memory
    /// every union is read alike: the three that tell few large blocks from many small ones and very large ones).
    static let sparseColdSettings = [Plan.BlockSparse(chunk: 128, topK: 4), Plan.BlockSparse(chunk: 32, topK: 16),
                                     Plan.BlockSparse(chunk: 1024, topK: 4)]
    /// Block-sparse settings as the calibration's words name them ("128/4 and 1024/4").
    static func label(_ settings: [Plan.BlockSparse]) -> String {
        let names = settings.map { "\($0.chunk)/\($0.topK)" }
        return names.count > 2 ? names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
            : names.joined(separator: " and ")
    }
    /// Those settings' F32 decode jobs, as measured for the block-sparse fits (warm and cold).
    static let sparseDecodeJobs = f32Jobs(sparseDecodeSettings, mode: .decode)
    /// F32 tiled jobs of block-sparse settings in one mode, named as bench-attention names them.
    static func f32Jobs(_ settings: [Plan.BlockSparse], mode: AttentionCostModel.Mode)
        -> [(AttentionSettingSpec, AttentionCostModel.Mode)] {
        settings.map { (AttentionSettingSpec(name: "f32 moba \($0.chunk)/\($0.topK)", blockSparse: $0), mode) }
    }
    /// The block-sparse settings whose prefill points fit block-sparse prefill's rate and beyond-cache factor: few
    /// small blocks and few large ones (the second reads nearly as much per row as full prefill at 8,192 tokens).
    static let sparsePrefillSettings = [Plan.BlockSparse(chunk: 128, topK: 4), Plan.BlockSparse(chunk: 1024, topK: 4)]
    /// The longest of those points: the long-context range bench-attention-long reports block-sparse decode over.
    /// Beyond it, block-sparse decode on this host slows by a further ~50% (35.6 → 65.4 µs from 24,576 to 49,152
    /// keys at 128/4) that the model has no term for; fitting those points would skew the constants.
    static let sparseDecodeMaxLength = 32_768

    static let decoderSettings: [AttentionSettingSpec] = [
        AttentionSettingSpec(name: "f32 tiled", kv: .f32),
        AttentionSettingSpec(name: "f16 tiled", kv: .f16),
        AttentionSettingSpec(name: "int8 tiled", kv: .int8),
        AttentionSettingSpec(name: "int4 tiled", kv: .int4),
        AttentionSettingSpec(name: "f32 materialised", kv: .f32, kernel: .materialised),
    ]

    func run() throws {
        guard repetitions > 0, encodeRepetitions > 0 else {
            throw ValidationError("--repetitions and --encode-repetitions must be positive, got \(repetitions) and "
                                  + "\(encodeRepetitions)")
        }
        guard minTime >= 0, minTime.isFinite else { throw ValidationError("--min-time must be ≥ 0, got \(minTime)") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive, got \(rounds)") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive, got \(threads)") }
        let lengthList = try BenchAttentionCommand.positiveList(lengths, option: "--lengths")
        let decodeOnly = decodeLengths.isEmpty ? []
            : try BenchAttentionCommand.positiveList(decodeLengths, option: "--decode-lengths").filter { !lengthList.contains($0) }
        let prefillOnly = prefillLengths.isEmpty ? []
            : try BenchAttentionCommand.positiveList(prefillLengths, option: "--prefill-lengths")
                .filter { !lengthList.contains($0) }
        /// The lengths a decoder job is measured at: the shared list, decode's long lengths, and for F32 tiled
        /// prefill the long prefill lengths (the format whose K/V outgrows the cache at the fewest tokens).
        func decoderPoints(_ s: AttentionSettingSpec, _ mode: AttentionCostModel.Mode) -> [Int] {
            switch mode {
            case .decode: return lengthList + decodeOnly
            case .prefill where s.kv == .f32 && s.kernel == .tiled: return lengthList + prefillOnly
            default: return lengthList
            }
        }
        let patchList = vitModel.isEmpty ? [] : try BenchAttentionCommand.positiveList(patches, option: "--patches")
        do {
            let profile = try DeviceProfile.load(device ?? HostFiles.profile)
            let manifest = try ModelManifest.load(model)
            guard let decoder = manifest.textDecoder else { throw ValidationError("\(model) has no text decoder") }
            let n = threads ?? ComputePool.availableCores
            // Priced with the tile width of this machine's kernels, as bench-attention and the planner price it
            // (block-sparse work is counted in whole vectors of lanes).
            let costs = AttentionCostModel(device: profile, threads: n, tileLanes: KernelISA.active.attentionLanes)
            let host = try? HostInfo.current()
            let loadBefore = HostInfo.loadAverage()
            let started = Date()
            var calibration = AttentionCalibration(kernels: KernelISA.active.rawValue, cpu: host?.cpuModel,
                                                   roofline: costs.roofline)
            /// The calibration file a partial run extends: its fits must correct this profile's roofline.
            func loadExisting() throws -> AttentionCalibration {
                let existing = try SpecLoader.load(AttentionCalibration.self, from: outputPath)
                if let why = costs.roofline.flatMap(existing.rooflineMismatch) {
                    throw ValidationError("\(outputPath): \(why) (its fits cannot be extended by a partial run)")
                }
                return existing
            }
            /// Measures each (setting, mode) at its lengths in `rounds` passes, each over all points in its own shuffled
            /// order (`AttentionBenchmark.passOrder`); the median pass per point. Decode jobs whose index `cold` takes
            /// are measured with the layer's K/V flushed from the caches before each call.
            func measure(_ jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)], _ shape: AttentionLayerShape,
                         _ points: (AttentionSettingSpec, AttentionCostModel.Mode) -> [Int], rounds: Int,
                         cold: (Int) -> Bool = { _ in false },
                         shapes: [Int: AttentionLayerShape] = [:]) throws -> [[(Int, Double)]] {
                struct PointKey: Hashable { var job: Int; var length: Int }
                var passes: [PointKey: [Double]] = [:]
                let keys = jobs.indices.flatMap { j in
                    points(jobs[j].0, jobs[j].1).map { PointKey(job: j, length: $0) }
                }
                for round in 0..<rounds {
                    for key in AttentionBenchmark.passOrder(count: keys.count, pass: round).map({ keys[$0] }) {
                        let (s, mode) = jobs[key.job], length = key.length, shape = shapes[key.job] ?? shape
                        let repetitions = mode == .encode ? encodeRepetitions
                            : mode == .prefill && prefillOnly.contains(length) ? 1 : self.repetitions
                        let setting = AttentionBenchmark.Setting(
                            name: s.name, mode: mode == .prefill ? .prefill : mode == .decode ? .decode : .encode,
                            kvCacheFormat: s.kv, kernel: s.kernel, window: s.window, globalTokens: s.globalTokens,
                            blockSparse: s.blockSparse, heads: shape.heads, kvHeads: shape.kvHeads,
                            headDim: shape.headDim, threads: n, coldKV: cold(key.job) && mode == .decode)
                        let r = try AttentionBenchmark.run(setting: setting, sequenceLength: length,
                                                           repetitions: repetitions, minimumSeconds: minTime)
                        passes[key, default: []].append(r.medianSecondsPerCall)
                    }
                }
                return jobs.enumerated().map { j, job in
                    points(job.0, job.1).map { length in
                        let times = (passes[PointKey(job: j, length: length)] ?? []).sorted()
                        return (length, times.isEmpty ? .nan : times[(times.count - 1) / 2])
                    }
                }
            }
            /// Fits every job's points with the beyond-cache term priced for `cacheBytes` and the materialised row
            /// sweeps' term for `privateCacheBytes` (nil: none); the fits and the sum of their squared relative errors.
            func fitAll(_ jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)], _ shape: AttentionLayerShape,
                        _ measured: [[(Int, Double)]], cacheBytes: Int?, privateCacheBytes: Int? = nil) throws
                -> (fits: [AttentionCalibration.Key: AttentionCalibration.Fit], error: Double) {
                var fits: [AttentionCalibration.Key: AttentionCalibration.Fit] = [:]
                var error = 0.0
                for (j, job) in jobs.enumerated() {
                    let (s, mode) = job
                    let points: [AttentionCalibration.Point] = measured[j].map { length, seconds in
                        .init(length: length, rows: mode == .decode ? 1 : length,
                              modelSeconds: costs.predict(s, shape: shape, mode: mode, length: length).seconds,
                              spillSeconds: cacheBytes.map {
                                  costs.spillSeconds(s, shape: shape, mode: mode, length: length, cacheBytes: $0)
                              } ?? 0,
                              nearSeconds: privateCacheBytes.map {
                                  costs.nearSeconds(s, shape: shape, mode: mode, length: length, privateCacheBytes: $0)
                              } ?? 0,
                              measuredSeconds: seconds)
                    }
                    guard let fit = AttentionCalibration.fit(points: points, shape: shape) else {
                        throw ValidationError("\(s.name) \(mode.rawValue): too few usable points to fit")
                    }
                    fits[AttentionCalibration.Key(s, mode: mode)] = fit
                    error += fit.squaredError
                }
                return (fits, error)
            }
            func report(_ jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)],
                        _ fits: [AttentionCalibration.Key: AttentionCalibration.Fit]) {
                for (s, mode) in jobs {
                    guard let fit = fits[AttentionCalibration.Key(s, mode: mode)] else { continue }
                    let label = (s.name + " " + mode.rawValue).padding(toLength: 26, withPad: " ", startingAt: 0)
                    print(label + String(format: " fixed %8.1f µs  per row %7.3f µs  rate ×%.3f  spill ×%.3f  near ×%.3f  worst point %5.1f%%",
                                         fit.fixedSeconds * 1e6, fit.perRowSeconds * 1e6, fit.scale, fit.spill,
                                         fit.near, fit.worstPointError * 100)
                          + (fit.spillFrom.map { "  (spill from \($0))" } ?? ""))
                }
            }
            let shape = AttentionLayerShape(decoder)
            /// The --vit-model manifest and its vision encoder's attention layer (every head its own K/V).
            func vitLayer() throws -> (ModelManifest, AttentionLayerShape) {
                let vm = try ModelManifest.load(vitModel)
                guard let v = vm.visionEncoder else { throw ValidationError("\(vitModel) has no vision encoder") }
                return (vm, AttentionLayerShape(heads: v.heads, kvHeads: v.heads, headDim: v.headDim))
            }
            /// Writes a partial refit: `fits` merged into `existing` (prefill keys borrowing beyond-cache factors
            /// again), printed for `jobs`, and the refit recorded in the source under `marker` with `words(load)`
            /// (the 1-minute load averages before and after).
            func writeRefit(_ existing: AttentionCalibration,
                            merging fits: [AttentionCalibration.Key: AttentionCalibration.Fit],
                            reported jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)], marker: String,
                            _ words: ([String]) -> String) throws {
                var calibration = existing
                calibration.fits.merge(fits) { $1 }
                calibration.fits = AttentionCalibration.borrowingSpill(calibration.fits)
                report(jobs, calibration.fits)
                let load = Self.loadText(loadBefore, HostInfo.loadAverage())
                calibration.source = Self.replacingPart(calibration.source, marker: marker, with: marker + words(load))
                try Self.write(calibration, to: outputPath)
            }
            /// The ViT encode points of `kernels` at --patches, measured and fitted against `existing`'s cache shares.
            /// `paced`: F32 tiled prefill of the decoder layer is measured at --lengths in the same passes, and the
            /// encode times are divided by the median of its times over `existing`'s predictions (`pace`: how much
            /// slower or faster the machine ran than when that prefill fit was measured), so that a refit taken in
            /// another spell of a shared machine prices encode against the decoder fits it is kept beside.
            func refitEncode(_ kernels: [AttentionKernel], against existing: AttentionCalibration, paced: Bool = false)
                throws -> (manifest: ModelManifest, jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)],
                           fits: [AttentionCalibration.Key: AttentionCalibration.Fit], pace: Double) {
                let (vm, vitShape) = try vitLayer()
                let jobs = kernels.map {
                    (AttentionSettingSpec(name: "vit \($0.rawValue)", kv: .f32, kernel: $0),
                     AttentionCostModel.Mode.encode)
                }
                let reference = (Self.decoderSettings[0], AttentionCostModel.Mode.prefill)
                var measured = try measure(jobs + (paced ? [reference] : []), vitShape, { _, mode in
                    mode == .encode ? patchList : lengthList
                }, rounds: rounds, shapes: [jobs.count: shape])
                var pace = 1.0
                if paced, let points = measured.popLast() {
                    var model = costs
                    model.calibration = existing
                    pace = AttentionCalibration.pace(points.map { length, seconds in
                        (seconds, model.predict(reference.0, shape: shape, mode: .prefill, length: length).seconds)
                    })
                    measured = measured.map { $0.map { ($0.0, $0.1 / pace) } }
                }
                return (vm, jobs, try fitAll(jobs, vitShape, measured, cacheBytes: existing.cacheBytes,
                                             privateCacheBytes: existing.privateCacheBytes).fits, pace)
            }
            func fitSparseDecode(_ calibration: inout AttentionCalibration) throws -> String {
                // Block-sparse decode's constants, fitted to F32 decode of two block-sparse settings (few large
                // blocks, many small ones) at the decoder lengths up to `sparseDecodeMaxLength`, with the
                // full-decode constants in `calibration`; returns the words for its source. Its rate and seconds
                // per score hold where every block is chosen too (the kernel still selects and reads head by head,
                // and below 1,024 keys deals the heads to the workers), but only a length where the selection
                // leaves blocks out tells the lane share: without one, nothing is fitted.
                let sparseJobs = Self.sparseDecodeJobs
                let sparseLengths = (lengthList + decodeOnly).filter { $0 <= Self.sparseDecodeMaxLength }
                let leavesBlocksOut = Self.sparseDecodeSettings.contains { b in
                    sparseLengths.contains { $0 > b.chunk * b.topK }
                }
                // Full F32 decode is measured in the same passes: the median of its times over its fit's predictions
                // (`pace`) is how much faster or slower the machine ran than when the full decode fit was measured
                // (another spell, for a partial refit), and the block-sparse times are divided by it, so that the rate
                // compares the two kernels rather than two spells.
                let reference = (Self.decoderSettings[0], AttentionCostModel.Mode.decode)
                let measured = leavesBlocksOut
                    ? try measure(sparseJobs + [reference], shape, { _, _ in sparseLengths }, rounds: rounds) : []
                var model = costs
                model.calibration = calibration
                let pace = measured.last.map { points in
                    AttentionCalibration.pace(points.map { length, seconds in
                        (seconds, model.predict(reference.0, shape: shape, mode: .decode, length: length).seconds)
                    })
                } ?? 1
                let measuredCalls = zip(Self.sparseDecodeSettings, measured.dropLast()).flatMap { b, points in
                    points.map {
                        AttentionCalibration.SparseDecode.Measured(setting: b, length: $0.0, seconds: $0.1 / pace)
                    }
                }
                let coldSpill = calibration.sparseDecode?.coldSpill
                // The union of the chosen blocks stays in a cache share of its own from call to call: each share of
                // the last-level cache is tried (the calibration's own where the size is unknown), and so is the
                // earlier model (nil: the lane share scaled by the private caches, the calibration's cache share);
                // the one whose fit leaves the smallest error is kept.
                let llc = HostInfo.lastLevelCacheBytes()
                let shares = llc.map { l in Self.cacheFractions.map { Int(Double(l) * $0) } }
                    ?? [calibration.cacheBytes ?? 1]
                let cacheCandidates: [Int?] = [nil] + shares
                func fitted(cacheBytes: Int?) -> AttentionCalibration.SparseDecode? {
                    var result = AttentionCalibration.SparseDecode.fit(measured: measuredCalls) { share, b, length in
                        model.calibration?.sparseDecode = .init(share: share, scoreSeconds: 0, cacheBytes: cacheBytes,
                                                                points: [])
                        let s = AttentionSettingSpec(name: "", blockSparse: b)
                        return (model.predict(s, shape: shape, mode: .decode, length: length).seconds,
                                model.blockScores(s, shape: shape, length: length))
                    }
                    result?.cacheBytes = cacheBytes
                    return result
                }
                func error(_ fit: AttentionCalibration.SparseDecode) -> Double {
                    fit.points.reduce(0) { $0 + pow($1.predictedSeconds / $1.measuredSeconds - 1, 2) }
                }
                calibration.sparseDecode = cacheCandidates.compactMap(fitted).min { error($0) < error($1) }
                // Its cold-sweep factor stays until the cold points are measured again (`fitColdDecode`, which a full
                // or decode refit runs next; --block-sparse-only keeps it).
                calibration.sparseDecode?.coldSpill = coldSpill
                if let sparse = calibration.sparseDecode {
                    let worst = sparse.points.map { abs($0.predictedSeconds / $0.measuredSeconds - 1) }.max() ?? 0
                    let settings = Self.sparseDecodeLabel
                    let held = sparse.cacheBytes.map {
                        String(format: "the union of the chosen blocks held in %.1f MiB of cache",
                               Double($0) / 1_048_576)
                    } ?? "the lane share scaled by the part of the union the private caches hold"
                    print(String(format: "block-sparse decode: rate ×%.3f, lane share %.3f, %.2f ns per block score, "
                                 + "%@ (%@ at up to %d tokens; worst point %.1f%%; full decode measured beside them "
                                 + "at ×%.3f of its fit's time)", sparse.rate, sparse.share, sparse.scoreSeconds * 1e9,
                                 held, settings, Self.sparseDecodeMaxLength, worst * 100, pace))
                    return String(format: "; block-sparse decode (%@, F32, at the decoder lengths up to %d): "
                                        + "rate ×%.3f, lane share %.3f, %.2f ns per block score, %@ "
                                        + "(times divided by ×%.3f, full F32 decode measured in the same "
                                        + "passes over its fit)", settings, Self.sparseDecodeMaxLength, sparse.rate,
                                        sparse.share, sparse.scoreSeconds * 1e9, held, pace)
                }
                return ""
            }
            func fitSparsePrefill(_ calibration: inout AttentionCalibration) throws -> String {
                // Block-sparse prefill's rate and beyond-cache factor: F32 prefill of the block-sparse settings at the
                // decoder lengths where their selection leaves blocks out and at the long prefill lengths (one call
                // each), fitted with the prefill fit's other constants held; returns the words for its source.
                // Nothing without a long prefill length or an F32 tiled prefill fit.
                let prefillKey = AttentionCalibration.Key(kv: .f32, kernel: .tiled, mode: .prefill)
                guard !prefillOnly.isEmpty, calibration.fits[prefillKey] != nil else { return "" }
                let jobs = Self.f32Jobs(Self.sparsePrefillSettings, mode: .prefill)
                /// A block-sparse setting's lengths; full prefill's, every length some block-sparse setting has.
                func lengths(_ s: AttentionSettingSpec) -> [Int] {
                    let shortest = (s.blockSparse.map { [$0] } ?? Self.sparsePrefillSettings).map { $0.chunk * $0.topK }
                    return lengthList.filter { $0 > shortest.min() ?? 0 } + prefillOnly
                }
                // Full F32 tiled prefill is measured in the same passes at the same lengths: the median of its times
                // over its fit's (`pace`) says how much faster or slower the machine ran than when that fit was
                // measured, and the block-sparse times are divided by it, so that the rate and the factor compare the
                // two kernels rather than two spells (a partial refit runs in another spell than the prefill fit).
                let reference = (Self.decoderSettings[0], AttentionCostModel.Mode.prefill)
                var model = costs
                model.calibration = calibration
                let timed = try measure(jobs + [reference], shape, { s, _ in lengths(s) }, rounds: rounds)
                let pace = AttentionCalibration.pace(timed[jobs.count].map { length, seconds in
                    (seconds, model.predict(reference.0, shape: shape, mode: .prefill, length: length).seconds)
                })
                let measured = timed.prefix(jobs.count).map { points in points.map { ($0.0, $0.1 / pace) } }
                // The wide tile's time per key at each lane count up to a work item's, one thread, in cache: the
                // share of its cost that runs by whole vectors prices the compacted passes (fitted before the rate,
                // which then covers what the tile alone does not: gathering the lanes, the runs' bounds).
                let width = KernelISA.active.attentionLanes
                let itemLanes = AttentionCostModel.itemLanes(shape)
                let tileTimes = try AttentionTileTiming.measure(itemLanes: itemLanes, headDim: shape.headDim,
                                                                lanes: Array(1...itemLanes)).map {
                    AttentionCalibration.SparsePrefill.TileTime(lanes: $0.lanes, secondsPerKey: $0.secondsPerKey)
                }
                let share = AttentionCalibration.SparsePrefill.fitVectorShare(tileTimes, width: width)
                func predicted(_ rate: Double, _ factor: Double, _ s: AttentionSettingSpec, _ length: Int) -> Double {
                    model.calibration?.sparsePrefill = .init(rate: rate, spill: factor, vectorShare: share, points: [])
                    return model.predict(s, shape: shape, mode: .prefill, length: length).seconds
                }
                let points = zip(Self.sparsePrefillSettings, zip(jobs, measured)).flatMap { b, job in
                    job.1.map { length, seconds in
                        let a = predicted(0, 0, job.0.0, length)
                        return (setting: b, length: length, a: a, b: predicted(1, 0, job.0.0, length) - a,
                                c: predicted(0, 1, job.0.0, length) - a, measured: seconds)
                    }
                }
                guard let (rate, factor) = AttentionCalibration.SparsePrefill.fitRateAndSpill(points.map {
                    (a: $0.a, b: $0.b, c: $0.c, measured: $0.measured)
                }) else { return "" }
                func fitted(_ p: (a: Double, b: Double, c: Double)) -> Double { p.a + rate * p.b + factor * p.c }
                calibration.sparsePrefill = .init(rate: rate, spill: factor, vectorShare: share,
                                                  tileTimes: tileTimes, points: points.map { p in
                    .init(chunk: p.setting.chunk, topK: p.setting.topK, length: p.length, measuredSeconds: p.measured,
                          predictedSeconds: fitted((p.a, p.b, p.c)))
                })
                let worst = points.map { abs(fitted(($0.a, $0.b, $0.c)) / $0.measured - 1) }.max() ?? 0
                let prefillSpill = calibration.fits[prefillKey]?.spill ?? 0
                let measuredAt = zip(Self.sparsePrefillSettings, jobs).map { b, job -> String in
                    let at = lengths(job.0).map(String.init).joined(separator: ", ")
                    return "\(b.chunk)/\(b.topK) at \(at)"
                }.joined(separator: "; ")
                let shareText = share.map {
                    String(format: "the wide tile's cost %.2f by whole vectors of %d lanes and %.2f lane by lane "
                           + "(timed at 1 to %d lanes, one thread)", $0, width, 1 - $0, itemLanes)
                } ?? "the wide tile priced by whole vectors (its times at 1 to \(itemLanes) lanes told no share)"
                print(String(format: "block-sparse prefill: rate ×%.3f, beyond-cache factor ×%.3f (full prefill's "
                             + "×%.3f; %@ tokens; worst point %.1f%%; full prefill measured beside them at ×%.3f of "
                             + "its fit's time); %@", rate, factor, prefillSpill, measuredAt, worst * 100, pace,
                             shareText))
                return Self.sparsePrefillMarker + " (F32, \(measuredAt) tokens, the long ones one call each, median "
                    + String(format: "of %d passes): %@; rate ×%.3f on the passes over blocks some lanes chose, "
                             + "beyond-cache factor ×%.3f in place of the prefill fit's ×%.3f (times divided by "
                             + "×%.3f, full F32 prefill measured in the same passes over its fit)", rounds, shareText,
                             rate, factor, prefillSpill, pace)
            }
            let coldList = coldLengths.isEmpty ? []
                : try BenchAttentionCommand.positiveList(coldLengths, option: "--cold-lengths")
            func fitColdDecode(_ calibration: inout AttentionCalibration) throws -> String {
                // Each decode key's cold-sweep factor: decode measured with the layer's K/V flushed from the caches
                // before each call, as a model's decode finds them, fitted with the key's other constants held
                // (its points' sweep all priced from memory); returns the words for its source. Warm F32 decode is
                // measured at the same lengths in the same passes: the cold times are divided by its pace (its
                // measured over its fit's time), so that a factor prices the sweep from memory rather than the
                // difference between this spell and the one the warm fits were measured in.
                guard !coldList.isEmpty else { return "" }
                let jobs = Self.decoderSettings.map { ($0, AttentionCostModel.Mode.decode) }
                let sparseJobs = calibration.sparseDecode == nil ? [] : Self.f32Jobs(Self.sparseColdSettings,
                                                                                     mode: .decode)
                let reference = (Self.decoderSettings[0], AttentionCostModel.Mode.decode)
                let all = jobs + sparseJobs + [reference]
                let timed = try measure(all, shape, { _, _ in coldList }, rounds: rounds, cold: { $0 < all.count - 1 })
                var warm = costs
                warm.calibration = calibration
                let pace = AttentionCalibration.pace(timed[all.count - 1].map { length, seconds in
                    (seconds, warm.predict(reference.0, shape: shape, mode: .decode, length: length).seconds)
                })
                let measured = timed.dropLast().map { points in points.map { ($0.0, $0.1 / pace) } }
                print(String(format: "warm F32 decode measured beside the cold points at ×%.3f of its fit's time; "
                             + "the cold times are divided by it", pace))
                var cold = costs
                cold.decodeKVFromMemory = true
                var factors: [String] = []
                for (j, (s, mode)) in jobs.enumerated() {
                    let key = AttentionCalibration.Key(s, mode: mode)
                    guard var fit = calibration.fits[key] else { continue }
                    let points: [AttentionCalibration.Point] = measured[j].map { length, seconds in
                        .init(length: length, rows: 1,
                              modelSeconds: costs.predict(s, shape: shape, mode: mode, length: length).seconds,
                              spillSeconds: cold.spillSeconds(s, shape: shape, mode: mode, length: length,
                                                              cacheBytes: calibration.cacheBytes ?? 1),
                              nearSeconds: calibration.privateCacheBytes.map {
                                  costs.nearSeconds(s, shape: shape, mode: mode, length: length, privateCacheBytes: $0)
                              } ?? 0,
                              measuredSeconds: seconds)
                    }
                    fit.coldSpill = fit.fittingColdSpill(points)
                    fit.coldPoints = points
                    calibration.fits[key] = fit
                    guard let factor = fit.coldSpill else { continue }
                    let worst = points.map {
                        abs(fit.seconds(roofline: $0.modelSeconds, rows: 1, spill: $0.spillSeconds,
                                        near: $0.nearSeconds, cold: true) / $0.measuredSeconds - 1)
                    }.max() ?? 0
                    print((s.name + " cold decode").padding(toLength: 26, withPad: " ", startingAt: 0)
                          + String(format: " cold spill ×%.3f (warm ×%.3f)  worst point %5.1f%%", factor, fit.spill,
                                   worst * 100))
                    factors.append(String(format: "%@ ×%.3f", s.name, factor))
                }
                // Block-sparse decode's own factor: its pass head by head reads from memory unlike full decode's
                // slot by slot; fitted with its other constants and the full decode fit held.
                if !sparseJobs.isEmpty {
                    var model = cold
                    model.calibration = calibration
                    func predicted(_ factor: Double, _ s: AttentionSettingSpec, _ length: Int) -> Double {
                        model.calibration?.sparseDecode?.coldSpill = factor
                        return model.predict(s, shape: shape, mode: .decode, length: length).seconds
                    }
                    let points = zip(sparseJobs, measured[jobs.count...]).flatMap { job, measured in
                        measured.map { length, seconds in
                            let a = predicted(0, job.0, length)
                            return (a: a, b: predicted(1, job.0, length) - a, measured: seconds)
                        }
                    }
                    if let factor = AttentionCalibration.SparseDecode.linearFactor(points) {
                        calibration.sparseDecode?.coldSpill = factor
                        let worst = points.map { abs(($0.a + factor * $0.b) / $0.measured - 1) }.max() ?? 0
                        print("block-sparse cold decode".padding(toLength: 26, withPad: " ", startingAt: 0)
                              + String(format: " cold spill ×%.3f  worst point %5.1f%%", factor, worst * 100))
                        factors.append(String(format: "block-sparse (%@, F32) ×%.3f",
                                              Self.label(Self.sparseColdSettings), factor))
                    }
                }
                return "\(Self.coldMarker) (the layer's K/V flushed from the caches before each call, every KV "
                    + "format tiled and F32 materialised at \(coldList.map(String.init).joined(separator: ", ")) "
                    + "tokens, median of \(rounds) passes; times divided by "
                    + String(format: "×%.3f, warm F32 decode measured in the same passes over its fit", pace)
                    + "): cold-sweep factors " + factors.joined(separator: ", ")
            }
            /// A part measured on its own for an existing file: its words, with when and under what load.
            func separately(_ text: String) -> String {
                let load = Self.loadText(loadBefore, HostInfo.loadAverage())
                return text + " (measured separately on \(UTCTimestamp.string(started)), 1-minute load average "
                    + "\(load[0]) before and \(load[1]) after)"
            }
            if coldDecodeOnly {
                var existing = try loadExisting()
                guard !coldList.isEmpty else {
                    throw ValidationError("--cold-decode-only: --cold-lengths is empty; \(outputPath) is left as "
                                          + "it was")
                }
                let text = try fitColdDecode(&existing)
                existing.source = Self.replacingPart(existing.source, marker: Self.coldMarker, with: separately(text))
                try Self.write(existing, to: outputPath)
                return
            }
            if blockSparsePrefillOnly {
                var existing = try loadExisting()
                let text = try fitSparsePrefill(&existing)
                guard !text.isEmpty else {
                    throw ValidationError("--block-sparse-prefill-only: nothing to fit: it needs --prefill-lengths "
                                          + "(long prefill, where the K/V go beyond the cache) and an f32 tiled "
                                          + "prefill fit in \(outputPath); \(outputPath) is left as it was")
                }
                existing.source = Self.replacingPart(existing.source, marker: Self.sparsePrefillMarker,
                                                     with: separately(text))
                try Self.write(existing, to: outputPath)
                return
            }
            if blockSparseOnly {
                // Keep the fits in the file; measure and fit block-sparse decode's constants, then block-sparse
                // prefill's rate and beyond-cache factor, against them.
                var existing = try loadExisting()
                guard existing.fits[.init(kv: .f32, kernel: .tiled, mode: .decode)] != nil else {
                    throw ValidationError("\(outputPath): no f32 tiled decode fit to fit block-sparse decode against "
                                          + "(run calibrate-attention without --block-sparse-only first)")
                }
                let previous = existing.sparseDecode
                let text = try fitSparseDecode(&existing)
                guard existing.sparseDecode != nil else {
                    let shortest = Self.sparseDecodeSettings.map { $0.chunk * $0.topK }.min() ?? 0
                    throw ValidationError("--block-sparse-only: no block-sparse decode point to fit: --lengths and "
                                          + "--decode-lengths need a length above \(shortest) tokens (and at most "
                                          + "\(Self.sparseDecodeMaxLength)), where the selection leaves blocks out; "
                                          + "\(outputPath) is left as it was"
                                          + (previous == nil ? "" : " (its block-sparse decode constants kept)"))
                }
                existing.source = Self.replacingPart(existing.source, marker: Self.sparseMarker, with: separately(text))
                let prefillText = try fitSparsePrefill(&existing)
                if !prefillText.isEmpty {
                    existing.source = Self.replacingPart(existing.source, marker: Self.sparsePrefillMarker,
                                                         with: separately(prefillText))
                }
                try Self.write(existing, to: outputPath)
                return
            }
            if decodeRefitOnly {
                // Keep the prefill and encode fits (prefill's borrowed beyond-cache factor with them: its work items
                // still sweep one KV head's rows at a stride) and the cache shares; measure and fit every decode key,
                // then block-sparse decode's constants against them.
                var existing = try loadExisting()
                let jobs = Self.decoderSettings.map { ($0, AttentionCostModel.Mode.decode) }
                let measured = try measure(jobs, shape, { _, _ in lengthList + decodeOnly }, rounds: rounds)
                let refitted = try fitAll(jobs, shape, measured, cacheBytes: existing.cacheBytes,
                                          privateCacheBytes: existing.privateCacheBytes).fits
                let date = UTCTimestamp.string(started)
                for (key, fit) in existing.fits where key.mode != .decode {
                    if let from = fit.spillFrom, from.hasSuffix(" decode") {
                        existing.fits[key]?.spillFrom = from + " as fitted before the decode refit of \(date)"
                    }
                }
                existing.fits.merge(refitted) { $1 }
                report(jobs, existing.fits)
                let sparseText = try fitSparseDecode(&existing)
                let coldText = try fitColdDecode(&existing)
                existing.source = Self.replacingPart(existing.source, marker: Self.sparseMarker, with: "")
                existing.source = Self.replacingPart(existing.source, marker: Self.coldMarker, with: "")
                let load = Self.loadText(loadBefore, HostInfo.loadAverage())
                existing.source = Self.replacingPart(existing.source, marker: Self.decodeMarker, with:
                    Self.decodeMarker + " on \(date) (every KV format tiled and F32 materialised at "
                    + "\((lengthList + decodeOnly).map(String.init).joined(separator: ", ")) tokens; "
                    + "median of \(rounds) passes; prefill and encode fits and the cache shares kept; 1-minute load "
                    + "average \(load[0]) before and \(load[1]) after)" + sparseText + coldText)
                try Self.write(existing, to: outputPath)
                return
            }
            if encodeOnly {
                // Keep every decoder fit, the cache shares they were chosen with and the block-sparse constants;
                // measure and fit the ViT encode points of both kernels against those shares.
                guard !patchList.isEmpty else {
                    throw ValidationError("--encode-only: no encode points: it needs --vit-model and --patches; "
                                          + "\(outputPath) is left as it was")
                }
                let existing = try loadExisting()
                let (vm, vitJobs, fits, pace) = try refitEncode(AttentionKernel.allCases, against: existing,
                                                                paced: true)
                print(String(format: "encode times divided by ×%.3f: F32 tiled prefill measured in the same passes "
                             + "over its fit", pace))
                try writeRefit(existing, merging: fits, reported: vitJobs, marker: Self.encodeMarker) { load in
                    " on \(UTCTimestamp.string(started)) (one \(vm.name) ViT layer, both "
                    + "kernels, at \(patchList.map(String.init).joined(separator: ", ")) patches, median of "
                    + "≥ \(encodeRepetitions) calls, median of \(rounds) passes; "
                    + String(format: "times divided by ×%.3f, F32 tiled prefill at ", pace)
                    + "\(lengthList.map(String.init).joined(separator: ", ")) tokens measured in the same passes "
                    + "over its fit; the decoder fits, cache shares and "
                    + "block-sparse constants kept; 1-minute load average \(load[0]) before and \(load[1]) after)"
                }
                return
            }
            if materialisedOnly {
                // Keep the other fits, the cache shares they were chosen with and the block-sparse constants;
                // measure and fit the materialised kernel's keys against those shares.
                let existing = try loadExisting()
                let jobs = Self.decoderSettings.filter { $0.kernel == .materialised }.flatMap { s in
                    [AttentionCostModel.Mode.prefill, .decode].map { (s, $0) }
                }
                let measured = try measure(jobs, shape, decoderPoints, rounds: rounds)
                var refitted = try fitAll(jobs, shape, measured, cacheBytes: existing.cacheBytes,
                                          privateCacheBytes: existing.privateCacheBytes).fits
                var reported = jobs
                var vitText = ""
                if !patchList.isEmpty {
                    let (vm, vitJobs, fits, _) = try refitEncode([.materialised], against: existing)
                    refitted.merge(fits) { $1 }
                    reported += vitJobs
                    vitText = ", ViT encode on one \(vm.name) layer at "
                        + "\(patchList.map(String.init).joined(separator: ", ")) patches"
                }
                try writeRefit(existing, merging: refitted, reported: reported,
                               marker: Self.materialisedMarker) { load in
                    " on \(UTCTimestamp.string(started)) (F32 prefill at "
                    + "\(lengthList.map(String.init).joined(separator: ", ")) tokens"
                    + (decodeOnly.isEmpty ? ""
                        : ", decode also at \(decodeOnly.map(String.init).joined(separator: ", "))")
                    + "\(vitText); median of \(rounds) passes; the other fits and the cache "
                    + "shares kept; 1-minute load average \(load[0]) before and \(load[1]) after)"
                }
                return
            }
            let decoderJobs = Self.decoderSettings.flatMap { s in
                [AttentionCostModel.Mode.prefill, .decode].map { (s, $0) }
            }
            let decoderMeasured = try measure(decoderJobs, shape, decoderPoints, rounds: rounds)
            // The cache share: the candidate (a fraction of the last-level cache, or none) whose fits leave the
            // smallest squared error over all decoder points.
            let llc = HostInfo.lastLevelCacheBytes()
            var candidates: [Int?] = [nil]
            if let llc { candidates += Self.cacheFractions.map { Int(Double(llc) * $0) } }
            var best: (cache: Int?, error: Double)?
            for cache in candidates {
                let result = try fitAll(decoderJobs, shape, decoderMeasured, cacheBytes: cache)
                if best == nil || result.error < best!.error { best = (cache, result.error) }
            }
            calibration.cacheBytes = best?.cache
            var vitText = "", sparseText = "", coldText = ""
            var vitStage: (jobs: [(AttentionSettingSpec, AttentionCostModel.Mode)], shape: AttentionLayerShape,
                           measured: [[(Int, Double)]])?
            if !patchList.isEmpty {
                let (vm, vitShape) = try vitLayer()
                let vitJobs = AttentionKernel.allCases.map {
                    (AttentionSettingSpec(name: "vit \($0.rawValue)", kv: .f32, kernel: $0), AttentionCostModel.Mode.encode)
                }
                vitStage = (vitJobs, vitShape, try measure(vitJobs, vitShape, { _, _ in patchList }, rounds: rounds))
                vitText = "; encode points on one \(vm.name) ViT layer (\(vitShape.heads) heads, head_dim \(vitShape.headDim)) at "
                    + "\(patchList.map(String.init).joined(separator: ", ")) patches, median of ≥ \(encodeRepetitions) calls, "
                    + "median of \(rounds) passes"
            }
            // The private-cache share: the candidate (a fraction of the core's L2, or none) whose fits leave the
            // smallest squared error over all points, decoder and ViT (only the materialised kernel's prefill and
            // encode points depend on it).
            let l2 = HostInfo.cacheBytes(level: 2)
            var privateCandidates: [Int?] = [nil]
            if let l2 { privateCandidates += Self.privateCacheFractions.map { Int(Double(l2) * $0) } }
            var chosen: (bytes: Int?, fits: [AttentionCalibration.Key: AttentionCalibration.Fit], error: Double)?
            for candidate in privateCandidates {
                var result = try fitAll(decoderJobs, shape, decoderMeasured, cacheBytes: calibration.cacheBytes,
                                        privateCacheBytes: candidate)
                if let vit = vitStage {
                    let vitResult = try fitAll(vit.jobs, vit.shape, vit.measured, cacheBytes: calibration.cacheBytes,
                                               privateCacheBytes: candidate)
                    result.fits.merge(vitResult.fits) { $1 }
                    result.error += vitResult.error
                }
                if chosen == nil || result.error < chosen!.error { chosen = (candidate, result.fits, result.error) }
            }
            if let chosen {
                calibration.privateCacheBytes = chosen.bytes
                // Keys whose points all fit in the cache (prefill) take the beyond-cache factor measured on others.
                calibration.fits.merge(AttentionCalibration.borrowingSpill(chosen.fits)) { $1 }
                report(decoderJobs + (vitStage?.jobs ?? []), calibration.fits)
                sparseText = try fitSparseDecode(&calibration) + (try fitSparsePrefill(&calibration))
                coldText = try fitColdDecode(&calibration)
                print("cache: " + (calibration.cacheBytes.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "none")
                      + (llc.map { String(format: " of a %.1f MiB last-level cache", Double($0) / 1_048_576) } ?? "")
                      + "; private cache: "
                      + (chosen.bytes.map { String(format: "%.2f MiB", Double($0) / 1_048_576) } ?? "none")
                      + (l2.map { String(format: " of a %.2f MiB L2", Double($0) / 1_048_576) } ?? "")
                      + String(format: " (squared relative error %.4f over all points)", chosen.error))
            }
            let date = UTCTimestamp.string(started)
            let load = Self.loadText(loadBefore, HostInfo.loadAverage())
            calibration.source = "measured: autoglm-run calibrate-attention on \(host?.cpuModel ?? "this host") "
                + "(\(host?.cores ?? n) processors, \(KernelISA.active.rawValue) kernels), \(date), \(n) threads, "
                + "median of ≥ \(repetitions) calls "
                + "and ≥ \(minTime) s per point, median of \(rounds) passes over the decoder points in shuffled orders, "
                + "1-minute load average \(load[0]) before and \(load[1]) after; against the roofline of "
                + "\(profile.id); prefill and decode points on one \(manifest.name) layer (\(shape.heads) heads, "
                + "\(shape.kvHeads) KV heads, head_dim \(shape.headDim)) at "
                + "\(lengthList.map(String.init).joined(separator: ", ")) tokens"
                + (decodeOnly.isEmpty ? "" : ", decode also at \(decodeOnly.map(String.init).joined(separator: ", "))")
                + (prefillOnly.isEmpty ? "" : ", F32 tiled prefill also at "
                    + "\(prefillOnly.map(String.init).joined(separator: ", ")) (one call each)")
                + vitText + sparseText + coldText
            try Self.write(calibration, to: outputPath)
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data("calibrate-attention: \(error)\n".utf8))
            throw ExitCode.failure
        } catch {
            FileHandle.standardError.write(Data("calibrate-attention: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
