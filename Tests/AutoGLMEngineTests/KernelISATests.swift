import Testing
@testable import AutoGLMEngine

@Suite("Kernel family selection")
struct KernelISATests {
    private let zen4Flags = "fpu sse sse2 avx avx2 fma f16c bmi1 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl "
        + "avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_vpopcntdq avx512ifma avx512_bf16 gfni vaes "
        + "vpclmulqdq"

    @Test("flags common to every processor are parsed from /proc/cpuinfo text")
    func parseFlags() {
        let text = "processor\t: 0\nflags\t\t: \(zen4Flags) extra\n\nprocessor\t: 1\nflags\t\t: \(zen4Flags)\n"
        let features = CPUFeatures.parse(cpuinfo: text)
        #expect(features.flags.contains("avx512_vnni"))
        #expect(!features.flags.contains("extra"), "a flag only one processor lists is not common")
        #expect(features.missingForAVX512.isEmpty)
    }

    @Test("AVX-512 kernels are chosen only when every required feature is present")
    func selection() {
        let full = CPUFeatures.parse(cpuinfo: "flags : \(zen4Flags)")
        let noGFNI = CPUFeatures(flags: full.flags.subtracting(["gfni"]))
        let avx2Only = CPUFeatures.parse(cpuinfo: "flags : sse avx avx2 fma f16c bmi1 bmi2")
        #if arch(x86_64)
        #expect(KernelISA.select(environment: nil, features: full) == .avx512)
        #expect(KernelISA.select(environment: "simd8", features: full) == .simd8)
        #expect(KernelISA.select(environment: "SIMD8", features: full) == .simd8)
        #else
        #expect(KernelISA.select(environment: nil, features: full) == .simd8)
        #endif
        #expect(noGFNI.missingForAVX512 == ["gfni"])
        #expect(KernelISA.select(environment: nil, features: noGFNI) == .simd8)
        // A request for kernels the CPU cannot run is ignored rather than honoured into an illegal instruction.
        #expect(KernelISA.select(environment: "avx512", features: avx2Only) == .simd8)
        #expect(KernelISA.select(environment: "bogus", features: avx2Only) == .simd8)
        #expect(KernelISA.select(environment: nil, features: CPUFeatures(flags: [])) == .simd8)
    }

    @Test("the active family is one this process supports")
    func activeIsSupported() {
        #expect(KernelISA.active.isSupported())
        #expect(KernelISA.supported.contains(.simd8))
    }
}
