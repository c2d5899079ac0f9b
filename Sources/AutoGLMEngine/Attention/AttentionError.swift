import AutoGLMSpecs

/// Errors from the KV cache and the attention kernels. Each case says what was wrong, what was expected and what came in.
public enum AttentionError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A size or count parameter is out of its valid range.
    case invalidParameter(name: String, expected: String, got: Int)
    /// A layer index outside the cache.
    case layerOutOfRange(layer: Int, layers: Int)
    /// Appending would exceed the cache's capacity in positions.
    case capacityExceeded(layer: Int, needed: Int, capacity: Int)
    /// `commit(n)` disagrees with what was appended for a layer.
    case commitMismatch(layer: Int, appended: Int, committing: Int)
    /// `causal` was asked for a different number of query tokens than were appended and not yet committed.
    case queryCountMismatch(layer: Int, pending: Int, queries: Int)
    /// Query heads must be a positive multiple of KV heads (grouped-query attention).
    case headsNotMultipleOfKVHeads(heads: Int, kvHeads: Int)
    /// Block-sparse attention needs every key resident, which a windowed cache does not keep.
    case blockSparseNeedsFullCache(window: Int)
    /// A weight array has the wrong number of elements.
    case weightShape(name: String, expected: Int, got: Int)
    /// The system refused an allocation.
    case allocationFailed(bytes: Int)
    /// A benchmark setting combines options its mode cannot run.
    case unsupportedSetting(name: String, mode: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidParameter(name, expected, got):
            return "attention: parameter \(name) must be \(expected), got \(got)"
        case let .layerOutOfRange(layer, layers):
            return "attention: layer \(layer) out of range 0..<\(layers)"
        case let .capacityExceeded(layer, needed, capacity):
            return "KV cache: layer \(layer) needs \(needed) positions, capacity is \(capacity)"
        case let .commitMismatch(layer, appended, committing):
            return "KV cache: committing \(committing) tokens but layer \(layer) has \(appended) appended"
        case let .queryCountMismatch(layer, pending, queries):
            return "attention: \(queries) query tokens but layer \(layer) has \(pending) uncommitted tokens appended"
        case let .headsNotMultipleOfKVHeads(heads, kvHeads):
            return "attention: \(heads) query heads is not a positive multiple of \(kvHeads) KV heads"
        case let .blockSparseNeedsFullCache(window):
            return "attention: block-sparse attention needs a full cache, this one has a window of \(window) tokens"
        case let .weightShape(name, expected, got):
            return "attention: weight \(name) has \(got) elements, expected \(expected)"
        case let .allocationFailed(bytes):
            return "attention: could not allocate \(bytes) bytes"
        case let .unsupportedSetting(name, mode, reason):
            return "attention benchmark: setting '\(name)' cannot run in \(mode) mode: \(reason)"
        }
    }
}
