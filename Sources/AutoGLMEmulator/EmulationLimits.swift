import Foundation

/// What a run is capped to: the phone's per-app memory budget and its CPU share.
public struct EmulationLimits: Codable, Equatable, Sendable {
    /// Hard memory cap in bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`). Going over it gets the child OOM-killed.
    public var memoryMaxBytes: UInt64
    /// Optional soft cap (v2 `memory.high`: throttle and reclaim, no kill). Ignored on v1, which has no equivalent.
    public var memoryHighBytes: UInt64?
    /// Swap allowed beyond the cap. Always 0: phones do not swap app memory to disk.
    public var swapMaxBytes: UInt64 { 0 }
    /// CPU quota in cores (1.5 = one and a half cores' worth of time per period); nil for no quota.
    public var cpuQuotaCores: Double?
    /// Scheduler period the quota is expressed in, microseconds.
    public var cpuPeriodMicros: UInt64
    /// CPUs the child may run on, in kernel list syntax (`0`, `0-1`, `0,2-3`); nil for all.
    public var cpus: String?

    public static let defaultPeriodMicros: UInt64 = 100_000
    /// The smallest cap accepted: below this even a shell cannot start.
    public static let minimumMemoryBytes: UInt64 = 4 << 20

    enum CodingKeys: String, CodingKey {
        case memoryMaxBytes = "memory_max_bytes"
        case memoryHighBytes = "memory_high_bytes"
        case swapMaxBytes = "swap_max_bytes"
        case cpuQuotaCores = "cpu_quota_cores"
        case cpuPeriodMicros = "cpu_period_us"
        case cpus
    }

    public init(
        memoryMaxBytes: UInt64, memoryHighBytes: UInt64? = nil, cpuQuotaCores: Double? = nil,
        cpuPeriodMicros: UInt64 = EmulationLimits.defaultPeriodMicros, cpus: String? = nil
    ) throws(EmulatorError) {
        self.memoryMaxBytes = memoryMaxBytes
        self.memoryHighBytes = memoryHighBytes
        self.cpuQuotaCores = cpuQuotaCores
        self.cpuPeriodMicros = cpuPeriodMicros
        self.cpus = cpus
        try validate()
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        memoryMaxBytes = try c.decode(UInt64.self, forKey: .memoryMaxBytes)
        memoryHighBytes = try c.decodeIfPresent(UInt64.self, forKey: .memoryHighBytes)
        cpuQuotaCores = try c.decodeIfPresent(Double.self, forKey: .cpuQuotaCores)
        cpuPeriodMicros = try c.decodeIfPresent(UInt64.self, forKey: .cpuPeriodMicros) ?? Self.defaultPeriodMicros
        cpus = try c.decodeIfPresent(String.self, forKey: .cpus)
        if let swap = try c.decodeIfPresent(UInt64.self, forKey: .swapMaxBytes), swap != 0 {
            throw DecodingError.dataCorruptedError(
                forKey: .swapMaxBytes, in: c, debugDescription: "swap_max_bytes must be 0 (got \(swap))")
        }
        do { try validate() } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(memoryMaxBytes, forKey: .memoryMaxBytes)
        try c.encodeIfPresent(memoryHighBytes, forKey: .memoryHighBytes)
        try c.encode(swapMaxBytes, forKey: .swapMaxBytes)
        try c.encodeIfPresent(cpuQuotaCores, forKey: .cpuQuotaCores)
        try c.encode(cpuPeriodMicros, forKey: .cpuPeriodMicros)
        try c.encodeIfPresent(cpus, forKey: .cpus)
    }

