import Foundation
import AutoGLMSpecs
@testable import AutoGLMPlanner

/// The package root, found from this file's location.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func repoPath(_ relative: String) -> String { packageRoot + "/" + relative }

func manifest(_ name: String) throws -> ModelManifest { try ModelManifest.load(repoPath("Models/\(name).json")) }
func profile(_ name: String) throws -> DeviceProfile { try DeviceProfile.load(repoPath("DeviceProfiles/\(name).json")) }
func workload(_ name: String) throws -> Workload {
    try WorkloadCatalog.load(repoPath("Models/workloads.json")).workload(named: name, file: "Models/workloads.json")
}

let phone = "snapdragon-8-gen-3-12gb"

func phoneRequest(_ configure: (inout PlanRequest) throws -> Void = { _ in }) throws -> PlanRequest {
    var r = PlanRequest(model: try manifest("autoglm-phone-9b"), device: try profile(phone),
                        workload: try workload("screenshot-agent"))
    try configure(&r)
    return r
}

/// Writes `text` to a temporary file and returns its path.
func temporaryFile(_ text: String, name: String = "spec.json") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autoglm-planner-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// A two-GPU server: kind server, one gpu unit with count 2, PCIe without peer-to-peer (figures from facts: RTX 4090).
let serverProfileJSON = """
{
  "schema_version": 1, "id": "test-dual-4090", "name": "two RTX 4090 over PCIe", "kind": "server",
  "memory": {
    "total_bytes": { "value": 48000000000, "source": "2 x 24 GB GDDR6X" },
    "app_budget_bytes": { "value": 46000000000, "source": "test" },
    "os_reserve_bytes": { "value": 2000000000, "source": "test" },
    "bandwidth_bytes_per_second": { "value": 1008000000000, "source": "RTX 4090 spec" }
  },
  "compute_units": [
    { "id": "gpu", "kind": "gpu", "count": 2,
      "peak_ops_per_second": { "f16": { "value": 165000000000000, "source": "RTX 4090 FP16 tensor dense" },
                               "int8": { "value": 661000000000000, "source": "RTX 4090 INT8 dense" },
                               "int4": { "value": 1321000000000000, "source": "RTX 4090 INT4 dense" } },
      "formats": ["f16", "bf16", "q8_0", "q4_0", "int4-g128"],
      "memory_bytes": { "value": 24000000000, "source": "24 GB" },
      "bandwidth_bytes_per_second": { "value": 1008000000000, "source": "384-bit GDDR6X" } }
  ],
  "interconnect": { "kind": "pcie", "bandwidth_bytes_per_second": { "value": 25000000000, "source": "PCIe 4.0 x16 practical" },
                    "latency_seconds": { "value": 0.00001, "source": "test" },
                    "peer_to_peer": { "value": false, "source": "driver disables P2P on 4090" } },
  "efficiency": {
    "matvec_bandwidth": { "value": 0.8, "source": "test" },
    "matmul_compute": { "value": 0.6, "source": "test" },
    "attention_compute": { "value": 0.5, "source": "test" }
  },
  "sustained_factor": { "value": 1.0, "source": "test" },
  "runtime_overhead_bytes": { "value": 500000000, "source": "test" }
}
"""
