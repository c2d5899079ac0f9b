import Foundation

/// How images become patches: resize so each side is a multiple of `patch × merge`, within pixel limits
/// (the GLM-4.1V image processor's rule; an image counts `temporal_patch` frames).
public struct VisionPreprocessing: Codable, Sendable, Equatable {
    public var patchSize: Int
    public var merge: Int
    public var temporalPatch: Int
    public var minPixels: Int
    public var maxPixels: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patchSize = "patch_size", merge, temporalPatch = "temporal_patch"
        case minPixels = "min_pixels", maxPixels = "max_pixels"
    }

    public init(patchSize: Int, merge: Int, temporalPatch: Int, minPixels: Int, maxPixels: Int) {
        self.patchSize = patchSize; self.merge = merge; self.temporalPatch = temporalPatch
        self.minPixels = minPixels; self.maxPixels = maxPixels
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        patchSize = try c.decode(Int.self, forKey: .patchSize, expected: "a positive patch size") { $0 > 0 }
        merge = try c.decode(Int.self, forKey: .merge, expected: "a positive merge factor") { $0 > 0 }
        temporalPatch = try c.decode(Int.self, forKey: .temporalPatch, default: 1, expected: "a positive count") {
            $0 > 0
        }
        minPixels = try c.decode(Int.self, forKey: .minPixels, expected: "a positive pixel count") { $0 > 0 }
        maxPixels = try c.decode(Int.self, forKey: .maxPixels, expected: "a pixel count above min_pixels") { $0 > 0 }
        if maxPixels < minPixels {
            throw FieldValidationError(c.codingPath, CodingKeys.maxPixels, expected: "at least min_pixels (\(minPixels))",
                                       found: "\(maxPixels)")
        }
    }

    /// Resized image (height, width), both multiples of patch × merge. `maxPixels` overrides the limit (the
    /// planner's image-token budget).
    public func resized(height: Int, width: Int, maxPixels budget: Int? = nil) -> (height: Int, width: Int) {
        let factor = Double(patchSize * merge)
        let frames = Double(temporalPatch)
        let limit = Double(budget ?? maxPixels)
        let h = Double(height), w = Double(width)
        var hBar = max(factor, (h / factor).rounded(.toNearestOrEven) * factor)
        var wBar = max(factor, (w / factor).rounded(.toNearestOrEven) * factor)
        if frames * hBar * wBar > limit {
            let beta = ((frames * h * w) / limit).squareRoot()
            hBar = max(factor, (h / beta / factor).rounded(.down) * factor)
            wBar = max(factor, (w / beta / factor).rounded(.down) * factor)
        } else if frames * hBar * wBar < Double(minPixels) {
            let beta = (Double(minPixels) / (h * w * frames)).squareRoot()
            hBar = (h * beta / factor).rounded(.up) * factor
            wBar = (w * beta / factor).rounded(.up) * factor
        }
        return (Int(hBar), Int(wBar))
    }

    /// ViT patches for an image (one temporal group).
    public func patches(height: Int, width: Int, maxPixels budget: Int? = nil) -> Int {
        let r = resized(height: height, width: width, maxPixels: budget)
        return (r.height / patchSize) * (r.width / patchSize)
    }

    /// Decoder tokens for an image (patches / merge²).
    public func tokens(height: Int, width: Int, maxPixels budget: Int? = nil) -> Int {
        patches(height: height, width: width, maxPixels: budget) / (merge * merge)
    }
}

/// A named request shape: an optional image, prompt tokens, output tokens.
public struct Workload: Codable, Sendable, Equatable {
    public struct Image: Codable, Sendable, Equatable {
        public var width: Int
        public var height: Int

        enum CodingKeys: String, CodingKey, CaseIterable { case width, height }

        public init(width: Int, height: Int) { self.width = width; self.height = height }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            width = try c.decode(Int.self, forKey: .width, expected: "a positive width in pixels") { $0 > 0 }
            height = try c.decode(Int.self, forKey: .height, expected: "a positive height in pixels") { $0 > 0 }
        }
    }

    public var id: String
    public var description: String
    public var image: Image?
    /// Text tokens of the prompt (image tokens come on top).
    public var promptTokens: Int
    public var outputTokens: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, description, image, promptTokens = "prompt_tokens", outputTokens = "output_tokens"
    }

    public init(id: String, description: String, image: Image?, promptTokens: Int, outputTokens: Int) {
        self.id = id; self.description = description; self.image = image
        self.promptTokens = promptTokens; self.outputTokens = outputTokens
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id, expected: "a non-empty id") { !$0.isEmpty }
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        image = try c.decodeIfPresent(Image.self, forKey: .image)
        promptTokens = try c.decode(Int.self, forKey: .promptTokens, expected: "a positive token count") { $0 > 0 }
        outputTokens = try c.decode(Int.self, forKey: .outputTokens, expected: "a non-negative token count") {
            $0 >= 0
        }
    }

    /// Image tokens the decoder sees, for a model's preprocessing and an optional pixel budget.
    public func imageTokens(_ preprocessing: VisionPreprocessing?, maxPixels: Int? = nil) -> Int {
        guard let image, let preprocessing else { return 0 }
        return preprocessing.tokens(height: image.height, width: image.width, maxPixels: maxPixels)
    }

    /// ViT patches for the workload's image.
    public func imagePatches(_ preprocessing: VisionPreprocessing?, maxPixels: Int? = nil) -> Int {
        guard let image, let preprocessing else { return 0 }
        return preprocessing.patches(height: image.height, width: image.width, maxPixels: maxPixels)
    }

    /// Tokens in the context at the first output token.
    public func contextTokens(_ preprocessing: VisionPreprocessing?, maxPixels: Int? = nil) -> Int {
        promptTokens + imageTokens(preprocessing, maxPixels: maxPixels)
    }
}

/// The workloads file (`Models/workloads.json`): named workloads, extendable by adding entries.
public struct WorkloadCatalog: Codable, Sendable, Equatable {
    public var schemaVersion: Int
    public var workloads: [Workload]

    enum CodingKeys: String, CodingKey, CaseIterable { case schemaVersion = "schema_version", workloads }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion, expected: "schema version 1") { $0 == 1 }
        workloads = try c.decode([Workload].self, forKey: .workloads, expected: "at least one workload") {
            !$0.isEmpty
        }
        var seen = Set<String>()
        for (i, w) in workloads.enumerated() where !seen.insert(w.id).inserted {
            throw FieldValidationError(field: "workloads[\(i)].id", expected: "a unique id", found: w.id)
        }
    }

    public static func load(_ path: String) throws -> WorkloadCatalog {
        try SpecLoader.load(WorkloadCatalog.self, from: path)
    }

    /// The workload with this id, or a `SpecError.unknownReference` naming the known ones.
    public func workload(named id: String, file: String) throws -> Workload {
        guard let w = workloads.first(where: { $0.id == id }) else {
            throw SpecError.unknownReference(file: file, field: "workloads", name: id, known: workloads.map(\.id))
        }
        return w
    }
}
