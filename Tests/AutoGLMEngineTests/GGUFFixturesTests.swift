// Shared fixtures for the GGUF and tokenizer tests: a raw GGUF byte builder and the real model's location.

import Foundation
import Testing
@testable import AutoGLMEngine

/// Where the real SmolLM2 checkpoint lives: `AUTOGLM_SMOLLM2`, else `<package root>/.cache/models/...`.
enum GGUFTestFixtures {
    static let modelFileName = "SmolLM2-135M-Instruct.Q4_1.gguf"

    static func smolLM2Path(filePath: String = #filePath) -> String {
        if let env = ProcessInfo.processInfo.environment["AUTOGLM_SMOLLM2"], !env.isEmpty { return env }
        let root = URL(fileURLWithPath: filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".cache/models/\(modelFileName)").path
    }

    struct MissingModel: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "SmolLM2 checkpoint not found at \(path): run `make models` or set AUTOGLM_SMOLLM2"
        }
    }

    /// The real model file; throws a clear error when it is missing.
    static func requireSmolLM2() throws -> GGUFFile {
        let path = smolLM2Path()
        guard FileManager.default.fileExists(atPath: path) else { throw MissingModel(path: path) }
        return try GGUFFile(path: path)
    }

    /// The real model's tokenizer, built once per test run.
    static let smolLM2Tokenizer = Result { try Tokenizer(file: requireSmolLM2()) }

    static func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-gguf-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("\(UUID().uuidString)-\(name)").path
    }

    static func parse(_ bytes: [UInt8], label: String = "test.gguf") throws -> GGUFFile {
        try GGUFFile(mapping: MappedFile(copying: bytes, label: label))
    }
}

/// Builds GGUF bytes field by field, so tests can produce both valid files and precisely broken ones.
struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) {
        bytes.append(contentsOf: Array("GGUF".utf8))
        u32(version)
        u64(tensors)
        u64(kvs)
    }
    mutating func kvString(_ key: String, _ value: String) {
        string(key)
        u32(GGUFValueType.string.rawValue)
        string(value)
    }
    mutating func kvU32(_ key: String, _ value: UInt32) {
        string(key)
        u32(GGUFValueType.uint32.rawValue)
        u32(value)
    }
    mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(dims.count))
        for d in dims { u64(d) }
        u32(type)
        u64(offset)
    }
    mutating func pad(to alignment: Int = 32) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
    mutating func data(_ count: Int, fill: UInt8 = 0xAB) {
        bytes.append(contentsOf: repeatElement(fill, count: count))
    }

    /// A small valid file: two metadata entries and two F32 tensors of 8 and 4 elements.
    static func small() -> (bytes: [UInt8], headerEnd: Int) {
        var g = RawGGUF()
        g.header(tensors: 2, kvs: 2)
        g.kvString("general.architecture", "llama")
        g.kvU32("llama.block_count", 1)
        g.tensorInfo("a", dims: [8], type: GGMLType.f32.rawValue, offset: 0)
        g.tensorInfo("b", dims: [4], type: GGMLType.f32.rawValue, offset: 32)
        let headerEnd = g.bytes.count
        g.pad()
        g.data(32, fill: 1)
        g.data(16, fill: 2)
        return (g.bytes, headerEnd)
    }
}
