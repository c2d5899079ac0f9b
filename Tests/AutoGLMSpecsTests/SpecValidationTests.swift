import Testing
import Foundation
import AutoGLMSpecs

/// A small, valid device profile; `memory`, `extraTop` and `unitExtra` let a case break one thing at a time.
func profileJSON(
    total: String = "12000000000", budget: String = "6500000000", reserve: String = "4800000000",
    extraTop: String = "", extraMemory: String = "", budgetField: String? = nil
) -> String {
    let budgetLine = budgetField ?? #""app_budget_bytes": { "value": \#(budget), "source": "derived: test" },"#
    return """
    {
      "schema_version": 1, "id": "test-phone", "name": "Test phone", "kind": "phone",\(extraTop)
      "memory": {
        "total_bytes": { "value": \(total), "source": "test sheet" },
        \(budgetLine)
        "os_reserve_bytes": { "value": \(reserve), "source": "derived: test" },
        "bandwidth_bytes_per_second": { "value": 76800000000, "source": "derived: 9600 MT/s x 64 / 8" }\(extraMemory)
      },
      "compute_units": [
        { "id": "cpu", "kind": "cpu", "clusters": [ { "name": "big", "cores": 4, "clock_ghz": 3.0 } ],
          "peak_ops_per_second": { "f32": { "value": 1.0e11, "source": "derived: test" } },
          "formats": ["f32", "q4_0"] }
      ],
      "efficiency": {
        "matvec_bandwidth": { "value": 0.7, "source": "derived: test" },
        "matmul_compute": { "value": 0.4, "source": "derived: test" },
        "attention_compute": { "value": 0.3, "source": "derived: test" }
      },
      "sustained_factor": { "value": 0.8, "source": "derived: test" },
      "runtime_overhead_bytes": { "value": 300000000, "source": "derived: test" }
    }
    """
}

/// A small, valid text-only manifest; the arguments let a case break one thing at a time.
func manifestJSON(
    layers: String = "2", heads: String = "4", kvHeads: String = "2", extraTop: String = "",
    extraDecoder: String = "", embeddingName: String = "embedding", sensitivityFormat: String = "q4_0"
) -> String {
    """
    {
      "schema_version": 1, "id": "tiny", "name": "Tiny", "architecture": "llama", "source": "test",\(extraTop)
      "modules": [
        { "name": "\(embeddingName)", "kind": "embedding", "vocab": 64, "hidden": 32 },
        { "name": "decoder", "kind": "text_decoder", "layers": \(layers), "hidden": 32, "heads": \(heads),
          "kv_heads": \(kvHeads), "head_dim": 8, "ffn": 64, "max_positions": 128\(extraDecoder) },
        { "name": "head", "kind": "head", "vocab": 64, "hidden": 32, "tied": true }
      ],
      "sensitivity": [
        { "module": "decoder", "format": "\(sensitivityFormat)", "loss": 0.07, "source": "test" }
      ],
      "setting_sensitivity": [ { "setting": "kv:int8", "loss": 0.001, "source": "test" } ]
    }
    """
}

/// One bad input, the loader that reads it, and what its error must name.
struct BadSpecCase: Sendable, CustomTestStringConvertible {
    enum Loader: Sendable { case profile, manifest, genericProfile }
    var name: String
    var loader: Loader
    var text: String
    /// Text that names the offending field.
    var field: String
    /// Text that says what was expected.
    var expected: String

    var testDescription: String { name }

