import AutoGLMSpecs
import Foundation
import Testing

@testable import AutoGLMEngine

/// Float32 tensors held in memory, as a `TensorSource`.
final class MemoryTensorSource: TensorSource {
    var tensors: [String: SourceTensor] = [:]
    var order: [String] = []
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    /// Adds a Float32 tensor of `rows` × `columns` (a vector when rows is nil) with uniform values in ±scale,
    /// or `constant` + uniform noise.
    func add(_ name: String, rows: Int?, columns: Int, scale: Float, constant: Float = 0) {
        let count = (rows ?? 1) * columns
        let storage = PackedStorage(byteCount: count * 4)
        let p = storage.pointer.bindMemory(to: Float.self, capacity: count)
        for i in 0..<count { p[i] = constant + (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * scale }
        tensors[name] = SourceTensor(name: name, dimensions: rows.map { [columns, $0] } ?? [columns], format: .f32,
                                     data: UnsafeRawPointer(storage.pointer), byteCount: count * 4, owner: storage)
        order.append(name)
    }

    func sourceTensor(named name: String) throws -> SourceTensor? { tensors[name] }
    var sourceTensorNames: [String] { order }
}

/// A straightforward scalar GLM-4.1V vision forward pass (Double accumulation), independent of the engine's kernels.
enum VisionReference {
    static func matmul(_ x: [Float], _ n: Int, _ w: PackedMatrix, _ bias: [Float]? = nil) -> [Float] {
        let wf = w.dequantize(), rows = w.rows, cols = w.columns
        var y = [Float](repeating: 0, count: n * rows)
        for t in 0..<n {
            for r in 0..<rows {
                var s = 0.0
                for c in 0..<cols { s += Double(x[t * cols + c]) * Double(wf[r * cols + c]) }
                y[t * rows + r] = Float(s) + (bias?[r] ?? 0)
            }
        }
        return y
    }

    static func rms(_ x: [Float], _ d: Int, _ w: [Float]) -> [Float] {
        var y = x
        for t in 0..<(x.count / d) {
            var ss = 0.0
            for i in 0..<d { ss += Double(x[t * d + i]) * Double(x[t * d + i]) }
            let inv = 1 / (ss / Double(d) + 1e-5).squareRoot()
            for i in 0..<d { y[t * d + i] = Float(Double(x[t * d + i]) * inv) * w[i] }
        }
        return y
    }

