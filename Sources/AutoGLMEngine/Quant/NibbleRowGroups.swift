// Nibble matrices (Q4_0, Q4_1, INT4-gN) regrouped 16 rows at a time for the matvec kernels (same bytes, same values,
// another order).

/// The layout of a nibble-format matrix grouped by 16 rows. For each group of 16 rows and each block of the format
/// (32 columns; INT4-gN: N), a group block holds the rows' f16 scales (`scaleBytes`), for the formats with a
/// minimum the rows' f16 minimums (`minimumBytes`), then one line of 16 bytes per code byte of a block (Q4_0, Q4_1,
/// INT4-g32: 16 lines; INT4-g64: 32; INT4-g128: 64), line p holding byte p of every row's block (row j at byte j:
/// low nibble = column p of the block, high nibble = column p + N/2). A group's blocks follow each other, and the
/// groups follow each other, so a matrix takes exactly the bytes of its row-major form.
/// One line widened is one column of 16 rows (two 8-lane halves, or one 16-lane vector), which the kernels multiply
/// with a broadcast activation (RowGroups8.swift; AVX512RowGroups.swift for Q4_0).
public struct NibbleRowGroup: Sendable, Equatable {
    /// Rows per group.
    public static let rows = 16

    /// The grouped format.
    public let format: PackedFormat

    /// The layout of `format`, nil for a format without nibble blocks.
    public init?(_ format: PackedFormat) {
        switch format {
        case .q4_0, .q4_1, .int4g32, .int4g64, .int4g128: self.format = format
        case .f32, .f16, .bf16, .q8_0, .int8: return nil
        }
    }

    /// The Q4_0 layout (the one the AVX-512 kernels also run).
    public static let q4_0 = NibbleRowGroup(format: .q4_0)
    private init(format: PackedFormat) { self.format = format }

    /// Whether the blocks store a minimum (value q·d + m) rather than Q4_0's implicit −8 (value (q − 8)·d).
    public var hasMinimum: Bool { format != .q4_0 }
    /// Columns per block.
    public var blockElements: Int { format.blockElements }
    /// Code bytes per row and block: the lines of a group block.
    public var lines: Int { blockElements / 2 }
    /// Bytes of the 16 f16 scales at the start of a group block.
    public var scaleBytes: Int { Self.rows * 2 }
    /// Bytes of the 16 f16 minimums after the scales (0 for Q4_0).
    public var minimumBytes: Int { hasMinimum ? Self.rows * 2 : 0 }
    /// Offset of the first line in a group block.
    public var linesOffset: Int { scaleBytes + minimumBytes }
    /// Bytes of one group block: 16 rows × one block of the format.
    public var byteCount: Int { Self.rows * format.blockBytes }
    /// Bytes of one group of 16 rows over `columns` columns.
    public func groupBytes(columns: Int) -> Int { columns / blockElements * byteCount }

    /// Whether a matrix of this shape can be grouped: whole groups of rows and whole blocks.
    public func supports(rows: Int, columns: Int) -> Bool {
        rows > 0 && rows % Self.rows == 0 && format.supports(columns: columns)
    }

    /// Writes the `columns` values of row `row` of a grouped matrix at `base`: the row's blocks copied back
    /// (`copyRow`) and widened by `Dequantize`, so the values are those of the row-major matrix bit for bit.
    func dequantizeRow(_ base: UnsafeRawPointer, row: Int, columns n: Int, into out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(byteCount: format.rowBytes(columns: n), alignment: 64) {
            copyRow(base, row: row, columns: n, into: $0.baseAddress!)
            Dequantize.row(UnsafeRawPointer($0.baseAddress!), format: format, columns: n, into: out)
        }
    }

