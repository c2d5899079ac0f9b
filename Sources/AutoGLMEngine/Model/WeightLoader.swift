import AutoGLMSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which format each weight ends up in.
public enum WeightFormatPolicy: Sendable {
    /// Every tensor keeps the format it is stored in.
    case checkpoint
    /// Every matrix and embedding is converted to one format (e.g. F32 for a reference run).
    case uniform(PackedFormat)
    /// The plan's format for each module and layer group; tensors the plan does not cover keep their format.
    case plan(Plan)
}

/// Loads tensors from a source into packed matrices and Float32 vectors, applying a format policy, and counts
/// resident bytes per manifest module ("embedding", "decoder", "head").
///
/// Tensors whose format already matches stay where they are (inside the mapped file); others are converted at load
/// time, a slab of rows at a time, from their dequantised rows. Nothing is expanded to Float32 unless the policy
/// asks for F32.
public final class WeightLoader {
    public let source: TensorSource
    public let policy: WeightFormatPolicy
    /// Bytes held per module: mapped tensor bytes read by the engine plus converted copies.
    public private(set) var residentBytesByModule: [String: Int] = [:]
    /// The format each loaded matrix ended up in, by tensor name.
    public private(set) var formats: [String: PackedFormat] = [:]
    /// Tensors converted from their stored format.
    public private(set) var convertedTensors: [String] = []
    /// Planned-only formats (q4_k, q6_k, nf4, ...) and the engine format run in their place.
    public private(set) var substitutions: [String: PackedFormat] = [:]
    /// Tensors stored in a smaller INT4 group than asked for because their rows are not a multiple of the group.
    public private(set) var groupFallbacks: [(tensor: String, asked: PackedFormat, used: PackedFormat)] = []
    /// Matrices copied into their kernels' layout, by tensor and format (one activation precision per loader).
    private var laidOutMatrices: [String: PackedMatrix] = [:]

    /// How the loaded matrices multiply activations in prefill (set on every matrix; see `ActivationPrecision`):
    /// the precision asked for where the kernel family has it, Float32 otherwise (`effectiveActivations`), so that a
    /// matrix is laid out for the kernels that will run it.
    public let activations: ActivationPrecision

    public init(source: TensorSource, policy: WeightFormatPolicy, activations: ActivationPrecision = .float32) {
        self.source = source
        self.policy = policy
        self.activations = MatrixKernels.effectiveActivations(activations)
    }

    /// The manifest module a GGUF tensor name belongs to, and its decoder layer.
    public static func module(of name: String) -> (module: String, layer: Int?) {
        if name.hasPrefix("token_embd") { return ("embedding", nil) }
        if name.hasPrefix("output.") { return ("head", nil) }
        if name.hasPrefix("blk.") {
            let parts = name.split(separator: ".")
            if parts.count > 1, let layer = Int(parts[1]) { return ("decoder", layer) }
        }
        return ("decoder", nil)
    }

    func require(_ name: String) throws -> SourceTensor {
        guard let t = try source.sourceTensor(named: name) else { throw ModelError.missingTensor(name: name) }
        return t
    }

    func has(_ name: String) throws -> Bool { try source.sourceTensor(named: name) != nil }

    /// The format the policy wants for a matrix stored as `stored`.
    func targetFormat(name: String, module: String, layer: Int?, rows: Int, columns: Int,
                      role: ModuleTensor.Role, stored: PackedFormat) throws -> PackedFormat {
        switch policy {
        case .checkpoint:
            return stored
        case let .uniform(format):
            return format
        case let .plan(plan):
            let tensor = ModuleTensor(name: name, module: module, rows: rows, columns: columns, layer: layer,
                                      role: role)
            guard let wanted = plan.format(for: tensor) else { return stored }
            if let format = PackedFormat(rawValue: wanted.rawValue) { return format }
            guard let substitute = Self.engineSubstitute(for: wanted) else {
                throw ModelError.unsupportedPlanFormat(tensor: name, format: wanted.rawValue,
                                                       reason: "the engine does not execute it")
            }
            substitutions[wanted.rawValue] = substitute
            return substitute
        }
    }

