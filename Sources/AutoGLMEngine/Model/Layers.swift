import Foundation

/// A linear layer y = W x (+ b): W is (out, in) packed, b is Float32.
public struct Linear: @unchecked Sendable {
    public let weight: PackedMatrix
    public let bias: [Float]?

    public init(weight: PackedMatrix, bias: [Float]? = nil) {
        self.weight = weight
        self.bias = bias
    }

    public var inputs: Int { weight.columns }
    public var outputs: Int { weight.rows }

    /// Y (n, out) = X (n, in) @ Wᵀ (+ b per row). Matmul for a batch, matvec for one token.
    @inline(__always)
    func callAsFunction(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>,
                        pool: ComputePool?) {
        if n == 1 {
            MatrixKernels.matvec(weight, x, into: y, pool: pool)
        } else {
            MatrixKernels.matmul(weight, x, count: n, into: y, pool: pool)
        }
        addBias(y, count: n)
    }

    /// y[t] += b for each of `n` rows.
    @inline(__always)
    func addBias(_ y: UnsafeMutablePointer<Float>, count n: Int) {
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            guard let bp = b.baseAddress else { return }
            for t in 0..<n { VectorOps.add(y + t * outputs, bp, into: y + t * outputs, count: outputs) }
        }
    }
}

/// RMSNorm with a learned Float32 weight: y = x / rms(x) · w, row by row.
public struct RMSNorm: Sendable {
    public let weight: [Float]
    public let epsilon: Float

    public init(weight: [Float], epsilon: Float) {
        self.weight = weight
        self.epsilon = epsilon
    }

    /// Normalises each of `n` rows of `weight.count` values from `x` into `y` (may alias); a batch's rows spread over
    /// `pool` (`forRowRanges`).
    @inline(__always)
    func callAsFunction(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>,
                        pool: ComputePool? = nil) {
        let d = weight.count
        weight.withUnsafeBufferPointer { w in
            forRowRanges(n, pool: pool) { rows in
                for t in rows { VectorOps.rmsNorm(x + t * d, weight: w.baseAddress!, epsilon: epsilon, into: y + t * d, count: d) }
            }
        }
    }
}

/// Runs `body` over row ranges that cover `0..<n` once: spread over `pool` for a batch of at least
/// `parallelRowMinimum` rows (prefill's row-wise steps: norms, rotary positions, activation, residual adds), else in one
/// call on this thread (a decode row costs less than handing it to the pool).
@inline(__always)
func forRowRanges(_ n: Int, pool: ComputePool?, _ body: (Range<Int>) -> Void) {
    guard let pool, pool.threadCount > 1, n >= parallelRowMinimum else { body(0..<n); return }
    pool.parallelRanges(n, minimumChunk: parallelRowMinimum / 2, chunksPerThread: 2, body)
}

/// Fewest rows of a row-wise step that go to the pool.
let parallelRowMinimum = 16

/// Token embedding table (vocab, hidden), looked up by dequantising one row per token.
public struct Embedding: @unchecked Sendable {
    public let table: PackedMatrix

    public init(table: PackedMatrix) { self.table = table }

    public var vocab: Int { table.rows }
    public var width: Int { table.columns }

    /// Writes the embedding rows of `tokens` into `x` (n, hidden). Throws on an id outside the vocabulary.
    func lookup(_ tokens: UnsafeBufferPointer<Int32>, into x: UnsafeMutablePointer<Float>) throws {
        for (t, token) in tokens.enumerated() {
            let id = Int(token)
            guard id >= 0, id < vocab else { throw ModelError.tokenOutOfRange(token: id, vocab: vocab) }
            table.unpackRow(id, into: x + t * width)
        }
    }
}

/// A Float32 buffer allocated once (64-byte aligned) and reused for every forward pass.
final class ScratchBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    var bytes: Int { count * 4 }
}
