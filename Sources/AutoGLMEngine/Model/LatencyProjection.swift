import AutoGLMSpecs
import Foundation

/// The work a stage does, for the roofline.
public struct StageWork: Sendable, Equatable {
    public enum Bound: String, Sendable { case compute, bandwidth }
    public var stage: String
    /// FLOPs (compute-bound stages) or bytes moved (bandwidth-bound stages).
    public var work: Double
    public var bound: Bound
    /// Host-measured seconds.
    public var hostSeconds: Double

    public init(stage: String, work: Double, bound: Bound, hostSeconds: Double) {
        self.stage = stage; self.work = work; self.bound = bound; self.hostSeconds = hostSeconds
    }
}

/// A machine's roofline: peak FLOP/s and memory bandwidth, with where the figures came from.
public struct Roofline: Sendable, Equatable {
    public var peakFLOPs: Double
    public var bandwidth: Double
    public var source: String
    public init(peakFLOPs: Double, bandwidth: Double, source: String) {
        self.peakFLOPs = peakFLOPs; self.bandwidth = bandwidth; self.source = source
    }
}

/// Maps host-measured stage times to a device through the calibrated roofline: for each stage, the host's
/// efficiency e = work / (host seconds × host peak) (peak FLOP/s or bandwidth by the stage's bound), and the
/// device's time = work / (device peak × e). Projections, never measurements.
public enum LatencyProjection {
    public static func efficiency(_ s: StageWork, host: Roofline) -> Double {
        let peak = s.bound == .compute ? host.peakFLOPs : host.bandwidth
        guard s.hostSeconds > 0, peak > 0 else { return 0 }
        return s.work / (s.hostSeconds * peak)
    }

    public static func deviceSeconds(_ s: StageWork, host: Roofline, device: Roofline) -> Double {
        let e = efficiency(s, host: host)
        let peak = s.bound == .compute ? device.peakFLOPs : device.bandwidth
        guard e > 0, peak > 0 else { return 0 }
        return s.work / (peak * e)
    }

    /// Work of the GLM-4.1V stages for a run: vision encode and prefill in FLOPs (2 per multiply-add, linear
    /// layers plus attention), decode in bytes per token (every decoder and head weight byte, one embedding row,
    /// the KV cache read) times the decoded tokens.
    public static func stageWork(manifest: ModelManifest, weightBytesByModule: [String: Int], patches: Int,
                                 imageTokens: Int, promptTokens: Int, decodedTokens: Int, kvBytesPerToken: Double,
                                 seconds: [String: Double]) -> [StageWork] {
        var out: [StageWork] = []
        if patches > 0, let v = manifest.visionEncoder {
            let projector = manifest.modules.first { $0.kind == .projector }
            let mergerFLOPs = 2 * Double(projector?.tensors.filter { $0.role == .matrix }
                .reduce(0) { $0 + $1.parameters } ?? 0) * Double(imageTokens)
            out.append(StageWork(stage: "vision-encode",
                                 work: v.linearFLOPs(patches: patches) + v.attentionFLOPs(patches: patches) + mergerFLOPs,
                                 bound: .compute, hostSeconds: seconds["vision-encode"] ?? 0))
        }
        if let d = manifest.textDecoder {
            let n = Double(imageTokens + promptTokens)
            let head = manifest.modules.first { $0.kind == .head }.map { Double($0.parameters) } ?? 0
            // Attention over a causal prefix: Σ_{i<n} (i + 1) context tokens.
            let attention = d.attentionFLOPsPerContextToken * n * (n + 1) / 2
            out.append(StageWork(stage: "prefill",
                                 work: 2 * Double(d.matrixParametersPerLayer * d.layers) * n + attention + 2 * head,
                                 bound: .compute, hostSeconds: seconds["prefill"] ?? 0))
            if decodedTokens > 0 {
                let embeddingRow = Double(weightBytesByModule["embedding"] ?? 0)
                    / Double(max(manifest.embedding?.vocab ?? 1, 1))
                let context = n + Double(decodedTokens) / 2
                let perToken = Double(weightBytesByModule["decoder"] ?? 0) + Double(weightBytesByModule["head"] ?? 0)
                    + embeddingRow + kvBytesPerToken * context
                out.append(StageWork(stage: "decode", work: perToken * Double(decodedTokens), bound: .bandwidth,
                                     hostSeconds: seconds["decode"] ?? 0))
            }
        }
        return out
    }
}
