import Foundation
import AutoGLMSpecs

/// Accuracy cost model.
///
/// Every figure is a relative perplexity increase, `PPL(quantised) / PPL(reference) − 1`, for the whole module stored
/// in one format (or one attention setting applied to the whole model), everything else at the BF16 reference.
///
/// Combination rule (additive, documented here and in the README):
///
///     loss = Σ_items  factor(module) · (parameters(item) / parameters(model)) · L(module, format(item))
///          + Σ_settings L(setting)
///
/// An item is a module or one group of decoder layers. Weighting by parameter share makes "every module in format F"
/// cost exactly L(F) (the published whole-model figure) when all factors are 1, and makes a layer group cost its
/// share of the decoder's figure. Attention settings (KV precision, sliding window, block-sparse selection, image-pixel
/// budget) add their own whole-model figures. The sum is a first-order model: published mixes (llama.cpp's Q4_K_M)
/// lose less than the parameter-weighted sum of their parts, so the figure errs on the pessimistic side.
///
/// Lookup order for L(module, format): the manifest's `sensitivity` entries (first whose glob matches the module name
/// and whose format matches), then `AccuracyModel.defaultFormatTable` (published figures, each with its source).
/// Settings: the manifest's `setting_sensitivity`, then `defaultSettingTable`. A format or setting without any figure
/// is not offered to the search; a block-sparse setting is offered only with a measured figure (`measured: true`).
public struct AccuracyModel: Sendable {
    public var formatTable: [FormatSensitivity]
    public var settingTable: [SettingSensitivity]
    /// Per-module factor (default 1 for every module: no published per-module figure for this architecture).
    public var moduleFactors: [String: Double]

    public init(manifest: ModelManifest, moduleFactors: [String: Double] = [:]) {
        formatTable = manifest.sensitivity + Self.defaultFormatTable
        settingTable = manifest.settingSensitivity + Self.defaultSettingTable
        self.moduleFactors = moduleFactors
    }

    /// The entry for a module and format, manifest first.
    public func entry(module: String, format: WeightFormat) -> FormatSensitivity? {
        formatTable.first { $0.format == format && globMatches($0.module, module) }
    }

    public func loss(module: String, format: WeightFormat) -> Double? { entry(module: module, format: format)?.loss }

    public func factor(module: String) -> Double { moduleFactors[module] ?? 1 }

    /// One item's weighted cost by the rule above, factor(module) · parameters / model parameters ·
    /// L(module, format), with the entry it used; nil when no table gives the module a figure for the format.
    public func itemCost(module: String, parameters: Int, modelParameters: Int,
                         format: WeightFormat) -> (loss: Double, entry: FormatSensitivity)? {
        guard let entry = entry(module: module, format: format) else { return nil }
        let share = Double(parameters) / Double(max(1, modelParameters))
        return (factor(module: module) * share * entry.loss, entry)
    }

    public func setting(_ name: String) -> SettingSensitivity? { settingTable.first { $0.setting == name } }

    /// Setting keys used by the search.
    public static func kvSetting(_ format: KVCacheFormat) -> String { "kv:\(format.rawValue)" }
    public static func windowSetting(window: Int, global: Int) -> String { "window:\(window)+\(global)" }
    public static func pixelSetting(_ maxPixels: Int) -> String { "max_pixels:\(maxPixels)" }
    /// MoBA block-sparse attention: blocks of `chunk` tokens, each query attends its own block and the `topK − 1`
    /// best-scoring earlier ones (the key `AttentionSettingSpec.accuracyKeys` uses).
    public static func blockSparseSetting(_ b: Plan.BlockSparse) -> String { "block-sparse:\(b.chunk)/\(b.topK)" }

    /// Block-sparse settings named in the table (`block-sparse:C/K`, C and K positive), with their entry, in table
    /// order.
    public var blockSparseEntries: [(blockSparse: Plan.BlockSparse, entry: SettingSensitivity)] {
        var out: [(Plan.BlockSparse, SettingSensitivity)] = []
        for s in settingTable where s.setting.hasPrefix("block-sparse:") {
            let body = s.setting.dropFirst("block-sparse:".count).split(separator: "/")
            if body.count == 2, let c = Int(body[0]), let k = Int(body[1]), c > 0, k > 0,
               !out.contains(where: { $0.0 == Plan.BlockSparse(chunk: c, topK: k) }) {
                out.append((Plan.BlockSparse(chunk: c, topK: k), s))
            }
        }
        return out
    }

    /// Block-sparse settings the search offers: those whose figure was measured on the model (KL against full
    /// attention, `autoglm-run measure-attention`). An estimate does not qualify: block selection by mean-pooled keys
    /// on a model not trained for it can cost far more than published figures for trained models suggest.
    public var blockSparseOptions: [Plan.BlockSparse] {
        blockSparseEntries.filter { $0.entry.measured }.map(\.blockSparse)
    }

    /// Windows and pixel budgets the tables give figures for.
    public var windowOptions: [(window: Int, global: Int)] {
        var out: [(Int, Int)] = []
        for s in settingTable where s.setting.hasPrefix("window:") {
            let body = s.setting.dropFirst("window:".count).split(separator: "+")
            if body.count == 2, let w = Int(body[0]), let g = Int(body[1]), w > 0, g >= 0,
               !out.contains(where: { $0 == (w, g) }) {
                out.append((w, g))
            }
        }
        return out
    }

    public var pixelOptions: [Int] {
        var out: [Int] = []
        for s in settingTable where s.setting.hasPrefix("max_pixels:") {
            if let n = Int(s.setting.dropFirst("max_pixels:".count)), n > 0, !out.contains(n) { out.append(n) }
        }
        return out
    }

