import Foundation

/// A model, module by module: enough architecture to list every tensor, count parameters exactly, and size
/// memory and compute. Parameter counts are always computed from these fields, never typed in.
public struct ModelManifest: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var id: String
    public var name: String
    /// Architecture family, e.g. "glm4v", "glm4", "llama".
    public var architecture: String
    /// True for a model that does not exist as released (a design variant); `hypotheticalNote` says why.
    public var hypothetical: Bool
    public var hypotheticalNote: String?
    public var source: String
    public var modules: [ModuleSpec]
    /// Vision preprocessing (resize rule and pixel limits), for models with a vision encoder.
    public var vision: VisionPreprocessing?
    /// Accuracy cost of each weight format per module, with sources.
    public var sensitivity: [FormatSensitivity]
    /// Accuracy cost of attention settings (KV precision, windows, block-sparse), with sources.
    public var settingSensitivity: [SettingSensitivity]

    public static let currentSchemaVersion = 1

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version", id, name, architecture, hypothetical
        case hypotheticalNote = "hypothetical_note", source, modules, vision, sensitivity
        case settingSensitivity = "setting_sensitivity"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion,
                                     expected: "schema version \(Self.currentSchemaVersion)") {
            $0 == Self.currentSchemaVersion
        }
        id = try c.decode(String.self, forKey: .id, expected: "a non-empty id") { !$0.isEmpty }
        name = try c.decode(String.self, forKey: .name)
        architecture = try c.decode(String.self, forKey: .architecture)
        hypothetical = try c.decodeIfPresent(Bool.self, forKey: .hypothetical) ?? false
        hypotheticalNote = try c.decodeIfPresent(String.self, forKey: .hypotheticalNote)
        if hypothetical && (hypotheticalNote ?? "").isEmpty {
            throw FieldValidationError(c.codingPath, CodingKeys.hypotheticalNote,
                                       expected: "a note saying why the model is hypothetical", found: "nothing")
        }
        source = try c.decode(String.self, forKey: .source)
        modules = try c.decode([ModuleSpec].self, forKey: .modules, expected: "at least one module") { !$0.isEmpty }
        vision = try c.decodeIfPresent(VisionPreprocessing.self, forKey: .vision)
        sensitivity = try c.decodeIfPresent([FormatSensitivity].self, forKey: .sensitivity) ?? []
        settingSensitivity = try c.decodeIfPresent([SettingSensitivity].self, forKey: .settingSensitivity) ?? []
        try validate(path: c.codingPath)
    }

    public init(id: String, name: String, architecture: String, source: String, modules: [ModuleSpec],
                vision: VisionPreprocessing? = nil, sensitivity: [FormatSensitivity] = [],
                settingSensitivity: [SettingSensitivity] = [], hypothetical: Bool = false,
                hypotheticalNote: String? = nil) throws {
        self.schemaVersion = Self.currentSchemaVersion
        self.id = id
        self.name = name
        self.architecture = architecture
        self.source = source
        self.modules = modules
        self.vision = vision
        self.sensitivity = sensitivity
        self.settingSensitivity = settingSensitivity
        self.hypothetical = hypothetical
        self.hypotheticalNote = hypotheticalNote
        try validate(path: [])
    }

    func validate(path: [CodingKey]) throws {
        var seen = Set<String>()
        for (index, module) in modules.enumerated() where !seen.insert(module.name).inserted {
            throw FieldValidationError(field: "modules[\(index)].name", expected: "a unique module name",
                                       found: module.name)
        }
        let decoders = modules.filter { $0.kind == .textDecoder }
        if decoders.count != 1 {
            throw FieldValidationError(field: "modules", expected: "exactly one text_decoder module",
                                       found: "\(decoders.count)")
        }
        if let embedding = embedding, let decoder = textDecoder, embedding.hidden != decoder.hidden {
            throw FieldValidationError(field: "modules.\(moduleName(.embedding)).hidden",
                                       expected: "the decoder's hidden size \(decoder.hidden)",
                                       found: "\(embedding.hidden)")
        }
        if vision == nil, modules.contains(where: { $0.kind == .visionEncoder }) {
            throw FieldValidationError(field: "vision", expected: "preprocessing settings for the vision encoder",
                                       found: "nothing")
        }
    }

    private func moduleName(_ kind: ModuleKind) -> String { modules.first { $0.kind == kind }?.name ?? "?" }

    public static func load(_ path: String) throws -> ModelManifest {
        try SpecLoader.load(ModelManifest.self, from: path)
    }

    // MARK: Derived values

    public var textDecoder: TextDecoderSpec? {
        for module in modules { if case let .textDecoder(spec) = module.body { return spec } }
        return nil
    }
    public var embedding: EmbeddingSpec? {
        for module in modules { if case let .embedding(spec) = module.body { return spec } }
        return nil
    }
    public var visionEncoder: VisionEncoderSpec? {
        for module in modules { if case let .visionEncoder(spec) = module.body { return spec } }
        return nil
    }
    public func module(named name: String) -> ModuleSpec? { modules.first { $0.name == name } }

    /// Every tensor of the model, module by module.
    public var tensors: [ModuleTensor] { modules.flatMap { $0.tensors } }

    /// Total parameters (a tied head counts once).
    public var parameters: Int { modules.reduce(0) { $0 + $1.parameters } }

    /// Bytes of all weights at 16 bits each.
    public var bf16Bytes: Int { parameters * 2 }
}

