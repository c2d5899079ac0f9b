import AutoGLMSpecs
import Foundation
import Testing
@testable import AutoGLMEngine

/// A tiny random GLM-4 checkpoint written with GGUFWriter, and a plain scalar implementation of the architecture
/// to check the engine's forward pass against.
struct TinyGLM4 {
    let layers = 2, hidden = 64, heads = 4, kvHeads = 2, headDim = 16, ffn = 96, vocab = 128
    let rotaryDims = 8          // half of each head rotates, in adjacent pairs
    let theta = 10000.0, eps = 1e-5
    /// Tensors by name: (dimensions ne0 first, row-major values).
    var tensors: [(name: String, dims: [Int], values: [Float])] = []

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func random(_ count: Int, scale: Float) -> [Float] {
            (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
        }
        func norm(_ count: Int) -> [Float] { (0..<count).map { _ in 1 + Float.random(in: -0.2...0.2, using: &rng) } }
        let qw = heads * headDim, kvw = kvHeads * headDim
        tensors.append(("token_embd.weight", [hidden, vocab], random(vocab * hidden, scale: 1)))
        for i in 0..<layers {
            let p = "blk.\(i)."
            tensors.append((p + "attn_norm.weight", [hidden], norm(hidden)))
            tensors.append((p + "attn_q.weight", [hidden, qw], random(qw * hidden, scale: 0.25)))
            tensors.append((p + "attn_q.bias", [qw], random(qw, scale: 0.1)))
            tensors.append((p + "attn_k.weight", [hidden, kvw], random(kvw * hidden, scale: 0.25)))
            tensors.append((p + "attn_k.bias", [kvw], random(kvw, scale: 0.1)))
            tensors.append((p + "attn_v.weight", [hidden, kvw], random(kvw * hidden, scale: 0.25)))
            tensors.append((p + "attn_v.bias", [kvw], random(kvw, scale: 0.1)))
            tensors.append((p + "attn_output.weight", [qw, hidden], random(hidden * qw, scale: 0.2)))
            tensors.append((p + "post_attention_norm.weight", [hidden], norm(hidden)))
            tensors.append((p + "ffn_norm.weight", [hidden], norm(hidden)))
            tensors.append((p + "ffn_up.weight", [hidden, 2 * ffn], random(2 * ffn * hidden, scale: 0.25)))
            tensors.append((p + "ffn_down.weight", [ffn, hidden], random(hidden * ffn, scale: 0.2)))
            tensors.append((p + "post_ffw_norm.weight", [hidden], norm(hidden)))
        }
        tensors.append(("output_norm.weight", [hidden], norm(hidden)))
        tensors.append(("output.weight", [hidden, vocab], random(vocab * hidden, scale: 0.3)))
    }

    /// The same weights as a `chatglm` checkpoint: Q/K/V fused into `attn_qkv` (rows q, k, v), no post norms.
    var chatGLMTensors: [(name: String, dims: [Int], values: [Float])] {
        var out: [(name: String, dims: [Int], values: [Float])] = []
        for t in tensors where !t.name.contains("post_") {
            if t.name.contains("attn_k.") || t.name.contains("attn_v.") { continue }
            if t.name.contains("attn_q.") {
                let kName = t.name.replacingOccurrences(of: "attn_q.", with: "attn_k.")
                let vName = t.name.replacingOccurrences(of: "attn_q.", with: "attn_v.")
                let values = t.values + tensor(kName) + tensor(vName)
                let rows = (heads + 2 * kvHeads) * headDim
                let dims = t.dims.count == 2 ? [hidden, rows] : [rows]
                out.append((t.name.replacingOccurrences(of: "attn_q.", with: "attn_qkv."), dims, values))
                continue
            }
            out.append(t)
        }
        return out
    }

