import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

/// A host plan priced with the host's attention time calibration (`PlanRequest.attentionCalibration`).
@Suite("Attention calibration in the search")
struct AttentionCalibrationSearchTests {
    static let calibrationPath = "DeviceProfiles/measurements/host-simd8.attention-calibration.json"

    static func hostRequest(_ calibration: AttentionCalibrationFile?) throws -> PlanRequest {
        var r = PlanRequest(model: try manifest("smollm2-135m"), device: try profile("host-simd8"),
                            workload: try workload("chat"))
        r.attentionCalibration = calibration
        return r
    }

    static func checkedIn() throws -> AttentionCalibrationFile {
        let file = try AttentionCalibrationFile.load(repoPath(calibrationPath))
        return AttentionCalibrationFile(path: calibrationPath, calibration: file.calibration)
    }

    /// A calibration with decoder fits for one KV format and kernel, measured on a layer of `shape`.
    static func synthetic(shape: AttentionLayerShape, kv: KVCacheFormat = .f16,
                          kernel: AttentionKernel = .tiled) -> AttentionCalibrationFile {
        func fit(_ scale: Double) -> AttentionCalibration.Fit {
            .init(fixedSeconds: 5e-6, perRowSeconds: 1e-7, scale: scale, heads: shape.heads, kvHeads: shape.kvHeads,
                  headDim: shape.headDim)
        }
        let fits: [AttentionCalibration.Key: AttentionCalibration.Fit] = [
            .init(kv: kv, kernel: kernel, mode: .prefill): fit(1.5),
            .init(kv: kv, kernel: kernel, mode: .decode): fit(2.5),
        ]
        return AttentionCalibrationFile(path: "synthetic.json", calibration: AttentionCalibration(
            fits: fits, source: "test", kernels: "simd8", cpu: nil))
    }

