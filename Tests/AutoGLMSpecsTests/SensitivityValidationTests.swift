import Testing
import Foundation
import AutoGLMSpecs

@Suite("Shipped manifests and their sensitivity tables")
struct SensitivityValidationTests {
    static let manifestIDs = ["autoglm-phone-9b", "autoglm-phone-9b-voice", "glm-4-9b", "smollm2-135m"]

    @Test(arguments: manifestIDs)
    func everyShippedManifestLoads(id: String) throws {
        let m = try manifest(id)
        #expect(m.id == id)
        #expect(m.parameters > 0)
    }

    @Test(arguments: manifestIDs)
    func decoderCoversEveryWeightFormat(id: String) throws {
        let m = try manifest(id)
        let decoder = try #require(m.modules.first { $0.kind == .textDecoder }?.name)
        let covered = Set(m.sensitivity.filter { globMatches($0.module, decoder) }.map(\.format))
        #expect(covered == Set(WeightFormat.allCases), "missing: \(Set(WeightFormat.allCases).subtracting(covered))")
    }

    @Test(arguments: manifestIDs)
    func entriesAreSourcedUniqueAndPointAtModules(id: String) throws {
        let m = try manifest(id)
        #expect(!m.sensitivity.isEmpty)
        var seen = Set<String>()
        for entry in m.sensitivity {
            #expect(m.modules.contains { globMatches(entry.module, $0.name) }, "\(entry.module) matches no module")
            #expect(seen.insert("\(entry.module)/\(entry.format.rawValue)").inserted,
                    "duplicate entry \(entry.module)/\(entry.format.rawValue)")
            #expect(entry.source.count > 20, "\(entry.module)/\(entry.format.rawValue): source too thin")
            #expect(entry.measured == false, "published and derived figures are not measurements")
            #expect(entry.loss < 1)
        }
    }

    @Test(arguments: manifestIDs)
    func lossesGrowAsBitsShrink(id: String) throws {
        let m = try manifest(id)
        let decoder = try #require(m.modules.first { $0.kind == .textDecoder }?.name)
        func loss(_ format: WeightFormat) -> Double? {
            m.sensitivity.first { $0.module == decoder && $0.format == format }?.loss
        }
        let f16 = try #require(loss(.f16)), q8 = try #require(loss(.q8_0)), q6 = try #require(loss(.q6K))
        let q4k = try #require(loss(.q4K)), q40 = try #require(loss(.q4_0))
        let g32 = try #require(loss(.int4g32)), g128 = try #require(loss(.int4g128))
        #expect(loss(.f32) == 0)
        #expect(f16 <= q8 && q8 <= q6)
        #expect(q6 < q4k && q4k < q40)
        #expect(g32 <= g128)
    }

    @Test(arguments: manifestIDs)
    func settingNamesFollowTheConvention(id: String) throws {
        let m = try manifest(id)
        let names = m.settingSensitivity.map(\.setting)
        #expect(Set(names).count == names.count, "duplicate settings")
        #expect(names.contains("kv:f16") && names.contains("kv:int8") && names.contains("kv:int4"))
        #expect(m.settingSensitivity.first { $0.setting == "kv:f16" }?.loss == 0)
        for entry in m.settingSensitivity {
            #expect(Self.isConventional(entry.setting), "unconventional setting name \(entry.setting)")
            #expect(entry.source.count > 20)
        }
        #expect(names.contains { $0.hasPrefix("window:") } && names.contains { $0.hasPrefix("block-sparse:") })
        if m.vision != nil { #expect(names.contains { $0.hasPrefix("image-max-pixels:") }) }
        // Fewer bits in the cache cost more.
        let kv = { (name: String) in m.settingSensitivity.first { $0.setting == name }?.loss ?? -1 }
        #expect(kv("kv:f16") < kv("kv:int8") && kv("kv:int8") < kv("kv:int4"))
    }

    /// "kv:<format>", "window:<tokens>+<global>", "block-sparse:<chunk>/<topk>", "image-max-pixels:<n>".
    static func isConventional(_ setting: String) -> Bool {
        let parts = setting.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return false }
        let isCount = { (s: Substring) in !s.isEmpty && s.allSatisfy(\.isNumber) }
        switch parts[0] {
        case "kv": return ["f32", "f16", "bf16", "int8", "int4"].contains(parts[1])
        case "window":
            let n = parts[1].split(separator: "+", omittingEmptySubsequences: false)
            return n.count == 2 && n.allSatisfy(isCount)
        case "block-sparse":
            let n = parts[1].split(separator: "/", omittingEmptySubsequences: false)
            return n.count == 2 && n.allSatisfy(isCount)
        case "image-max-pixels": return isCount(Substring(parts[1]))
        default: return false
        }
    }

    @Test func smolLM2CitesItsMeasuredKLFigures() throws {
        let m = try manifest("smollm2-135m")
        func entry(_ f: WeightFormat) -> FormatSensitivity? {
            m.sensitivity.first { $0.module == "decoder" && $0.format == f }
        }
        #expect(entry(.q8_0)?.loss == 0.0046)
        #expect(entry(.q4_1)?.loss == 0.0031)
        #expect(entry(.q4_0)?.loss == 0.30)
        #expect(entry(.q4_0)?.source.contains("68%") == true)
        // A 135M model is more sensitive than an 8-9B one at the same format.
        let glm = try manifest("glm-4-9b")
        let glmQ8 = try #require(glm.sensitivity.first { $0.module == "decoder" && $0.format == .q8_0 }?.loss)
        #expect(try #require(entry(.q8_0)?.loss) > glmQ8)
    }

    @Test func nineBDecoderMatchesLlamaCppFigures() throws {
        let m = try manifest("autoglm-phone-9b")
        func loss(_ f: WeightFormat) -> Double? { m.sensitivity.first { $0.module == "decoder" && $0.format == f }?.loss }
        // llama.cpp, Llama-3-8B: Q8_0 PPL ratio 1.0004, Q4_0 +0.4685 / 6.233.
        #expect(loss(.q8_0) == 0.0004)
        #expect(abs((loss(.q4_0) ?? 0) - 0.4685 / 6.233) < 1e-4)
        // The vision tower is covered for the formats a phone plan would use.
        let vision = Set(m.sensitivity.filter { $0.module == "vision" }.map(\.format))
        #expect(vision.isSuperset(of: [.f16, .q8_0, .int8, .q4_0, .int4g128]))
    }
}
