import Foundation

/// Activation used by an MLP.
public enum MLPKind: String, Codable, Sendable { case swiglu, gelu }
/// Normalisation layer kind: RMSNorm has a weight only, LayerNorm a weight and a bias.
public enum NormKind: String, Codable, Sendable {
    case rms, layer
    var tensorsPerNorm: Int { self == .rms ? 1 : 2 }
}

/// The autoregressive text decoder (its layers plus the final norm).
public struct TextDecoderSpec: Codable, Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var ffn: Int
    public var mlp: MLPKind
    public var qkvBias: Bool
    public var outputBias: Bool
    /// 2 (pre-attention, pre-MLP) for llama; 4 for GLM-4 (adds post-attention and post-MLP norms).
    public var normsPerLayer: Int
    /// GLM-4 stores gate and up as one fused matrix.
    public var fusedGateUp: Bool
    /// Fraction of each head's dimensions that rotate (0.5 for GLM-4).
    public var rotaryFraction: Double
    /// Interleaved rotary pairs (2i, 2i+1) instead of halves (i, i + d/2).
    public var rotaryInterleaved: Bool
    public var ropeTheta: Double
    public var maxPositions: Int
    public var normEpsilon: Double

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, hidden, heads, kvHeads = "kv_heads", headDim = "head_dim", ffn, mlp
        case qkvBias = "qkv_bias", outputBias = "output_bias", normsPerLayer = "norms_per_layer"
        case fusedGateUp = "fused_gate_up", rotaryFraction = "rotary_fraction"
        case rotaryInterleaved = "rotary_interleaved", ropeTheta = "rope_theta", maxPositions = "max_positions"
        case normEpsilon = "norm_epsilon"
    }

    public init(layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int, ffn: Int, mlp: MLPKind = .swiglu,
                qkvBias: Bool, outputBias: Bool = false, normsPerLayer: Int = 2, fusedGateUp: Bool = false,
                rotaryFraction: Double = 1, rotaryInterleaved: Bool = false, ropeTheta: Double = 10000,
                maxPositions: Int, normEpsilon: Double = 1e-5) {
        self.layers = layers; self.hidden = hidden; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.ffn = ffn; self.mlp = mlp; self.qkvBias = qkvBias; self.outputBias = outputBias
        self.normsPerLayer = normsPerLayer; self.fusedGateUp = fusedGateUp; self.rotaryFraction = rotaryFraction
        self.rotaryInterleaved = rotaryInterleaved; self.ropeTheta = ropeTheta; self.maxPositions = maxPositions
        self.normEpsilon = normEpsilon
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers, expected: "a positive layer count") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
        heads = try c.decode(Int.self, forKey: .heads, expected: "a positive head count") { $0 > 0 }
        kvHeads = try c.decode(Int.self, forKey: .kvHeads, expected: "a positive KV head count") { $0 > 0 }
        if heads % kvHeads != 0 {
            throw FieldValidationError(c.codingPath, CodingKeys.kvHeads,
                                       expected: "a divisor of heads (\(heads))", found: "\(kvHeads)")
        }
        headDim = try c.decode(Int.self, forKey: .headDim, expected: "a positive even head dimension") {
            $0 > 0 && $0 % 2 == 0
        }
        ffn = try c.decode(Int.self, forKey: .ffn, expected: "a positive FFN size") { $0 > 0 }
        mlp = try c.decodeIfPresent(MLPKind.self, forKey: .mlp) ?? .swiglu
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? false
        outputBias = try c.decodeIfPresent(Bool.self, forKey: .outputBias) ?? false
        normsPerLayer = try c.decode(Int.self, forKey: .normsPerLayer, default: 2, expected: "2 or 4") {
            $0 == 2 || $0 == 4
        }
        fusedGateUp = try c.decodeIfPresent(Bool.self, forKey: .fusedGateUp) ?? false
        rotaryFraction = try c.decode(Double.self, forKey: .rotaryFraction, default: 1,
                                      expected: "a fraction in (0, 1]") { $0 > 0 && $0 <= 1 }
        rotaryInterleaved = try c.decodeIfPresent(Bool.self, forKey: .rotaryInterleaved) ?? false
        ropeTheta = try c.decode(Double.self, forKey: .ropeTheta, default: 10000, expected: "a positive base") {
            $0 > 0
        }
        maxPositions = try c.decode(Int.self, forKey: .maxPositions, expected: "a positive context length") {
            $0 > 0
        }
        normEpsilon = try c.decode(Double.self, forKey: .normEpsilon, default: 1e-5, expected: "a positive epsilon") {
            $0 > 0
        }
    }

    /// Query width (heads × head dim) and key/value width (KV heads × head dim).
    public var queryWidth: Int { heads * headDim }
    public var kvWidth: Int { kvHeads * headDim }
    /// Dimensions of each head that rotate.
    public var rotaryDims: Int { Int((Double(headDim) * rotaryFraction).rounded()) }
    /// Fraction of KV cache saved by grouped-query attention relative to one KV head per query head.
    public var kvSavingFraction: Double { 1 - Double(kvHeads) / Double(heads) }
    /// KV cache bytes per token at `bytesPerElement` (keys and values, all layers).
    public func kvBytesPerToken(bytesPerElement: Double) -> Double {
        Double(layers * 2 * kvWidth) * bytesPerElement
    }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        for i in 0..<layers {
            let p = "blk.\(i)."
            t.vector(p + "attn_norm.weight", hidden, layer: i)
            t.matrix(p + "attn_q.weight", queryWidth, hidden, layer: i)
            if qkvBias { t.vector(p + "attn_q.bias", queryWidth, layer: i) }
            t.matrix(p + "attn_k.weight", kvWidth, hidden, layer: i)
            if qkvBias { t.vector(p + "attn_k.bias", kvWidth, layer: i) }
            t.matrix(p + "attn_v.weight", kvWidth, hidden, layer: i)
            if qkvBias { t.vector(p + "attn_v.bias", kvWidth, layer: i) }
            t.matrix(p + "attn_output.weight", hidden, queryWidth, layer: i)
            if outputBias { t.vector(p + "attn_output.bias", hidden, layer: i) }
            if normsPerLayer == 4 { t.vector(p + "post_attention_norm.weight", hidden, layer: i) }
            t.vector(p + "ffn_norm.weight", hidden, layer: i)
            switch (mlp, fusedGateUp) {
            case (.swiglu, true):
                t.matrix(p + "ffn_up.weight", 2 * ffn, hidden, layer: i)
            case (.swiglu, false):
                t.matrix(p + "ffn_gate.weight", ffn, hidden, layer: i)
                t.matrix(p + "ffn_up.weight", ffn, hidden, layer: i)
            case (.gelu, _):
                t.matrix(p + "ffn_up.weight", ffn, hidden, layer: i)
            }
            t.matrix(p + "ffn_down.weight", hidden, ffn, layer: i)
            if normsPerLayer == 4 { t.vector(p + "post_ffw_norm.weight", hidden, layer: i) }
        }
        t.vector("output_norm.weight", hidden)
        return t.items
    }

    /// Parameters of one layer.
    public var parametersPerLayer: Int {
        tensors(module: "").filter { $0.layer == 0 }.reduce(0) { $0 + $1.parameters }
    }
    /// Matrix parameters of one layer (the ones multiplied per token).
    public var matrixParametersPerLayer: Int {
        tensors(module: "").filter { $0.layer == 0 && $0.role == .matrix }.reduce(0) { $0 + $1.parameters }
    }
    /// Attention FLOPs per token per token of context: QKᵀ and AV, 2 FLOPs per multiply-add, all layers.
    public var attentionFLOPsPerContextToken: Double { Double(layers * heads * headDim * 2 * 2) }
}

