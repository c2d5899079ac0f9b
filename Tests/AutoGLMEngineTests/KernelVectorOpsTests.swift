import Foundation
import Testing
@testable import AutoGLMEngine

private func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

private func expectClose(_ got: [Float], _ want: [Float], relative: Float, absolute: Float = 0, _ label: String) {
    #expect(got.count == want.count, "\(label): length")
    for i in 0..<min(got.count, want.count) {
        let bound = relative * abs(want[i]) + absolute
        #expect(abs(got[i] - want[i]) <= bound, "\(label) [\(i)]: got \(got[i]) want \(want[i])")
    }
}

/// Lengths that exercise the SIMD body and the scalar tail.
private let lengths = [1, 7, 8, 31, 576, 1001]

@Suite("Vector ops")
struct KernelVectorOpsTests {
    @Test("dot, sum, axpy, add, mul, scale", arguments: lengths)
    func blas1(n: Int) {
        let a = randomFloats(n, seed: 1), b = randomFloats(n, seed: 2)
        let refDot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let absDot = zip(a, b).reduce(Float(0)) { $0 + abs($1.0 * $1.1) }
        #expect(abs(Double(VectorOps.dot(a, b, count: n)) - refDot) <= Double(absDot) * 1e-6 + 1e-7)
        let refSum = a.reduce(0.0) { $0 + Double($1) }
        let absSum = a.reduce(Float(0)) { $0 + abs($1) }
        #expect(abs(Double(VectorOps.sum(a, count: n)) - refSum) <= Double(absSum) * 1e-6 + 1e-7)

        var y = b
        VectorOps.axpy(0.75, a, &y, count: n)
        expectClose(y, (0..<n).map { b[$0] + 0.75 * a[$0] }, relative: 1e-6, absolute: 1e-7, "axpy")
        var out = [Float](repeating: 0, count: n)
        VectorOps.add(a, b, into: &out, count: n)
        #expect(out == (0..<n).map { a[$0] + b[$0] })
        VectorOps.mul(a, b, into: &out, count: n)
        #expect(out == (0..<n).map { a[$0] * b[$0] })
        var s = a
        VectorOps.scale(&s, by: -2.5, count: n)
        #expect(s == a.map { $0 * -2.5 })
    }

    @Test("rmsNorm with and without weight", arguments: lengths)
    func rmsNorm(n: Int) {
        let x = randomFloats(n, seed: 3, range: -5...5), w = randomFloats(n, seed: 4)
        var out = [Float](repeating: 0, count: n)
        VectorOps.rmsNorm(x, weight: w, epsilon: 1e-5, into: &out, count: n)
        expectClose(out, ReferenceKernels.rmsNorm(x, weight: w, epsilon: 1e-5), relative: 1e-5, absolute: 1e-6, "weighted")
        VectorOps.rmsNorm(x, weight: nil, epsilon: 1e-5, into: &out, count: n)
        expectClose(out, ReferenceKernels.rmsNorm(x, weight: nil, epsilon: 1e-5), relative: 1e-5, absolute: 1e-6, "plain")
    }

    @Test("layerNorm with weight and bias", arguments: lengths)
    func layerNorm(n: Int) {
        let x = randomFloats(n, seed: 5, range: 2...6), w = randomFloats(n, seed: 6), b = randomFloats(n, seed: 7)
        var out = [Float](repeating: 0, count: n)
        VectorOps.layerNorm(x, weight: w, bias: b, epsilon: 1e-5, into: &out, count: n)
        expectClose(out, ReferenceKernels.layerNorm(x, weight: w, bias: b, epsilon: 1e-5), relative: 1e-4,
                    absolute: 1e-4, "layerNorm")
    }

    @Test("exp matches Foundation to a few ulp and saturates")
    func exp() {
        var maxRel: Double = 0
        var x: Float = -87
        while x < 88 {
            let got = Double(FastMath.exp(x)), want = Foundation.exp(Double(x))
            maxRel = max(maxRel, abs(got - want) / want)
            x += 0.0137
        }
        #expect(maxRel < 5e-7, "max relative error \(maxRel)")
        #expect(FastMath.exp(0) == 1)
        #expect(FastMath.exp(-100) == 0)
        #expect(FastMath.exp(100) == .infinity)
        #expect(FastMath.exp(-Float.infinity) == 0)
    }

