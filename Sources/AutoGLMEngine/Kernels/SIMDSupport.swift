// Small SIMD helpers shared by the kernels. All loads and stores are unaligned.

typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Zero-extends 8 bytes and converts them to floats (vpmovzxbd + vcvtdq2ps).
@inline(__always) func floats(_ v: SIMD8<UInt8>) -> F8 {
    F8(SIMD8<Int32>(truncatingIfNeeded: v))
}

/// Sign-extends 8 bytes and converts them to floats (vpmovsxbd + vcvtdq2ps).
@inline(__always) func floats(_ v: SIMD8<Int8>) -> F8 {
    F8(SIMD8<Int32>(truncatingIfNeeded: v))
}

/// Loads 8 halfs and widens them (vcvtph2ps).
@inline(__always) func loadHalf8(_ raw: UnsafeRawPointer) -> F8 {
    F8(raw.loadUnaligned(as: SIMD8<Float16>.self))
}

/// Loads 8 bfloat16 values and widens them (shift into the upper half of each lane).
@inline(__always) func loadBF16x8(_ raw: UnsafeRawPointer) -> F8 {
    let h = raw.loadUnaligned(as: SIMD8<UInt16>.self)
    return unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16, to: F8.self)
}

/// Pairwise horizontal sum.
@inline(__always) func hsum(_ v: F8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
}

@inline(__always) func hmax(_ v: F8) -> Float {
    let a = pointwiseMax(v.lowHalf, v.highHalf)
    let b = pointwiseMax(a.lowHalf, a.highHalf)
    return Swift.max(b[0], b[1])
}

@inline(__always) func f16Scalar(_ raw: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}
