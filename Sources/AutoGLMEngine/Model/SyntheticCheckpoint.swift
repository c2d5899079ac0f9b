import AutoGLMSpecs
import Foundation

/// Writes a full-size checkpoint of a manifest's architecture with seeded random weights, each matrix directly in
/// the plan's packed format (never through a Float32 copy of the model), streamed tensor by tensor.
///
/// Values: matrices are uniform with standard deviation `weightStd` (≈ N(0, 0.02) magnitudes), produced as random
/// codes under one scale per block (block formats) or as random values (F32/F16/BF16); RMSNorm and LayerNorm weights
/// are 1, biases and the position table uniform with standard deviation `biasStd`. GLM-4's post-sublayer norms keep
/// the residual stream bounded, so activations stay finite at full depth.
///
/// A matrix whose rows are not a whole number of the planned format's blocks falls back to a smaller INT4 group or,
/// for other formats, F16.
///
/// Formats without a GGUF type (int8 per channel, int4-gN) are stored as raw `i8` rows `(row bytes, rows)` and named
/// in the `autoglm.engine_formats` metadata array (`name=format`); `CheckpointSource` reads them back.
public enum SyntheticCheckpoint {
    public static let weightStd: Float = 0.02
    public static let biasStd: Float = 0.01
    /// Metadata keys written beside the architecture's own.
    public static let syntheticKey = "general.synthetic"
    public static let planHashKey = "autoglm.plan_sha256"
    public static let seedKey = "autoglm.seed"
    public static let engineFormatsKey = "autoglm.engine_formats"

    /// One tensor to write: manifest tensor, its packed format and GGUF descriptor.
    public struct Entry: Sendable {
        public var tensor: ModuleTensor
        public var format: PackedFormat
        public var descriptor: GGUFTensorDescriptor
        public var byteCount: Int
    }

    /// The tensors of `manifest` in the formats of `plan` (vectors F32; matrices the plan does not cover F16).
    public static func entries(manifest: ModelManifest, plan: Plan) throws -> [Entry] {
        try manifest.tensors.map { t in
            var format = PackedFormat.f32
            if t.isQuantizable {
                let wanted = plan.format(for: t) ?? .f16
                guard wanted.engineExecutes, var f = PackedFormat(rawValue: wanted.rawValue) else {
                    throw ModelError.unsupportedPlanFormat(tensor: t.name, format: wanted.rawValue,
                                                           reason: "the engine does not execute it")
                }
                if !f.supports(columns: t.columns) {
                    // Rows that are not a whole number of blocks: a smaller INT4 group, else F16 (the loader's
                    // rule for INT4; F16 for the rest, e.g. the 1,176-column patch embedding under q8_0).
                    f = WeightLoader.int4Fallback(f, columns: t.columns) ?? .f16
                }
                if f == .int8 && t.columns % 4 != 0 {
                    throw ModelError.unsupportedPlanFormat(tensor: t.name, format: f.rawValue,
                                                           reason: "stored int8 rows need a column count divisible by 4, got \(t.columns)")
                }
                format = f
            }
            let rowBytes = format.rowBytes(columns: t.columns)
            let descriptor: GGUFTensorDescriptor
            if let type = format.ggmlType {
                descriptor = GGUFTensorDescriptor(name: t.name, dimensions: t.rows == 1 && !t.isQuantizable
                                                  ? [t.columns] : [t.columns, t.rows], type: type)
            } else {
                descriptor = GGUFTensorDescriptor(name: t.name, dimensions: [rowBytes, t.rows], type: .i8)
            }
            return Entry(tensor: t, format: format, descriptor: descriptor, byteCount: rowBytes * t.rows)
        }
    }

