// swift-tools-version: 6.0
import PackageDescription

// The engine's kernels are compiled optimised even in debug builds, and for AVX2/FMA/F16C (haswell) on x86_64.
// The AVX-512 kernels are a separate module compiled for the Zen 4 feature set (AVX-512 F/BW/DQ/VL/VBMI/VNNI/BF16,
// GFNI); the engine calls them only when the CPU reports all of those features at run time.
#if arch(x86_64)
let engineFlags = ["-Ounchecked", "-target-cpu", "haswell"]
let avx512Flags = ["-Ounchecked", "-target-cpu", "znver4"]
#else
let engineFlags = ["-Ounchecked"]
let avx512Flags = ["-Ounchecked"]
#endif

let package = Package(
    name: "autoglm-deploy",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "autoglm-plan", targets: ["autoglm-plan"]),
        .executable(name: "autoglm-run", targets: ["autoglm-run"]),
        .library(name: "AutoGLMSpecs", targets: ["AutoGLMSpecs"]),
        .library(name: "AutoGLMPlanner", targets: ["AutoGLMPlanner"]),
        .library(name: "AutoGLMEngine", targets: ["AutoGLMEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Specs: device profiles, model manifests, workloads, weight formats, plan and run-report schemas.
        .target(name: "AutoGLMSpecs"),
        // Planner: cost models (memory, latency, accuracy) and the exact search.
        .target(name: "AutoGLMPlanner", dependencies: ["AutoGLMSpecs"]),
        // Engine: GGUF, tokenizer, quant formats, kernels, architectures, generation.
        // AVX-512 matrix kernels, reached only through the engine's run-time CPU check.
        .target(name: "AutoGLMKernelsAVX512", swiftSettings: [.unsafeFlags(avx512Flags)]),
        .target(
            name: "AutoGLMEngine",
            dependencies: ["AutoGLMSpecs", "AutoGLMKernelsAVX512"],
            swiftSettings: [.unsafeFlags(engineFlags)]
        ),
        // Evaluation: perplexity, KL divergence, top-1 agreement against a reference run.
        .target(name: "AutoGLMEvaluation", dependencies: ["AutoGLMSpecs", "AutoGLMEngine"]),
        // Child processes run to completion with their output collected (both pipes drained, reads retried on EINTR).
        .target(name: "AutoGLMProcess"),
        // Emulator: cgroup v1/v2 caps, child process supervision, memory timeline.
        .target(name: "AutoGLMEmulator", dependencies: ["AutoGLMSpecs"]),
        // Sign-off: gates, reports (JUnit, Markdown, HTML), signed provenance, ledger.
        .target(
            name: "AutoGLMSignoff",
            dependencies: ["AutoGLMSpecs", "AutoGLMProcess", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "autoglm-plan",
            dependencies: [
                "AutoGLMSpecs", "AutoGLMPlanner", "AutoGLMEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "autoglm-run",
            dependencies: [
                "AutoGLMSpecs", "AutoGLMPlanner", "AutoGLMEngine", "AutoGLMEvaluation",
                "AutoGLMEmulator", "AutoGLMSignoff", "AutoGLMProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "AutoGLMSpecsTests", dependencies: ["AutoGLMSpecs"]),
        .testTarget(name: "AutoGLMPlannerTests", dependencies: ["AutoGLMPlanner", "AutoGLMSpecs"]),
        .testTarget(name: "AutoGLMEngineTests", dependencies: ["AutoGLMEngine", "AutoGLMSpecs", "AutoGLMPlanner"]),
        .testTarget(name: "AutoGLMKernelsAVX512Tests", dependencies: ["AutoGLMKernelsAVX512", "AutoGLMEngine"]),
        .testTarget(name: "AutoGLMEvaluationTests", dependencies: ["AutoGLMEvaluation", "AutoGLMEngine"]),
        .testTarget(name: "AutoGLMEmulatorTests", dependencies: ["AutoGLMEmulator", "AutoGLMSpecs"]),
        .testTarget(name: "AutoGLMSignoffTests", dependencies: ["AutoGLMSignoff", "AutoGLMSpecs", "AutoGLMProcess"]),
        .testTarget(name: "AutoGLMProcessTests", dependencies: ["AutoGLMProcess"]),
        // End-to-end tests that run the built executables.
        .testTarget(name: "CLITests", dependencies: ["autoglm-plan", "autoglm-run", "AutoGLMSpecs", "AutoGLMProcess"]),
    ],
    swiftLanguageModes: [.v6]
)