    // MARK: Published defaults

    static let llamaCppPPL = "llama.cpp tools/perplexity/README.md, Llama-3-8B on wikitext-2 (FP16 PPL 6.233160)"
    static let awq = "AWQ (Lin et al. 2023, arXiv:2306.00978) Table 4, Llama-2-7B wikitext-2 PPL FP16 5.47"
    /// llama.cpp's comparison table: Q4_K_M costs Llama-2-7B 1.4242% and Llama-3-8B 2.8160%; Llama-2 figures are
    /// scaled by that ratio to stand for a Llama-3-class model.
    static let llama3Scale = 2.8160 / 1.4242
    /// AWQ Table 4, Llama-2-7B INT4 g128: RTN 5.73 and GPTQ 5.69 against FP16 5.47, scaled to Llama-3 sensitivity.
    static let awqRTN128 = (5.73 / 5.47 - 1) * llama3Scale
    static let awqGPTQ128 = (5.69 / 5.47 - 1) * llama3Scale

    /// Defaults from published results, used when the manifest provides no figure. Module "*" applies to every module.
    public static let defaultFormatTable: [FormatSensitivity] = [
        .init(module: "*", format: .f32, loss: 0, source: "reference precision (exact superset of BF16)"),
        .init(module: "*", format: .bf16, loss: 0, source: "reference: the released checkpoint is BF16"),
        .init(module: "*", format: .f16, loss: 0.000404,
              source: "llama.cpp tools/perplexity/README.md, Llama-3-8B FP16 vs BF16: mean PPL ratio 1.000404"),
        .init(module: "*", format: .q8_0, loss: 0.000425,
              source: llamaCppPPL + ": q8_0 mean PPL ratio 1.000425"),
        .init(module: "*", format: .llmInt8, loss: 0.000425,
              source: "LLM.int8() (Dettmers et al. 2022, arXiv:2208.07339) retains 16-bit perplexity from 125M to 175B; " +
                "taken at q8_0's figure (ratio 1.000425, llama.cpp README) as a floor"),
        .init(module: "*", format: .int8, loss: 0.00085,
              source: "estimate: per-row INT8 has one scale per row instead of per 32 (q8_0); taken as twice q8_0's " +
                "0.0425% (llama.cpp README, Llama-3-8B)"),
        .init(module: "*", format: .q6K, loss: 0.003490,
              source: llamaCppPPL + ": q6_K mean PPL ratio 1.003490"),
        .init(module: "*", format: .q4K, loss: 0.042894,
              source: llamaCppPPL + ": q4_K_S (almost all Q4_K) PPL 6.500529 → ratio 1.042894"),
        .init(module: "*", format: .q4_1, loss: 0.072127,
              source: llamaCppPPL + ": q4_1 PPL 6.682737 → ratio 1.072127"),
        .init(module: "*", format: .q4_0, loss: 0.074920,
              source: llamaCppPPL + ": q4_0 PPL 6.700147 → ratio 1.074920"),
        .init(module: "*", format: .int4g32, loss: 0.072127,
              source: "derived: INT4 g32 with FP16 scale and min is q4_1's layout and rounding; q4_1's ratio 1.072127 " +
                "(llama.cpp README, Llama-3-8B)"),
        .init(module: "*", format: .int4g128, loss: awqRTN128,
              source: awq + ": INT4 g128 RTN 5.73 (+4.753%), × 1.977 " +
                "(llama.cpp: Q4_K_M costs Llama-3-8B 2.816% vs Llama-2-7B 1.424%)"),
        .init(module: "*", format: .int4g64, loss: (0.072127 + awqRTN128) / 2,
              source: "estimate: midway between INT4 g32 (q4_1's 7.213%) and INT4 g128 (AWQ's RTN g128, scaled)"),
        .init(module: "*", format: .gptqInt4g128, loss: awqGPTQ128,
              source: awq + ": GPTQ INT4 g128 5.69 (+4.022%), × 1.977 " +
                "(Llama-2 → Llama-3 sensitivity, llama.cpp README)"),
        .init(module: "*", format: .nf4, loss: 0.074920,
              source: "estimate: NF4 (absmax per 64, QLoRA arXiv:2305.14314) beats Int4 absmax in QLoRA Table 2; " +
                "bounded by q4_0's ratio 1.074920 (symmetric absmax per 32, llama.cpp README)"),
    ]

    /// Attention-setting defaults from published results.
    public static let defaultSettingTable: [SettingSensitivity] = [
        .init(setting: "kv:f32", loss: 0, source: "reference precision"),
        .init(setting: "kv:f16", loss: 0, source: "reference: the model runs with a 16-bit KV cache"),
        .init(setting: "kv:int8", loss: 0.000349,
              source: "llama.cpp PR #7412 (Llama-3-8B, wikitext-2): K and V in q8_0 PPL 6.234369 vs 6.232196 with F16 " +
                "K/V → ratio 1.000349"),
        .init(setting: "kv:int4", loss: 0.072127,
              source: "estimate: llama.cpp PR #7412 shows q8_0 K/V costing about what q8_0 weights cost; 4-bit K/V " +
                "(scale + min per 32) taken at q4_1 weights' ratio 1.072127 (llama.cpp README)"),
        .init(setting: "max_pixels:5000000", loss: 0,
              source: "the model's own serving recipe sets max_pixels 5,000,000 (zai-org/Open-AutoGLM README): the " +
                "published configuration, taken as the reference"),
    ]
}
