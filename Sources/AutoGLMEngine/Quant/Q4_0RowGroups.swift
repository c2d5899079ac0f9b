// Q4_0 matrices regrouped 16 rows at a time for the matvec kernels (same bytes, same values, another order).

/// The layout of a Q4_0 matrix grouped by 16 rows: for each group of 16 rows and each block of 32 columns, the
/// rows' f16 scales (`scaleBytes`), then 16 lines of 16 bytes, line p holding byte p of every row's `BlockQ4_0`
/// codes (row j at byte j: low nibble = column p of the block, high nibble = column p + 16). A group's blocks follow
/// each other, and the groups follow each other, so a matrix takes exactly the bytes of its row-major form.
/// A 16-lane vector of one line (two 8-lane vectors) is then one column of 16 rows, which the kernels multiply with
/// a broadcast activation (AVX512RowGroups.swift, RowGroups8.swift).
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

    /// Writes the `columns` values of row `row` of a grouped matrix at `base`: the row's blocks copied back
    /// (`copyRow`) and widened by `Dequantize`, so the values are those of the row-major matrix bit for bit.
    static func dequantizeRow(_ base: UnsafeRawPointer, row: Int, columns n: Int,
                              into out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(byteCount: n / BlockQ4_0.elements * BlockQ4_0.byteCount, alignment: 64) {
            copyRow(base, row: row, columns: n, into: $0.baseAddress!)
            Dequantize.row(UnsafeRawPointer($0.baseAddress!), format: .q4_0, columns: n, into: out)
        }
    }

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

    /// Regroups group `group` of a row-major Q4_0 matrix at `source` (rows of `columns` / 32 blocks) into
    /// `destination`, which may be `source` itself: a group takes the same bytes in both orders, and its rows are
    /// first copied to `scratch` (`groupBytes(columns:)` bytes).
    static func regroup(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer, group: Int,
                        columns n: Int, scratch: UnsafeMutableRawPointer) {
        let bytes = groupBytes(columns: n)
        let rowBytes = bytes / rows
        scratch.copyMemory(from: source + group * bytes, byteCount: bytes)
        let out = destination + group * bytes
        for j in 0..<rows {
            let row = UnsafeRawPointer(scratch) + j * rowBytes
            for b in 0..<(n / BlockQ4_0.elements) {
                let block = row + b * BlockQ4_0.byteCount
                let o = out + b * byteCount
                o.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 2 * j, as: UInt16.self)
                for k in 0..<16 {
                    o.storeBytes(of: block.load(fromByteOffset: 2 + k, as: UInt8.self),
                                 toByteOffset: scaleBytes + 16 * k + j, as: UInt8.self)
                }
            }
        }
    }
}

extension PackedMatrix {
    /// The layout the matrix kernels run this matrix in: Q4_0 with Float32 activations grouped by 16 rows
    /// (`groupingQ4_0Rows`; decode of SmolLM2 Q4_0 in `make bench`, both kernel families), every other matrix as it
    /// is.
    /// `inPlace` regroups this matrix's own storage (only for a matrix nothing else reads: a fresh conversion);
    /// otherwise the groups go to new storage and `release` is handed each stretch of the source already copied
    /// (a few MiB at a time), so that a mapped checkpoint's pages can be let go as the copy advances.
    public func executionLayout(inPlace: Bool = false,
                                release: ((UnsafeRawPointer, Int) -> Void)? = nil) throws -> PackedMatrix {
        guard regroupsForExecution else { return self }
        if inPlace, let storage = owner as? PackedStorage, UnsafeRawPointer(storage.pointer) == data {
            return try regrouped(into: storage, release: nil)
        }
        return try regrouped(into: PackedStorage(byteCount: byteCount), release: release)
    }

    /// Whether `executionLayout` regroups this matrix.
    public var regroupsForExecution: Bool {
        format == .q4_0 && rowGroup == 1 && activations == .float32
            && Q4_0RowGroup.supports(rows: rows, columns: columns)
    }

    /// This Q4_0 matrix in the `Q4_0RowGroup` order, in new storage (a matrix already grouped is returned as is).
    /// Throws for another format or a row count that is not a multiple of 16.
    public func groupingQ4_0Rows() throws -> PackedMatrix {
        if rowGroup == Q4_0RowGroup.rows { return self }
        return try regrouped(into: PackedStorage(byteCount: byteCount), release: nil)
    }

    private func regrouped(into storage: PackedStorage, release: ((UnsafeRawPointer, Int) -> Void)?) throws
        -> PackedMatrix {
        guard format == .q4_0, rowGroup == 1 else {
            throw QuantError.invalidLayout("only row-major q4_0 matrices are grouped by rows, not \(format.rawValue)")
        }
        guard Q4_0RowGroup.supports(rows: rows, columns: columns) else {
            throw QuantError.invalidLayout("\(rows) rows are not whole groups of \(Q4_0RowGroup.rows)")
        }
        guard storage.byteCount >= byteCount else {
            throw QuantError.storageTooSmall(format: format, rows: rows, columns: columns, needed: byteCount,
                                             got: storage.byteCount)
        }
        let groupBytes = Q4_0RowGroup.groupBytes(columns: columns)
        let releaseBytes = 8 << 20
        var released = 0
        withUnsafeTemporaryAllocation(byteCount: groupBytes, alignment: 64) { scratch in
            for g in 0..<(rows / Q4_0RowGroup.rows) {
                Q4_0RowGroup.regroup(data, into: storage.pointer, group: g, columns: columns,
                                     scratch: scratch.baseAddress!)
                let copied = (g + 1) * groupBytes
                if let release, copied - released >= releaseBytes || copied == byteCount {
                    release(data + released, copied - released)
                    released = copied
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
