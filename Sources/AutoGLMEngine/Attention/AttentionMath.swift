import AutoGLMSpecs

/// How one cached row (one token, one KV head, `headDim` elements) is laid out in memory.
///
/// Quantised rows keep their group parameters first, then the data:
/// - INT8: `groups` f16 scales, then `headDim` signed bytes; x ≈ scale · q, q ∈ [-127, 127] (symmetric).
/// - INT4: `groups` (f16 scale, f16 min) pairs, then packed nibbles; x ≈ min + scale · q, q ∈ [0, 15].
///   Within a group of G elements, byte k holds element k in its low nibble and element k + ⌈G/2⌉ in its high nibble,
///   so a full group of 32 unpacks into two runs of 16 with one mask and one shift.
/// Groups run along head_dim, 32 elements each; the last group may be shorter.
struct KVRowLayout: Sendable, Equatable {
    static let groupSize = 32
    let format: KVCacheFormat
    let headDim: Int

    var groups: Int { (headDim + KVRowLayout.groupSize - 1) / KVRowLayout.groupSize }
    /// f16 parameters at the start of the row.
    var parameterCount: Int {
        switch format {
        case .f32, .f16: return 0
        case .int8: return groups
        case .int4: return 2 * groups
        }
    }
    var dataOffset: Int { parameterCount * 2 }
    var dataBytes: Int {
        switch format {
        case .f32: return headDim * 4
        case .f16: return headDim * 2
        case .int8: return headDim
        case .int4:
            let full = headDim / KVRowLayout.groupSize
            let tail = headDim % KVRowLayout.groupSize
            return full * KVRowLayout.groupSize / 2 + (tail + 1) / 2
        }
    }
    /// Bytes of one row, padded to 4 so F32 rows stay aligned.
    var rowBytes: Int { (dataOffset + dataBytes + 3) & ~3 }

    /// Size of group `g` in elements.
    @inline(__always) func groupLength(_ g: Int) -> Int {
        min(KVRowLayout.groupSize, headDim - g * KVRowLayout.groupSize)
    }
}

/// Small SIMD helpers for the attention kernels: dot products of an F32 query against a stored row, and
/// accumulation of a scaled stored row, each decoding F16/INT8/INT4 rows in registers (no dequantised copy).
enum AttentionMath {
    // MARK: Writing rows

