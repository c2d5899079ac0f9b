import Testing
import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

@Suite("Manifests from Hugging Face config.json")
struct ManifestDerivationTests {
    static let smolConfig = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
     "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
     "max_position_embeddings": 8192, "rope_theta": 100000, "rms_norm_eps": 1e-05, "tie_word_embeddings": true}
    """

    static let glm4vConfig = """
    {"architectures": ["Glm4vForConditionalGeneration"], "model_type": "glm4v",
     "text_config": {"model_type": "glm4v_text", "hidden_size": 4096, "num_hidden_layers": 40, "num_attention_heads": 32,
                     "num_key_value_heads": 2, "head_dim": 128, "intermediate_size": 13696, "vocab_size": 151552,
                     "max_position_embeddings": 65536, "partial_rotary_factor": 0.5, "attention_bias": true,
                     "rms_norm_eps": 1e-05, "rope_theta": 10000},
     "vision_config": {"depth": 24, "hidden_size": 1536, "num_heads": 12, "out_hidden_size": 4096,
                       "intermediate_size": 13696, "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2,
                       "image_size": 336, "in_channels": 3}}
    """

    static let chatglmConfig = """
    {"model_type": "chatglm", "hidden_size": 4096, "num_layers": 40, "num_attention_heads": 32,
     "multi_query_attention": true, "multi_query_group_num": 2, "ffn_hidden_size": 13696, "padded_vocab_size": 151552,
     "kv_channels": 128, "seq_length": 131072, "add_qkv_bias": true, "layernorm_epsilon": 1.5625e-07}
    """

    @Test func llamaConfigMatchesTheSmolLM2Manifest() throws {
        let derived = try ManifestDerivation.load(try temporaryFile(Self.smolConfig, name: "config.json"))
        let reference = try manifest("smollm2-135m")
        #expect(derived.parameters == reference.parameters)
        #expect(derived.textDecoder?.kvHeads == 3)
        #expect(derived.tensors.count == reference.tensors.count)
    }

    @Test func glm4vConfigMatchesTheAutoGLMManifest() throws {
        let derived = try ManifestDerivation.load(try temporaryFile(Self.glm4vConfig, name: "config.json"))
        #expect(derived.parameters == 10_292_777_472)
        #expect(derived.parameters == (try manifest("autoglm-phone-9b")).parameters)
        #expect(derived.vision?.maxPixels == 9_633_792)
        // And it plans.
        let plan = try Planner.plan(PlanRequest(model: derived, device: try profile(phone),
                                                workload: try workload("screenshot-agent"))).plan
        #expect(plan.feasible)
    }

    @Test func chatglmConfigMatchesGLM4_9BChat() throws {
        let derived = try ManifestDerivation.load(try temporaryFile(Self.chatglmConfig, name: "config.json"))
        // facts: GLM-4-9B-chat has 9,399,951,360 parameters.
        #expect(derived.parameters == 9_399_951_360)
    }

    @Test func manifestsStillLoad() throws {
        #expect(try ManifestDerivation.load(repoPath("Models/autoglm-phone-9b.json")).id == "autoglm-phone-9b")
    }

    @Test(arguments: [
        ("\"num_key_value_heads\": 4", "num_key_value_heads", "a divisor of num_attention_heads"),
        ("\"num_hidden_layers\": 0", "num_hidden_layers", "a positive integer"),
        ("\"hidden_size\": \"big\"", "hidden_size", "an integer"),
        ("\"model_type\": \"gpt9\"", "model_type", "one of llama"),
    ])
    func badConfigsNameTheField(replacement: String, field: String, expected: String) throws {
        let key = replacement.split(separator: ":")[0]
        let pattern = try NSRegularExpression(pattern: NSRegularExpression.escapedPattern(for: String(key)) + ": [^,}]+")
        let text = pattern.stringByReplacingMatches(in: Self.smolConfig, range: NSRange(location: 0,
                                                    length: Self.smolConfig.utf16.count), withTemplate: replacement)
        let path = try temporaryFile(text, name: "config.json")
        do {
            _ = try ManifestDerivation.load(path)
            Issue.record("expected an error for \(replacement)")
        } catch let error as SpecError {
            let line = error.description
            #expect(line.contains(path))
            #expect(line.contains("'\(field)'"))
            #expect(line.contains(expected))
            #expect(!line.contains("\n"))
        }
    }
}