    /// Writes row `row` of a grouped matrix at `base` as its row-major blocks (`format.rowBytes(columns:)` bytes).
    func copyRow(_ base: UnsafeRawPointer, row: Int, columns n: Int, into out: UnsafeMutableRawPointer) {
        let j = row % Self.rows
        let group = base + (row / Self.rows) * groupBytes(columns: n)
        let headerBytes = format.blockBytes - lines
        for b in 0..<(n / blockElements) {
            let p = group + b * byteCount
            let o = out + b * format.blockBytes
            o.storeBytes(of: p.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self), as: UInt16.self)
            if hasMinimum {
                o.storeBytes(of: p.loadUnaligned(fromByteOffset: scaleBytes + 2 * j, as: UInt16.self),
                             toByteOffset: 2, as: UInt16.self)
            }
            for k in 0..<lines {
                o.storeBytes(of: p.load(fromByteOffset: linesOffset + 16 * k + j, as: UInt8.self),
                             toByteOffset: headerBytes + k, as: UInt8.self)
            }
        }
    }

    /// Regroups group `group` of a row-major matrix at `source` into `destination`, which may be `source` itself:
    /// a group takes the same bytes in both orders, and its rows are first copied to `scratch`
    /// (`groupBytes(columns:)` bytes).
    func regroup(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer, group: Int, columns n: Int,
                 scratch: UnsafeMutableRawPointer) {
        let bytes = groupBytes(columns: n)
        let rowBytes = bytes / Self.rows
        let headerBytes = format.blockBytes - lines
        scratch.copyMemory(from: source + group * bytes, byteCount: bytes)
        let out = destination + group * bytes
        for j in 0..<Self.rows {
            let row = UnsafeRawPointer(scratch) + j * rowBytes
            for b in 0..<(n / blockElements) {
                let block = row + b * format.blockBytes
                let o = out + b * byteCount
                o.storeBytes(of: block.loadUnaligned(as: UInt16.self), toByteOffset: 2 * j, as: UInt16.self)
                if hasMinimum {
                    o.storeBytes(of: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self),
                                 toByteOffset: scaleBytes + 2 * j, as: UInt16.self)
                }
                for k in 0..<lines {
                    o.storeBytes(of: block.load(fromByteOffset: headerBytes + k, as: UInt8.self),
                                 toByteOffset: linesOffset + 16 * k + j, as: UInt8.self)
                }
            }
        }
    }
}

extension PackedMatrix {
    /// The layout the matrix kernels of family `isa` run this matrix in: nibble formats with Float32 activations
    /// grouped by 16 rows (`groupingRows`) where the family has grouped kernels for the format (`regroups`), every
    /// other matrix as it is.
    /// `inPlace` regroups this matrix's own storage (only for a matrix nothing else reads: a fresh conversion);
    /// otherwise the groups go to new storage and `release` is handed each stretch of the source already copied
    /// (a few MiB at a time), so that a mapped checkpoint's pages can be let go as the copy advances.
    public func executionLayout(isa: KernelISA = .active, inPlace: Bool = false,
                                release: ((UnsafeRawPointer, Int) -> Void)? = nil) throws -> PackedMatrix {
        guard regroups(isa: isa) else { return self }
        if inPlace, let storage = owner as? PackedStorage, UnsafeRawPointer(storage.pointer) == data {
            return try regrouped(into: storage, release: nil)
        }
        return try regrouped(into: PackedStorage(byteCount: byteCount), release: release)
    }

    /// Whether `executionLayout(isa:)` regroups this matrix: a row-major nibble matrix of whole groups with Float32
    /// activations (8-bit prefill reads row-major blocks), Q4_0 in both families, Q4_1 and INT4-gN in the 8-lane
    /// family only (the AVX-512 family runs them row by row: no 16-lane kernel for their groups yet).
    public func regroups(isa: KernelISA = .active) -> Bool {
        guard rowGroup == 1, activations == .float32, let layout = NibbleRowGroup(format),
              layout.supports(rows: rows, columns: columns) else { return false }
        return format == .q4_0 || isa == .simd8
    }

    /// This nibble matrix in the `NibbleRowGroup` order, in new storage (a matrix already grouped is returned as
    /// is). Throws for another format or a row count that is not a multiple of 16.
    public func groupingRows() throws -> PackedMatrix {
        if rowGroup == NibbleRowGroup.rows { return self }
        return try regrouped(into: PackedStorage(byteCount: byteCount), release: nil)
    }

    /// The grouped layout of this matrix (nil for a row-major one).
    var nibbleRowGroup: NibbleRowGroup? { rowGroup > 1 ? NibbleRowGroup(format) : nil }

    private func regrouped(into storage: PackedStorage, release: ((UnsafeRawPointer, Int) -> Void)?) throws
        -> PackedMatrix {
        guard rowGroup == 1, let layout = NibbleRowGroup(format) else {
            throw QuantError.invalidLayout("only row-major nibble matrices (q4_0, q4_1, int4-gN) are grouped by rows, "
                                           + "not \(rowGroup == 1 ? format.rawValue : "a grouped matrix")")
        }
        guard layout.supports(rows: rows, columns: columns) else {
            throw QuantError.invalidLayout("\(rows) rows are not whole groups of \(NibbleRowGroup.rows)")
        }
        guard storage.byteCount >= byteCount else {
            throw QuantError.storageTooSmall(format: format, rows: rows, columns: columns, needed: byteCount,
                                             got: storage.byteCount)
        }
        let groupBytes = layout.groupBytes(columns: columns)
        let releaseBytes = 8 << 20
        var released = 0
        withUnsafeTemporaryAllocation(byteCount: groupBytes, alignment: 64) { scratch in
            for g in 0..<(rows / NibbleRowGroup.rows) {
                layout.regroup(data, into: storage.pointer, group: g, columns: columns, scratch: scratch.baseAddress!)
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
        grouped.rowGroup = NibbleRowGroup.rows
        grouped.activations = activations
        return grouped
    }
}
