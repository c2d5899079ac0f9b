import Foundation
import Testing

@testable import AutoGLMEmulator

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("64MiB", UInt64(64) << 20), ("7GB", 7_000_000_000), ("7.5GiB", UInt64(15) << 29), ("1048576", 1_048_576),
        ("512k", 512 << 10), ("2 MiB", 2 << 20), ("1.5kB", 1_500), ("3gib", UInt64(3) << 30), ("100B", 100),
    ])
    func parsesSizes(text: String, bytes: UInt64) throws {
        #expect(try ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "MiB", "-5MiB", "64XB", "1.5", "0.3B", "1.2.3MB", "abc", "99999999999TiB"])
    func rejectsBadSizes(text: String) {
        #expect(throws: EmulatorError.self) { try ByteSize.parse(text) }
        do {
            _ = try ByteSize.parse(text)
        } catch {
            #expect(error.description.contains("invalid byte size '\(text)'"))
        }
    }

    @Test func formats() {
        #expect(ByteSize.format(64 << 20) == "64.00 MiB")
        #expect(ByteSize.format(1000) == "1000 B")
    }
}

@Suite struct LimitsTests {
    @Test(arguments: [("0", [0]), ("0-2", [0, 1, 2]), ("0,2-3", [0, 2, 3]), ("3,1,1", [1, 3])])
    func parsesCPULists(text: String, cpus: [Int]) throws {
        #expect(try CPUList.parse(text) == cpus)
        #expect(CPUList.format(cpus) == CPUList.format(try CPUList.parse(CPUList.format(cpus))))
    }

    @Test(arguments: ["", "a", "2-1", "0,,1", "-1", "0-"])
    func rejectsBadCPULists(text: String) {
        #expect(throws: EmulatorError.self) { try CPUList.parse(text) }
    }

    @Test func formatsCPURanges() {
        #expect(CPUList.format([5, 0, 1, 2]) == "0-2,5")
    }

