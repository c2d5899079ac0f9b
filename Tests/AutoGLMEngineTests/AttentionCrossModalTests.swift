import Testing
import AutoGLMSpecs
@testable import AutoGLMEngine

@Suite("Cross-modal gated attention")
struct AttentionCrossModalTests {
    static func block(hidden: Int, context: Int, heads: Int, headDim: Int, seed: UInt64,
                      gateBias: Float = 0) throws -> CrossModalGatedAttention {
        var rng = AttentionRandom(seed: seed)
        let inner = heads * headDim
        return try CrossModalGatedAttention(
            hidden: hidden, context: context, heads: heads, headDim: headDim,
            wq: rng.array(inner * hidden, amplitude: 0.5), wk: rng.array(inner * context, amplitude: 0.5),
            wv: rng.array(inner * context, amplitude: 0.5), wo: rng.array(hidden * inner, amplitude: 0.3),
            gateWeight: rng.array(hidden * (hidden + context), amplitude: 0.3),
            gateBias: (0..<hidden).map { _ in gateBias + rng.uniform() })
    }

    @Test("Matches the scalar reference", arguments: AttentionKernel.allCases)
    func matchesReference(kernel: AttentionKernel) throws {
        let (hidden, context, n, m) = (48, 40, 7, 29)
        let block = try Self.block(hidden: hidden, context: context, heads: 3, headDim: 16, seed: 20)
        var rng = AttentionRandom(seed: 21)
        let text = rng.array(n * hidden), image = rng.array(m * context)
        let out = try block.apply(text: text, tokens: n, image: image, imageTokens: m, kernel: kernel)
        let reference = AttentionReference.crossModalGated(block, text: text, tokens: n, image: image, imageTokens: m)
        #expect(relativeError(out, reference) < 1e-5)
        #expect(relativeError(out, text) > 1e-2, "the gate mixes in the image")
    }

    @Test("A closed gate passes the text through; an open gate returns the cross-attention")
    func gateLimits() throws {
        let (hidden, context, n, m) = (16, 8, 3, 5)
        var rng = AttentionRandom(seed: 22)
        let text = rng.array(n * hidden), image = rng.array(m * context)
        let closed = try Self.block(hidden: hidden, context: context, heads: 2, headDim: 4, seed: 23, gateBias: -200)
        #expect(maxAbsError(try closed.apply(text: text, tokens: n, image: image, imageTokens: m), text) < 1e-6)
        let open = try Self.block(hidden: hidden, context: context, heads: 2, headDim: 4, seed: 23, gateBias: 200)
        let out = try open.apply(text: text, tokens: n, image: image, imageTokens: m)
        // With g = 1 the output is the cross-attention alone, so the residual text no longer appears in it: scaling
        // the image values (through Wv) scales the output exactly.
        let doubled = try CrossModalGatedAttention(
            hidden: hidden, context: context, heads: 2, headDim: 4, wq: open.wq, wk: open.wk,
            wv: open.wv.map { $0 * 2 }, wo: open.wo, gateWeight: open.gateWeight, gateBias: open.gateBias)
        let out2 = try doubled.apply(text: text, tokens: n, image: image, imageTokens: m)
        #expect(maxAbsError(out2, out.map { $0 * 2 }) < 1e-5)
        #expect(maxAbsError(out, text) > 1e-2)
    }

    @Test("Wrong weight and input shapes throw")
    func shapes() throws {
        #expect(throws: AttentionError.weightShape(name: "wk", expected: 8 * 3, got: 5)) {
            try CrossModalGatedAttention(hidden: 4, context: 3, heads: 2, headDim: 4,
                                         wq: .init(repeating: 0, count: 32), wk: .init(repeating: 0, count: 5),
                                         wv: .init(repeating: 0, count: 24), wo: .init(repeating: 0, count: 32),
                                         gateWeight: .init(repeating: 0, count: 28), gateBias: .init(repeating: 0, count: 4))
        }
        let block = try Self.block(hidden: 4, context: 3, heads: 2, headDim: 4, seed: 24)
        #expect(throws: AttentionError.weightShape(name: "image", expected: 6, got: 5)) {
            try block.apply(text: [0, 0, 0, 0], tokens: 1, image: [0, 0, 0, 0, 0], imageTokens: 2)
        }
        #expect(throws: AttentionError.invalidParameter(name: "imageTokens", expected: "> 0", got: 0)) {
            try block.apply(text: [0, 0, 0, 0], tokens: 1, image: [], imageTokens: 0)
        }
    }
}