    /// Encodes `headDim` floats into a row of the given layout.
    static func encode(_ x: UnsafePointer<Float>, into row: UnsafeMutableRawPointer, layout: KVRowLayout) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            row.copyMemory(from: x, byteCount: d * 4)
        case .f16:
            let h = row.assumingMemoryBound(to: Float16.self)
            for j in 0..<d { h[j] = Float16(x[j]) }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: Int8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                var maxAbs: Float = 0
                for j in start..<(start + len) { maxAbs = max(maxAbs, abs(x[j])) }
                let scale16 = Float16(maxAbs / 127)
                params[g] = scale16
                let scale = Float(scale16)
                let inv: Float = scale > 0 ? 1 / scale : 0
                for j in start..<(start + len) {
                    let q = (x[j] * inv).rounded(.toNearestOrEven)
                    data[j] = Int8(max(-127, min(127, q)))
                }
            }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: UInt8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                var lo = Float.infinity, hi = -Float.infinity
                for j in start..<(start + len) { lo = min(lo, x[j]); hi = max(hi, x[j]) }
                let min16 = Float16(lo)
                let scale16 = Float16((hi - Float(min16)) / 15)
                params[2 * g] = scale16
                params[2 * g + 1] = min16
                let scale = Float(scale16), minimum = Float(min16)
                let inv: Float = scale > 0 ? 1 / scale : 0
                let half = (len + 1) / 2
                let bytes = data + g * (KVRowLayout.groupSize / 2)
                for k in 0..<half { bytes[k] = 0 }
                for e in 0..<len {
                    let q = UInt8(max(0, min(15, ((x[start + e] - minimum) * inv).rounded(.toNearestOrEven))))
                    if e < half { bytes[e] |= q } else { bytes[e - half] |= q << 4 }
                }
            }
        }
    }

    /// Decodes a row into `headDim` floats.
    static func decode(_ row: UnsafeRawPointer, layout: KVRowLayout, into y: UnsafeMutablePointer<Float>) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            y.update(from: row.assumingMemoryBound(to: Float.self), count: d)
        case .f16:
            let h = row.assumingMemoryBound(to: Float16.self)
            for j in 0..<d { y[j] = Float(h[j]) }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: Int8.self)
            for j in 0..<d { y[j] = Float(params[j / KVRowLayout.groupSize]) * Float(data[j]) }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = (row + layout.dataOffset).assumingMemoryBound(to: UInt8.self)
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let scale = Float(params[2 * g]), minimum = Float(params[2 * g + 1])
                let half = (len + 1) / 2
                let bytes = data + g * (KVRowLayout.groupSize / 2)
                for e in 0..<len {
                    let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                    y[start + e] = minimum + scale * Float(q)
                }
            }
        }
    }

    // MARK: Dot products

    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// q · row for a row in `layout`.
    @inline(__always)
    static func dot(_ q: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        switch layout.format {
        case .f32: return dotF32(q, row.assumingMemoryBound(to: Float.self), layout.headDim)
        case .f16: return dotF16(q, row, layout.headDim)
        case .int8: return dotInt8(q, row, layout)
        case .int4: return dotInt4(q, row, layout)
        }
    }

    @inline(__always)
    static func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            s0 += load8(a + i) * load8(b + i)
            s1 += load8(a + i + 8) * load8(b + i + 8)
            i += 16
        }
        if i + 8 <= n { s0 += load8(a + i) * load8(b + i); i += 8 }
        var s = (s0 + s1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    @inline(__always)
    static func dotF16(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let h0 = row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
            let h1 = row.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<Float16>.self)
            s0 += load8(a + i) * SIMD8<Float>(h0)
            s1 += load8(a + i + 8) * SIMD8<Float>(h1)
            i += 16
        }
        if i + 8 <= n {
            s0 += load8(a + i) * SIMD8<Float>(row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self))
            i += 8
        }
        var s = (s0 + s1).sum()
        let h = row.assumingMemoryBound(to: Float16.self)
        while i < n { s += a[i] * Float(h[i]); i += 1 }
        return s
    }

    @inline(__always)
    static func dotInt8(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        let params = row.assumingMemoryBound(to: Float16.self)
        let data = row + layout.dataOffset
        var total: Float = 0
        for g in 0..<layout.groups {
            let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
            var acc: Float = 0
            if len == KVRowLayout.groupSize {
                var s = SIMD8<Float>()
                for k in stride(from: 0, to: 32, by: 8) {
                    let b = data.loadUnaligned(fromByteOffset: start + k, as: SIMD8<Int8>.self)
                    s += load8(a + start + k) * SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: b))
                }
                acc = s.sum()
            } else {
                let b = data.assumingMemoryBound(to: Int8.self)
                for j in start..<(start + len) { acc += a[j] * Float(b[j]) }
            }
            total += Float(params[g]) * acc
        }
        return total
    }

    @inline(__always)
    static func dotInt4(_ a: UnsafePointer<Float>, _ row: UnsafeRawPointer, _ layout: KVRowLayout) -> Float {
        let params = row.assumingMemoryBound(to: Float16.self)
        let data = row + layout.dataOffset
        var total: Float = 0
        for g in 0..<layout.groups {
            let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
            let scale = Float(params[2 * g]), minimum = Float(params[2 * g + 1])
            let bytesOffset = g * (KVRowLayout.groupSize / 2)
            var acc: Float = 0, qsum: Float = 0
            if len == KVRowLayout.groupSize {
                var s = SIMD8<Float>(), t = SIMD8<Float>()
                for k in stride(from: 0, to: 16, by: 8) {
                    let b = SIMD8<Int32>(truncatingIfNeeded: data.loadUnaligned(fromByteOffset: bytesOffset + k,
                                                                                 as: SIMD8<UInt8>.self))
                    let lo = SIMD8<Float>(b & 0x0F), hi = SIMD8<Float>(b &>> 4)
                    let qa = load8(a + start + k), qb = load8(a + start + 16 + k)
                    s += qa * lo + qb * hi
                    t += qa + qb
                }
                acc = s.sum(); qsum = t.sum()
            } else {
                let bytes = data.assumingMemoryBound(to: UInt8.self) + bytesOffset
                let half = (len + 1) / 2
                for e in 0..<len {
                    let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                    acc += a[start + e] * Float(q)
                    qsum += a[start + e]
                }
            }
            total += scale * acc + minimum * qsum
        }
        return total
    }

    // MARK: Accumulation  y += w · row

    @inline(__always)
    static func axpy(_ w: Float, _ row: UnsafeRawPointer, _ layout: KVRowLayout, _ y: UnsafeMutablePointer<Float>) {
        let d = layout.headDim
        switch layout.format {
        case .f32:
            let x = row.assumingMemoryBound(to: Float.self)
            let wv = SIMD8<Float>(repeating: w)
            var i = 0
            while i + 8 <= d { store8(load8(y + i) + wv * load8(x + i), y + i); i += 8 }
            while i < d { y[i] += w * x[i]; i += 1 }
        case .f16:
            let wv = SIMD8<Float>(repeating: w)
            var i = 0
            while i + 8 <= d {
                let h = SIMD8<Float>(row.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self))
                store8(load8(y + i) + wv * h, y + i)
                i += 8
            }
            let h = row.assumingMemoryBound(to: Float16.self)
            while i < d { y[i] += w * Float(h[i]); i += 1 }
        case .int8:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = row + layout.dataOffset
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let ws = w * Float(params[g])
                if len == KVRowLayout.groupSize {
                    let wv = SIMD8<Float>(repeating: ws)
                    for k in stride(from: 0, to: 32, by: 8) {
                        let b = data.loadUnaligned(fromByteOffset: start + k, as: SIMD8<Int8>.self)
                        let v = SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: b))
                        store8(load8(y + start + k) + wv * v, y + start + k)
                    }
                } else {
                    let b = data.assumingMemoryBound(to: Int8.self)
                    for j in start..<(start + len) { y[j] += ws * Float(b[j]) }
                }
            }
        case .int4:
            let params = row.assumingMemoryBound(to: Float16.self)
            let data = row + layout.dataOffset
            for g in 0..<layout.groups {
                let start = g * KVRowLayout.groupSize, len = layout.groupLength(g)
                let ws = w * Float(params[2 * g]), wm = w * Float(params[2 * g + 1])
                let bytesOffset = g * (KVRowLayout.groupSize / 2)
                if len == KVRowLayout.groupSize {
                    let wv = SIMD8<Float>(repeating: ws), mv = SIMD8<Float>(repeating: wm)
                    for k in stride(from: 0, to: 16, by: 8) {
                        let b = SIMD8<Int32>(truncatingIfNeeded: data.loadUnaligned(fromByteOffset: bytesOffset + k,
                                                                                     as: SIMD8<UInt8>.self))
                        let lo = SIMD8<Float>(b & 0x0F), hi = SIMD8<Float>(b &>> 4)
                        store8(load8(y + start + k) + (wv * lo + mv), y + start + k)
                        store8(load8(y + start + 16 + k) + (wv * hi + mv), y + start + 16 + k)
                    }
                } else {
                    let bytes = data.assumingMemoryBound(to: UInt8.self) + bytesOffset
                    let half = (len + 1) / 2
                    for e in 0..<len {
                        let q = e < half ? bytes[e] & 0x0F : bytes[e - half] >> 4
                        y[start + e] += ws * Float(q) + wm
                    }
                }
            }
        }
    }

    /// y *= c
    @inline(__always) static func scale(_ y: UnsafeMutablePointer<Float>, _ d: Int, by c: Float) {
        let cv = SIMD8<Float>(repeating: c)
        var i = 0
        while i + 8 <= d { store8(load8(y + i) * cv, y + i); i += 8 }
        while i < d { y[i] *= c; i += 1 }
    }
}