/// Token embedding table.
public struct EmbeddingSpec: Codable, Sendable, Equatable {
    public var vocab: Int
    public var hidden: Int

    enum CodingKeys: String, CodingKey, CaseIterable { case vocab, hidden }

    public init(vocab: Int, hidden: Int) { self.vocab = vocab; self.hidden = hidden }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocab = try c.decode(Int.self, forKey: .vocab, expected: "a positive vocabulary size") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
    }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        t.table("token_embd.weight", vocab, hidden)
        return t.items
    }
}

/// Output projection to the vocabulary; a tied head reuses the embedding table and owns no parameters.
public struct HeadSpec: Codable, Sendable, Equatable {
    public var vocab: Int
    public var hidden: Int
    public var tied: Bool

    enum CodingKeys: String, CodingKey, CaseIterable { case vocab, hidden, tied }

    public init(vocab: Int, hidden: Int, tied: Bool) { self.vocab = vocab; self.hidden = hidden; self.tied = tied }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocab = try c.decode(Int.self, forKey: .vocab, expected: "a positive vocabulary size") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
        tied = try c.decodeIfPresent(Bool.self, forKey: .tied) ?? false
    }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        if !tied { t.matrix("output.weight", vocab, hidden) }
        return t.items
    }
}

/// A ViT: patch embedding (Conv3d over temporal × patch × patch), learned position grid, blocks, final norm.
public struct VisionEncoderSpec: Codable, Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var headDim: Int
    public var mlpHidden: Int
    public var mlp: MLPKind
    public var attentionBias: Bool
    public var mlpBias: Bool
    public var norm: NormKind
    public var patchSize: Int
    public var temporalPatch: Int
    public var channels: Int
    public var patchBias: Bool
    /// Side of the learned position-embedding grid (interpolated to the image).
    public var positionGrid: Int
    /// Norms outside the blocks (after the patch conv, after the last block).
    public var extraNorms: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, hidden, heads, headDim = "head_dim", mlpHidden = "mlp_hidden", mlp
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", norm, patchSize = "patch_size"
        case temporalPatch = "temporal_patch", channels, patchBias = "patch_bias", positionGrid = "position_grid"
        case extraNorms = "extra_norms"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers, expected: "a positive layer count") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
        heads = try c.decode(Int.self, forKey: .heads, expected: "a positive head count") { $0 > 0 }
        headDim = try c.decode(Int.self, forKey: .headDim, expected: "a positive head dimension") { $0 > 0 }
        mlpHidden = try c.decode(Int.self, forKey: .mlpHidden, expected: "a positive MLP size") { $0 > 0 }
        mlp = try c.decodeIfPresent(MLPKind.self, forKey: .mlp) ?? .swiglu
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? .rms
        patchSize = try c.decode(Int.self, forKey: .patchSize, expected: "a positive patch size") { $0 > 0 }
        temporalPatch = try c.decode(Int.self, forKey: .temporalPatch, default: 1, expected: "a positive count") {
            $0 > 0
        }
        channels = try c.decode(Int.self, forKey: .channels, default: 3, expected: "a positive channel count") {
            $0 > 0
        }
        patchBias = try c.decodeIfPresent(Bool.self, forKey: .patchBias) ?? true
        positionGrid = try c.decode(Int.self, forKey: .positionGrid, expected: "a positive grid side") { $0 > 0 }
        extraNorms = try c.decode(Int.self, forKey: .extraNorms, default: 1, expected: "0 or more") { $0 >= 0 }
    }

    /// Elements of one patch (channels × temporal × patch × patch).
    public var patchElements: Int { channels * temporalPatch * patchSize * patchSize }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        t.matrix("v.patch_embd.weight", hidden, patchElements)
        if patchBias { t.vector("v.patch_embd.bias", hidden) }
        t.table("v.position_embd.weight", positionGrid * positionGrid, hidden, role: .vector)
        let width = heads * headDim
        for i in 0..<layers {
            let p = "v.blk.\(i)."
            for n in 0..<norm.tensorsPerNorm { t.vector(p + (n == 0 ? "ln1.weight" : "ln1.bias"), hidden, layer: i) }
            t.matrix(p + "attn_qkv.weight", 3 * width, hidden, layer: i)
            if attentionBias { t.vector(p + "attn_qkv.bias", 3 * width, layer: i) }
            t.matrix(p + "attn_out.weight", hidden, width, layer: i)
            if attentionBias { t.vector(p + "attn_out.bias", hidden, layer: i) }
            for n in 0..<norm.tensorsPerNorm { t.vector(p + (n == 0 ? "ln2.weight" : "ln2.bias"), hidden, layer: i) }
            if mlp == .swiglu {
                t.matrix(p + "ffn_gate.weight", mlpHidden, hidden, layer: i)
                if mlpBias { t.vector(p + "ffn_gate.bias", mlpHidden, layer: i) }
            }
            t.matrix(p + "ffn_up.weight", mlpHidden, hidden, layer: i)
            if mlpBias { t.vector(p + "ffn_up.bias", mlpHidden, layer: i) }
            t.matrix(p + "ffn_down.weight", hidden, mlpHidden, layer: i)
            if mlpBias { t.vector(p + "ffn_down.bias", hidden, layer: i) }
        }
        for n in 0..<extraNorms {
            for k in 0..<norm.tensorsPerNorm { t.vector("v.norm\(n).\(k == 0 ? "weight" : "bias")", hidden) }
        }
        return t.items
    }

    /// Linear-layer FLOPs for `patches` patches (2 per multiply-add).
    public func linearFLOPs(patches: Int) -> Double {
        let perPatch = tensors(module: "").filter { $0.role == .matrix }.reduce(0) { $0 + $1.parameters }
        return 2 * Double(perPatch) * Double(patches)
    }
    /// Attention FLOPs (QKᵀ and AV over all patches, every layer).
    public func attentionFLOPs(patches: Int) -> Double {
        4 * Double(layers) * Double(heads * headDim) * Double(patches) * Double(patches)
    }
}