    static func forward(_ e: GLM4VVisionEncoder, patches: [Float], gh: Int, gw: Int) -> [Float] {
        let c = e.config, d = c.hidden, hd = c.headDim, w = c.width, n = gh * gw, g = c.positionGrid
        var x = matmul(patches, n, e.patchEmbed.weight, e.patchEmbed.bias)
        x = rms(x, d, e.postConvNorm.weight)
        // Merge-window order: token (by, bx), then (dy, dx).
        var pos: [(Int, Int)] = []
        for by in 0..<(gh / c.merge) { for bx in 0..<(gw / c.merge) {
            for dy in 0..<c.merge { for dx in 0..<c.merge { pos.append((by * c.merge + dy, bx * c.merge + dx)) } }
        } }
        for (i, (r, col)) in pos.enumerated() {
            let sy = min(max((Double(r) + 0.5) * Double(g) / Double(gh) - 0.5, 0), Double(g - 1))
            let sx = min(max((Double(col) + 0.5) * Double(g) / Double(gw) - 0.5, 0), Double(g - 1))
            let y0 = Int(sy), x0 = Int(sx), y1 = min(y0 + 1, g - 1), x1 = min(x0 + 1, g - 1)
            let fy = sy - Double(y0), fx = sx - Double(x0)
            for k in 0..<d {
                func t(_ yy: Int, _ xx: Int) -> Double { Double(e.positionTable[(yy * g + xx) * d + k]) }
                let v = (1 - fy) * (1 - fx) * t(y0, x0) + (1 - fy) * fx * t(y0, x1) + fy * (1 - fx) * t(y1, x0)
                    + fy * fx * t(y1, x1)
                x[i * d + k] += Float(v)
            }
        }
        for b in e.blocks {
            let xn = rms(x, d, b.norm1.weight)
            let qkv = matmul(xn, n, b.qkv.weight)
            var q = [Float](repeating: 0, count: n * w), k = q, v = q
            for t in 0..<n { for i in 0..<w {
                q[t * w + i] = qkv[t * 3 * w + i]; k[t * w + i] = qkv[t * 3 * w + w + i]
                v[t * w + i] = qkv[t * 3 * w + 2 * w + i]
            } }
            let half = hd / 2, quarter = hd / 4
            for t in 0..<n { for h in 0..<c.heads { for i in 0..<half {
                let p = Double(i < quarter ? pos[t].0 : pos[t].1)
                let angle = p * Foundation.pow(c.ropeTheta, -Double(i % quarter) / Double(quarter))
                let cs = Foundation.cos(angle), sn = Foundation.sin(angle)
                for arr in [0, 1] {
                    let base = t * w + h * hd
                    let a = Double(arr == 0 ? q[base + i] : k[base + i])
                    let bb = Double(arr == 0 ? q[base + half + i] : k[base + half + i])
                    let ra = Float(a * cs - bb * sn), rb = Float(a * sn + bb * cs)
                    if arr == 0 { q[base + i] = ra; q[base + half + i] = rb } else { k[base + i] = ra; k[base + half + i] = rb }
                }
            } } }
            var attn = [Float](repeating: 0, count: n * w)
            for h in 0..<c.heads { for i in 0..<n {
                var scores = [Double](repeating: 0, count: n)
                for j in 0..<n {
                    var s = 0.0
                    for l in 0..<hd { s += Double(q[i * w + h * hd + l]) * Double(k[j * w + h * hd + l]) }
                    scores[j] = s / Double(hd).squareRoot()
                }
                let m = scores.max()!
                let ex = scores.map { Foundation.exp($0 - m) }
                let z = ex.reduce(0, +)
                for l in 0..<hd {
                    var s = 0.0
                    for j in 0..<n { s += ex[j] / z * Double(v[j * w + h * hd + l]) }
                    attn[i * w + h * hd + l] = Float(s)
                }
            } }
            let o = matmul(attn, n, b.output.weight)
            for i in x.indices { x[i] += o[i] }
            let xn2 = rms(x, d, b.norm2.weight)
            let gate = matmul(xn2, n, b.gate.weight), up = matmul(xn2, n, b.up.weight)
            var act = gate
            for i in act.indices { let gg = Double(gate[i]); act[i] = Float(gg / (1 + Foundation.exp(-gg))) * up[i] }
            let down = matmul(act, n, b.down.weight)
            for i in x.indices { x[i] += down[i] }
        }
        x = rms(x, d, e.postNorm.weight)
        let tokens = n / (c.merge * c.merge), od = c.outputHidden
        var h = matmul(matmul(x, tokens, e.downsample.weight, e.downsample.bias), tokens, e.projection.weight)
        for t in 0..<tokens {
            let row = h[(t * od)..<((t + 1) * od)].map(Double.init)
            let mean = row.reduce(0, +) / Double(od)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(od)
            for i in 0..<od {
                let y = (row[i] - mean) / (variance + 1e-5).squareRoot() * Double(e.mergerNormWeight[i])
                    + Double(e.mergerNormBias[i])
                h[t * od + i] = Float(0.5 * y * (1 + tanh(0.7978845608028654 * (y + 0.044715 * y * y * y))))
            }
        }
        let gate = matmul(h, tokens, e.mergerGate.weight), up = matmul(h, tokens, e.mergerUp.weight)
        var act = gate
        for i in act.indices { let gg = Double(gate[i]); act[i] = Float(gg / (1 + Foundation.exp(-gg))) * up[i] }
        return matmul(act, tokens, e.mergerDown.weight)
    }
}

struct VisionEncoderTests {
    static let config = VisionConfig(layers: 2, hidden: 32, heads: 2, headDim: 16, mlpHidden: 64, patchSize: 4,
                                     temporalPatch: 2, channels: 3, positionGrid: 3, merge: 2, outputHidden: 32,
                                     mergerFFN: 64)

    /// Random weights under the manifest's tensor names for `config`.
    static func source(_ c: VisionConfig, seed: UInt64) -> MemoryTensorSource {
        let s = MemoryTensorSource(seed: seed)
        let d = c.hidden, std: Float = 0.3
        s.add("v.patch_embd.weight", rows: d, columns: c.patchElements, scale: std)
        s.add("v.patch_embd.bias", rows: nil, columns: d, scale: 0.1)
        s.add("v.position_embd.weight", rows: c.positionGrid * c.positionGrid, columns: d, scale: 0.5)
        for i in 0..<c.layers {
            let p = "v.blk.\(i)."
            s.add(p + "ln1.weight", rows: nil, columns: d, scale: 0.1, constant: 1)
            s.add(p + "attn_qkv.weight", rows: 3 * c.width, columns: d, scale: std)
            s.add(p + "attn_out.weight", rows: d, columns: c.width, scale: std)
            s.add(p + "ln2.weight", rows: nil, columns: d, scale: 0.1, constant: 1)
            s.add(p + "ffn_gate.weight", rows: c.mlpHidden, columns: d, scale: std)
            s.add(p + "ffn_up.weight", rows: c.mlpHidden, columns: d, scale: std)
            s.add(p + "ffn_down.weight", rows: d, columns: c.mlpHidden, scale: std)
        }
        s.add("v.norm0.weight", rows: nil, columns: d, scale: 0.1, constant: 1)
        s.add("v.norm1.weight", rows: nil, columns: d, scale: 0.1, constant: 1)
        let o = c.outputHidden
        s.add("mm.downsample.weight", rows: o, columns: 4 * d, scale: std)
        s.add("mm.downsample.bias", rows: nil, columns: o, scale: 0.1)
        s.add("mm.proj.weight", rows: o, columns: o, scale: std)
        s.add("mm.norm.weight", rows: nil, columns: o, scale: 0.1, constant: 1)
        s.add("mm.norm.bias", rows: nil, columns: o, scale: 0.1)
        s.add("mm.ffn_gate.weight", rows: c.mergerFFN, columns: o, scale: std)
        s.add("mm.ffn_up.weight", rows: c.mergerFFN, columns: o, scale: std)
        s.add("mm.ffn_down.weight", rows: o, columns: c.mergerFFN, scale: std)
        return s
    }