    func write(to path: String, type: GGMLType = .f32, chatGLM: Bool = false) throws {
        let arch = chatGLM ? "chatglm" : "glm4"
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("\(arch).block_count", .uint32(UInt32(layers))),
            ("\(arch).context_length", .uint32(256)),
            ("\(arch).embedding_length", .uint32(UInt32(hidden))),
            ("\(arch).feed_forward_length", .uint32(UInt32(ffn))),
            ("\(arch).attention.head_count", .uint32(UInt32(heads))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(kvHeads))),
            ("\(arch).attention.key_length", .uint32(UInt32(headDim))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(eps))),
            ("\(arch).rope.freq_base", .float32(Float(theta))),
            ("\(arch).rope.dimension_count", .uint32(UInt32(rotaryDims))),
        ]
        var items: [(descriptor: GGUFTensorDescriptor, bytes: [UInt8])] = []
        for t in chatGLM ? chatGLMTensors : tensors {
            let matrix = t.dims.count == 2
            let packed = matrix ? type : .f32
            let bytes: [UInt8]
            if packed == .f32 {
                bytes = t.values.withUnsafeBytes { Array($0) }
            } else {
                let format = PackedFormat(ggml: packed)!
                let m = try PackedMatrix.quantize(t.values, rows: t.dims[1], columns: t.dims[0], format: format)
                bytes = Array(UnsafeRawBufferPointer(start: m.data, count: m.byteCount))
            }
            items.append((GGUFTensorDescriptor(name: t.name, dimensions: t.dims, type: packed), bytes))
        }
        try GGUFWriter.write(to: path, metadata: metadata, tensors: items)
    }

    func tensor(_ name: String) -> [Float] { tensors.first { $0.name == name }!.values }

    // MARK: scalar reference, in Double

    /// y = W x (+ b), W row-major (rows, cols).
    func linear(_ w: [Float], _ x: [Double], rows: Int, bias: [Float]? = nil) -> [Double] {
        let cols = x.count
        return (0..<rows).map { r in
            var s = 0.0
            for c in 0..<cols { s += Double(w[r * cols + c]) * x[c] }
            return s + Double(bias?[r] ?? 0)
        }
    }

    func rms(_ x: [Double], _ w: [Float]) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let inv = 1 / (ms + eps).squareRoot()
        return x.indices.map { x[$0] * inv * Double(w[$0]) }
    }

    /// Rotates adjacent pairs (2i, 2i+1) of the first `rotaryDims` dimensions of each head.
    func rope(_ v: [Double], heads n: Int, position: Int) -> [Double] {
        var out = v
        for h in 0..<n {
            for i in 0..<(rotaryDims / 2) {
                let angle = Double(position) * pow(theta, -2 * Double(i) / Double(rotaryDims))
                let a = v[h * headDim + 2 * i], b = v[h * headDim + 2 * i + 1]
                out[h * headDim + 2 * i] = a * cos(angle) - b * sin(angle)
                out[h * headDim + 2 * i + 1] = a * sin(angle) + b * cos(angle)
            }
        }
        return out
    }

    /// Logits at every position of `tokens` (`postNorms: false` gives the chatglm layer without them).
    func referenceLogits(_ tokens: [Int32], postNorms: Bool = true) -> [[Double]] {
        func post(_ x: [Double], _ name: String) -> [Double] { postNorms ? rms(x, tensor(name)) : x }
        let qw = heads * headDim, kvw = kvHeads * headDim
        let embd = tensor("token_embd.weight")
        var xs: [[Double]] = tokens.map { t in (0..<hidden).map { Double(embd[Int(t) * hidden + $0]) } }
        for l in 0..<layers {
            let p = "blk.\(l)."
            var keys: [[Double]] = [], values: [[Double]] = []
            var attnOut: [[Double]] = []
            for (pos, x) in xs.enumerated() {
                let xn = rms(x, tensor(p + "attn_norm.weight"))
                let q = rope(linear(tensor(p + "attn_q.weight"), xn, rows: qw, bias: tensor(p + "attn_q.bias")),
                             heads: heads, position: pos)
                keys.append(rope(linear(tensor(p + "attn_k.weight"), xn, rows: kvw, bias: tensor(p + "attn_k.bias")),
                                 heads: kvHeads, position: pos))
                values.append(linear(tensor(p + "attn_v.weight"), xn, rows: kvw, bias: tensor(p + "attn_v.bias")))
                var out = [Double](repeating: 0, count: qw)
                for h in 0..<heads {
                    let g = h / (heads / kvHeads)
                    var scores = (0...pos).map { j in
                        (0..<headDim).reduce(0.0) { $0 + q[h * headDim + $1] * keys[j][g * headDim + $1] }
                            / Double(headDim).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { exp($0 - m) }
                    let z = scores.reduce(0, +)
                    for j in 0...pos {
                        for d in 0..<headDim { out[h * headDim + d] += scores[j] / z * values[j][g * headDim + d] }
                    }
                }
                attnOut.append(out)
            }
            for pos in xs.indices {
                let o = post(linear(tensor(p + "attn_output.weight"), attnOut[pos], rows: hidden),
                             p + "post_attention_norm.weight")
                var x = xs[pos]
                for i in 0..<hidden { x[i] += o[i] }
                let xn = rms(x, tensor(p + "ffn_norm.weight"))
                let gu = linear(tensor(p + "ffn_up.weight"), xn, rows: 2 * ffn)
                let act = (0..<ffn).map { i in gu[i] / (1 + exp(-gu[i])) * gu[ffn + i] }
                let y = post(linear(tensor(p + "ffn_down.weight"), act, rows: hidden), p + "post_ffw_norm.weight")
                for i in 0..<hidden { x[i] += y[i] }
                xs[pos] = x
            }
        }
        return xs.map { linear(tensor("output.weight"), rms($0, tensor("output_norm.weight")), rows: vocab) }
    }
}

