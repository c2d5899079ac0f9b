import Dispatch
import AutoGLMSpecs
#if arch(x86_64)
import AutoGLMKernelsAVX512
#endif

/// Times the tiled kernel's wide step (one key tile over a set of query lanes) on one thread at each lane count
/// up to a work item's, with every operand in cache: how the step's cost grows with the lanes handed to it, which
/// a block-sparse work item's compacted passes depend on (its score and softmax steps run whole vectors of lanes,
/// its value step runs lane by lane).
public enum AttentionTileTiming {
    /// The wide step's seconds per key over `lanes` lanes.
    public struct Sample: Sendable, Equatable {
        public var lanes: Int
        public var secondsPerKey: Double
    }

    /// Seconds per key of the wide step for each lane count in `lanes` (each at most `itemLanes`, the lane pitch
    /// being `itemLanes` rounded up to 16 as a work item's is), head dim `headDim`, over one key tile of F32 rows:
    /// every lane count once per round in a shuffled order, each repeated for at least `minTime` seconds, the
    /// fastest of `rounds` kept (the step does the same arithmetic every call: a slower round is interference).
    public static func measure(isa: KernelISA = .active, itemLanes: Int, headDim d: Int, lanes: [Int],
                               minTime: Double = 0.01, rounds: Int = 5) throws -> [Sample] {
        let minTime = minTime.isFinite ? max(0, minTime) : 0
        guard itemLanes > 0 else {
            throw AttentionError.invalidParameter(name: "itemLanes", expected: "> 0", got: itemLanes)
        }
        guard d > 0, d % 16 == 0 else {
            throw AttentionError.invalidParameter(name: "headDim", expected: "a positive multiple of 16", got: d)
        }
        if let bad = lanes.first(where: { $0 <= 0 || $0 > itemLanes }) ?? (lanes.isEmpty ? 0 : nil) {
            throw AttentionError.invalidParameter(name: "lanes", expected: "1 ... \(itemLanes)", got: bad)
        }
        guard rounds > 0 else { throw AttentionError.invalidParameter(name: "rounds", expected: "> 0", got: rounds) }
        let pitch = (itemLanes + 15) / 16 * 16, count = Attention.keyTile
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 20001 - 10000) / 100_000
        }
        // Operands: transposed queries of every lane (padding lanes zero), one key tile and its values.
        var qT = [Float](repeating: 0, count: d * pitch)
        for l in 0..<itemLanes { for c in 0..<d { qT[c * pitch + l] = next() } }
        let keys = (0..<(count * d)).map { _ in next() }, values = (0..<(count * d)).map { _ in next() }
        var lo = [Int32](repeating: 0, count: pitch), hi = lo
        var maxes = [Float](repeating: 0, count: pitch), sums = maxes, correction = maxes
        var acc = [Float](repeating: 0, count: pitch * d), scores = [Float](repeating: 0, count: count * pitch)
        var best = [Double](repeating: .infinity, count: lanes.count)
        var generator = SplitMix64(seed: 0x5EED)
        for _ in 0..<rounds {
            for i in Array(lanes.indices).shuffled(using: &generator) {
                let n = lanes[i]
                // Lanes below n see the whole tile; the padding lanes of the last vector see none.
                for l in 0..<pitch { hi[l] = l < n ? Int32(count) : 0 }
                var calls = 0
                let start = DispatchTime.now().uptimeNanoseconds
                var elapsed = 0.0
                repeat {
                    for l in 0..<pitch { maxes[l] = -.infinity; sums[l] = 0 }
                    for _ in 0..<8 {
                        step(isa, qT: qT, pitch: pitch, lanes: n, d: d, keys: keys, values: values, count: count,
                             lo: lo, hi: hi, maxes: &maxes, sums: &sums, acc: &acc, scores: &scores,
                             correction: &correction)
                    }
                    calls += 8
                    elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                } while elapsed < minTime
                best[i] = min(best[i], elapsed / Double(calls * count))
            }
        }
        return zip(lanes, best).map { Sample(lanes: $0, secondsPerKey: $1) }
    }

    private static func step(_ isa: KernelISA, qT: [Float], pitch: Int, lanes: Int, d: Int, keys: [Float],
                             values: [Float], count: Int, lo: [Int32], hi: [Int32], maxes: inout [Float],
                             sums: inout [Float], acc: inout [Float], scores: inout [Float],
                             correction: inout [Float]) {
        #if arch(x86_64)
        if isa == .avx512 {
            AVX512Attention.tile(qT: qT, lanePitch: pitch, lanes: lanes, headDim: d, keys: keys, keyStride: d,
                                 values: values, valueStride: d, count: count, lo: lo, hi: hi, maxes: &maxes,
                                 sums: &sums, acc: &acc, scores: &scores, correction: &correction)
            return
        }
        #endif
        WideTile8.tile(qT: qT, lanePitch: pitch, lanes: lanes, headDim: d, keys: keys, keyStride: d, values: values,
                       valueStride: d, count: count, lo: lo, hi: hi, maxes: &maxes, sums: &sums, acc: &acc,
                       scores: &scores, correction: &correction)
    }
}
