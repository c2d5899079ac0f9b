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
            // Only the project's own measurement marks a figure measured; published and derived ones are not.
            #expect(entry.measured == entry.source.hasPrefix("measured: autoglm-run measure-formats"),
                    "\(entry.module)/\(entry.format.rawValue): measured flag and source disagree")
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
        // Measured figures hold within their noise (SmolLM2's decoder in q8_0 read a PPL ratio of 0.9974 ± 0.0013).
        let noise = m.sensitivity.contains { $0.measured } ? 0.002 : 0
        #expect(f16 <= q8 + noise && q8 <= q6)
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

    @Test func smolLM2FiguresForExecutedFormatsAreMeasuredOnTheModel() throws {
        let m = try manifest("smollm2-135m")
        func entry(_ module: String, _ f: WeightFormat) -> FormatSensitivity? {
            m.sensitivity.first { $0.module == module && $0.format == f }
        }
        for module in ["embedding", "decoder", "head"] {
            for f in WeightFormat.allCases where f != .f32 {
                let e = try #require(entry(module, f), "\(module)/\(f.rawValue)")
                #expect(e.measured == f.engineExecutes, "\(module)/\(f.rawValue)")
            }
        }
        // The shipped Q4_1 grid converts to int4-g32 exactly, the Q8_0 table to q8_0.
        #expect(entry("decoder", .q4_1)?.loss == 0 && entry("decoder", .int4g32)?.loss == 0)
        #expect(entry("head", .q8_0)?.loss == 0 && entry("embedding", .q8_0)?.loss == 0)
        // A second 4-bit rounding of the decoder costs a quarter of the perplexity or more (share 0.79).
        #expect(try #require(entry("decoder", .q4_0)?.loss) > 0.25)
        #expect(try #require(entry("decoder", .int4g128)?.loss) > (try #require(entry("decoder", .q4_0)?.loss)))
        // The output projection in 4 bits costs far more than the lookup does.
        #expect(try #require(entry("head", .q4_0)?.loss) > 10 * (try #require(entry("embedding", .q4_0)?.loss)))
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
