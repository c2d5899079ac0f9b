import Testing
@testable import AutoGLMEngine

/// The 8-lane panel matmul's packing and register tiles on small integers (exact in Float32).
@Suite("8-lane packed panels")
struct KernelPanelTests {
    @Test("a packed panel holds the rows column by column, zero-padded to 16 rows",
          arguments: [(rows: 16, columns: 7), (rows: 16, columns: 24), (rows: 16, columns: 29), (rows: 5, columns: 17),
                      (rows: 11, columns: 16)])
    func pack(shape: (rows: Int, columns: Int)) {
        let n = shape.columns, ldw = n + 3
        let w = (0..<(shape.rows * ldw)).map { Float($0) }
        var panel = [Float](repeating: .nan, count: Panels8.panelCount(columns: n))
        w.withUnsafeBufferPointer { wb in
            panel.withUnsafeMutableBufferPointer {
                Panels8.pack(wb.baseAddress!, ldw: ldw, rows: shape.rows, columns: n, into: $0.baseAddress!)
            }
        }
        for k in 0..<n {
            for i in 0..<16 {
                #expect(panel[k * 16 + i] == (i < shape.rows ? w[i * ldw + k] : 0), "k \(k) row \(i)")
            }
        }
    }

    @Test("the tiles cover 16×6, the 2- and 1-token edges and partial panels",
          arguments: [(rows: 16, tokens: 6), (rows: 16, tokens: 11), (rows: 7, tokens: 13), (rows: 1, tokens: 1),
                      (rows: 16, tokens: 21), (rows: 16, tokens: 2)])
    func tiles(shape: (rows: Int, tokens: Int)) {
        let ldy = shape.rows + 3
        for n in [37, 1] {
            let w = (0..<(shape.rows * n)).map { Float(($0 * 13) % 17) - 8 }
            let x = (0..<(shape.tokens * n)).map { Float(($0 * 7) % 11) - 5 }
            var panel = [Float](repeating: .nan, count: Panels8.panelCount(columns: n))
            var y = [Float](repeating: -1, count: shape.tokens * ldy)
            w.withUnsafeBufferPointer { wb in
                panel.withUnsafeMutableBufferPointer {
                    Panels8.pack(wb.baseAddress!, ldw: n, rows: shape.rows, columns: n, into: $0.baseAddress!)
                }
            }
            panel.withUnsafeBufferPointer { pb in
                x.withUnsafeBufferPointer { xb in
                    y.withUnsafeMutableBufferPointer { yb in
                        Panels8.matmul(pb.baseAddress!, columns: n, xb.baseAddress!, ldx: n, tokens: shape.tokens,
                                       yb.baseAddress!, ldy: ldy, rows: shape.rows)
                    }
                }
            }
            for t in 0..<shape.tokens {
                for r in 0..<ldy {
                    var s: Float = 0
                    for k in 0..<n where r < shape.rows { s += w[r * n + k] * x[t * n + k] }
                    // Columns past `rows` are left untouched.
                    #expect(y[t * ldy + r] == (r < shape.rows ? s : -1), "n \(n) token \(t) row \(r)")
                }
            }
        }
    }
}