    @Test func quotaMicros() throws {
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 1.5)
        #expect(limits.cpuQuotaMicros == 150_000)
        #expect(limits.swapMaxBytes == 0)
    }

    @Test func rejectsBadLimits() {
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 1 << 20) }
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 64 << 20, memoryHighBytes: 65 << 20) }
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 0) }
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: .nan) }
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 64 << 20, cpuQuotaCores: 0.001) }
        #expect(throws: EmulatorError.self) { try EmulationLimits(memoryMaxBytes: 64 << 20, cpus: "x") }
    }

    @Test func decodesWithDefaultsAndValidates() throws {
        let decoded = try JSONDecoder().decode(
            EmulationLimits.self, from: Data(#"{"memory_max_bytes": 67108864, "cpu_quota_cores": 2}"#.utf8))
        #expect(decoded.cpuPeriodMicros == 100_000)
        #expect(decoded.cpuQuotaMicros == 200_000)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(
                EmulationLimits.self, from: Data(#"{"memory_max_bytes": 67108864, "swap_max_bytes": 1}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(EmulationLimits.self, from: Data(#"{"memory_max_bytes": 10}"#.utf8))
        }
    }

    @Test func cpuMappingTakesTheSmallerOfHostAndDevice() throws {
        let phone = try CPUMapping(deviceCores: 8, hostEquivalentCores: 1.5, hostCores: 2)
        #expect(phone.quotaCores == 1.5)
        #expect(phone.quotaMicros == 150_000)
        #expect(phone.cpus == "0-1")
        let fastPhone = try CPUMapping(deviceCores: 8, hostEquivalentCores: 6, hostCores: 2)
        #expect(fastPhone.quotaCores == 2)
        #expect(fastPhone.quotaMicros == 200_000)
        let single = try CPUMapping(deviceCores: 1, hostEquivalentCores: 0.25, hostCores: 16)
        #expect(single.cpus == "0")
        #expect(single.quotaMicros == 25_000)
        let limits = try single.limits(memoryMaxBytes: 64 << 20)
        #expect(limits.cpuQuotaCores == 0.25 && limits.cpus == "0")
        #expect(throws: EmulatorError.self) { try CPUMapping(deviceCores: 0, hostEquivalentCores: 1, hostCores: 2) }
        #expect(throws: EmulatorError.self) { try CPUMapping(deviceCores: 4, hostEquivalentCores: -1, hostCores: 2) }
    }
}

@Suite struct PhaseTests {
    @Test func reporterAppendsParsableLines() throws {
        let path = NSTemporaryDirectory() + "autoglm-phase-test-\(UUID().uuidString).txt"
        defer { unlink(path) }
        let reporter = PhaseReporter(environment: [
            PhaseReporter.fileVariable: path, PhaseReporter.epochVariable: "\(Date().timeIntervalSince1970 - 2)",
        ])
        try reporter.mark("load")
        try reporter.mark("vision-encode")
        try reporter.mark("decode")
        let (marks, skipped) = PhaseReporter.parse(try String(contentsOfFile: path, encoding: .utf8))
        #expect(skipped == 0)
        #expect(marks.map(\.phase) == ["load", "vision-encode", "decode"])
        #expect(marks.allSatisfy { $0.t >= 2 && $0.t < 60 })
        #expect(marks.map(\.t) == marks.map(\.t).sorted())
    }

    @Test func rejectsBadPhaseNames() {
        let reporter = PhaseReporter(environment: [:])
        #expect(throws: EmulatorError.invalidPhaseName(name: "pre fill")) { try reporter.mark("pre fill") }
        #expect(throws: EmulatorError.self) { try reporter.mark("") }
        #expect(throws: Never.self) { try reporter.mark("prefill") }
    }

    @Test func parseSkipsTornAndMalformedLines() {
        let (marks, skipped) = PhaseReporter.parse("0.1 load\nbogus\n0.5 prefill\n0.9 dec")
        #expect(marks == [PhaseMark(t: 0.1, phase: "load"), PhaseMark(t: 0.5, phase: "prefill")])
        #expect(skipped == 2)
    }
}

@Suite struct ResultCodingTests {
    @Test func encodesSnakeCaseAndRoundTrips() throws {
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20)
        let result = EmulationResult(
            command: ["true"], capped: true, uncappedReason: nil, cgroupVersion: .v2, groupPath: "/x/autoglm-1-2",
            requestedLimits: limits, appliedLimits: AppliedLimits(memoryMaxBytes: 64 << 20, swapMaxBytes: 0),
            exitStatus: nil, signal: 9, oomKilled: true, oomKillCount: 1, phaseAtExit: "decode", oomPhase: "decode",
            phases: [PhaseMark(t: 0.5, phase: "decode")], phaseLinesSkipped: 0, peakBytes: 67_100_000,
            peakSource: .kernelPeak, anonAtPeakBytes: 60_000_000, fileAtPeakBytes: 1_000_000, sampleIntervalSeconds: 0.02,
            timeline: [TimelineSample(t: 0.02, bytes: 67_000_000, anonBytes: 60_000_000, fileBytes: 1_000_000)],
            wallSeconds: 0.6, joinSeconds: 0.01)
        let data = try JSONEncoder().encode(result)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in [
            "oom_killed", "phase_at_exit", "peak_bytes", "peak_source", "anon_at_peak_bytes", "file_at_peak_bytes",
            "limits_applied", "cgroup_version", "group_path", "wall_seconds", "capped", "timeline", "signal",
        ] {
            #expect(object[key] != nil, "missing key \(key)")
        }
        #expect(object["peak_source"] as? String == "kernel_memory_peak")
        #expect(try JSONDecoder().decode(EmulationResult.self, from: data) == result)
        #expect(result.wrapperExitCode == EmulationResult.oomExitCode)
    }

    @Test func wrapperExitCodes() throws {
        let limits = try EmulationLimits(memoryMaxBytes: 64 << 20)
        var result = EmulationResult(
            command: ["x"], capped: true, uncappedReason: nil, cgroupVersion: .v1, groupPath: nil, requestedLimits: limits,
            appliedLimits: nil, exitStatus: 7, signal: nil, oomKilled: false, oomKillCount: 0, phaseAtExit: nil,
            oomPhase: nil, phases: [], phaseLinesSkipped: 0, peakBytes: 0, peakSource: .sampled, anonAtPeakBytes: nil,
            fileAtPeakBytes: nil, sampleIntervalSeconds: 0.02, timeline: [], wallSeconds: 0, joinSeconds: 0)
        #expect(result.wrapperExitCode == 7)
        result.exitStatus = nil
        result.signal = 11
        #expect(result.wrapperExitCode == 139)
    }
}