    @Test("softmax is stable for large inputs and sums to one", arguments: lengths)
    func softmax(n: Int) {
        var x = randomFloats(n, seed: 8, range: -20...20)
        x[0] = 1000  // would overflow without max subtraction
        let reference = ReferenceKernels.softmax(x)
        VectorOps.softmax(&x, count: n)
        expectClose(x, reference, relative: 1e-5, absolute: 1e-9, "softmax")
        #expect(abs(x.reduce(0, +) - 1) < 1e-5)
        var masked: [Float] = [0, -.infinity, 1, -.infinity]
        VectorOps.softmax(&masked, count: 4)
        #expect(masked[1] == 0 && masked[3] == 0)
        #expect(abs(masked[2] - Float(Foundation.exp(1.0) / (1 + Foundation.exp(1.0)))) < 1e-6)
    }

    @Test("siluMul, silu and gelu", arguments: lengths)
    func activations(n: Int) {
        let g = randomFloats(n, seed: 9, range: -12...12), u = randomFloats(n, seed: 10)
        var out = [Float](repeating: 0, count: n)
        VectorOps.siluMul(gate: g, up: u, into: &out, count: n)
        expectClose(out, (0..<n).map { ReferenceKernels.silu(g[$0]) * u[$0] }, relative: 2e-6, absolute: 1e-7, "siluMul")
        VectorOps.silu(g, into: &out, count: n)
        expectClose(out, g.map(ReferenceKernels.silu), relative: 2e-6, absolute: 1e-7, "silu")
        VectorOps.gelu(g, into: &out, count: n)
        expectClose(out, g.map(ReferenceKernels.gelu), relative: 2e-6, absolute: 1e-6, "gelu")
        VectorOps.geluMul(gate: g, up: u, into: &out, count: n)
        expectClose(out, (0..<n).map { ReferenceKernels.gelu(g[$0]) * u[$0] }, relative: 2e-6, absolute: 1e-6, "geluMul")
    }

    @Test("RoPE, NeoX and interleaved pairs, full and partial rotary",
          arguments: [(64, 64), (64, 32), (128, 64), (40, 20), (6, 4)])
    func rope(headDim: Int, rotaryDims: Int) {
        let heads = 3
        for style in [RoPEStyle.neox, .interleaved] {
            for position in [0, 1, 17, 4095] {
                let x = randomFloats(heads * headDim, seed: UInt64(position + headDim))
                var got = x
                VectorOps.rope(&got, heads: heads, headDim: headDim, rotaryDims: rotaryDims, position: position,
                               base: 10000, style: style)
                let want = ReferenceKernels.rope(x, heads: heads, headDim: headDim, rotaryDims: rotaryDims,
                                                 position: position, base: 10000, style: style)
                expectClose(got, want, relative: 1e-5, absolute: 1e-6, "\(style) \(headDim)/\(rotaryDims) pos \(position)")
                // Dimensions beyond rotaryDims are untouched.
                for h in 0..<heads {
                    for d in rotaryDims..<headDim { #expect(got[h * headDim + d] == x[h * headDim + d]) }
                }
            }
        }
    }

    @Test("RoPE pair layout: NeoX rotates (i, i+d/2), interleaved rotates (2i, 2i+1)")
    func ropePairs() {
        // Position 1, dims 4: pair 0 has angle 1 rad, pair 1 has angle 1/100 rad.
        var neox: [Float] = [1, 0, 0, 0]
        VectorOps.rope(&neox, heads: 1, headDim: 4, rotaryDims: 4, position: 1, base: 10000, style: .neox)
        #expect(abs(neox[0] - cos(1)) < 1e-6 && abs(neox[2] - sin(1)) < 1e-6 && neox[1] == 0 && neox[3] == 0)
        var inter: [Float] = [1, 0, 0, 0]
        VectorOps.rope(&inter, heads: 1, headDim: 4, rotaryDims: 4, position: 1, base: 10000, style: .interleaved)
        #expect(abs(inter[0] - cos(1)) < 1e-6 && abs(inter[1] - sin(1)) < 1e-6 && inter[2] == 0 && inter[3] == 0)
    }

    @Test("f16 and bf16 bulk conversions", arguments: lengths)
    func conversions(n: Int) {
        let x = randomFloats(n, seed: 12, range: -70000...70000)
        var h = [Float16](repeating: 0, count: n)
        VectorOps.f32ToF16(x, into: &h, count: n)
        #expect(h == x.map { Float16($0) })
        var back = [Float](repeating: 0, count: n)
        VectorOps.f16ToF32(h, into: &back, count: n)
        #expect(back == h.map { Float($0) })
        let b = x.map(BF16.fromFloat)
        VectorOps.bf16ToF32(b, into: &back, count: n)
        #expect(back == b.map(BF16.toFloat))
    }
}
