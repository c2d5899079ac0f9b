import AutoGLMSpecs
import Foundation

/// Hyperparameters of the GLM-4.1V vision tower and its patch merger.
public struct VisionConfig: Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var headDim: Int
    public var mlpHidden: Int
    public var patchSize: Int
    public var temporalPatch: Int
    public var channels: Int
    public var positionGrid: Int
    /// Patches merged per side into one decoder token (2 → 2×2).
    public var merge: Int
    /// Width of the merged tokens (the decoder's hidden size).
    public var outputHidden: Int
    /// Hidden size of the merger's SwiGLU MLP.
    public var mergerFFN: Int
    public var normEpsilon: Double
    public var ropeTheta: Double

    public init(layers: Int, hidden: Int, heads: Int, headDim: Int, mlpHidden: Int, patchSize: Int,
                temporalPatch: Int, channels: Int, positionGrid: Int, merge: Int, outputHidden: Int, mergerFFN: Int,
                normEpsilon: Double = 1e-5, ropeTheta: Double = 10000) {
        self.layers = layers; self.hidden = hidden; self.heads = heads; self.headDim = headDim
        self.mlpHidden = mlpHidden; self.patchSize = patchSize; self.temporalPatch = temporalPatch
        self.channels = channels; self.positionGrid = positionGrid; self.merge = merge
        self.outputHidden = outputHidden; self.mergerFFN = mergerFFN; self.normEpsilon = normEpsilon
        self.ropeTheta = ropeTheta
    }

    /// The configuration of a manifest's vision encoder and conv-merger projector.
    public init(vision v: VisionEncoderSpec, projector p: ProjectorSpec) throws {
        guard p.style == .convMerger else {
            throw ModelError.invalidHyperparameter(name: "projector.style", expected: "conv_merger",
                                                   got: p.style.rawValue)
        }
        guard p.inputHidden == v.hidden else {
            throw ModelError.invalidHyperparameter(name: "projector.input_hidden",
                                                   expected: "the vision hidden size \(v.hidden)",
                                                   got: "\(p.inputHidden)")
        }
        guard v.mlp == .swiglu, v.norm == .rms, !v.attentionBias, !v.mlpBias, v.patchBias, v.extraNorms == 2 else {
            throw ModelError.invalidHyperparameter(
                name: "vision", expected: "the GLM-4.1V layout (SwiGLU, RMSNorm, no block biases, patch bias, 2 extra norms)",
                got: "mlp \(v.mlp.rawValue), norm \(v.norm.rawValue), attention_bias \(v.attentionBias), "
                    + "mlp_bias \(v.mlpBias), patch_bias \(v.patchBias), extra_norms \(v.extraNorms)")
        }
        self.init(layers: v.layers, hidden: v.hidden, heads: v.heads, headDim: v.headDim, mlpHidden: v.mlpHidden,
                  patchSize: v.patchSize, temporalPatch: v.temporalPatch, channels: v.channels,
                  positionGrid: v.positionGrid, merge: p.merge, outputHidden: p.outputHidden, mergerFFN: p.ffn)
    }

    /// Values in one flattened patch, ordered (channel, frame, y, x) like a Conv3d kernel.
    public var patchElements: Int { channels * temporalPatch * patchSize * patchSize }
    /// Attention width (heads × head dim).
    public var width: Int { heads * headDim }

    public func validate() throws {
        func check(_ ok: Bool, _ name: String, _ expected: String, _ got: Int) throws {
            if !ok { throw ModelError.invalidHyperparameter(name: "vision.\(name)", expected: expected, got: "\(got)") }
        }
        try check(layers > 0, "layers", "a positive count", layers)
        try check(hidden > 0, "hidden", "a positive size", hidden)
        try check(heads > 0, "heads", "a positive count", heads)
        try check(headDim > 0 && headDim % 4 == 0, "head_dim", "a positive multiple of 4 (2-D rotary)", headDim)
        try check(mlpHidden > 0, "mlp_hidden", "a positive size", mlpHidden)
        try check(positionGrid > 0, "position_grid", "a positive side", positionGrid)
        try check(merge > 0, "merge", "a positive factor", merge)
        try check(outputHidden > 0, "output_hidden", "a positive size", outputHidden)
        try check(mergerFFN > 0, "merger ffn", "a positive size", mergerFFN)
    }
}

