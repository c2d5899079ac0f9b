import ArgumentParser
import AutoGLMPlanner
import AutoGLMSpecs
import Foundation

/// Exit codes: 0 feasible, 1 infeasible, 2 bad input.
enum ExitStatus {
    static let feasible: Int32 = 0
    static let infeasible: Int32 = 1
    static let badInput: Int32 = 2
}

struct TerminateWith: Error { var code: Int32 }

@main
struct AutoGLMPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoglm-plan",
        abstract: "Plan per-module weight formats and attention settings for a model on a device.",
        discussion: """
        Exit status: 0 when a plan meets every limit, 1 when none does (the binding constraint and the \
        shortfall are printed), 2 for bad input (one line naming the file, the field and what was expected).
        """,
        subcommands: [PlanCommand.self, BenchSearch.self, ProfileHostCommand.self],
        defaultSubcommand: PlanCommand.self
    )

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let end as TerminateWith {
            Foundation.exit(end.code)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let text: String
            switch error {
            case let e as SpecError: text = e.description
            case let e as PlannerError: text = e.description
            default: text = message(for: error)
            }
            let line = text.split(separator: "\n").first.map(String.init) ?? text
            FileHandle.standardError.write(Data(("autoglm-plan: " + line + "\n").utf8))
            Foundation.exit(ExitStatus.badInput)
        }
    }
}

/// Files naming the model, the device and the workload.
struct InputOptions: ParsableArguments {
    @Option(help: "Device profile JSON (DeviceProfiles/…).")
    var device: String

    @Option(help: "Model manifest JSON (Models/…) or a Hugging Face config.json (llama, glm4, chatglm, glm4v).")
    var model: String

    @Option(help: "Workload name from the workloads file.")
    var workload: String = "screenshot-agent"

    @Option(help: "Workloads file.")
    var workloads: String = "Models/workloads.json"

    @Option(name: .customLong("attention-calibration"), help: ArgumentHelp(
        "Attention time calibration (autoglm-run calibrate-attention) to price attention with, or 'none'.",
        discussion: "Default: for a measured host profile, measurements/<id>.attention-calibration.json beside it "
            + "when that file exists. It applies when its decoder fits were measured on the model's decoder layer "
            + "shape; the plan records the file in attention.time_calibration."))
    var attentionCalibration: String?

    func load() throws -> (DeviceProfile, ModelManifest, Workload) {
        let device = try DeviceProfile.load(self.device)
        let model = try ManifestDerivation.load(self.model)
        let catalog = try WorkloadCatalog.load(workloads)
        let workload = try catalog.workload(named: self.workload, file: workloads)
        return (device, model, workload)
    }

    /// The attention time calibration for a plan on `device` (see `--attention-calibration`): a named file must load,
    /// describe the profile's machine and fit the model's decoder; a host profile's own file is taken when it does,
    /// and passed over with a warning (on standard error, with --quiet too) when it does not.
    func calibration(device: DeviceProfile, model: ModelManifest) throws -> AttentionCalibrationFile? {
        let named = attentionCalibration
        if named == "none" { return nil }
        let path: String
        if let named {
            path = named
        } else {
            guard device.kind == .host else { return nil }
            let directory = (self.device as NSString).deletingLastPathComponent
            path = HostProfiles.attentionCalibrationPath(directory: directory.isEmpty ? "." : directory, id: device.id)
            guard FileManager.default.fileExists(atPath: path) else { return nil }
        }
        let file = try AttentionCalibrationFile.load(path)
        var problem = file.mismatch(device: device)
        if problem == nil, let d = model.textDecoder {
            let shape = AttentionLayerShape(d)
            if !file.applies(to: shape) {
                let fitted = file.decoderShapes.map { "\($0.heads)/\($0.kvHeads)/\($0.headDim)" }
                let own = "\(shape.heads)/\(shape.kvHeads)/\(shape.headDim)"
                problem = "\(path): no KV format and kernel has prefill and decode fits for \(model.id)'s decoder "
                    + "layer, \(own) heads / KV heads / head dim (its decoder fits are for layers of "
                    + "\(fitted.joined(separator: ", ")))"
            }
        }
        guard let problem else { return file }
        if named != nil {
            throw SpecError.invalidField(file: path, field: "fits", expected: "a calibration of this device and "
                + "model (or --attention-calibration none)", found: problem)
        }
        FileHandle.standardError.write(Data(("autoglm-plan: warning: attention priced on the roofline, not "
            + "calibrated: " + problem + "\n").utf8))
        return nil
    }
}