/// The kinds of module a manifest may hold.
public enum ModuleKind: String, Codable, Sendable, CaseIterable {
    case visionEncoder = "vision_encoder"
    case audioEncoder = "audio_encoder"
    case projector
    case crossModal = "cross_modal"
    case textDecoder = "text_decoder"
    case embedding
    case head
}

/// One module: a name, a kind, and the kind's architecture fields (flattened in the JSON object).
public struct ModuleSpec: Codable, Sendable, Equatable {
    public enum Body: Sendable, Equatable {
        case visionEncoder(VisionEncoderSpec)
        case audioEncoder(AudioEncoderSpec)
        case projector(ProjectorSpec)
        case crossModal(CrossModalSpec)
        case textDecoder(TextDecoderSpec)
        case embedding(EmbeddingSpec)
        case head(HeadSpec)
    }

    public var name: String
    public var note: String?
    public var body: Body

    public var kind: ModuleKind {
        switch body {
        case .visionEncoder: return .visionEncoder
        case .audioEncoder: return .audioEncoder
        case .projector: return .projector
        case .crossModal: return .crossModal
        case .textDecoder: return .textDecoder
        case .embedding: return .embedding
        case .head: return .head
        }
    }

    enum CommonKeys: String, CodingKey, CaseIterable { case name, kind, note }

    public init(name: String, note: String? = nil, body: Body) {
        self.name = name
        self.note = note
        self.body = body
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CommonKeys.self)
        name = try c.decode(String.self, forKey: .name, expected: "a non-empty module name") { !$0.isEmpty }
        note = try c.decodeIfPresent(String.self, forKey: .note)
        let kind = try c.decode(ModuleKind.self, forKey: .kind)
        let allowed: [String]
        switch kind {
        case .visionEncoder:
            body = .visionEncoder(try VisionEncoderSpec(from: decoder))
            allowed = VisionEncoderSpec.CodingKeys.allCases.map(\.stringValue)
        case .audioEncoder:
            body = .audioEncoder(try AudioEncoderSpec(from: decoder))
            allowed = AudioEncoderSpec.CodingKeys.allCases.map(\.stringValue)
        case .projector:
            body = .projector(try ProjectorSpec(from: decoder))
            allowed = ProjectorSpec.CodingKeys.allCases.map(\.stringValue)
        case .crossModal:
            body = .crossModal(try CrossModalSpec(from: decoder))
            allowed = CrossModalSpec.CodingKeys.allCases.map(\.stringValue)
        case .textDecoder:
            body = .textDecoder(try TextDecoderSpec(from: decoder))
            allowed = TextDecoderSpec.CodingKeys.allCases.map(\.stringValue)
        case .embedding:
            body = .embedding(try EmbeddingSpec(from: decoder))
            allowed = EmbeddingSpec.CodingKeys.allCases.map(\.stringValue)
        case .head:
            body = .head(try HeadSpec(from: decoder))
            allowed = HeadSpec.CodingKeys.allCases.map(\.stringValue)
        }
        let all = CommonKeys.allCases.map(\.stringValue) + allowed
        let raw = try decoder.container(keyedBy: AnyCodingKey.self)
        for key in raw.allKeys where !all.contains(key.stringValue) {
            throw UnknownFieldError(field: FieldPath.render(decoder.codingPath + [key]), allowed: all)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CommonKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(note, forKey: .note)
        switch body {
        case let .visionEncoder(spec): try spec.encode(to: encoder)
        case let .audioEncoder(spec): try spec.encode(to: encoder)
        case let .projector(spec): try spec.encode(to: encoder)
        case let .crossModal(spec): try spec.encode(to: encoder)
        case let .textDecoder(spec): try spec.encode(to: encoder)
        case let .embedding(spec): try spec.encode(to: encoder)
        case let .head(spec): try spec.encode(to: encoder)
        }
    }