@Suite("GLM-4 architecture on a tiny random checkpoint")
struct ModelGLM4Tests {
    static func maxRelativeError(_ got: UnsafeBufferPointer<Float>, _ want: [Double]) -> Double {
        let scale = want.map { abs($0) }.max() ?? 1
        var worst = 0.0
        for i in want.indices { worst = max(worst, abs(Double(got[i]) - want[i]) / scale) }
        return worst
    }

    @Test func forwardMatchesScalarReference() throws {
        let tiny = TinyGLM4(seed: 7)
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny-glm4.gguf").path
        try tiny.write(to: path)
        let file = try GGUFFile(path: path)
        let model = try DecoderModel.load(gguf: file)
        #expect(model.config.architecture == "glm4")
        #expect(model.config.rotaryDims == 8)
        #expect(!model.tiedHead)

        let tokens: [Int32] = [3, 17, 99, 42, 5, 127, 0, 64, 8, 31]
        let want = tiny.referenceLogits(tokens)
        let session = try InferenceSession(model: model, capacity: 32, batch: 4, pool: ModelTestSupport.pool)
        // Prefill 7 tokens in batches of 4 (matmul path), logits for all of them.
        let prefill = try tokens.prefix(7).withUnsafeBufferPointer { try session.forward($0, logitsFrom: 0) }
        for t in 0..<7 {
            let row = UnsafeBufferPointer(rebasing: prefill[(t * tiny.vocab)..<((t + 1) * tiny.vocab)])
            #expect(Self.maxRelativeError(row, want[t]) < 1e-4, "prefill position \(t)")
        }
        // Then decode the rest one token at a time (matvec path).
        for t in 7..<tokens.count {
            let logits = try session.forward([tokens[t]])
            #expect(Self.maxRelativeError(logits, want[t]) < 1e-4, "decode position \(t)")
        }
        #expect(session.length == tokens.count)
    }