    static func image(height: Int, width: Int, channels: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<(height * width * channels)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1 }
    }

    @Test(arguments: [
        (PackedFormat.f32, AttentionKernel.tiled), (.f32, .materialised), (.q8_0, .tiled), (.int4g32, .tiled),
        (.f16, .materialised),
    ])
    func matchesScalarReference(format: PackedFormat, kernel: AttentionKernel) throws {
        let c = Self.config
        let policy: WeightFormatPolicy = format == .f32 ? .checkpoint : .uniform(format)
        let encoder = try GLM4VVisionEncoder.load(config: c, source: Self.source(c, seed: 7), policy: policy)
        let (h, w) = (16, 24)   // a 4 × 6 patch grid, 6 merged tokens
        let patches = try GLM4VVisionEncoder.patchify(image: Self.image(height: h, width: w, channels: 3, seed: 3),
                                                      height: h, width: w, config: c)
        let pool = ComputePool(threadCount: 2)
        let got = try encoder.encode(patches: patches, gridHeight: 4, gridWidth: 6, kernel: kernel, pool: pool)
        // The reference runs on the same (possibly quantised) weights, dequantised: the tolerance covers only
        // Float32 accumulation order and the fast exp.
        let want = VisionReference.forward(encoder, patches: patches, gh: 4, gw: 6)
        #expect(got.count == 6 * c.outputHidden)
        let scale = want.map { abs($0) }.max() ?? 1
        var worst: Float = 0
        for i in want.indices { worst = max(worst, abs(got[i] - want[i])) }
        #expect(worst <= 2e-4 * max(scale, 1), "max abs error \(worst) at output scale \(scale)")
    }

    @Test func patchifyOrdersPatchesByMergeWindow() throws {
        let c = Self.config
        let (h, w) = (8, 16)   // 2 × 4 patches
        let img = (0..<(h * w * 3)).map(Float.init)
        let p = try GLM4VVisionEncoder.patchify(image: img, height: h, width: w, config: c)
        #expect(p.count == 8 * c.patchElements)
        // Patch 1 is (row 0, column 1) of the first 2×2 window; patch 2 is (row 1, column 0).
        // Element 0 of a patch: channel 0, frame 0, y 0, x 0 → pixel (row·4, column·4), channel 0.
        #expect(p[1 * c.patchElements] == img[(0 * w + 4) * 3])
        #expect(p[2 * c.patchElements] == img[(4 * w + 0) * 3])
        #expect(p[4 * c.patchElements] == img[(0 * w + 8) * 3])   // second window starts at column 2
        // Frames repeat the still image: channel 0 frame 1 equals frame 0.
        #expect(p[16] == p[0])
        // Channel 1 starts after temporal × patch² values.
        #expect(p[32] == img[1])
    }

    @Test func rejectsBadGridsAndSizes() throws {
        let c = Self.config
        let encoder = try GLM4VVisionEncoder.load(config: c, source: Self.source(c, seed: 1))
        #expect(throws: ModelError.self) {
            _ = try encoder.encode(patches: [Float](repeating: 0, count: 9 * c.patchElements), gridHeight: 3,
                                   gridWidth: 3, pool: nil)
        }
        #expect(throws: ModelError.self) {
            _ = try encoder.encode(patches: [1, 2, 3], gridHeight: 2, gridWidth: 2, pool: nil)
        }
        #expect(throws: ModelError.self) {
            _ = try GLM4VVisionEncoder.patchify(image: [0], height: 12, width: 8, config: c)
        }
    }

    @Test func missingTensorIsReported() throws {
        let c = Self.config
        let s = Self.source(c, seed: 1)
        s.tensors["v.blk.1.ffn_up.weight"] = nil
        #expect(throws: ModelError.missingTensor(name: "v.blk.1.ffn_up.weight")) {
            _ = try GLM4VVisionEncoder.load(config: c, source: s)
        }
    }
}
