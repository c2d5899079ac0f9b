// Which instruction set the matrix kernels use, chosen once per process from the CPU's features.

import Foundation

/// The CPU features the kernels care about, read from the `flags` line of /proc/cpuinfo (Linux).
public struct CPUFeatures: Sendable, Equatable {
    public let flags: Set<String>

    public init(flags: Set<String>) { self.flags = flags }

    /// Features of the CPU this process runs on (empty where /proc/cpuinfo is not available).
    public static let host: CPUFeatures = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return CPUFeatures(flags: []) }
        return parse(cpuinfo: text)
    }()

    /// The flags common to every processor listed (x86 `flags` lines; arm64 `Features` lines).
    public static func parse(cpuinfo: String) -> CPUFeatures {
        var common: Set<String>?
        for line in cpuinfo.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            guard key == "flags" || key == "Features" else { continue }
            let set = Set(parts[1].split(separator: " ").map(String.init))
            common = common.map { $0.intersection(set) } ?? set
        }
        return CPUFeatures(flags: common ?? [])
    }

    /// Every feature the AVX-512 kernel module is compiled for (LLVM's `znver4` CPU): using any instruction of
    /// that module on a CPU that lacks one of these would fault, so all must be present.
    public static let avx512KernelRequirements: [String] = [
        "avx2", "fma", "f16c", "bmi1", "bmi2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
        "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq", "avx512ifma",
        "avx512_bf16", "gfni", "vaes", "vpclmulqdq",
    ]

    /// Requirements of the AVX-512 kernels that this CPU lacks (empty when they can run).
    public var missingForAVX512: [String] { Self.avx512KernelRequirements.filter { !flags.contains($0) } }
}

/// The kernel family used for matrix–vector and matrix–matrix products.
public enum KernelISA: String, Sendable, CaseIterable, Codable {
    /// 16-lane Float32 kernels for AVX-512 CPUs (x86-64 only).
    case avx512
    /// 8-lane Float32 kernels: AVX2/FMA/F16C on x86-64, NEON through the SIMD types elsewhere.
    case simd8

    /// Query lanes per vector of the family's attention tile.
    public var attentionLanes: Int { self == .avx512 ? 16 : 8 }

    /// Whether this process can run the family.
    public func isSupported(on features: CPUFeatures = .host) -> Bool {
        switch self {
        case .simd8: return true
        case .avx512:
            #if arch(x86_64)
            return features.missingForAVX512.isEmpty
            #else
            return false
            #endif
        }
    }

    /// The family the engine uses: `AUTOGLM_KERNELS` (`avx512` or `simd8`) when set to a supported family,
    /// otherwise the widest one the CPU supports.
    public static let active: KernelISA = select(environment: ProcessInfo.processInfo.environment["AUTOGLM_KERNELS"],
                                                 features: .host)

    /// The choice `active` makes, for a given environment value and CPU. An unknown or unsupported request falls
    /// back to the automatic choice (a request can never select kernels the CPU cannot run).
    public static func select(environment value: String?, features: CPUFeatures) -> KernelISA {
        if let value, let requested = KernelISA(rawValue: value.lowercased()), requested.isSupported(on: features) {
            return requested
        }
        return KernelISA.avx512.isSupported(on: features) ? .avx512 : .simd8
    }

    /// Every family this process can run (for tests that compare them).
    public static var supported: [KernelISA] { allCases.filter { $0.isSupported() } }
}
