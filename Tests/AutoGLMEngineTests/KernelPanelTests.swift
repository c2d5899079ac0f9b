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

    @Test("packed activations hold six tokens per column, zero-padded past the last token", arguments: [6, 11, 1])
    func packActivations(tokens: Int) {
        let n = 5, ldx = n + 2
        let x = (0..<(tokens * ldx)).map { Float($0 + 1) }
        var packed = [Float](repeating: .nan, count: Panels8.packedActivationsCount(tokens: tokens, columns: n))
        let groups = (tokens + 5) / 6
        #expect(packed.count == groups * 6 * n)
        x.withUnsafeBufferPointer { xb in
            packed.withUnsafeMutableBufferPointer {
                Panels8.packActivations(xb.baseAddress!, ldx: ldx, tokens: tokens, columns: n, groups: 0..<groups,
                                        into: $0.baseAddress!)
            }
        }
        for g in 0..<groups {
            for k in 0..<n {
                for j in 0..<6 {
                    let t = g * 6 + j
                    #expect(packed[(g * n + k) * 6 + j] == (t < tokens ? x[t * ldx + k] : 0), "group \(g) k \(k) j \(j)")
                }
            }
        }
    }

    @Test("the 16×6 tile covers full tiles, token remainders and partial panels",
          arguments: [(rows: 16, tokens: 6), (rows: 16, tokens: 11), (rows: 7, tokens: 13), (rows: 1, tokens: 1),
                      (rows: 16, tokens: 21), (rows: 16, tokens: 2)])
    func tiles(shape: (rows: Int, tokens: Int)) {
        let ldy = shape.rows + 3
        // 37 columns: the two-column loop and its one-column tail.
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
            var packed = [Float](repeating: .nan, count: Panels8.packedActivationsCount(tokens: shape.tokens, columns: n))
            x.withUnsafeBufferPointer { xb in
                packed.withUnsafeMutableBufferPointer {
                    Panels8.packActivations(xb.baseAddress!, ldx: n, tokens: shape.tokens, columns: n,
                                            groups: 0..<((shape.tokens + 5) / 6), into: $0.baseAddress!)
                }
            }
            panel.withUnsafeBufferPointer { pb in
                packed.withUnsafeBufferPointer { xb in
                    y.withUnsafeMutableBufferPointer { yb in
                        Panels8.matmul(pb.baseAddress!, columns: n, packed: xb.baseAddress!, tokens: shape.tokens,
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
