import Testing
import Foundation
import AutoGLMSpecs

/// Every figure of a profile with a readable name, for checks over all of them.
func sourcedFigures(_ p: DeviceProfile) -> [(name: String, source: String, estimate: Bool)] {
    var out: [(String, String, Bool)] = []
    func add<V>(_ name: String, _ figure: Sourced<V>?) {
        if let figure { out.append((name, figure.source, figure.estimate)) }
    }
    add("memory.total_bytes", p.memory.totalBytes)
    add("memory.app_budget_bytes", p.memory.appBudgetBytes)
    add("memory.os_reserve_bytes", p.memory.osReserveBytes)
    add("memory.bandwidth_bytes_per_second", p.memory.bandwidthBytesPerSecond)
    for unit in p.computeUnits {
        for (precision, figure) in unit.peakOpsPerSecond { add("\(unit.id).peak.\(precision.rawValue)", figure) }
        add("\(unit.id).memory_bytes", unit.memoryBytes)
        add("\(unit.id).bandwidth_bytes_per_second", unit.bandwidthBytesPerSecond)
    }
    if let link = p.interconnect {
        add("interconnect.bandwidth", link.bandwidthBytesPerSecond)
        add("interconnect.latency", link.latencySeconds)
        add("interconnect.peer_to_peer", link.peerToPeer)
    }
    for (op, figure) in p.efficiency { add("efficiency.\(op.rawValue)", figure) }
    add("sustained_factor", p.sustainedFactor)
    add("runtime_overhead_bytes", p.runtimeOverheadBytes)
    return out
}

@Suite("Shipped device profiles")
struct ShippedProfileTests {
    static let expectedIDs = [
        "apple-a17-pro-8gb", "dimensity-9300-16gb", "dual-rtx-4090-server", "snapdragon-8-elite-12gb",
        "snapdragon-8-elite-16gb", "snapdragon-8-gen-3-12gb", "snapdragon-8-gen-3-16gb", "snapdragon-8-gen-3-24gb",
        "tensor-g4-12gb",
    ]

    func load(_ id: String) throws -> DeviceProfile { try DeviceProfile.load(repoPath("DeviceProfiles/\(id).json")) }

    @Test func everyExpectedProfileIsShipped() {
        let names = DeviceProfileTests.profilePaths.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        #expect(Set(names).isSuperset(of: Self.expectedIDs), "missing: \(Set(Self.expectedIDs).subtracting(names))")
    }

    @Test(arguments: DeviceProfileTests.profilePaths)
    func figuresAreSourcedAndConsistent(path: String) throws {
        let p = try DeviceProfile.load(path)
        #expect(p.id == URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        let figures = sourcedFigures(p)
        #expect(figures.count >= 10)
        for figure in figures {
            #expect(!figure.source.trimmingCharacters(in: .whitespaces).isEmpty, "\(figure.name) has no source")
            // A derived figure shows its arithmetic or its inputs, not just the word.
            if figure.source.hasPrefix("derived:") {
                #expect(figure.source.count > 20, "\(figure.name): derivation too short: \(figure.source)")
            }
        }
        // The app budget and the OS reserve fit in the device.
        let m = p.memory
        #expect(m.appBudgetBytes.value + m.osReserveBytes.value <= m.totalBytes.value)
        // A phone's or server's app budget is an estimate; a host profile's is measured (MemAvailable).
        if p.kind == .host {
            #expect(m.appBudgetBytes.source.hasPrefix("measured:"), "a host budget is a measurement")
        } else {
            #expect(m.appBudgetBytes.estimate, "an app budget is always an estimate")
        }
        // Every precision a unit publishes has a format it can run.
        for unit in p.computeUnits {
            #expect(!unit.formats.isEmpty)
            #expect(unit.peakOps(for: unit.formats[0]) != nil, "\(unit.id) has no peak for \(unit.formats[0])")
        }
        #expect(p.bestUnit(for: .q4_0) != nil || p.bestUnit(for: .int4g128) != nil)
    }

    @Test(arguments: ["snapdragon-8-gen-3-12gb", "snapdragon-8-gen-3-16gb", "snapdragon-8-gen-3-24gb"])
    func snapdragon8Gen3BandwidthArithmetic(id: String) throws {
        let p = try load(id)
        // LPDDR5X at 4800 MHz: 9600 MT/s on a 64-bit bus.
        let lpddr5x4800: Double = 9600e6 * 64 / 8
        #expect(p.memory.bandwidthBytesPerSecond.value == lpddr5x4800)
        #expect(p.memory.bandwidthBytesPerSecond.value == 76.8e9)
        #expect(p.computeUnits.first { $0.kind == .cpu }?.cores == 8)
    }