/// A speech encoder (Whisper-style: two 1-D convolutions over mel frames, then transformer blocks).
public struct AudioEncoderSpec: Codable, Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var ffn: Int
    public var melBins: Int
    public var maxFrames: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, hidden, heads, ffn, melBins = "mel_bins", maxFrames = "max_frames"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers, expected: "a positive layer count") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
        heads = try c.decode(Int.self, forKey: .heads, expected: "a positive head count") { $0 > 0 }
        ffn = try c.decode(Int.self, forKey: .ffn, expected: "a positive FFN size") { $0 > 0 }
        melBins = try c.decode(Int.self, forKey: .melBins, expected: "a positive mel bin count") { $0 > 0 }
        maxFrames = try c.decode(Int.self, forKey: .maxFrames, expected: "a positive frame count") { $0 > 0 }
        if hidden % heads != 0 {
            throw FieldValidationError(c.codingPath, CodingKeys.heads, expected: "a divisor of hidden (\(hidden))",
                                       found: "\(heads)")
        }
    }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        t.matrix("a.conv1.weight", hidden, melBins * 3)
        t.vector("a.conv1.bias", hidden)
        t.matrix("a.conv2.weight", hidden, hidden * 3)
        t.vector("a.conv2.bias", hidden)
        t.table("a.position_embd.weight", maxFrames, hidden, role: .vector)
        for i in 0..<layers {
            let p = "a.blk.\(i)."
            t.vector(p + "ln1.weight", hidden, layer: i); t.vector(p + "ln1.bias", hidden, layer: i)
            t.matrix(p + "attn_q.weight", hidden, hidden, layer: i); t.vector(p + "attn_q.bias", hidden, layer: i)
            t.matrix(p + "attn_k.weight", hidden, hidden, layer: i)
            t.matrix(p + "attn_v.weight", hidden, hidden, layer: i); t.vector(p + "attn_v.bias", hidden, layer: i)
            t.matrix(p + "attn_out.weight", hidden, hidden, layer: i); t.vector(p + "attn_out.bias", hidden, layer: i)
            t.vector(p + "ln2.weight", hidden, layer: i); t.vector(p + "ln2.bias", hidden, layer: i)
            t.matrix(p + "ffn_up.weight", ffn, hidden, layer: i); t.vector(p + "ffn_up.bias", ffn, layer: i)
            t.matrix(p + "ffn_down.weight", hidden, ffn, layer: i); t.vector(p + "ffn_down.bias", hidden, layer: i)
        }
        t.vector("a.norm.weight", hidden); t.vector("a.norm.bias", hidden)
        return t.items
    }
}

