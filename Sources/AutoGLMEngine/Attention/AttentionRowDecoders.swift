import AutoGLMSpecs

/// Decodes 8 consecutive elements of a stored row into registers. Chunk c covers elements 8c ..< 8c + 8; used by
/// the multi-lane kernels when head_dim is a multiple of 32 (every group full). Decoding happens in registers,
/// once per chunk for several query lanes.
protocol KVChunkDecoder {
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float>
}

enum F32Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        row.loadUnaligned(fromByteOffset: 32 * c, as: SIMD8<Float>.self)
    }
}

enum F16Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        SIMD8<Float>(row.loadUnaligned(fromByteOffset: 16 * c, as: SIMD8<Float16>.self))
    }
}

enum Int8Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        let scale = Float(row.load(fromByteOffset: 2 * (c >> 2), as: Float16.self))
        let b = row.loadUnaligned(fromByteOffset: dataOffset + 8 * c, as: SIMD8<Int8>.self)
        return SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: b)) * scale
    }
}

enum Int4Chunks: KVChunkDecoder {
    @inline(__always)
    static func decode8(_ row: UnsafeRawPointer, chunk c: Int, dataOffset: Int) -> SIMD8<Float> {
        let g = c >> 2, k = c & 3
        let scale = Float(row.load(fromByteOffset: 4 * g, as: Float16.self))
        let minimum = Float(row.load(fromByteOffset: 4 * g + 2, as: Float16.self))
        // Byte j of a group holds element j (low nibble) and element j + 16 (high nibble).
        let b = SIMD8<Int32>(truncatingIfNeeded: row.loadUnaligned(fromByteOffset: dataOffset + 16 * g + 8 * (k & 1),
                                                                   as: SIMD8<UInt8>.self))
        let q = k < 2 ? b & 0x0F : b &>> 4
        return SIMD8<Float>(q) * scale + minimum
    }
}

extension AttentionMath {
    /// scores[l · scoreStride] = q_l · row for `lanes` query lanes (q_l at q + l · headDim).
    @inline(__always)
    static func dotLanes<D: KVChunkDecoder>(_: D.Type, q: UnsafePointer<Float>, lanes: Int, headDim d: Int,
                                            row: UnsafeRawPointer, dataOffset: Int,
                                            scores: UnsafeMutablePointer<Float>, scoreStride: Int) {
        let chunks = d / 8
        var l = 0
        while l + 4 <= lanes {
            let q0 = q + l * d, q1 = q0 + d, q2 = q1 + d, q3 = q2 + d
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            for c in 0..<chunks {
                let k = D.decode8(row, chunk: c, dataOffset: dataOffset)
                a0 += load8(q0 + 8 * c) * k
                a1 += load8(q1 + 8 * c) * k
                a2 += load8(q2 + 8 * c) * k
                a3 += load8(q3 + 8 * c) * k
            }
            scores[l * scoreStride] = a0.sum()
            scores[(l + 1) * scoreStride] = a1.sum()
            scores[(l + 2) * scoreStride] = a2.sum()
            scores[(l + 3) * scoreStride] = a3.sum()
            l += 4
        }
        while l < lanes {
            let q0 = q + l * d
            // Same summation order as the four-lane path, so results do not depend on how lanes are grouped.
            var a0 = SIMD8<Float>()
            for c in 0..<chunks { a0 += load8(q0 + 8 * c) * D.decode8(row, chunk: c, dataOffset: dataOffset) }
            scores[l * scoreStride] = a0.sum()
            l += 1
        }
    }

    /// acc_l += w[l · weightStride] · row for `lanes` accumulators (acc_l at acc + l · headDim).
    @inline(__always)
    static func axpyLanes<D: KVChunkDecoder>(_: D.Type, weights w: UnsafePointer<Float>, weightStride: Int, lanes: Int,
                                             headDim d: Int, row: UnsafeRawPointer, dataOffset: Int,
                                             acc: UnsafeMutablePointer<Float>) {
        let chunks = d / 8
        var l = 0
        while l + 4 <= lanes {
            let w0 = SIMD8<Float>(repeating: w[l * weightStride]), w1 = SIMD8<Float>(repeating: w[(l + 1) * weightStride])
            let w2 = SIMD8<Float>(repeating: w[(l + 2) * weightStride])
            let w3 = SIMD8<Float>(repeating: w[(l + 3) * weightStride])
            let y0 = acc + l * d, y1 = y0 + d, y2 = y1 + d, y3 = y2 + d
            for c in 0..<chunks {
                let v = D.decode8(row, chunk: c, dataOffset: dataOffset)
                store8(load8(y0 + 8 * c) + w0 * v, y0 + 8 * c)
                store8(load8(y1 + 8 * c) + w1 * v, y1 + 8 * c)
                store8(load8(y2 + 8 * c) + w2 * v, y2 + 8 * c)
                store8(load8(y3 + 8 * c) + w3 * v, y3 + 8 * c)
            }
            l += 4
        }
        while l < lanes {
            let w0 = SIMD8<Float>(repeating: w[l * weightStride])
            let y0 = acc + l * d
            for c in 0..<chunks {
                store8(load8(y0 + 8 * c) + w0 * D.decode8(row, chunk: c, dataOffset: dataOffset), y0 + 8 * c)
            }
            l += 1
        }
    }

    /// e^x for 8 lanes (range reduction by ln 2 and a degree-5 polynomial; about 1 ulp for x in [-87, 88]).
    @inline(__always)
    static func exp8(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let x = input.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.3))
        let n = (x * 1.442_695_04).rounded(.toNearestOrEven)
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        let y = p * r * r + r + 1
        let bits = (SIMD8<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
        return y * unsafeBitCast(bits, to: SIMD8<Float>.self)
    }

    /// x[j] = e^(x[j] − shift) for j < count; returns the sum.
    @inline(__always)
    static func expShifted(_ x: UnsafeMutablePointer<Float>, _ count: Int, shift: Float) -> Float {
        let s = SIMD8<Float>(repeating: shift)
        var sum = SIMD8<Float>()
        var j = 0
        while j + 8 <= count {
            let e = exp8(load8(x + j) - s)
            store8(e, x + j)
            sum += e
            j += 8
        }
        var total = sum.sum()
        if j < count {
            var tail = SIMD8<Float>(repeating: -.infinity)
            for t in j..<count { tail[t - j] = x[t] }
            let e = exp8(tail - s)
            for t in j..<count { x[t] = e[t - j]; total += e[t - j] }
        }
        return total
    }
}