/// One ViT block: x += attn(rmsnorm(x)); x += swiglu(rmsnorm(x)).
public struct VisionBlock: @unchecked Sendable {
    public let norm1: RMSNorm
    /// Fused projection, rows [q | k | v].
    public let qkv: Linear
    public let output: Linear
    public let norm2: RMSNorm
    public let gate: Linear
    public let up: Linear
    public let down: Linear
}

/// The GLM-4.1V vision encoder and patch merger.
///
/// Forward pass for a grid of `gh × gw` patches (both multiples of `merge`), patches stored in merge-window order
/// (for each merged token in row-major order, its `merge × merge` patches in row-major order), so every merged
/// token's patches are adjacent rows:
/// 1. patch embedding: a matmul of the flattened (channel, frame, y, x) patches with the Conv3d kernel, + bias;
/// 2. RMSNorm; add the learned `positionGrid²` table resampled to the patch grid by **bilinear** interpolation
///    (align-corners off; the reference implementation uses bicubic);
/// 3. `layers` blocks with non-causal attention and 2-D rotary positions: of each head's `headDim` dimensions,
///    rotated as halves (i, i + headDim/2), the first headDim/4 angles follow the patch row and the next headDim/4
///    the patch column, with frequencies θ^(−j/(headDim/4));
/// 4. final RMSNorm; 2×2 merge as a matmul of each window's concatenated features, ordered (dy, dx, channel),
///    + bias;
/// 5. merger: projection, LayerNorm, GELU (tanh form), then SwiGLU gate/up/down.
public final class GLM4VVisionEncoder: @unchecked Sendable {
    public let config: VisionConfig
    public let patchEmbed: Linear
    public let postConvNorm: RMSNorm
    /// (positionGrid², hidden) Float32.
    public let positionTable: [Float]
    public let blocks: [VisionBlock]
    public let postNorm: RMSNorm
    public let downsample: Linear
    public let projection: Linear
    public let mergerNormWeight: [Float]
    public let mergerNormBias: [Float]
    public let mergerGate: Linear
    public let mergerUp: Linear
    public let mergerDown: Linear
    /// Resident weight bytes: "vision" and "projector".
    public let residentBytesByModule: [String: Int]

    init(config: VisionConfig, patchEmbed: Linear, postConvNorm: RMSNorm, positionTable: [Float],
         blocks: [VisionBlock], postNorm: RMSNorm, downsample: Linear, projection: Linear, mergerNormWeight: [Float],
         mergerNormBias: [Float], mergerGate: Linear, mergerUp: Linear, mergerDown: Linear,
         residentBytesByModule: [String: Int]) {
        self.config = config; self.patchEmbed = patchEmbed; self.postConvNorm = postConvNorm
        self.positionTable = positionTable; self.blocks = blocks; self.postNorm = postNorm
        self.downsample = downsample; self.projection = projection; self.mergerNormWeight = mergerNormWeight
        self.mergerNormBias = mergerNormBias; self.mergerGate = mergerGate; self.mergerUp = mergerUp
        self.mergerDown = mergerDown; self.residentBytesByModule = residentBytesByModule
    }

    public var weightBytes: Int { residentBytesByModule.values.reduce(0, +) }

