import Foundation

/// One stored tensor as the loader sees it: its shape (ne0 first, the row length), its packed format and bytes.
public struct SourceTensor: @unchecked Sendable {
    public var name: String
    /// Dimensions with ne0 (elements per row) first.
    public var dimensions: [Int]
    public var format: PackedFormat
    public var data: UnsafeRawPointer
    public var byteCount: Int
    /// Keeps the memory behind `data` alive (the mapped file).
    public var owner: AnyObject?

    public init(name: String, dimensions: [Int], format: PackedFormat, data: UnsafeRawPointer, byteCount: Int,
                owner: AnyObject?) {
        self.name = name; self.dimensions = dimensions; self.format = format
        self.data = data; self.byteCount = byteCount; self.owner = owner
    }

    /// Elements per row (ne0).
    public var columns: Int { dimensions.first ?? 0 }
    /// Rows: the product of the other dimensions (1 for a vector).
    public var rows: Int { dimensions.dropFirst().reduce(1, *) }

    /// The tensor as a packed matrix, bytes left where they are.
    public func matrix() throws -> PackedMatrix {
        do {
            return try PackedMatrix(format: format, rows: rows, columns: columns, data: data,
                                    availableBytes: byteCount, owner: owner)
        } catch let error as QuantError {
            throw ModelError.invalidHyperparameter(name: name, expected: "a well-formed \(format) tensor",
                                                   got: error.description)
        }
    }
}

/// Where a model's weights and hyperparameters come from (a GGUF file, or tensors built in memory).
public protocol TensorSource: AnyObject {
    /// The tensor with this name, or nil when the checkpoint has none.
    func sourceTensor(named name: String) throws -> SourceTensor?
    /// Every tensor name, in storage order.
    var sourceTensorNames: [String] { get }
    /// Whether weights must stay in the source's mapped pages (reclaimable page cache), so the loader may not copy
    /// them into a layout of its own (`PackedMatrix.executionLayout`).
    var keepsWeightsMapped: Bool { get }
    /// Drops the source's own cached copy of a tensor (the loader has taken its storage over); a later request
    /// reads the tensor again.
    func forgetCopy(named name: String)
}

extension TensorSource {
    public var keepsWeightsMapped: Bool { false }
    public func forgetCopy(named name: String) {}
}