    /// Every tensor of this module, named in GGUF style and prefixed where the module is not the decoder.
    public var tensors: [ModuleTensor] {
        switch body {
        case let .visionEncoder(spec): return spec.tensors(module: name)
        case let .audioEncoder(spec): return spec.tensors(module: name)
        case let .projector(spec): return spec.tensors(module: name)
        case let .crossModal(spec): return spec.tensors(module: name)
        case let .textDecoder(spec): return spec.tensors(module: name)
        case let .embedding(spec): return spec.tensors(module: name)
        case let .head(spec): return spec.tensors(module: name)
        }
    }

    public var parameters: Int { tensors.reduce(0) { $0 + $1.parameters } }

    /// Layers the module repeats (decoder and encoder blocks), 0 for modules without layers.
    public var layerCount: Int {
        switch body {
        case let .visionEncoder(spec): return spec.layers
        case let .audioEncoder(spec): return spec.layers
        case let .crossModal(spec): return spec.layers
        case let .textDecoder(spec): return spec.layers
        case .projector, .embedding, .head: return 0
        }
    }
}

/// One tensor: `rows` output channels × `columns` input elements (a vector has rows = 1).
public struct ModuleTensor: Sendable, Equatable, Hashable {
    public enum Role: String, Sendable {
        /// A weight matrix the planner may quantise.
        case matrix
        /// An embedding table (looked up by row; may be quantised row-wise).
        case embedding
        /// Norm weights, biases, position tables: kept in F32.
        case vector
    }

    public var name: String
    public var module: String
    public var rows: Int
    public var columns: Int
    /// The repeated block this tensor belongs to, if any.
    public var layer: Int?
    public var role: Role

    public init(name: String, module: String, rows: Int, columns: Int, layer: Int? = nil, role: Role) {
        self.name = name
        self.module = module
        self.rows = rows
        self.columns = columns
        self.layer = layer
        self.role = role
    }

    public var parameters: Int { rows * columns }
    /// True when the planner chooses this tensor's format (matrices and embeddings).
    public var isQuantizable: Bool { role != .vector }
}

/// Collects tensors for a module in order.
struct TensorList {
    var module: String
    var items: [ModuleTensor] = []

    mutating func matrix(_ name: String, _ rows: Int, _ columns: Int, layer: Int? = nil) {
        items.append(ModuleTensor(name: name, module: module, rows: rows, columns: columns, layer: layer, role: .matrix))
    }
    mutating func vector(_ name: String, _ length: Int, layer: Int? = nil) {
        items.append(ModuleTensor(name: name, module: module, rows: 1, columns: length, layer: layer, role: .vector))
    }
    mutating func table(_ name: String, _ rows: Int, _ columns: Int, role: ModuleTensor.Role = .embedding) {
        items.append(ModuleTensor(name: name, module: module, rows: rows, columns: columns, role: role))
    }
}