    /// Loads the encoder and merger (tensor names of `VisionEncoderSpec.tensors` and `ProjectorSpec.tensors`).
    public static func load(config c: VisionConfig, source: TensorSource,
                            policy: WeightFormatPolicy = .checkpoint) throws -> GLM4VVisionEncoder {
        try c.validate()
        let w = WeightLoader(source: source, policy: policy)
        var bytes: [String: Int] = [:]
        func matrix(_ name: String, _ rows: Int, _ columns: Int, _ module: String) throws -> PackedMatrix {
            let m = try w.matrix(name, rows: rows, columns: columns, module: module)
            bytes[module, default: 0] += m.byteCount
            return m
        }
        func vector(_ name: String, _ count: Int, _ module: String) throws -> [Float] {
            let v = try w.vector(name, count: count)
            bytes[module, default: 0] += count * 4
            return v
        }
        func norm(_ name: String, _ module: String = "vision") throws -> RMSNorm {
            RMSNorm(weight: try vector(name, c.hidden, module), epsilon: Float(c.normEpsilon))
        }
        let d = c.hidden
        let patchEmbed = Linear(weight: try matrix("v.patch_embd.weight", d, c.patchElements, "vision"),
                                bias: try vector("v.patch_embd.bias", d, "vision"))
        let table = try matrix("v.position_embd.weight", c.positionGrid * c.positionGrid, d, "vision").dequantize()
        var blocks: [VisionBlock] = []
        for i in 0..<c.layers {
            let p = "v.blk.\(i)."
            blocks.append(VisionBlock(
                norm1: try norm(p + "ln1.weight"),
                qkv: Linear(weight: try matrix(p + "attn_qkv.weight", 3 * c.width, d, "vision")),
                output: Linear(weight: try matrix(p + "attn_out.weight", d, c.width, "vision")),
                norm2: try norm(p + "ln2.weight"),
                gate: Linear(weight: try matrix(p + "ffn_gate.weight", c.mlpHidden, d, "vision")),
                up: Linear(weight: try matrix(p + "ffn_up.weight", c.mlpHidden, d, "vision")),
                down: Linear(weight: try matrix(p + "ffn_down.weight", d, c.mlpHidden, "vision"))))
        }
        let o = c.outputHidden, k = c.merge * c.merge
        return GLM4VVisionEncoder(
            config: c, patchEmbed: patchEmbed, postConvNorm: try norm("v.norm0.weight"), positionTable: table,
            blocks: blocks, postNorm: try norm("v.norm1.weight"),
            downsample: Linear(weight: try matrix("mm.downsample.weight", o, d * k, "projector"),
                               bias: try vector("mm.downsample.bias", o, "projector")),
            projection: Linear(weight: try matrix("mm.proj.weight", o, o, "projector")),
            mergerNormWeight: try vector("mm.norm.weight", o, "projector"),
            mergerNormBias: try vector("mm.norm.bias", o, "projector"),
            mergerGate: Linear(weight: try matrix("mm.ffn_gate.weight", c.mergerFFN, o, "projector")),
            mergerUp: Linear(weight: try matrix("mm.ffn_up.weight", c.mergerFFN, o, "projector")),
            mergerDown: Linear(weight: try matrix("mm.ffn_down.weight", o, c.mergerFFN, "projector")),
            residentBytesByModule: bytes)
    }

    /// Row and column of each patch in merge-window order.
    public static func patchPositions(gridHeight gh: Int, gridWidth gw: Int, merge: Int) -> [(row: Int, column: Int)] {
        var out: [(Int, Int)] = []
        out.reserveCapacity(gh * gw)
        for by in 0..<(gh / merge) {
            for bx in 0..<(gw / merge) {
                for dy in 0..<merge { for dx in 0..<merge { out.append((by * merge + dy, bx * merge + dx)) } }
            }
        }
        return out
    }