    /// GGUF metadata: the `glm4` decoder keys the loader reads, the vision hyperparameters under `glm4v.vision.*`,
    /// the synthetic flag, seed, plan hash and engine-only formats.
    public static func metadata(manifest: ModelManifest, planSHA256: String, seed: UInt64,
                                entries: [Entry]) throws -> [(key: String, value: GGUFValue)] {
        guard let d = manifest.textDecoder, let e = manifest.embedding else {
            throw ModelError.invalidHyperparameter(name: "manifest", expected: "a text decoder and an embedding",
                                                   got: manifest.id)
        }
        var m: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("glm4")),
            ("general.name", .string("\(manifest.name) (synthetic weights)")),
            (syntheticKey, .bool(true)),
            (seedKey, .uint64(seed)),
            (planHashKey, .string(planSHA256)),
            ("glm4.block_count", .uint32(UInt32(d.layers))),
            ("glm4.embedding_length", .uint32(UInt32(d.hidden))),
            ("glm4.feed_forward_length", .uint32(UInt32(d.ffn))),
            ("glm4.attention.head_count", .uint32(UInt32(d.heads))),
            ("glm4.attention.head_count_kv", .uint32(UInt32(d.kvHeads))),
            ("glm4.attention.key_length", .uint32(UInt32(d.headDim))),
            ("glm4.attention.value_length", .uint32(UInt32(d.headDim))),
            ("glm4.attention.layer_norm_rms_epsilon", .float32(Float(d.normEpsilon))),
            ("glm4.rope.freq_base", .float32(Float(d.ropeTheta))),
            ("glm4.rope.dimension_count", .uint32(UInt32(d.rotaryDims))),
            ("glm4.context_length", .uint32(UInt32(d.maxPositions))),
            ("glm4.vocab_size", .uint32(UInt32(e.vocab))),
        ]
        if let v = manifest.visionEncoder,
           let p = manifest.modules.compactMap({ if case let .projector(s) = $0.body { s } else { nil } }).first {
            let keys: [(String, Int)] = [
                ("block_count", v.layers), ("embedding_length", v.hidden), ("head_count", v.heads),
                ("key_length", v.headDim), ("feed_forward_length", v.mlpHidden), ("patch_size", v.patchSize),
                ("temporal_patch_size", v.temporalPatch), ("channels", v.channels),
                ("position_grid", v.positionGrid), ("merge_size", p.merge),
                ("projector.output_length", p.outputHidden), ("projector.feed_forward_length", p.ffn),
            ]
            for (k, value) in keys { m.append(("glm4v.vision.\(k)", .uint32(UInt32(value)))) }
        }
        let engineOnly = entries.filter { $0.format.ggmlType == nil }.map { "\($0.tensor.name)=\($0.format.rawValue)" }
        if !engineOnly.isEmpty { m.append((engineFormatsKey, .array(.string, engineOnly.map { .string($0) }))) }
        return m
    }

    /// Writes the checkpoint. `progress` gets (bytes written, total bytes) after every tensor.
    public static func write(manifest: ModelManifest, plan: Plan, planSHA256: String, seed: UInt64, to path: String,
                             progress: ((Int, Int) -> Void)? = nil) throws {
        let list = try entries(manifest: manifest, plan: plan)
        let meta = try metadata(manifest: manifest, planSHA256: planSHA256, seed: seed, entries: list)
        let total = list.reduce(0) { $0 + $1.byteCount }
        var written = 0
        let chunkBytes = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkBytes + 4096, alignment: 64)
        defer { buffer.deallocate() }
        try GGUFWriter.write(to: path, metadata: meta, tensors: list.map(\.descriptor)) { index, sink in
            let entry = list[index]
            // Each tensor has its own stream, so a tensor's values do not depend on the formats of the others.
            var rng = SplitMix64(seed: seed ^ fnv1a(entry.tensor.name))
            let rowBytes = entry.format.rowBytes(columns: entry.tensor.columns)
            let rowsPerChunk = max(1, chunkBytes / rowBytes)
            var row = 0
            while row < entry.tensor.rows {
                let rows = min(rowsPerChunk, entry.tensor.rows - row)
                fill(buffer, rows: rows, columns: entry.tensor.columns, tensor: entry.tensor, format: entry.format,
                     rng: &rng)
                try sink.write(UnsafeRawBufferPointer(start: buffer, count: rows * rowBytes))
                row += rows
            }
            written += entry.byteCount
            progress?(written, total)
        }
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// Fills `rows` packed rows.
    static func fill(_ out: UnsafeMutableRawPointer, rows: Int, columns: Int, tensor: ModuleTensor,
                     format: PackedFormat, rng: inout SplitMix64) {
        let count = rows * columns
        let isNormWeight = tensor.role == .vector && tensor.name.hasSuffix(".weight")
            && !tensor.name.contains("position_embd")
        // Uniform(−a, a) has standard deviation a/√3.
        let std = tensor.role == .vector ? biasStd : weightStd
        let a = std * Float(3).squareRoot()
        switch format {
        case .f32:
            let p = out.bindMemory(to: Float.self, capacity: count)
            for i in 0..<count { p[i] = isNormWeight ? 1 : uniform(&rng, a) }
        case .f16, .bf16:
            // 4 codes per random word; a 4096-entry table of evenly spaced values in (−a, a).
            var table = [UInt16](repeating: 0, count: 4096)
            for i in 0..<4096 {
                let v = (Float(i) + 0.5) / 4096 * 2 * a - a
                table[i] = format == .f16 ? Float16(v).bitPattern : BF16.fromFloat(v)
            }
            let p = out.bindMemory(to: UInt16.self, capacity: count)
            table.withUnsafeBufferPointer { t in
                var i = 0
                while i < count {
                    var r = rng.next()
                    for _ in 0..<4 where i < count { p[i] = t[Int(r & 0xFFF)]; r >>= 16; i += 1 }
                }
            }
        case .q8_0, .q4_0, .q4_1, .int4g32, .int4g64, .int4g128:
            randomBytes(out, count: rows * format.rowBytes(columns: columns), rng: &rng)
            let blocks = count / format.blockElements
            // Codes are uniform: q8_0 over [−128, 127] (std ≈ 73.9·d), nibbles over [0, 15] (std ≈ 4.61·d).
            let symmetric8 = format == .q8_0
            let d = symmetric8 ? weightStd / 73.9 : weightStd / 4.61
            let hasMin = format == .q4_1 || format.int4GroupSize != nil
            for b in 0..<blocks {
                let block = out + b * format.blockBytes
                storeF16(Float16(d), block, 0)
                if hasMin { storeF16(Float16(-7.5 * d), block, 2) }
            }
        case .int8:
            let rowBytes = format.rowBytes(columns: columns)
            randomBytes(out, count: rows * rowBytes, rng: &rng)
            for r in 0..<rows {
                let row = out + r * rowBytes
                row.storeBytes(of: weightStd / 73.9, toByteOffset: 0, as: Float.self)
                // Padding bytes after the last weight are zero.
                for i in columns..<((columns + 3) & ~3) { row.storeBytes(of: 0, toByteOffset: Int8RowLayout.weightOffset + i, as: UInt8.self) }
            }
        }
    }

    @inline(__always) static func uniform(_ rng: inout SplitMix64, _ a: Float) -> Float {
        (Float(rng.next() >> 40) / Float(1 << 24)) * 2 * a - a
    }

    static func randomBytes(_ out: UnsafeMutableRawPointer, count: Int, rng: inout SplitMix64) {
        var i = 0
        while i + 8 <= count { out.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self); i += 8 }
        if i < count {
            var r = rng.next()
            while i < count { out.storeBytes(of: UInt8(truncatingIfNeeded: r), toByteOffset: i, as: UInt8.self); r >>= 8; i += 1 }
        }
    }
}