/// Limits and pins.
struct LimitOptions: ParsableArguments {
    @Option(name: .customLong("max-accuracy-loss"), help: "Largest relative perplexity increase, e.g. 3% or 0.03.")
    var maxAccuracyLoss: String?

    @Option(name: .customLong("max-ttft"), help: "Largest time to first token, e.g. 5s or 800ms.")
    var maxTTFT: String?

    @Option(name: .customLong("min-decode"), help: "Smallest decode rate in tokens per second.")
    var minDecode: Double?

    @Option(name: .customLong("memory-budget"), help: "Memory cap instead of the device's app budget, e.g. 7GB.")
    var memoryBudget: String?

    @Option(name: .customLong("pin"), help: "Force a format: 'MODULE_GLOB=FORMAT' (fp16, fp32, bf16, any format name).")
    var pins: [String] = []

    @Option(name: .customLong("group-size"), help: "Decoder layers per format group (default: at most 8 groups).")
    var groupSize: Int?

    @Flag(name: .customLong("engine-formats"),
          help: "Offer only formats the project's engine executes (for plans run with autoglm-run --emulate).")
    var engineFormats = false

    func validate() throws {
        if let s = maxAccuracyLoss, Self.fraction(s) == nil {
            throw ValidationError("--max-accuracy-loss '\(s)': expected a percentage like 3% or a fraction like 0.03")
        }
        if let s = maxTTFT, Self.seconds(s) == nil {
            throw ValidationError("--max-ttft '\(s)': expected a positive duration like 5s, 800ms or 5")
        }
        if let r = minDecode, !(r > 0 && r.isFinite) {
            throw ValidationError("--min-decode \(r): expected a positive rate in tokens per second")
        }
        if let s = memoryBudget, Self.bytes(s) == nil {
            throw ValidationError("--memory-budget '\(s)': expected a positive size like 7GB, 6500MB or 7e9")
        }
        if let g = groupSize, g <= 0 { throw ValidationError("--group-size \(g): expected a positive layer count") }
        for pin in pins {
            do { _ = try FormatPin(parsing: pin) } catch { throw ValidationError("\(error)") }
        }
    }

