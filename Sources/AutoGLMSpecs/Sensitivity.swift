import Foundation

/// Accuracy cost of storing a module's weights in a format: the relative perplexity increase
/// (PPL(quantised) / PPL(reference) − 1) when the whole module uses that format and everything else stays full precision.
public struct FormatSensitivity: Codable, Sendable, Equatable {
    /// Module name or glob (`*` matches any run of characters), e.g. "decoder", "vision", "*".
    public var module: String
    public var format: WeightFormat
    /// Relative PPL increase, e.g. 0.028 for +2.8%.
    public var loss: Double
    public var source: String
    /// True when the figure was measured by this project's engine, false when taken from a publication.
    public var measured: Bool

    enum CodingKeys: String, CodingKey, CaseIterable { case module, format, loss, source, measured }

    public init(module: String, format: WeightFormat, loss: Double, source: String, measured: Bool = false) {
        self.module = module; self.format = format; self.loss = loss; self.source = source; self.measured = measured
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        module = try c.decode(String.self, forKey: .module, expected: "a module name or glob") { !$0.isEmpty }
        format = try c.decode(WeightFormat.self, forKey: .format)
        loss = try c.decode(Double.self, forKey: .loss, expected: "a non-negative relative loss") { $0 >= 0 && $0.isFinite }
        source = try c.decode(String.self, forKey: .source, expected: "a source") { !$0.isEmpty }
        measured = try c.decodeIfPresent(Bool.self, forKey: .measured) ?? false
    }
}

/// Accuracy cost of an attention setting, e.g. "kv:int8", "window:4096+64", "block-sparse:512/8".
public struct SettingSensitivity: Codable, Sendable, Equatable {
    public var setting: String
    public var loss: Double
    public var source: String
    public var measured: Bool

    enum CodingKeys: String, CodingKey, CaseIterable { case setting, loss, source, measured }

    public init(setting: String, loss: Double, source: String, measured: Bool = false) {
        self.setting = setting; self.loss = loss; self.source = source; self.measured = measured
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        setting = try c.decode(String.self, forKey: .setting, expected: "a setting name") { !$0.isEmpty }
        loss = try c.decode(Double.self, forKey: .loss, expected: "a non-negative relative loss") { $0 >= 0 && $0.isFinite }
        source = try c.decode(String.self, forKey: .source, expected: "a source") { !$0.isEmpty }
        measured = try c.decodeIfPresent(Bool.self, forKey: .measured) ?? false
    }
}

/// Glob matching for module names: `*` matches any run of characters, `?` one character.
public func globMatches(_ pattern: String, _ name: String) -> Bool {
    let p = Array(pattern), n = Array(name)
    var pi = 0, ni = 0, star = -1, mark = 0
    while ni < n.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == n[ni]) {
            pi += 1; ni += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi; mark = ni; pi += 1
        } else if star >= 0 {
            pi = star + 1; mark += 1; ni = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}