    /// Loads a matrix of `rows` × `columns` (columns = ne0), in the policy's format.
    /// `module` overrides the name-derived module (a tied head is loaded from `token_embd` as "head").
    public func matrix(_ name: String, rows: Int, columns: Int, role: ModuleTensor.Role = .matrix,
                       module: String? = nil) throws -> PackedMatrix {
        let t = try require(name)
        guard t.columns == columns, t.rows == rows else {
            throw ModelError.tensorShape(name: name, expected: [columns, rows], got: t.dimensions)
        }
        let placement = Self.module(of: name)
        let moduleName = module ?? placement.module
        let stored = try t.matrix()
        var format = try targetFormat(name: name, module: moduleName, layer: placement.layer, rows: rows,
                                      columns: columns, role: role, stored: t.format)
        if !format.supports(columns: columns), let smaller = Self.int4Fallback(format, columns: columns) {
            groupFallbacks.append((name, format, smaller))
            format = smaller
        }
        var result: PackedMatrix
        if format == t.format {
            result = stored
        } else {
            guard format.supports(columns: columns) else {
                throw ModelError.unsupportedPlanFormat(
                    tensor: name, format: format.rawValue,
                    reason: "rows of \(columns) are not a multiple of its block of \(format.blockElements)")
            }
            result = try Self.convert(stored, to: format)
            convertedTensors.append(name)
            Self.dropResidentPages(t)
        }
        result.activations = activations
        // The kernels' own layout (nibble formats grouped by rows), made once per tensor and format (a tied head
        // shares the embedding's). A load never holds both orders of a tensor in full, as under a memory cap it
        // must not: a fresh conversion, or the loader's own copy of the file's bytes (copy mode, then dropped from
        // the source's cache), is regrouped where it lies; a mapped tensor is copied, its pages released behind
        // the copy (unless the source keeps its weights in the page cache: emulation's mmap mode).
        let key = "\(name) \(format.rawValue)"
        let converted = format != t.format
        if let laidOut = laidOutMatrices[key] {
            result = laidOut
        } else if result.regroups(), converted || !source.keepsWeightsMapped {
            let copied = t.owner is PackedStorage
            if copied && !converted { source.forgetCopy(named: name) }
            let inPlace = converted || copied
            let laidOut = try result.executionLayout(inPlace: inPlace, release: inPlace ? nil : {
                MappedFile.advise($0, count: $1, 21 /* MADV_PAGEOUT */)
            })
            laidOutMatrices[key] = laidOut
            result = laidOut
        }
        formats[module == nil ? name : "\(name) as \(moduleName)"] = format
        residentBytesByModule[moduleName, default: 0] += result.byteCount
        return result
    }

    /// The engine format that stands in for a format the planner plans but the engine does not execute
    /// (`WeightFormat.engineFormat`).
    public static func engineSubstitute(for format: WeightFormat) -> PackedFormat? {
        PackedFormat(rawValue: format.engineFormat.rawValue)
    }

    /// Asks the kernel to reclaim the pages of a converted tensor (MADV_PAGEOUT, Linux 5.4+), so the mapped bytes
    /// read during conversion stop counting towards the resident set. Contents are never lost: clean file pages are
    /// re-read on access and anonymous pages go to swap or stay. Whole pages inside the tensor only.
    static func dropResidentPages(_ t: SourceTensor) {
        MappedFile.advise(t.data, count: t.byteCount, 21 /* MADV_PAGEOUT */)
    }

    /// For INT4 group formats: the largest smaller group that divides `columns` (g128 → g64 → g32), else nil.
    static func int4Fallback(_ format: PackedFormat, columns: Int) -> PackedFormat? {
        guard let requested = WeightFormat(rawValue: format.rawValue) else { return nil }
        let stored = requested.stored(columns: columns)
        return stored == requested || stored == .f16 ? nil : PackedFormat(rawValue: stored.rawValue)
    }

    /// Converts a packed matrix to another format through Float32 rows, a slab of rows at a time.
    public static func convert(_ m: PackedMatrix, to format: PackedFormat) throws -> PackedMatrix {
        guard format.supports(columns: m.columns) else {
            throw QuantError.columnsNotBlockAligned(format: format, columns: m.columns,
                                                    blockElements: format.blockElements)
        }
        let rowBytes = format.rowBytes(columns: m.columns)
        let storage = PackedStorage(byteCount: m.rows * rowBytes)
        let n = m.columns
        let row = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { row.deallocate() }
        for r in 0..<m.rows {
            m.unpackRow(r, into: row)
            for i in 0..<n where !row[i].isFinite { throw QuantError.nonFiniteValue(row: r, column: i) }
            Quantizer.quantizeRow(row, columns: n, format: format, into: storage.pointer + r * rowBytes)
        }
        return try PackedMatrix(format: format, rows: m.rows, columns: n, data: UnsafeRawPointer(storage.pointer),
                                availableBytes: storage.byteCount, owner: storage)
    }

    /// Loads a vector of `count` values (norm weights, biases) as Float32.
    public func vector(_ name: String, count: Int) throws -> [Float] {
        let t = try require(name)
        guard t.columns == count, t.rows == 1 else {
            throw ModelError.tensorShape(name: name, expected: [count], got: t.dimensions)
        }
        let m = try t.matrix()
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { _ = m.dequantizeRow(0, into: $0) }
        residentBytesByModule[Self.module(of: name).module, default: 0] += count * MemoryLayout<Float>.size
        return out
    }

    /// Loads a vector if the checkpoint has it.
    public func optionalVector(_ name: String, count: Int) throws -> [Float]? {
        try has(name) ? try vector(name, count: count) : nil
    }

    /// Whether a projection has a bias vector beside its weight.
    public enum Bias { case none, optional, required }

    /// Loads the projection `base.weight` (rows, columns) with its bias `base.bias` (rows) as `bias` says: none,
    /// where the checkpoint has one, or always.
    public func linear(_ base: String, rows: Int, columns: Int, bias: Bias = .none) throws -> Linear {
        let weight = try matrix(base + ".weight", rows: rows, columns: columns)
        switch bias {
        case .none: return Linear(weight: weight)
        case .optional: return Linear(weight: weight, bias: try optionalVector(base + ".bias", count: rows))
        case .required: return Linear(weight: weight, bias: try vector(base + ".bias", count: rows))
        }
    }

    /// Total resident weight bytes.
    public var residentBytes: Int { residentBytesByModule.values.reduce(0, +) }
}