    func validate() throws(EmulatorError) {
        guard memoryMaxBytes >= Self.minimumMemoryBytes else {
            throw .invalidLimit(
                field: "memory cap", value: ByteSize.format(memoryMaxBytes),
                reason: "must be at least \(ByteSize.format(Self.minimumMemoryBytes))")
        }
        guard memoryMaxBytes <= UInt64(1) << 62 else {
            throw .invalidLimit(field: "memory cap", value: "\(memoryMaxBytes)", reason: "too large")
        }
        if let high = memoryHighBytes, high == 0 || high > memoryMaxBytes {
            throw .invalidLimit(
                field: "memory soft cap", value: ByteSize.format(high),
                reason: "must be above 0 and at most the hard cap \(ByteSize.format(memoryMaxBytes))")
        }
        guard (1_000...1_000_000).contains(cpuPeriodMicros) else {
            throw .invalidLimit(
                field: "cpu period", value: "\(cpuPeriodMicros) us", reason: "must be 1000...1000000 us")
        }
        if let cores = cpuQuotaCores {
            guard cores.isFinite, cores > 0, cores <= 4096 else {
                throw .invalidLimit(field: "cpu quota", value: "\(cores) cores", reason: "must be a number above 0")
            }
            guard cpuQuotaMicros ?? 0 >= 1_000 else {
                throw .invalidLimit(
                    field: "cpu quota", value: "\(cores) cores",
                    reason: "gives under 1000 us per \(cpuPeriodMicros) us period, the kernel minimum")
            }
        }
        if let cpus { _ = try CPUList.parse(cpus) }
    }

    /// Quota per period in microseconds (`cores × period`, rounded), or nil for no quota.
    public var cpuQuotaMicros: UInt64? {
        guard let cores = cpuQuotaCores else { return nil }
        return UInt64((cores * Double(cpuPeriodMicros)).rounded())
    }
}

/// Kernel CPU list syntax: comma-separated CPU numbers and inclusive ranges (`0`, `0-3`, `0,2-3`).
public enum CPUList {
    public static func parse(_ text: String) throws(EmulatorError) -> [Int] {
        var cpus = Set<Int>()
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalidCPUList(input: text, reason: "empty") }
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0,
                let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low, high < 65_536
            else { throw .invalidCPUList(input: text, reason: "'\(part)' is not a CPU number or range a-b") }
            cpus.formUnion(low...high)
        }
        return cpus.sorted()
    }

    /// Canonical form: sorted ranges, e.g. [0, 1, 2, 5] → `0-2,5`.
    public static func format(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = Array(Set(cpus)).sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}

/// How a phone's CPU maps onto a CPU quota on this host.
///
/// Rule: the child may use `quotaCores = min(hostCores, hostEquivalentCores)` cores' worth of time per period
/// (`quota = quotaCores × period`), where `hostEquivalentCores` says how many of this host's cores the whole phone CPU
/// is worth (e.g. a phone whose 8 cores together match 1.5 host cores → 1.5). The child is pinned to
/// `min(deviceCores, hostCores)` CPUs (`0…n-1`) so it sees no more threads' worth of parallelism than the phone has.
public struct CPUMapping: Codable, Equatable, Sendable {
    public let quotaCores: Double
    public let periodMicros: UInt64
    public let quotaMicros: UInt64
    public let cpus: String

    enum CodingKeys: String, CodingKey {
        case quotaCores = "quota_cores"
        case periodMicros = "period_us"
        case quotaMicros = "quota_us"
        case cpus
    }

    public init(
        deviceCores: Int, hostEquivalentCores: Double, hostCores: Int,
        periodMicros: UInt64 = EmulationLimits.defaultPeriodMicros
    ) throws(EmulatorError) {
        guard deviceCores >= 1 else {
            throw .invalidLimit(field: "device cores", value: "\(deviceCores)", reason: "must be at least 1")
        }
        guard hostCores >= 1 else {
            throw .invalidLimit(field: "host cores", value: "\(hostCores)", reason: "must be at least 1")
        }
        guard hostEquivalentCores.isFinite, hostEquivalentCores > 0 else {
            throw .invalidLimit(
                field: "host-equivalent cores", value: "\(hostEquivalentCores)", reason: "must be a number above 0")
        }
        quotaCores = min(Double(hostCores), hostEquivalentCores)
        self.periodMicros = periodMicros
        quotaMicros = UInt64((quotaCores * Double(periodMicros)).rounded())
        cpus = CPUList.format(Array(0..<min(deviceCores, hostCores)))
    }

    /// Limits with this CPU mapping and the given memory caps.
    public func limits(memoryMaxBytes: UInt64, memoryHighBytes: UInt64? = nil) throws(EmulatorError) -> EmulationLimits {
        try EmulationLimits(
            memoryMaxBytes: memoryMaxBytes, memoryHighBytes: memoryHighBytes, cpuQuotaCores: quotaCores,
            cpuPeriodMicros: periodMicros, cpus: cpus)
    }
}
