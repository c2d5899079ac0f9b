// SIMD dequantisation of packed rows (used by `PackedMatrix.dequantizeRow` and by the batched matmul).

enum Dequantize {
    /// Writes `n` Float32 values of one packed row to `out`.
    static func row(_ raw: UnsafeRawPointer, format: PackedFormat, columns n: Int, into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .f32:
            out.update(from: raw.assumingMemoryBound(to: Float.self), count: n)
        case .f16:
            var i = 0
            while i + 8 <= n { store8(loadHalf8(raw + 2 * i), out + i); i += 8 }
            while i < n { out[i] = f16Scalar(raw, 2 * i); i += 1 }
        case .bf16:
            var i = 0
            while i + 8 <= n { store8(loadBF16x8(raw + 2 * i), out + i); i += 8 }
            while i < n { out[i] = BF16.toFloat(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)); i += 1 }
        case .q8_0:
            for b in 0..<(n / 32) {
                let p = raw + b * 34
                let d = F8(repeating: f16Scalar(p))
                let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<Int8>.self)
                let o = out + b * 32
                store8(floats(q.lowHalf.lowHalf) * d, o)
                store8(floats(q.lowHalf.highHalf) * d, o + 8)
                store8(floats(q.highHalf.lowHalf) * d, o + 16)
                store8(floats(q.highHalf.highHalf) * d, o + 24)
            }
        case .q4_0:
            for b in 0..<(n / 32) {
                let p = raw + b * 18
                let d = F8(repeating: f16Scalar(p))
                let q = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
                let lo = unsafeBitCast(q & 0x0F, to: SIMD16<Int8>.self) &- 8
                let hi = unsafeBitCast(q &>> 4, to: SIMD16<Int8>.self) &- 8
                let o = out + b * 32
                store8(floats(lo.lowHalf) * d, o)
                store8(floats(lo.highHalf) * d, o + 8)
                store8(floats(hi.lowHalf) * d, o + 16)
                store8(floats(hi.highHalf) * d, o + 24)
            }
        case .q4_1, .int4g32, .int4g64, .int4g128:
            let g = format.blockElements
            let half = g / 2
            let bytes = format.blockBytes
            for b in 0..<(n / g) {
                let p = raw + b * bytes
                let d = F8(repeating: f16Scalar(p))
                let m = F8(repeating: f16Scalar(p, 2))
                let o = out + b * g
                var k = 0
                while k < half {
                    let q = p.loadUnaligned(fromByteOffset: 4 + k, as: SIMD16<UInt8>.self)
                    let lo = q & 0x0F
                    let hi = q &>> 4
                    store8(floats(lo.lowHalf) * d + m, o + k)
                    store8(floats(lo.highHalf) * d + m, o + k + 8)
                    store8(floats(hi.lowHalf) * d + m, o + half + k)
                    store8(floats(hi.highHalf) * d + m, o + half + k + 8)
                    k += 16
                }
            }
        case .int8:
            let scale = F8(repeating: Float(bitPattern: raw.loadUnaligned(as: UInt32.self)))
            let q = raw + Int8RowLayout.weightOffset
            var i = 0
            while i + 8 <= n { store8(floats(q.loadUnaligned(fromByteOffset: i, as: SIMD8<Int8>.self)) * scale, out + i); i += 8 }
            while i < n { out[i] = Float(q.load(fromByteOffset: i, as: Int8.self)) * scale[0]; i += 1 }
        }
    }
}
