import Foundation
import AutoGLMSpecs

/// Latency cost model: a roofline per stage and compute unit.
///
/// - Encode and prefill: `FLOPs / (peak(format) · η_matmul)` for the linear layers (2 · parameters · tokens) and
///   `FLOPs / (peak(f16) · η_attention)` for attention, bounded below by the bytes the stage must move over
///   `bandwidth · η_matvec` (weights once, materialised score matrices written and read back).
/// - Decode: per token, `max(bytes read / (bandwidth · η_matvec), FLOPs / (peak · η_matmul))` per module (η_matvec
///   the format's own where the profile measured one, `DeviceProfile.matvecBandwidthByFormat`), plus a fixed cost
///   per matrix × vector call where the profile measured one (`matvecCallSecondsByFormat`), plus the KV cache read;
///   decode rates are multiplied by the profile's sustained factor (phones throttle over a generation).
/// - A unit with `count > 1` runs tensor-parallel: compute and bandwidth scale with the count and every layer pays two
///   all-reduces of `hidden · 2` bytes per token over the interconnect (plus its latency).
/// Efficiency factors come from the profile (`DeviceProfile.efficiency`) and can be replaced by measured ones.
public struct LatencyModel: Sendable {
    public var device: DeviceProfile

    public init(device: DeviceProfile) { self.device = device }

    public var etaMatvec: Double { device.efficiency[.matvecBandwidth]?.value ?? 1 }
    /// The matrix × vector efficiency of one weight format: its own measured figure, else the profile's.
    public func etaMatvec(_ format: WeightFormat) -> Double {
        device.matvecBandwidthByFormat[format]?.value ?? etaMatvec
    }
    public var etaMatmul: Double { device.efficiency[.matmulCompute]?.value ?? 1 }
    public var etaAttention: Double { device.efficiency[.attentionCompute]?.value ?? 1 }
    public var sustained: Double { device.sustainedFactor.value }

    /// Memory bandwidth seen by a unit (its own memory, else system memory), all `count` units together.
    public func bandwidth(_ unit: DeviceProfile.ComputeUnit) -> Double {
        (unit.bandwidthBytesPerSecond?.value ?? device.memory.bandwidthBytesPerSecond.value) * Double(unit.count)
    }

    /// Peak throughput of a unit for a format, all `count` units together.
    public func peak(_ unit: DeviceProfile.ComputeUnit, _ format: WeightFormat) -> Double {
        (unit.peakOps(for: format) ?? 0) * Double(unit.count)
    }

    /// The unit that executes a format fastest (the format must be in the unit's `formats`).
    public func unit(for format: WeightFormat) -> DeviceProfile.ComputeUnit? {
        device.computeUnits.filter { $0.formats.contains(format) && ($0.peakOps(for: format) ?? 0) > 0 }
            .max { peak($0, format) < peak($1, format) }
    }

    /// The unit attention runs on: the fastest at 16-bit float, else at 32-bit, else the fastest at anything.
    public var attentionUnit: DeviceProfile.ComputeUnit? {
        let f16 = device.computeUnits.filter { $0.peakOpsPerSecond[.f16] != nil }
        if let best = f16.max(by: { peak($0, .f16) < peak($1, .f16) }) { return best }
        let f32 = device.computeUnits.filter { $0.peakOpsPerSecond[.f32] != nil }
        if let best = f32.max(by: { peak($0, .f32) < peak($1, .f32) }) { return best }
        return device.computeUnits.max { attentionPeak($0) < attentionPeak($1) }
    }

    /// A unit's attention throughput: its 16-bit figure, else 32-bit, else its highest published figure.
    func attentionPeak(_ unit: DeviceProfile.ComputeUnit) -> Double {
        let p = unit.peakOpsPerSecond
        return (p[.f16]?.value ?? p[.f32]?.value ?? p.values.map(\.value).max() ?? 0) * Double(unit.count)
    }

    /// Seconds for a matrix stage: `flops` on `unit` at `format`, moving at least `bytes`.
    public func matmulSeconds(flops: Double, bytes: Double, unit: DeviceProfile.ComputeUnit, format: WeightFormat) -> Double {
        let compute = flops / (peak(unit, format) * etaMatmul)
        let memory = bytes / (bandwidth(unit) * etaMatvec)
        return max(compute, memory)
    }

    /// Seconds per decoded token for a module: weights streamed once at the format's matrix × vector efficiency,
    /// 2 FLOPs per parameter, plus the profile's fixed cost per matrix × vector call for each of the `calls` the
    /// module makes per token (`DeviceProfile.matvecCallSecondsByFormat`; none where the profile has no figure).
    public func decodeSeconds(weightBytes: Double, parameters: Double, unit: DeviceProfile.ComputeUnit,
                              format: WeightFormat, calls: Int = 0) -> Double {
        let memory = weightBytes / (bandwidth(unit) * etaMatvec(format) * sustained)
        let compute = 2 * parameters / (peak(unit, format) * etaMatmul * sustained)
        return max(memory, compute) + Double(calls) * matvecCallSeconds(format) / sustained
    }

    /// The fixed seconds of one matrix × vector call in a format (0 where the profile has no figure).
    public func matvecCallSeconds(_ format: WeightFormat) -> Double {
        device.matvecCallSecondsByFormat[format]?.value ?? 0
    }

    /// Matrix × vector calls per token of one decoder layer as the engine decodes it: Q, K and V as one call, the
    /// output projection, gate and up as one call, down.
    public static let decodeCallsPerDecoderLayer = 4

    /// Seconds of attention: `flops` at 16-bit on the attention unit, bounded below by `bytes` of traffic.
    public func attentionSeconds(flops: Double, bytes: Double) -> Double {
        guard let unit = attentionUnit else { return .infinity }
        let compute = flops / (attentionPeak(unit) * etaAttention)
        let memory = bytes / (bandwidth(unit) * etaMatvec)
        return max(compute, memory)
    }

    /// Tensor-parallel degree: the count of the unit running the decoder, when an interconnect links the units.
    public func tensorParallel(_ unit: DeviceProfile.ComputeUnit) -> Int {
        unit.count > 1 && device.interconnect != nil ? unit.count : 1
    }

    /// All-reduce seconds for `tokens` tokens through `layers` layers: 2 all-reduces of `hidden · 2` bytes per layer per
    /// token over the interconnect, plus its latency per all-reduce.
    public func allReduceSeconds(layers: Int, hidden: Int, tokens: Int, parallel: Int) -> Double {
        guard parallel > 1, let link = device.interconnect else { return 0 }
        // A ring all-reduce moves 2 · (n − 1) / n of the buffer over each link.
        let volume = Double(2 * layers) * Double(hidden * 2) * Double(tokens) * 2 * Double(parallel - 1) / Double(parallel)
        return volume / link.bandwidthBytesPerSecond.value + Double(2 * layers) * link.latencySeconds.value
    }
}