    static let all: [BadSpecCase] = [
        BadSpecCase(name: "invalid JSON", loader: .profile, text: "{ \"schema_version\": 1, \"id\": ",
                    field: "invalid JSON", expected: "invalid JSON"),
        BadSpecCase(name: "invalid JSON through SpecLoader", loader: .genericProfile,
                    text: profileJSON().replacingOccurrences(of: "\"kind\": \"phone\",", with: "\"kind\": \"phone\""),
                    field: "invalid JSON", expected: "invalid JSON"),
        BadSpecCase(name: "unknown top-level field", loader: .profile,
                    text: profileJSON(extraTop: #" "colour": "blue","#),
                    field: "'colour'", expected: "allowed here: schema_version"),
        BadSpecCase(name: "per-format matvec efficiency above 1", loader: .profile,
                    text: profileJSON(extraTop: #" "matvec_bandwidth_by_format": { "q4_0": { "value": 1.4, "source": "x" } },"#),
                    field: "matvec_bandwidth_by_format.q4_0", expected: "a factor in (0, 1]"),
        BadSpecCase(name: "negative fixed seconds per matvec call", loader: .profile,
                    text: profileJSON(extraTop: #" "matvec_call_seconds_by_format": { "q4_0": { "value": -1e-6, "source": "x" } },"#),
                    field: "matvec_call_seconds_by_format.q4_0", expected: "seconds in [0, 1)"),
        BadSpecCase(name: "per-format matvec efficiency for an unknown format", loader: .profile,
                    text: profileJSON(extraTop: #" "matvec_bandwidth_by_format": { "q3_k": { "value": 0.5, "source": "x" } },"#),
                    field: "q3_k", expected: "q3_k"),
        BadSpecCase(name: "measured_with without a kernel family", loader: .profile,
                    text: profileJSON(extraTop: #" "measured_with": { "kernels": "", "cpu": "AMD EPYC" },"#),
                    field: "measured_with.kernels", expected: "a kernel family name"),
        BadSpecCase(name: "unknown field in measured_with", loader: .profile,
                    text: profileJSON(extraTop: #" "measured_with": { "kernels": "simd8", "threads": 2 },"#),
                    field: "'measured_with.threads'", expected: "allowed here: kernels, cpu"),
        BadSpecCase(name: "unknown nested field in memory", loader: .profile,
                    text: profileJSON(extraMemory: #", "swap_bytes": { "value": 1, "source": "x" }"#),
                    field: "'memory.swap_bytes'", expected: "allowed here: total_bytes"),
        BadSpecCase(name: "unknown nested field in a module", loader: .manifest,
                    text: manifestJSON(extraDecoder: #", "moe_experts": 8"#),
                    field: "'modules[1].moe_experts'", expected: "allowed here: name, kind, note, layers"),
        BadSpecCase(name: "negative total memory", loader: .profile,
                    text: profileJSON(total: "-12000000000"),
                    field: "'memory.total_bytes'", expected: "expected a positive number, found -12000000000"),
        BadSpecCase(name: "negative OS reserve", loader: .profile,
                    text: profileJSON(reserve: "-1"),
                    field: "'memory.os_reserve_bytes'", expected: "expected a non-negative number, found -1"),
        BadSpecCase(name: "app budget above total", loader: .profile,
                    text: profileJSON(total: "8000000000", budget: "9000000000"),
                    field: "'memory.app_budget_bytes'", expected: "expected at most total_bytes (8000000000)"),
        BadSpecCase(name: "missing required field", loader: .profile,
                    text: profileJSON(budgetField: ""),
                    field: "'memory.app_budget_bytes'", expected: "expected a value (field is required)"),
        BadSpecCase(name: "wrong type", loader: .profile,
                    text: profileJSON(total: "\"twelve gigabytes\""),
                    field: "'memory.total_bytes.value'", expected: "expected an integer"),
        BadSpecCase(name: "model with 0 layers", loader: .manifest,
                    text: manifestJSON(layers: "0"),
                    field: "'modules[1].layers'", expected: "expected a positive layer count, found 0"),
        BadSpecCase(name: "heads not divisible by KV heads", loader: .manifest,
                    text: manifestJSON(heads: "9", kvHeads: "2"),
                    field: "'modules[1].kv_heads'", expected: "expected a divisor of heads (9), found 2"),
        BadSpecCase(name: "hypothetical model without a note", loader: .manifest,
                    text: manifestJSON(extraTop: #" "hypothetical": true,"#),
                    field: "'hypothetical_note'", expected: "expected a note saying why the model is hypothetical"),
        BadSpecCase(name: "duplicate module names", loader: .manifest,
                    text: manifestJSON(embeddingName: "decoder"),
                    field: "'modules[1].name'", expected: "expected a unique module name, found decoder"),
        BadSpecCase(name: "unknown weight format", loader: .manifest,
                    text: manifestJSON(sensitivityFormat: "int3-g64"),
                    field: "'sensitivity[0].format'", expected: "expected one of f32, f16, bf16, int8"),
    ]
}

@Suite("Bad specification inputs give one-line errors naming file, field and expectation")
struct SpecValidationTests {
    /// Loads `text` from a temporary file with the case's loader and returns the thrown error.
    func failure(_ badCase: BadSpecCase, fileName: String) throws -> (path: String, error: SpecError) {
        let path = try temporaryFile(badCase.text, name: fileName)
        do {
            switch badCase.loader {
            case .profile: _ = try DeviceProfile.load(path)
            case .manifest: _ = try ModelManifest.load(path)
            case .genericProfile: _ = try SpecLoader.load(DeviceProfile.self, from: path)
            }
        } catch let error as SpecError {
            return (path, error)
        }
        Issue.record("\(badCase.name): loading succeeded, expected a SpecError")
        throw CancellationError()
    }

    @Test(arguments: BadSpecCase.all)
    func badInputIsRejected(badCase: BadSpecCase) throws {
        let fileName = badCase.loader == .manifest ? "bad-manifest.json" : "bad-profile.json"
        let (path, error) = try failure(badCase, fileName: fileName)
        let text = error.description
        #expect(text.hasPrefix(path + ": "), "error should start with the file path: \(text)")
        #expect(text.contains(badCase.field), "error should name the field \(badCase.field): \(text)")
        #expect(text.contains(badCase.expected), "error should say \(badCase.expected): \(text)")
        #expect(!text.contains("\n"), "error should be one line: \(text)")
    }

    @Test func validBaselinesLoad() throws {
        let profile = try DeviceProfile.load(try temporaryFile(profileJSON(), name: "ok-profile.json"))
        #expect(profile.memory.appBudgetBytes.value == 6_500_000_000)
        let manifest = try ModelManifest.load(try temporaryFile(manifestJSON(), name: "ok-manifest.json"))
        #expect(manifest.textDecoder?.layers == 2)
        #expect(manifest.sensitivity.first?.format == .q4_0)
    }

    @Test func missingFileIsUnreadable() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).json").path
        do {
            _ = try DeviceProfile.load(path)
            Issue.record("loading a missing file succeeded")
        } catch let error as SpecError {
            guard case .unreadable = error else {
                Issue.record("expected .unreadable, got \(error)")
                return
            }
            #expect(error.description.hasPrefix(path + ": cannot read file"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func unknownFormatInAProfileNamesTheArrayElement() throws {
        let text = profileJSON().replacingOccurrences(of: #"["f32", "q4_0"]"#, with: #"["f32", "q3_k"]"#)
        let path = try temporaryFile(text, name: "bad-format-profile.json")
        #expect {
            _ = try DeviceProfile.load(path)
        } throws: { error in
            let text = (error as? SpecError)?.description ?? ""
            return text.contains("'compute_units[0].formats[1]'") && text.contains("expected one of f32")
                && text.contains("q3_k") && !text.contains("\n")
        }
    }

    @Test func efficiencyOutsideUnitIntervalIsRejected() throws {
        let text = profileJSON().replacingOccurrences(
            of: #""matmul_compute": { "value": 0.4"#, with: #""matmul_compute": { "value": 1.4"#)
        let path = try temporaryFile(text, name: "bad-efficiency.json")
        #expect {
            _ = try DeviceProfile.load(path)
        } throws: { error in
            let text = (error as? SpecError)?.description ?? ""
            return text.hasPrefix(path) && text.contains("'efficiency.matmul_compute'") && text.contains("(0, 1]")
        }
    }

    @Test func emptySourceIsRejected() throws {
        let text = profileJSON().replacingOccurrences(of: #""source": "test sheet""#, with: #""source": "  ""#)
        let path = try temporaryFile(text, name: "empty-source.json")
        #expect {
            _ = try DeviceProfile.load(path)
        } throws: { error in
            let text = (error as? SpecError)?.description ?? ""
            return text.contains("'memory.total_bytes.source'") && text.contains("a non-empty source")
        }
    }
}