    @Test func chatGLMFusedQKVMatchesScalarReference() throws {
        let tiny = TinyGLM4(seed: 9)
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny-chatglm.gguf").path
        try tiny.write(to: path, chatGLM: true)
        let model = try DecoderModel.load(gguf: try GGUFFile(path: path))
        #expect(model.config.architecture == "chatglm")
        let tokens: [Int32] = [9, 8, 7, 6, 5, 4]
        let want = tiny.referenceLogits(tokens, postNorms: false)
        let session = try InferenceSession(model: model, capacity: 16, pool: ModelTestSupport.pool)
        let all = try tokens.withUnsafeBufferPointer { try session.forward($0, logitsFrom: 0) }
        for t in tokens.indices {
            let row = UnsafeBufferPointer(rebasing: all[(t * tiny.vocab)..<((t + 1) * tiny.vocab)])
            #expect(Self.maxRelativeError(row, want[t]) < 1e-4, "position \(t)")
        }
        // The GLM-4 reference (with post norms) is far from this model: the comparison can tell them apart.
        let glm4 = tiny.referenceLogits(tokens)
        let last = UnsafeBufferPointer(rebasing: all[((tokens.count - 1) * tiny.vocab)...])
        #expect(Self.maxRelativeError(last, glm4[tokens.count - 1]) > 1e-2)
    }

    @Test func packedWeightsStayPackedAndTrackTheReference() throws {
        let tiny = TinyGLM4(seed: 11)
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny-glm4-q8.gguf").path
        try tiny.write(to: path, type: .q8_0)
        let model = try DecoderModel.load(gguf: try GGUFFile(path: path))
        #expect(model.tensorFormats["blk.0.ffn_up.weight"] == .q8_0)
        #expect(model.tensorFormats["token_embd.weight"] == .q8_0)
        // Q8_0 weights: logits within a few percent of the exact-weight reference.
        let tokens: [Int32] = [1, 2, 3, 4, 5]
        let want = tiny.referenceLogits(tokens)
        let session = try InferenceSession(model: model, capacity: 16, pool: ModelTestSupport.pool)
        let logits = try session.forward(tokens)
        #expect(Self.maxRelativeError(logits, want[4]) < 0.03)
    }

    @Test func missingTensorIsReportedByName() throws {
        var tiny = TinyGLM4(seed: 3)
        tiny.tensors.removeAll { $0.name == "blk.1.post_ffw_norm.weight" }
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("broken.gguf").path
        try tiny.write(to: path)
        #expect(throws: ModelError.missingTensor(name: "blk.1.post_ffw_norm.weight")) {
            try DecoderModel.load(gguf: try GGUFFile(path: path))
        }
    }

    @Test func planFormatsAreAppliedPerModuleAndLayerGroup() throws {
        let tiny = TinyGLM4(seed: 5)
        let dir = try ModelTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try tiny.write(to: path)
        var plan = Plan()
        var embedding = Plan.Module(); embedding.name = "embedding"; embedding.kind = .embedding; embedding.format = .q8_0
        var early = Plan.Module(); early.name = "decoder[0]"; early.layers = [0, 0]; early.format = .int8
        var late = Plan.Module(); late.name = "decoder[1]"; late.layers = [1, 1]; late.format = .int4g32
        var head = Plan.Module(); head.name = "head"; head.kind = .head; head.format = .f16
        plan.modules = [embedding, early, late, head]
        let model = try DecoderModel.load(gguf: try GGUFFile(path: path), policy: .plan(plan))
        #expect(model.tensorFormats["token_embd.weight"] == .q8_0)
        #expect(model.tensorFormats["blk.0.attn_q.weight"] == .int8)
        #expect(model.tensorFormats["blk.1.ffn_down.weight"] == .int4g32)
        #expect(model.tensorFormats["output.weight"] == .f16)
        #expect(model.residentBytesByModule["head"] == tiny.vocab * tiny.hidden * 2)
        #expect(model.residentBytesByModule["embedding"] == tiny.vocab * (tiny.hidden / 32) * 34)
        let session = try InferenceSession(model: model, capacity: 8, pool: nil)
        let logits = try session.forward([1, 2, 3])
        #expect(logits.allSatisfy { $0.isFinite })
    }
}
