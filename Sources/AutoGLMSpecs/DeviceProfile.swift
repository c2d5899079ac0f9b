import Foundation

/// A target device: memory, the budget one app may really use, bandwidth, compute units and their formats.
/// Every figure carries its source; estimates are marked.
public struct DeviceProfile: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case phone, server, host }

    public var schemaVersion: Int
    public var id: String
    public var name: String
    public var kind: Kind
    public var memory: Memory
    public var computeUnits: [ComputeUnit]
    public var interconnect: Interconnect?
    public var efficiency: [OpClass: Sourced<Double>]
    /// Matrix × vector efficiency per weight format (weight bytes/s ÷ memory bandwidth), where measured: 4-bit
    /// formats unpack their codes and stream slower than 8- and 16-bit ones. Formats without a figure take
    /// `efficiency.matvec_bandwidth`.
    public var matvecBandwidthByFormat: [WeightFormat: Sourced<Double>]
    /// Fixed seconds a matrix × vector call costs beyond its bytes at the format's streaming rate, per format where
    /// measured (handing the call to the threads, the stream's start, the last thread's tail): what makes a
    /// model of small matrices decode slower than its bytes alone say. Formats without a figure pay nothing.
    public var matvecCallSecondsByFormat: [WeightFormat: Sourced<Double>]
    public var sustainedFactor: Sourced<Double>
    public var runtimeOverheadBytes: Sourced<Int>
    /// For a measured profile (`profile-host`): the kernel family and CPU its figures were measured with. A run with
    /// other kernels or on another CPU should not lean on them (`mismatch(kernels:cpu:)`).
    public var measuredWith: MeasurementContext?
    public var notes: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version", id, name, kind, memory
        case computeUnits = "compute_units", interconnect, efficiency
        case matvecBandwidthByFormat = "matvec_bandwidth_by_format"
        case matvecCallSecondsByFormat = "matvec_call_seconds_by_format"
        case sustainedFactor = "sustained_factor", runtimeOverheadBytes = "runtime_overhead_bytes"
        case measuredWith = "measured_with", notes
    }

    /// Why this profile's measured figures may not describe a run with `kernels` on `cpu`: nil when they match, or
    /// when the profile does not say what it was measured with (published device figures).
    public func mismatch(kernels: String, cpu: String?) -> String? {
        guard let measuredWith else { return nil }
        let differences = measuredWith.differences(kernels: kernels, cpu: cpu)
        guard !differences.isEmpty else { return nil }
        return "profile '\(id)' was measured with " + differences.joined(separator: "; ")
    }

    public static let currentSchemaVersion = 1

    public struct Memory: Codable, Sendable, Equatable {
        /// Physical RAM (or total accelerator memory for a server).
        public var totalBytes: Sourced<Int>
        /// What one app can allocate before the OS kills it: the planner's hard cap.
        public var appBudgetBytes: Sourced<Int>
        /// Memory the OS and other apps keep.
        public var osReserveBytes: Sourced<Int>
        /// Sustained DRAM bandwidth available to the model.
        public var bandwidthBytesPerSecond: Sourced<Double>

        enum CodingKeys: String, CodingKey, CaseIterable {
            case totalBytes = "total_bytes", appBudgetBytes = "app_budget_bytes"
            case osReserveBytes = "os_reserve_bytes", bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
        }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            totalBytes = try c.decode(Sourced<Int>.self, forKey: .totalBytes)
            try totalBytes.requirePositive(c.codingPath, CodingKeys.totalBytes)
            appBudgetBytes = try c.decode(Sourced<Int>.self, forKey: .appBudgetBytes)
            try appBudgetBytes.requirePositive(c.codingPath, CodingKeys.appBudgetBytes)
            osReserveBytes = try c.decode(Sourced<Int>.self, forKey: .osReserveBytes)
            if osReserveBytes.value < 0 {
                throw FieldValidationError(c.codingPath, CodingKeys.osReserveBytes, expected: "a non-negative number",
                                           found: "\(osReserveBytes.value)")
            }
            bandwidthBytesPerSecond = try c.decode(Sourced<Double>.self, forKey: .bandwidthBytesPerSecond)
            try bandwidthBytesPerSecond.requirePositive(c.codingPath, CodingKeys.bandwidthBytesPerSecond)
            if appBudgetBytes.value > totalBytes.value {
                throw FieldValidationError(c.codingPath, CodingKeys.appBudgetBytes,
                                           expected: "at most total_bytes (\(totalBytes.value))",
                                           found: "\(appBudgetBytes.value)")
            }
        }

        public init(totalBytes: Sourced<Int>, appBudgetBytes: Sourced<Int>, osReserveBytes: Sourced<Int>,
                    bandwidthBytesPerSecond: Sourced<Double>) {
            self.totalBytes = totalBytes
            self.appBudgetBytes = appBudgetBytes
            self.osReserveBytes = osReserveBytes
            self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        }
    }

    public struct Cluster: Codable, Sendable, Equatable {
        public var name: String
        public var cores: Int
        public var clockGHz: Double

        enum CodingKeys: String, CodingKey, CaseIterable { case name, cores, clockGHz = "clock_ghz" }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            cores = try c.decode(Int.self, forKey: .cores, expected: "a positive core count") { $0 > 0 }
            clockGHz = try c.decode(Double.self, forKey: .clockGHz, expected: "a positive clock in GHz") { $0 > 0 }
        }

        public init(name: String, cores: Int, clockGHz: Double) {
            self.name = name; self.cores = cores; self.clockGHz = clockGHz
        }
    }

    /// A CPU, GPU or NPU; `count` identical units (two GPUs in a server).
    public struct ComputeUnit: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case cpu, gpu, npu }
        public var id: String
        public var kind: Kind
        public var count: Int
        public var clusters: [Cluster]
        /// Peak throughput per precision in operations per second (FLOP/s or OP/s), per unit.
        public var peakOpsPerSecond: [ComputePrecision: Sourced<Double>]
        /// Weight formats this unit can execute.
        public var formats: [WeightFormat]
        /// Memory local to the unit (a GPU's VRAM), per unit; nil when it shares system memory.
        public var memoryBytes: Sourced<Int>?
        /// Bandwidth of that local memory, per unit.
        public var bandwidthBytesPerSecond: Sourced<Double>?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, kind, count, clusters, peakOpsPerSecond = "peak_ops_per_second", formats
            case memoryBytes = "memory_bytes", bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
        }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            kind = try c.decode(Kind.self, forKey: .kind)
            count = try c.decode(Int.self, forKey: .count, default: 1, expected: "a positive unit count") { $0 > 0 }
            clusters = try c.decodeIfPresent([Cluster].self, forKey: .clusters) ?? []
            peakOpsPerSecond = try c.decode([ComputePrecision: Sourced<Double>].self, forKey: .peakOpsPerSecond)
            for (precision, figure) in peakOpsPerSecond where figure.value <= 0 {
                throw FieldValidationError(field: FieldPath.render(c.codingPath) + ".peak_ops_per_second."
                                           + precision.rawValue, expected: "a positive number",
                                           found: "\(figure.value)")
            }
            formats = try c.decode([WeightFormat].self, forKey: .formats, expected: "at least one weight format") {
                !$0.isEmpty
            }
            memoryBytes = try c.decodeIfPresent(Sourced<Int>.self, forKey: .memoryBytes)
            try memoryBytes?.requirePositive(c.codingPath, CodingKeys.memoryBytes)
            bandwidthBytesPerSecond = try c.decodeIfPresent(Sourced<Double>.self, forKey: .bandwidthBytesPerSecond)
            try bandwidthBytesPerSecond?.requirePositive(c.codingPath, CodingKeys.bandwidthBytesPerSecond)
        }

        /// Total cores over all clusters.
        public var cores: Int { clusters.reduce(0) { $0 + $1.cores } }

        /// Peak throughput for a weight format: its precision's figure, else the nearest wider precision published.
        public func peakOps(for format: WeightFormat) -> Double? {
            precision(for: format).flatMap { peakOpsPerSecond[$0]?.value }
        }

        /// The precision whose figure `peakOps(for:)` uses for a format: the format's own, else the nearest wider
        /// one published (an int4 format on a unit with only an int8 figure is priced as int8 arithmetic).
        public func precision(for format: WeightFormat) -> ComputePrecision? {
            let order: [ComputePrecision]
            switch format.computePrecision {
            case .int4: order = [.int4, .int8, .f16, .f32]
            case .int8: order = [.int8, .f16, .f32]
            case .bf16: order = [.bf16, .f16, .f32]
            case .f16: order = [.f16, .f32]
            case .f32: order = [.f32]
            }
            return order.first { peakOpsPerSecond[$0] != nil }
        }
    }

    /// How multiple units are connected (a server's GPUs).
    public struct Interconnect: Codable, Sendable, Equatable {
        public var kind: String
        public var bandwidthBytesPerSecond: Sourced<Double>
        public var latencySeconds: Sourced<Double>
        public var peerToPeer: Sourced<Bool>

        enum CodingKeys: String, CodingKey, CaseIterable {
            case kind, bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
            case latencySeconds = "latency_seconds", peerToPeer = "peer_to_peer"
        }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kind = try c.decode(String.self, forKey: .kind)
            bandwidthBytesPerSecond = try c.decode(Sourced<Double>.self, forKey: .bandwidthBytesPerSecond)
            try bandwidthBytesPerSecond.requirePositive(c.codingPath, CodingKeys.bandwidthBytesPerSecond)
            latencySeconds = try c.decode(Sourced<Double>.self, forKey: .latencySeconds)
            peerToPeer = try c.decode(Sourced<Bool>.self, forKey: .peerToPeer)
        }
    }

    /// The machine a measurement describes: the engine's kernel family and the CPU model.
    public struct MeasurementContext: Codable, Sendable, Equatable {
        /// Kernel family (`avx512`, `simd8`).
        public var kernels: String
        /// CPU model name as /proc/cpuinfo gives it, where known.
        public var cpu: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case kernels, cpu }

        public init(kernels: String, cpu: String?) { self.kernels = kernels; self.cpu = cpu }

        public init(from decoder: Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kernels = try c.decode(String.self, forKey: .kernels, expected: "a kernel family name") { !$0.isEmpty }
            cpu = try c.decodeIfPresent(String.self, forKey: .cpu)
        }

        /// How a run with `kernels` on `cpu` differs from this context, one phrase per difference (empty when
        /// nothing differs that both sides know). `other` names the other side's kernels and CPU in the phrases
        /// (this run's and this host's by default).
        public func differences(kernels current: String, cpu currentCPU: String?,
                                other: (kernels: String, cpu: String) = ("this run", "this host")) -> [String] {
            var differences: [String] = []
            if kernels != current { differences.append("\(kernels) kernels, \(other.kernels) \(current)") }
            if let cpu, let currentCPU, cpu != currentCPU {
                differences.append("CPU '\(cpu)', \(other.cpu) '\(currentCPU)'")
            }
            return differences
        }
    }

    /// Operation classes with their own efficiency factor (achieved / peak).
    public enum OpClass: String, Codable, CaseIterable, Sendable, CodingKeyRepresentable {
        /// Decode: weight-streaming matrix × vector, a fraction of DRAM bandwidth.
        case matvecBandwidth = "matvec_bandwidth"
        /// Prefill and encoders: matrix × matrix, a fraction of peak compute.
        case matmulCompute = "matmul_compute"
        /// Attention score and value products, a fraction of peak compute.
        case attentionCompute = "attention_compute"
    }

    public init(from decoder: Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion,
                                     expected: "schema version \(Self.currentSchemaVersion)") {
            $0 == Self.currentSchemaVersion
        }
        id = try c.decode(String.self, forKey: .id, expected: "a non-empty id") { !$0.isEmpty }
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(Kind.self, forKey: .kind)
        memory = try c.decode(Memory.self, forKey: .memory)
        computeUnits = try c.decode([ComputeUnit].self, forKey: .computeUnits,
                                    expected: "at least one compute unit") { !$0.isEmpty }
        interconnect = try c.decodeIfPresent(Interconnect.self, forKey: .interconnect)
        efficiency = try c.decode([OpClass: Sourced<Double>].self, forKey: .efficiency)
        for op in OpClass.allCases {
            guard let figure = efficiency[op] else {
                throw FieldValidationError(field: "efficiency." + op.rawValue,
                                           expected: "an efficiency factor in (0, 1]", found: "nothing")
            }
            if !(figure.value > 0 && figure.value <= 1) {
                throw FieldValidationError(field: "efficiency." + op.rawValue, expected: "a factor in (0, 1]",
                                           found: "\(figure.value)")
            }
        }
        matvecBandwidthByFormat = try c.decodeIfPresent([WeightFormat: Sourced<Double>].self,
                                                        forKey: .matvecBandwidthByFormat) ?? [:]
        for (format, figure) in matvecBandwidthByFormat.sorted(by: { $0.key < $1.key })
        where !(figure.value > 0 && figure.value <= 1) {
            throw FieldValidationError(field: "matvec_bandwidth_by_format." + format.rawValue,
                                       expected: "a factor in (0, 1]", found: "\(figure.value)")
        }
        matvecCallSecondsByFormat = try c.decodeIfPresent([WeightFormat: Sourced<Double>].self,
                                                          forKey: .matvecCallSecondsByFormat) ?? [:]
        for (format, figure) in matvecCallSecondsByFormat.sorted(by: { $0.key < $1.key })
        where !(figure.value >= 0 && figure.value < 1) {
            throw FieldValidationError(field: "matvec_call_seconds_by_format." + format.rawValue,
                                       expected: "seconds in [0, 1)", found: "\(figure.value)")
        }
        sustainedFactor = try c.decode(Sourced<Double>.self, forKey: .sustainedFactor)
        if !(sustainedFactor.value > 0 && sustainedFactor.value <= 1) {
            throw FieldValidationError(c.codingPath, CodingKeys.sustainedFactor, expected: "a factor in (0, 1]",
                                       found: "\(sustainedFactor.value)")
        }
        runtimeOverheadBytes = try c.decode(Sourced<Int>.self, forKey: .runtimeOverheadBytes)
        if runtimeOverheadBytes.value < 0 {
            throw FieldValidationError(c.codingPath, CodingKeys.runtimeOverheadBytes,
                                       expected: "a non-negative number", found: "\(runtimeOverheadBytes.value)")
        }
        measuredWith = try c.decodeIfPresent(MeasurementContext.self, forKey: .measuredWith)
        notes = try c.decodeIfPresent(String.self, forKey: .notes)
    }

    /// Loads and validates a profile file.
    public static func load(_ path: String) throws -> DeviceProfile {
        try SpecLoader.load(DeviceProfile.self, from: path)
    }

    /// The unit with the highest peak for the given precision that can execute `format`.
    public func bestUnit(for format: WeightFormat) -> ComputeUnit? {
        computeUnits.filter { $0.formats.contains(format) }.max { ($0.peakOps(for: format) ?? 0) < ($1.peakOps(for: format) ?? 0) }
    }
}
