import Foundation
import AutoGLMSpecs

/// Derives a `ModelManifest` from a Hugging Face `config.json` (llama, glm4, chatglm, glm4v with text_config and
/// vision_config), so the planner can take either a manifest or a config.
public enum ManifestDerivation {
    /// Loads a manifest file, or derives one when the file is a Hugging Face config (it has `model_type` or
    /// `architectures` and no `schema_version`).
    public static func load(_ path: String) throws -> ModelManifest {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SpecError.unreadable(file: path, reason: (error as NSError).localizedDescription)
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)"
            throw SpecError.invalidJSON(file: path, reason: reason)
        }
        if let dict = object as? [String: Any], dict["schema_version"] == nil,
           dict["model_type"] != nil || dict["architectures"] != nil {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
            let preprocessorPath = dir.appendingPathComponent("preprocessor_config.json").path
            var preprocessor: [String: Any]? = nil
            if let d = try? Data(contentsOf: URL(fileURLWithPath: preprocessorPath)),
               let p = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
                preprocessor = p
            }
            return try fromHFConfig(dict, file: path, preprocessor: preprocessor)
        }
        return try SpecLoader.decode(ModelManifest.self, from: data, file: path)
    }

    /// Reads typed fields out of a config dictionary, with errors naming the file and field.
    struct Fields {
        var dict: [String: Any]
        var file: String
        var prefix: String

        func int(_ key: String, default value: Int? = nil, positive: Bool = true) throws -> Int {
            guard let raw = dict[key] else {
                if let value { return value }
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "an integer (field is required)",
                                             found: "nothing")
            }
            guard !Self.isBoolean(raw), let n = raw as? NSNumber, n.doubleValue == n.doubleValue.rounded()
            else {
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "an integer", found: "\(raw)")
            }
            if positive && n.intValue <= 0 {
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "a positive integer",
                                             found: "\(n.intValue)")
            }
            return n.intValue
        }

        func double(_ key: String, default value: Double) throws -> Double {
            guard let raw = dict[key] else { return value }
            guard !Self.isBoolean(raw), let n = raw as? NSNumber, n.doubleValue > 0 else {
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "a positive number", found: "\(raw)")
            }
            return n.doubleValue
        }

        /// JSON true/false (an NSNumber whose type code is "c"); plain 0 and 1 are numbers.
        static func isBoolean(_ raw: Any) -> Bool {
            if let n = raw as? NSNumber { return String(cString: n.objCType) == "c" }
            return raw is Bool
        }

        func bool(_ key: String, default value: Bool) throws -> Bool {
            guard let raw = dict[key] else { return value }
            guard Self.isBoolean(raw), let b = raw as? Bool else {
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "true or false", found: "\(raw)")
            }
            return b
        }

        func object(_ key: String) throws -> Fields {
            guard let d = dict[key] as? [String: Any] else {
                throw SpecError.invalidField(file: file, field: prefix + key, expected: "an object",
                                             found: dict[key].map { "\($0)" } ?? "nothing")
            }
            return Fields(dict: d, file: file, prefix: prefix + key + ".")
        }
    }

    /// Derives a manifest from a parsed `config.json`.
    public static func fromHFConfig(_ config: [String: Any], file: String,
                                    preprocessor: [String: Any]? = nil) throws -> ModelManifest {
        let root = Fields(dict: config, file: file, prefix: "")
        let type = (config["model_type"] as? String) ?? ""
        let id = ((config["_name_or_path"] as? String).map { URL(fileURLWithPath: $0).lastPathComponent } ?? "")
        let name = id.isEmpty ? URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent : id
        var modules: [[String: Any]] = []
        var vision: [String: Any]? = nil
        let architecture: String
        switch type {
        case "llama", "mistral", "qwen2":
            architecture = "llama"
            modules = try textModules(root, style: .llama)
        case "glm4":
            architecture = "glm4"
            modules = try textModules(root, style: .glm4)
        case "chatglm":
            architecture = "chatglm"
            modules = try textModules(root, style: .chatglm)
        case "glm4v":
            architecture = "glm4v"
            let text = try root.object("text_config")
            let v = try root.object("vision_config")
            let depth = try v.int("depth")
            let hidden = try v.int("hidden_size")
            let heads = try v.int("num_heads")
            if hidden % heads != 0 {
                throw SpecError.invalidField(file: file, field: v.prefix + "num_heads",
                                             expected: "a divisor of hidden_size (\(hidden))", found: "\(heads)")
            }
            let out = try v.int("out_hidden_size")
            let patch = try v.int("patch_size", default: 14)
            let temporal = try v.int("temporal_patch_size", default: 2)
            let merge = try v.int("spatial_merge_size", default: 2)
            let imageSize = try v.int("image_size", default: 336)
            modules.append([
                "name": "vision", "kind": "vision_encoder", "layers": depth, "hidden": hidden, "heads": heads,
                "head_dim": hidden / heads, "mlp_hidden": out, "mlp": "swiglu", "attention_bias": false,
                "mlp_bias": false, "norm": "rms", "patch_size": patch, "temporal_patch": temporal,
                "channels": try v.int("in_channels", default: 3), "patch_bias": true,
                "position_grid": imageSize / patch, "extra_norms": 2,
            ])
            modules.append([
                "name": "projector", "kind": "projector", "style": "conv_merger", "input_hidden": hidden,
                "output_hidden": out, "merge": merge, "ffn": try v.int("intermediate_size"),
            ])
            modules += try textModules(text, style: .glm4)
            let size = (preprocessor?["size"] as? [String: Any]) ?? [:]
            vision = [
                "patch_size": patch, "merge": merge, "temporal_patch": temporal,
                "min_pixels": (size["shortest_edge"] as? Int) ?? 12544,
                "max_pixels": (size["longest_edge"] as? Int) ?? 9_633_792,
            ]
        default:
            throw SpecError.invalidField(file: file, field: "model_type",
                                         expected: "one of llama, mistral, qwen2, glm4, chatglm, glm4v",
                                         found: type.isEmpty ? "nothing" : type)
        }
        var manifest: [String: Any] = [
            "schema_version": ModelManifest.currentSchemaVersion, "id": name, "name": name,
            "architecture": architecture, "source": "derived from \(file) (Hugging Face config.json)",
            "modules": modules,
        ]
        if let vision { manifest["vision"] = vision }
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        return try SpecLoader.decode(ModelManifest.self, from: data, file: file)
    }

    enum TextStyle { case llama, glm4, chatglm }

    static func textModules(_ c: Fields, style: TextStyle) throws -> [[String: Any]] {
        let hidden = try c.int("hidden_size")
        let layers = try c.int(style == .chatglm ? "num_layers" : "num_hidden_layers")
        let heads = try c.int("num_attention_heads")
        let kvHeads: Int
        if style == .chatglm {
            let mqa = try c.bool("multi_query_attention", default: false)
            kvHeads = mqa ? try c.int("multi_query_group_num") : heads
        } else {
            kvHeads = try c.int("num_key_value_heads", default: heads)
        }
        if heads % kvHeads != 0 {
            let field = style == .chatglm ? "multi_query_group_num" : "num_key_value_heads"
            throw SpecError.invalidField(file: c.file, field: c.prefix + field,
                                         expected: "a divisor of num_attention_heads (\(heads))", found: "\(kvHeads)")
        }
        let headDim = try c.int(style == .chatglm ? "kv_channels" : "head_dim", default: hidden / heads)
        let ffn = try c.int(style == .chatglm ? "ffn_hidden_size" : "intermediate_size")
        let vocab = try c.int(style == .chatglm ? "padded_vocab_size" : "vocab_size")
        let maxPositions = try c.int(style == .chatglm ? "seq_length" : "max_position_embeddings", default: 4096)
        let theta = style == .chatglm ? 10000 * (try c.double("rope_ratio", default: 1))
            : try c.double("rope_theta", default: 10000)
        let eps = try c.double(style == .chatglm ? "layernorm_epsilon" : "rms_norm_eps", default: 1e-5)
        let tied = try c.bool("tie_word_embeddings", default: false)
        var decoder: [String: Any] = [
            "name": "decoder", "kind": "text_decoder", "layers": layers, "hidden": hidden, "heads": heads,
            "kv_heads": kvHeads, "head_dim": headDim, "ffn": ffn, "mlp": "swiglu", "max_positions": maxPositions,
            "rope_theta": theta, "norm_epsilon": eps,
        ]
        switch style {
        case .llama:
            decoder["qkv_bias"] = try c.bool("attention_bias", default: false)
            decoder["norms_per_layer"] = 2
            decoder["fused_gate_up"] = false
            decoder["rotary_fraction"] = 1.0
            decoder["rotary_interleaved"] = false
        case .glm4:
            decoder["qkv_bias"] = try c.bool("attention_bias", default: true)
            decoder["norms_per_layer"] = 4
            decoder["fused_gate_up"] = true
            decoder["rotary_fraction"] = try c.double("partial_rotary_factor", default: 0.5)
            decoder["rotary_interleaved"] = true
        case .chatglm:
            decoder["qkv_bias"] = try c.bool("add_qkv_bias", default: true)
            decoder["norms_per_layer"] = 2
            decoder["fused_gate_up"] = true
            decoder["rotary_fraction"] = 0.5
            decoder["rotary_interleaved"] = true
        }
        return [
            ["name": "embedding", "kind": "embedding", "vocab": vocab, "hidden": hidden],
            decoder,
            ["name": "head", "kind": "head", "vocab": vocab, "hidden": hidden, "tied": tied],
        ]
    }
}
