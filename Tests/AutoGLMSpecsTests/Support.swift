import Foundation
import AutoGLMSpecs

/// The package root, found from this file's location.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func repoPath(_ relative: String) -> String { packageRoot + "/" + relative }

func manifest(_ name: String) throws -> ModelManifest { try ModelManifest.load(repoPath("Models/\(name).json")) }

/// Writes `text` to a temporary file and returns its path.
func temporaryFile(_ text: String, name: String = "spec.json") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-specs-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
