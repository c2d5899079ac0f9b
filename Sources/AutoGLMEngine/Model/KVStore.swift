import Foundation

/// The model's key/value memory and causal attention over it: keys and values of every layer for the tokens seen so
/// far. A forward pass appends each layer's new keys and values, attends, and commits the tokens at the end.
public final class KVStore: @unchecked Sendable {
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let capacity: Int
    /// Committed tokens.
    public private(set) var length: Int = 0
    private let keys: [ScratchBuffer]
    private let values: [ScratchBuffer]

    public init(layers: Int, kvHeads: Int, headDim: Int, capacity: Int) {
        self.layers = layers; self.kvHeads = kvHeads; self.headDim = headDim; self.capacity = capacity
        keys = (0..<layers).map { _ in ScratchBuffer(capacity * kvHeads * headDim) }
        values = (0..<layers).map { _ in ScratchBuffer(capacity * kvHeads * headDim) }
    }

    /// Bytes held by the cache.
    public var residentBytes: Int { 2 * layers * capacity * kvHeads * headDim * 4 }

    /// Forgets every token.
    public func reset() { length = 0 }

    /// Marks `count` appended tokens as part of the context.
    func commit(_ count: Int) { length += count }

    /// Stores keys and values of `n` new tokens (each (n, kvHeads·headDim)) for `layer` after the committed ones.
    func append(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count n: Int) {
        let w = kvHeads * headDim
        keys[layer].pointer.advanced(by: length * w).update(from: k, count: n * w)
        values[layer].pointer.advanced(by: length * w).update(from: v, count: n * w)
    }

    /// out (n, heads·headDim) = softmax(q kᵀ · scale) v for `n` queries at positions length..<length+n, each
    /// attending to positions ≤ its own; query head h reads KV head h / (heads / kvHeads).
    func attend(layer: Int, q: UnsafePointer<Float>, count n: Int, heads: Int, scale: Float,
                out: UnsafeMutablePointer<Float>, pool: ComputePool?) {
        let w = kvHeads * headDim
        let qWidth = heads * headDim
        let group = heads / kvHeads
        let kBase = UnsafePointer(keys[layer].pointer), vBase = UnsafePointer(values[layer].pointer)
        let start = length
        let hd = headDim
        let body: (Int) -> Void = { task in
            let t = task / heads, h = task % heads
            let g = h / group
            let visible = start + t + 1
            let qh = q + t * qWidth + h * hd
            let o = out + t * qWidth + h * hd
            withUnsafeTemporaryAllocation(of: Float.self, capacity: visible) { buf in
                let s = buf.baseAddress!
                for j in 0..<visible { s[j] = VectorOps.dot(qh, kBase + j * w + g * hd, count: hd) * scale }
                VectorOps.softmax(s, count: visible)
                o.update(repeating: 0, count: hd)
                for j in 0..<visible { VectorOps.axpy(s[j], vBase + j * w + g * hd, o, count: hd) }
            }
        }
        if let pool { pool.parallelFor(n * heads, body) } else { for i in 0..<(n * heads) { body(i) } }
    }
}
