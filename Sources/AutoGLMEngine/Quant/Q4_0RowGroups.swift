// Q4_0 matrices regrouped 16 rows at a time for the AVX-512 matvec (same bytes, same values, another order).

/// The layout of a Q4_0 matrix grouped by 16 rows: for each group of 16 rows and each block of 32 columns, the
/// rows' f16 scales (`scaleBytes`), then 16 lines of 16 bytes, line p holding byte p of every row's `BlockQ4_0`
/// codes (row j at byte j: low nibble = column p of the block, high nibble = column p + 16). A group's blocks follow
/// each other, and the groups follow each other, so a matrix takes exactly the bytes of its row-major form.
/// A 16-lane vector of one line is then one column of 16 rows, which the AVX-512 kernels multiply with a broadcast
/// activation (see AVX512RowGroups.swift).
public enum Q4_0RowGroup {
    /// Rows per group.
    public static let rows = 16
    /// Bytes of the 16 f16 scales at the start of a group block.
    public static let scaleBytes = rows * 2
    /// Bytes of one group block: 16 rows × one `BlockQ4_0` (18 bytes).
    public static let byteCount = rows * BlockQ4_0.byteCount
    /// Bytes of one group of 16 rows over `columns` columns.
    public static func groupBytes(columns: Int) -> Int { columns / BlockQ4_0.elements * byteCount }

    /// Whether a Q4_0 matrix of this shape can be grouped: whole groups of rows.
    public static func supports(rows: Int, columns: Int) -> Bool {
        rows > 0 && rows % Self.rows == 0 && columns % BlockQ4_0.elements == 0
    }

    /// Writes the `columns` values of row `row` of a grouped matrix at `base`; the values are those of the row's
    /// `BlockQ4_0`s ((q − 8) · d).
    static func dequantizeRow(_ base: UnsafeRawPointer, row: Int, columns n: Int, into out: UnsafeMutablePointer<Float>) {
        let j = row % rows
        let group = base + (row / rows) * groupBytes(columns: n)
        for b in 0..<(n / BlockQ4_0.elements) {
            let p = group + b * byteCount
            let d = Float(loadF16(p, 2 * j))
            let o = out + b * BlockQ4_0.elements
            for k in 0..<16 {
                let byte = p.load(fromByteOffset: scaleBytes + 16 * k + j, as: UInt8.self)
                o[k] = (Float(byte & 0x0F) - 8) * d
                o[k + 16] = (Float(byte >> 4) - 8) * d
            }
        }
    }
}

extension Q4_0RowGroup {
    /// Writes row `row` of a grouped matrix at `base` as its row-major `BlockQ4_0`s (`columns` / 32 × 18 bytes).
    static func copyRow(_ base: UnsafeRawPointer, row: Int, columns n: Int, into out: UnsafeMutableRawPointer) {
        let j = row % rows
        let group = base + (row / rows) * groupBytes(columns: n)
        for b in 0..<(n / BlockQ4_0.elements) {
            let p = group + b * byteCount
            let o = out + b * BlockQ4_0.byteCount
            o.storeBytes(of: p.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self), as: UInt16.self)
            for k in 0..<16 {
                o.storeBytes(of: p.load(fromByteOffset: scaleBytes + 16 * k + j, as: UInt8.self), toByteOffset: 2 + k,
                             as: UInt8.self)
            }
        }
    }
}

extension PackedMatrix {
    /// The layout the kernels of `isa` run this matrix in: Q4_0 with Float32 activations grouped by 16 rows for
    /// AVX-512 (`groupingQ4_0Rows`; decode of SmolLM2 Q4_0 in `make bench`), every other matrix as it is.
    public func executionLayout(isa: KernelISA = .active) throws -> PackedMatrix {
        guard isa == .avx512, format == .q4_0, rowGroup == 1, activations == .float32,
              Q4_0RowGroup.supports(rows: rows, columns: columns) else { return self }
        return try groupingQ4_0Rows()
    }

    /// This Q4_0 matrix in the `Q4_0RowGroup` order, in new storage (a matrix already grouped is returned as is).
    /// Throws for another format or a row count that is not a multiple of 16.
    public func groupingQ4_0Rows() throws -> PackedMatrix {
        if rowGroup == Q4_0RowGroup.rows { return self }
        guard format == .q4_0 else {
            throw QuantError.invalidLayout("only q4_0 matrices are grouped by rows, not \(format.rawValue)")
        }
        guard Q4_0RowGroup.supports(rows: rows, columns: columns) else {
            throw QuantError.invalidLayout("\(rows) rows are not whole groups of \(Q4_0RowGroup.rows)")
        }
        let storage = PackedStorage(byteCount: byteCount)
        let blocks = columns / BlockQ4_0.elements
        let groupBytes = Q4_0RowGroup.groupBytes(columns: columns)
        for r in 0..<rows {
            let source = rowPointer(r)
            let group = storage.pointer + (r / Q4_0RowGroup.rows) * groupBytes
            let j = r % Q4_0RowGroup.rows
            for b in 0..<blocks {
                let block = source + b * BlockQ4_0.byteCount
                let out = group + b * Q4_0RowGroup.byteCount
                out.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 2 * j, as: UInt16.self)
                for k in 0..<16 {
                    out.storeBytes(of: block.load(fromByteOffset: 2 + k, as: UInt8.self),
                                   toByteOffset: Q4_0RowGroup.scaleBytes + 16 * k + j, as: UInt8.self)
                }
            }
        }
        var grouped = try PackedMatrix(format: format, rows: rows, columns: columns,
                                       data: UnsafeRawPointer(storage.pointer), availableBytes: storage.byteCount,
                                       owner: storage)
        grouped.rowGroup = Q4_0RowGroup.rows
        grouped.activations = activations
        return grouped
    }
}
