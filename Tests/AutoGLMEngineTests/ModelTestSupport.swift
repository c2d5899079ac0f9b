import Foundation
import Testing
@testable import AutoGLMEngine

/// Locates the SmolLM2 checkpoint for tests that need the real model.
enum ModelTestSupport {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var smolLM2Path: String {
        if let env = ProcessInfo.processInfo.environment["AUTOGLM_SMOLLM2"], !env.isEmpty { return env }
        return packageRoot.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    /// The real checkpoint, or a test failure that says how to get it.
    static func smolLM2() throws -> GGUFFile {
        let path = smolLM2Path
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("SmolLM2 checkpoint not found at \(path): run `make models` or set AUTOGLM_SMOLLM2")
            throw ModelError.missingTensor(name: "SmolLM2 checkpoint at \(path)")
        }
        return try GGUFFile(path: path)
    }

    /// A shared two-thread pool for tests.
    static let pool = ComputePool(threadCount: 2)

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