/// Maps encoder features into the decoder's embedding space.
public struct ProjectorSpec: Codable, Sendable, Equatable {
    public enum Style: String, Codable, Sendable {
        /// GLM-4.1V: k×k Conv2d downsample (merging k² patches into one token), a projection, LayerNorm + GELU,
        /// then a SwiGLU MLP.
        case convMerger = "conv_merger"
        /// Two linear layers with a GELU between (audio adapters).
        case mlp2
    }
    public var style: Style
    public var inputHidden: Int
    public var outputHidden: Int
    /// Spatial merge factor per side (2 → 4 patches per token); 1 for none.
    public var merge: Int
    public var ffn: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case style, inputHidden = "input_hidden", outputHidden = "output_hidden", merge, ffn
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        style = try c.decode(Style.self, forKey: .style)
        inputHidden = try c.decode(Int.self, forKey: .inputHidden, expected: "a positive width") { $0 > 0 }
        outputHidden = try c.decode(Int.self, forKey: .outputHidden, expected: "a positive width") { $0 > 0 }
        merge = try c.decode(Int.self, forKey: .merge, default: 1, expected: "a positive merge factor") { $0 > 0 }
        ffn = try c.decode(Int.self, forKey: .ffn, default: 0, expected: "0 or a positive FFN size") { $0 >= 0 }
        if style == .convMerger && ffn == 0 {
            throw FieldValidationError(c.codingPath, CodingKeys.ffn, expected: "a positive FFN size for conv_merger",
                                       found: "0")
        }
    }

    /// Encoder outputs merged into one decoder token.
    public var patchesPerToken: Int { merge * merge }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        switch style {
        case .convMerger:
            t.matrix("mm.downsample.weight", outputHidden, inputHidden * merge * merge)
            t.vector("mm.downsample.bias", outputHidden)
            t.matrix("mm.proj.weight", outputHidden, outputHidden)
            t.vector("mm.norm.weight", outputHidden)
            t.vector("mm.norm.bias", outputHidden)
            t.matrix("mm.ffn_gate.weight", ffn, outputHidden)
            t.matrix("mm.ffn_up.weight", ffn, outputHidden)
            t.matrix("mm.ffn_down.weight", outputHidden, ffn)
        case .mlp2:
            t.matrix("\(module).fc1.weight", outputHidden, inputHidden * merge * merge)
            t.vector("\(module).fc1.bias", outputHidden)
            t.matrix("\(module).fc2.weight", outputHidden, outputHidden)
            t.vector("\(module).fc2.bias", outputHidden)
        }
        return t.items
    }
}