    @Test(arguments: ["snapdragon-8-elite-12gb", "snapdragon-8-elite-16gb"])
    func snapdragon8EliteBandwidthAndCores(id: String) throws {
        let p = try load(id)
        // LPDDR5X at 5300 MHz: 10600 MT/s on a 64-bit bus = 84.8 GB/s.
        let lpddr5x5300: Double = 10600e6 * 64 / 8
        #expect(p.memory.bandwidthBytesPerSecond.value == lpddr5x5300)
        #expect(abs(p.memory.bandwidthBytesPerSecond.value - 84.8e9) < 1)
        let cpu = try #require(p.computeUnits.first { $0.kind == .cpu })
        #expect(cpu.clusters.map(\.cores) == [2, 6])
        #expect(cpu.clusters.map(\.clockGHz) == [4.32, 3.53])
        // Hexagon is 45% faster than the 8 Gen 3's.
        let gen3 = try load("snapdragon-8-gen-3-12gb")
        let npu = try #require(p.computeUnits.first { $0.kind == .npu }?.peakOpsPerSecond[.int8]?.value)
        let gen3NPU = try #require(gen3.computeUnits.first { $0.kind == .npu }?.peakOpsPerSecond[.int8]?.value)
        #expect(abs(npu / gen3NPU - 1.45) < 1e-9)
    }

    @Test func androidBudgetsFollowMemTotalMinusHeadroom() throws {
        // 16 GB phones: MemTotal ~14.8 GB minus the 4.8 GB headroom measured on 12 GB phones.
        for id in ["snapdragon-8-gen-3-16gb", "snapdragon-8-elite-16gb", "dimensity-9300-16gb"] {
            let m = try load(id).memory
            #expect(m.appBudgetBytes.value == 14_800_000_000 - 4_800_000_000, "\(id)")
        }
        // 12 GB phones: 11.3 GB MemTotal minus the same headroom.
        for id in ["snapdragon-8-gen-3-12gb", "snapdragon-8-elite-12gb", "tensor-g4-12gb"] {
            let m = try load(id).memory
            #expect(m.appBudgetBytes.value + m.osReserveBytes.value == 11_300_000_000, "\(id)")
        }
        // More RAM, more budget, same SoC.
        let budgets = try ["12gb", "16gb", "24gb"].map { try load("snapdragon-8-gen-3-\($0)").memory.appBudgetBytes.value }
        #expect(budgets == budgets.sorted() && Set(budgets).count == 3)
    }

    @Test func otherPhonesArithmetic() throws {
        let dimensity = try load("dimensity-9300-16gb")
        let lpddr5t: Double = 9600e6 * 64 / 8
        #expect(dimensity.memory.bandwidthBytesPerSecond.value == lpddr5t)
        #expect(dimensity.computeUnits.first { $0.kind == .cpu }?.clusters.map(\.cores) == [1, 3, 4])
        let a17 = try load("apple-a17-pro-8gb")
        let lpddr5: Double = 6400e6 * 64 / 8
        #expect(a17.memory.bandwidthBytesPerSecond.value == lpddr5)
        #expect(a17.memory.appBudgetBytes.value == a17.memory.totalBytes.value / 2)
        #expect(a17.computeUnits.first { $0.kind == .npu }?.peakOpsPerSecond[.int8]?.value == 35e12)
        let g4 = try load("tensor-g4-12gb")
        let tpu = try #require(g4.computeUnits.first { $0.kind == .npu }?.peakOpsPerSecond[.int8])
        #expect(tpu.estimate && tpu.source.contains("publishes no TOPS"))
    }

    @Test func dualRTX4090Server() throws {
        let p = try load("dual-rtx-4090-server")
        #expect(p.kind == .server)
        let gpu = try #require(p.computeUnits.first { $0.kind == .gpu })
        #expect(gpu.count == 2)
        let vram = try #require(gpu.memoryBytes?.value)
        #expect(vram == 24 << 30)
        #expect(p.memory.totalBytes.value == gpu.count * vram)
        // Budget: 24 GiB minus 1 GiB of CUDA context and framework reserve, per GPU.
        #expect(p.memory.appBudgetBytes.value == gpu.count * (vram - (1 << 30)))
        #expect(gpu.bandwidthBytesPerSecond?.value == 1008e9)
        #expect(gpu.peakOpsPerSecond[.f16]?.value == 165.2e12)
        #expect(gpu.peakOpsPerSecond[.int8]?.value == 660.6e12)
        #expect(gpu.peakOpsPerSecond[.int4]?.value == 1321.2e12)
        #expect(gpu.peakOps(for: .q4_0) == 1321.2e12)
        let link = try #require(p.interconnect)
        #expect(link.kind == "pcie")
        #expect(link.peerToPeer.value == false)
        #expect(link.peerToPeer.source.contains("NVLink"))
        // Achievable PCIe 4.0 x16 is below the 31.5 GB/s theoretical figure.
        let theoretical: Double = 16e9 * 16 * 128 / 130 / 8
        #expect(link.bandwidthBytesPerSecond.value < theoretical)
        #expect(link.latencySeconds.value > 0)
    }
}