    @Test func searchPricesEverySettingWithTheEnginesCalibratedTimes() throws {
        let file = try Self.checkedIn()
        let request = try Self.hostRequest(file)
        let space = try SearchSpace(request)
        let d = try #require(request.model.textDecoder)
        let shape = AttentionLayerShape(d)
        #expect(file.applies(to: shape))
        // An independent instance of what the search should use: the host's two cores, the engine's partition and
        // tile width, decode reading K/V from memory.
        var costs = AttentionCostModel(device: request.device, accuracy: AccuracyModel(manifest: request.model),
                                       threads: 2, calibration: file.calibration, tileLanes: 8, busiestWorker: true)
        costs.decodeKVFromMemory = true
        let scenario = space.scenarios[0]
        let globals = space.globals[0]
        #expect(!globals.isEmpty)
        for g in globals {
            let s = try #require(g.decoderAttention).setting
            // Only settings whose prefill and decode the calibration measured are offered.
            for mode in [AttentionCostModel.Mode.prefill, .decode] {
                #expect(file.calibration.fits[.init(kv: s.kv, kernel: s.kernel, mode: mode)] != nil)
            }
            let prefill = costs.predict(s, shape: shape, mode: .prefill, length: scenario.contextTokens)
            let decode = costs.predict(s, shape: shape, mode: .decode, length: scenario.totalTokens)
            #expect(g.decoderAttentionSeconds == prefill.seconds * Double(d.layers))
            #expect(g.kvDecodeSeconds == decode.seconds * Double(d.layers) / request.device.sustainedFactor.value)
        }
        // Without it the same host offers settings the calibration never measured (f16 K/V, materialised), and
        // prices decode attention on the roofline, which reads this host's K/V faster than the engine does.
        let roofline = try SearchSpace(try Self.hostRequest(nil)).globals[0]
        #expect(roofline.contains { $0.kv == .f16 && $0.decoderKernel == .materialised })
        #expect(!globals.contains { $0.kv == .f16 && $0.decoderKernel == .materialised })
        let calibrated = try #require(globals.first { $0.kv == .f16 && $0.decoderKernel == .tiled && $0.window == nil
            && $0.blockSparse == nil })
        let plain = try #require(roofline.first { $0.kv == .f16 && $0.decoderKernel == .tiled && $0.window == nil
            && $0.blockSparse == nil })
        #expect(calibrated.kvDecodeSeconds > 1.2 * plain.kvDecodeSeconds)
    }

    @Test func thePlanNamesTheCalibrationItWasPricedWith() throws {
        let file = Self.synthetic(shape: AttentionLayerShape(heads: 9, kvHeads: 3, headDim: 64))
        let plan = try Planner.plan(try Self.hostRequest(file)).plan
        #expect(plan.attention.timeCalibration == "synthetic.json")
        #expect(plan.attention.kvCacheFormat == .f16 && plan.attention.kernel == .tiled)
        #expect(plan.attention.reason.contains("times corrected by synthetic.json"))
        #expect(plan.attention.reason.contains("not offered, as the calibration did not measure them: f32 tiled"))
        let json = String(decoding: try SpecLoader.encode(plan), as: UTF8.self)
        #expect(json.contains("\"time_calibration\" : \"synthetic.json\""))
        let uncalibrated = try Planner.plan(try Self.hostRequest(nil)).plan
        #expect(uncalibrated.attention.timeCalibration == nil)
        #expect(!String(decoding: try SpecLoader.encode(uncalibrated), as: UTF8.self).contains("time_calibration"))
    }

    @Test func aCalibrationOfAnotherLayerShapeLeavesThePlanOnTheRoofline() throws {
        let file = Self.synthetic(shape: AttentionLayerShape(heads: 32, kvHeads: 2, headDim: 128))
        #expect(!file.applies(to: AttentionLayerShape(heads: 9, kvHeads: 3, headDim: 64)))
        #expect(file.decoderShapes == [AttentionLayerShape(heads: 32, kvHeads: 2, headDim: 128)])
        let calibrated = try Planner.plan(try Self.hostRequest(file)).plan
        let plain = try Planner.plan(try Self.hostRequest(nil)).plan
        #expect(try SpecLoader.encode(calibrated) == SpecLoader.encode(plain))
        // A KV format and kernel measured in one mode only are not enough either.
        let smol = AttentionLayerShape(heads: 9, kvHeads: 3, headDim: 64)
        var prefillOnly = Self.synthetic(shape: smol)
        prefillOnly.calibration.fits.removeValue(forKey: .init(kv: .f16, kernel: .tiled, mode: .decode))
        #expect(!prefillOnly.applies(to: smol) && prefillOnly.decoderShapes == [smol])
        let prefillPlan = try Planner.plan(try Self.hostRequest(prefillOnly)).plan
        #expect(try SpecLoader.encode(prefillPlan) == SpecLoader.encode(plain))
        // Fits of another shape beside the decoder's are left out of the pricing.
        var mixed = Self.synthetic(shape: smol)
        let other = Self.synthetic(shape: AttentionLayerShape(heads: 32, kvHeads: 2, headDim: 128), kv: .int8)
        mixed.calibration.fits.merge(other.calibration.fits) { a, _ in a }
        let kept = try #require(mixed.decoderCalibration(for: smol))
        #expect(Set(kept.fits.keys.map(\.kv)) == [.f16])
    }

    /// Each checked-in calibration that records the roofline it was fitted against names its profile's roofline as
    /// it is now: a profile measured again without calibrate-attention after it fails here.
    @Test func checkedInCalibrationsCorrectTheirProfilesAsTheyAre() throws {
        let dir = repoPath("DeviceProfiles/measurements")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
            .filter { $0.hasSuffix(".attention-calibration.json") }
        #expect(!names.isEmpty)
        var recorded = 0
        for name in names {
            let calibration = try AttentionCalibrationFile.load(dir + "/" + name).calibration
            guard let roofline = calibration.roofline else { continue }
            recorded += 1
            #expect(name == "\(roofline.profile).attention-calibration.json")
            let current = try #require(AttentionCostModel(device: try profile(roofline.profile), threads: 1).roofline)
            #expect(calibration.rooflineMismatch(current) == nil, "\(name)")
        }
        #expect(recorded > 0)
    }

    @Test func aCalibrationOfAProfileMeasuredAgainIsNamed() throws {
        var device = try profile("host-simd8")
        let file = try Self.checkedIn()
        #expect(file.mismatch(device: device) == nil)
        device.memory.bandwidthBytesPerSecond.value *= 1.1
        let why = try #require(file.mismatch(device: device))
        #expect(why.hasPrefix(Self.calibrationPath) && why.contains("make calibrate-attention"), "\(why)")
    }

    @Test func aCalibrationMeasuredOnAnotherMachineKindIsNamed() throws {
        let device = try profile("host-simd8")
        var file = Self.synthetic(shape: AttentionLayerShape(heads: 9, kvHeads: 3, headDim: 64))
        #expect(file.mismatch(device: device) == nil)
        file.calibration.kernels = "avx512"
        let why = try #require(file.mismatch(device: device))
        #expect(why.contains("synthetic.json") && why.contains("avx512 kernels, the profile simd8"))
        #expect(file.calibration.tileLanes == 16)
        // A profile that does not say what it was measured with is not second-guessed.
        var unsaid = device
        unsaid.measuredWith = nil
        #expect(file.mismatch(device: unsaid) == nil)
    }
}