/// Gated cross-modal attention: text states attend to image tokens, output (1 − g)·h + g·CrossAttn(h, I) with
/// g = σ(W[h; mean(I)] + b), one gate per hidden channel.
public struct CrossModalSpec: Codable, Sendable, Equatable {
    public var layers: Int
    public var hidden: Int
    public var contextHidden: Int
    public var heads: Int
    public var headDim: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case layers, hidden, contextHidden = "context_hidden", heads, headDim = "head_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layers = try c.decode(Int.self, forKey: .layers, expected: "a positive layer count") { $0 > 0 }
        hidden = try c.decode(Int.self, forKey: .hidden, expected: "a positive hidden size") { $0 > 0 }
        contextHidden = try c.decode(Int.self, forKey: .contextHidden, expected: "a positive width") { $0 > 0 }
        heads = try c.decode(Int.self, forKey: .heads, expected: "a positive head count") { $0 > 0 }
        headDim = try c.decode(Int.self, forKey: .headDim, expected: "a positive head dimension") { $0 > 0 }
    }

    public func tensors(module: String) -> [ModuleTensor] {
        var t = TensorList(module: module)
        let width = heads * headDim
        for i in 0..<layers {
            let p = "x.blk.\(i)."
            t.vector(p + "norm.weight", hidden, layer: i)
            t.matrix(p + "attn_q.weight", width, hidden, layer: i)
            t.matrix(p + "attn_k.weight", width, contextHidden, layer: i)
            t.matrix(p + "attn_v.weight", width, contextHidden, layer: i)
            t.matrix(p + "attn_out.weight", hidden, width, layer: i)
            t.matrix(p + "gate.weight", hidden, hidden + contextHidden, layer: i)
            t.vector(p + "gate.bias", hidden, layer: i)
        }
        return t.items
    }
}