    static func fraction(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces)
        let value = t.hasSuffix("%") ? Double(t.dropLast()).map { $0 / 100 } : Double(t)
        guard let v = value, v >= 0, v.isFinite else { return nil }
        return v
    }

    static func seconds(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces).lowercased()
        let value: Double?
        if t.hasSuffix("ms") { value = Double(t.dropLast(2)).map { $0 / 1000 } }
        else if t.hasSuffix("s") { value = Double(t.dropLast()) }
        else { value = Double(t) }
        guard let v = value, v > 0, v.isFinite else { return nil }
        return v
    }

    static func bytes(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GIB", 1_073_741_824), ("MIB", 1_048_576), ("GB", 1e9), ("MB", 1e6), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count)), v > 0, v.isFinite else { return nil }
            return Int(v * scale)
        }
        guard let v = Double(t), v > 0, v.isFinite else { return nil }
        return Int(v)
    }

    func request(device: DeviceProfile, model: ModelManifest, workload: Workload) throws -> PlanRequest {
        var request = PlanRequest(model: model, device: device, workload: workload,
                    maxAccuracyLoss: maxAccuracyLoss.flatMap(Self.fraction),
                    maxTTFTSeconds: maxTTFT.flatMap(Self.seconds), minDecodeTokensPerSecond: minDecode,
                    memoryBudgetBytes: memoryBudget.flatMap(Self.bytes),
                    pins: try pins.map { try FormatPin(parsing: $0) }, layerGroupSize: groupSize)
        request.engineFormatsOnly = engineFormats
        return request
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Search for the most accurate plan that meets every limit (default).")

    @OptionGroup var input: InputOptions
    @OptionGroup var limits: LimitOptions

    @Option(name: .shortAndLong, help: "Write the plan JSON to this file.")
    var output: String?

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    @Flag(help: "Also print the Pareto frontier (memory × accuracy × latency).")
    var pareto = false

    @Flag(help: "Print the reason for every choice.")
    var explain = false

    @Flag(help: "Print nothing but errors, warnings and the infeasibility line.")
    var quiet = false

    func run() throws {
        let (device, model, workload) = try input.load()
        var request = try limits.request(device: device, model: model, workload: workload)
        request.attentionCalibration = try input.calibration(device: device, model: model)
        let result = try Planner.plan(request, frontier: pareto)
        let plan = result.plan
        if let output {
            do {
                try SpecLoader.encode(plan).write(to: URL(fileURLWithPath: output))
            } catch {
                throw SpecError.unreadable(file: output, reason: "cannot write the plan: \(error.localizedDescription)")
            }
        }
        if !quiet {
            if json {
                if pareto {
                    struct Output: Encodable { var plan: Plan; var frontier: [FrontierPoint] }
                    FileHandle.standardOutput.write(try SpecLoader.encode(Output(plan: plan, frontier: result.frontier)))
                } else {
                    FileHandle.standardOutput.write(try SpecLoader.encode(plan))
                }
            } else {
                print(PlanReport.table(plan, device: device, model: model))
                if explain { print(PlanReport.explanation(plan)) }
                if pareto { print(PlanReport.frontier(result.frontier, budget: request.budgetBytes)) }
            }
        }
        if !plan.feasible {
            FileHandle.standardError.write(Data(("autoglm-plan: infeasible: \(plan.bindingConstraint ?? "?"): " +
                                                 "\(plan.shortfall ?? "")\n").utf8))
            throw TerminateWith(code: ExitStatus.infeasible)
        }
    }
}

struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-search",
        abstract: "Time the full search (all knobs, per-layer-group formats) over N runs; build with -c release.")

    @OptionGroup var input: InputOptions
    @OptionGroup var limits: LimitOptions

    @Option(help: "Timed runs (after one warm-up).")
    var runs: Int = 21

    func validate() throws {
        if runs <= 0 { throw ValidationError("--runs \(runs): expected a positive count") }
    }

    func run() throws {
        let (device, model, workload) = try input.load()
        var request = try limits.request(device: device, model: model, workload: workload)
        request.attentionCalibration = try input.calibration(device: device, model: model)
        _ = try Planner.plan(request)
        var times: [Double] = []
        var space: SearchSpace? = nil
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try Planner.plan(request)
            let end = DispatchTime.now().uptimeNanoseconds
            times.append(Double(end - start) / 1e6)
            _ = result
        }
        space = try SearchSpace(request)
        let s = Statistic(times)
        let items = space?.items.count ?? 0
        let options = space?.items.reduce(0) { $0 + $1.options.count } ?? 0
        let globals = space?.globals.reduce(0) { $0 + $1.count } ?? 0
        print("search: \(model.id) on \(device.id), workload \(workload.id): \(items) items, \(options) item options, " +
              "\(globals) attention/pixel choices")
        print(String(format: "plan time over %d runs: median %.2f ms, min %.2f ms, max %.2f ms, stddev %.2f ms",
                     s.samples, s.median, s.min, s.max, s.stddev))
    }
}