    /// Flattens an image (height × width × channels, row-major, values already normalised) into patches in
    /// merge-window order; the still image is repeated over the `temporalPatch` frames. Sides must be multiples
    /// of patch × merge.
    public static func patchify(image: [Float], height: Int, width: Int, config c: VisionConfig) throws -> [Float] {
        let step = c.patchSize * c.merge
        guard height > 0, width > 0, height % step == 0, width % step == 0 else {
            throw ModelError.invalidSetting(name: "image size", expected: "positive multiples of \(step)",
                                            got: "\(height)×\(width)")
        }
        guard image.count == height * width * c.channels else {
            throw ModelError.invalidSetting(name: "image", expected: "\(height * width * c.channels) values",
                                            got: "\(image.count)")
        }
        let gh = height / c.patchSize, gw = width / c.patchSize, ps = c.patchSize
        var out = [Float](repeating: 0, count: gh * gw * c.patchElements)
        for (i, pos) in patchPositions(gridHeight: gh, gridWidth: gw, merge: c.merge).enumerated() {
            var j = i * c.patchElements
            for ch in 0..<c.channels {
                for _ in 0..<c.temporalPatch {
                    for y in 0..<ps {
                        for x in 0..<ps {
                            out[j] = image[((pos.row * ps + y) * width + pos.column * ps + x) * c.channels + ch]
                            j += 1
                        }
                    }
                }
            }
        }
        return out
    }

    /// The position table resampled bilinearly to a `gh × gw` grid, rows in merge-window order: (gh·gw, hidden).
    public func interpolatedPositions(gridHeight gh: Int, gridWidth gw: Int) -> [Float] {
        let g = config.positionGrid, d = config.hidden
        var out = [Float](repeating: 0, count: gh * gw * d)
        func source(_ i: Int, _ n: Int) -> (Int, Int, Float) {
            // Pixel-centre mapping (align_corners = false), clamped to the table.
            let s = max(0, min(Double(g - 1), (Double(i) + 0.5) * Double(g) / Double(n) - 0.5))
            let lo = Int(s.rounded(.down)), hi = min(lo + 1, g - 1)
            return (lo, hi, Float(s - Double(lo)))
        }
        for (i, pos) in Self.patchPositions(gridHeight: gh, gridWidth: gw, merge: config.merge).enumerated() {
            let (y0, y1, fy) = source(pos.row, gh), (x0, x1, fx) = source(pos.column, gw)
            let w00 = (1 - fy) * (1 - fx), w01 = (1 - fy) * fx, w10 = fy * (1 - fx), w11 = fy * fx
            for k in 0..<d {
                out[i * d + k] = w00 * positionTable[(y0 * g + x0) * d + k] + w01 * positionTable[(y0 * g + x1) * d + k]
                    + w10 * positionTable[(y1 * g + x0) * d + k] + w11 * positionTable[(y1 * g + x1) * d + k]
            }
        }
        return out
    }

    /// Rotary cos/sin for each patch: (patches, headDim/2) each.
    func rotaryTables(gridHeight gh: Int, gridWidth gw: Int) -> (cos: [Float], sin: [Float]) {
        let half = config.headDim / 2, quarter = half / 2
        let positions = Self.patchPositions(gridHeight: gh, gridWidth: gw, merge: config.merge)
        var cosT = [Float](repeating: 0, count: positions.count * half)
        var sinT = cosT
        for (i, pos) in positions.enumerated() {
            for j in 0..<half {
                let f = Foundation.pow(config.ropeTheta, -Double(j % quarter) / Double(quarter))
                let angle = Double(j < quarter ? pos.row : pos.column) * f
                cosT[i * half + j] = Float(Foundation.cos(angle))
                sinT[i * half + j] = Float(Foundation.sin(angle))
            }
        }
        return (cosT, sinT)
    }

    /// Encodes `patches` (gh·gw rows of `patchElements`, merge-window order) into (gh·gw / merge², outputHidden)
    /// decoder embeddings.
    public func encode(patches: [Float], gridHeight gh: Int, gridWidth gw: Int,
                       kernel: AttentionKernel = .tiled, pool: ComputePool?) throws -> [Float] {
        let c = config, d = c.hidden, width = c.width, k = c.merge * c.merge
        guard gh > 0, gw > 0, gh % c.merge == 0, gw % c.merge == 0 else {
            throw ModelError.invalidSetting(name: "patch grid", expected: "positive multiples of \(c.merge)",
                                            got: "\(gh)×\(gw)")
        }
        let n = gh * gw
        guard patches.count == n * c.patchElements else {
            throw ModelError.invalidSetting(name: "patches", expected: "\(n * c.patchElements) values",
                                            got: "\(patches.count)")
        }
        var x = [Float](repeating: 0, count: n * d)
        var xn = x, proj = x
        var qkv = [Float](repeating: 0, count: n * 3 * width)
        var q = [Float](repeating: 0, count: n * width)
        var kk = q, v = q, attn = q
        var gate = [Float](repeating: 0, count: n * c.mlpHidden)
        var up = gate
        let positions = interpolatedPositions(gridHeight: gh, gridWidth: gw)
        let (cosT, sinT) = rotaryTables(gridHeight: gh, gridWidth: gw)
        let half = c.headDim / 2
        let threads = pool?.threadCount ?? 1
        patches.withUnsafeBufferPointer { p in
            x.withUnsafeMutableBufferPointer { xb in
                patchEmbed(p.baseAddress!, count: n, into: xb.baseAddress!, pool: pool)     // (n, d) = P Wpᵀ + b
                postConvNorm(xb.baseAddress!, count: n, into: xb.baseAddress!)              // x = rmsnorm(x)
                positions.withUnsafeBufferPointer { pos in                                    // x += pos(grid)
                    VectorOps.add(xb.baseAddress!, pos.baseAddress!, into: xb.baseAddress!, count: n * d)
                }
            }
        }
        for block in blocks {
            try x.withUnsafeMutableBufferPointer { xb in
                let xp = xb.baseAddress!
                try xn.withUnsafeMutableBufferPointer { xnb in
                    let xnp = xnb.baseAddress!
                    block.norm1(xp, count: n, into: xnp)                                      // xn = rmsnorm(x)
                    try qkv.withUnsafeMutableBufferPointer { all in
                        block.qkv(xnp, count: n, into: all.baseAddress!, pool: pool)          // (n, 3w)
                        try q.withUnsafeMutableBufferPointer { qb in
                            try kk.withUnsafeMutableBufferPointer { kb in
                                try v.withUnsafeMutableBufferPointer { vb in
                                    for t in 0..<n {                                          // split q | k | v
                                        let row = all.baseAddress! + t * 3 * width
                                        (qb.baseAddress! + t * width).update(from: row, count: width)
                                        (kb.baseAddress! + t * width).update(from: row + width, count: width)
                                        (vb.baseAddress! + t * width).update(from: row + 2 * width, count: width)
                                    }
                                    cosT.withUnsafeBufferPointer { cb in
                                        sinT.withUnsafeBufferPointer { sb in
                                            for t in 0..<n {                                  // 2-D rotary on q, k
                                                let cp = cb.baseAddress! + t * half, sp = sb.baseAddress! + t * half
                                                VectorOps.rope(qb.baseAddress! + t * width, heads: c.heads,
                                                               headDim: c.headDim, rotaryDims: c.headDim, cos: cp,
                                                               sin: sp, style: .neox)
                                                VectorOps.rope(kb.baseAddress! + t * width, heads: c.heads,
                                                               headDim: c.headDim, rotaryDims: c.headDim, cos: cp,
                                                               sin: sp, style: .neox)
                                            }
                                        }
                                    }
                                    try attn.withUnsafeMutableBufferPointer { ab in           // softmax(qkᵀ/√hd) v
                                        try Attention.full(q: qb.baseAddress!, k: kb.baseAddress!, v: vb.baseAddress!,
                                                           n: n, m: n, heads: c.heads, kvHeads: c.heads,
                                                           headDim: c.headDim, out: ab.baseAddress!, kernel: kernel,
                                                           threads: threads, pool: pool)
                                    }
                                }
                            }
                        }
                    }
                    try proj.withUnsafeMutableBufferPointer { pb in
                        attn.withUnsafeBufferPointer { ab in
                            block.output(ab.baseAddress!, count: n, into: pb.baseAddress!, pool: pool) // (n, d)
                        }
                        VectorOps.add(xp, pb.baseAddress!, into: xp, count: n * d)                   // x += attn
                        block.norm2(xp, count: n, into: xnp)                                          // xn = rmsnorm(x)
                        gate.withUnsafeMutableBufferPointer { gb in
                            up.withUnsafeMutableBufferPointer { ub in
                                block.gate(xnp, count: n, into: gb.baseAddress!, pool: pool)        // (n, f)
                                block.up(xnp, count: n, into: ub.baseAddress!, pool: pool)          // (n, f)
                                VectorOps.siluMul(gate: gb.baseAddress!, up: ub.baseAddress!,
                                                  into: gb.baseAddress!, count: n * c.mlpHidden)
                                block.down(gb.baseAddress!, count: n, into: pb.baseAddress!, pool: pool) // (n, d)
                            }
                        }
                        VectorOps.add(xp, pb.baseAddress!, into: xp, count: n * d)                   // x += mlp
                        try Self.checkFinite(xp, count: n * d, stage: "vision block")
                    }
                }
            }
        }
        // Final norm, 2×2 merge, merger.
        let tokens = n / k, o = c.outputHidden
        var merged = [Float](repeating: 0, count: tokens * o)
        var hidden = merged
        var mg = [Float](repeating: 0, count: tokens * c.mergerFFN)
        var mu = mg
        x.withUnsafeMutableBufferPointer { xb in
            postNorm(xb.baseAddress!, count: n, into: xb.baseAddress!)
            merged.withUnsafeMutableBufferPointer { mb in
                hidden.withUnsafeMutableBufferPointer { hb in
                    // Each window's k patches are k adjacent rows: (tokens, k·d) is the same memory as (n, d).
                    downsample(xb.baseAddress!, count: tokens, into: mb.baseAddress!, pool: pool)  // (T, o)
                    projection(mb.baseAddress!, count: tokens, into: hb.baseAddress!, pool: pool)   // (T, o)
                    mergerNormWeight.withUnsafeBufferPointer { w in
                        mergerNormBias.withUnsafeBufferPointer { b in
                            for t in 0..<tokens {
                                VectorOps.layerNorm(hb.baseAddress! + t * o, weight: w.baseAddress!,
                                                    bias: b.baseAddress!, epsilon: Float(c.normEpsilon),
                                                    into: hb.baseAddress! + t * o, count: o)
                            }
                        }
                    }
                    VectorOps.gelu(hb.baseAddress!, into: hb.baseAddress!, count: tokens * o)
                    mg.withUnsafeMutableBufferPointer { gb in
                        mu.withUnsafeMutableBufferPointer { ub in
                            mergerGate(hb.baseAddress!, count: tokens, into: gb.baseAddress!, pool: pool)
                            mergerUp(hb.baseAddress!, count: tokens, into: ub.baseAddress!, pool: pool)
                            VectorOps.siluMul(gate: gb.baseAddress!, up: ub.baseAddress!, into: gb.baseAddress!,
                                              count: tokens * c.mergerFFN)
                            mergerDown(gb.baseAddress!, count: tokens, into: mb.baseAddress!, pool: pool)
                        }
                    }
                }
            }
        }
        try merged.withUnsafeBufferPointer { try Self.checkFinite($0.baseAddress!, count: $0.count, stage: "merger") }
        return merged
    }

    static func checkFinite(_ p: UnsafePointer<Float>, count: Int, stage: String) throws {
        for i in 0..<count where !p[i].isFinite {
            throw ModelError.invalidSetting(name: "\(stage) activations", expected: "finite values",
                                            got: "\(p[i]) at index \(i)")
        }
    }
}
