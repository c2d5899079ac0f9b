import Foundation

/// Timings and output of one generation.
public struct GenerationResult: Sendable, Equatable {
    public var promptTokens: Int
    public var tokens: [Int32]
    /// Whether generation ended on a stop token (else it hit the token limit).
    public var stopped: Bool
    /// Time from the start of prefill to the first generated token being chosen.
    public var ttftSeconds: Double
    public var prefillSeconds: Double
    /// Time spent producing tokens after the first one.
    public var decodeSeconds: Double

    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Tokens after the first per second of decode time.
    public var decodeTokensPerSecond: Double {
        let decoded = max(tokens.count - 1, 0)
        return decodeSeconds > 0 ? Double(decoded) / decodeSeconds : 0
    }
}

/// Monotonic clock in seconds.
public enum Clock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

extension InferenceSession {
    /// Prefills `prompt` and generates up to `maxTokens` tokens, stopping after a token in `stopTokens` (which is
    /// included in the result). The context is reset first.
    public func generate(prompt: [Int32], maxTokens: Int, stopTokens: Set<Int32>,
                         sampling: SamplingSettings = .greedy,
                         onToken: ((Int32) -> Void)? = nil) throws -> GenerationResult {
        try sampling.validate()
        guard !prompt.isEmpty else {
            throw ModelError.invalidSetting(name: "prompt", expected: "at least one token", got: "none")
        }
        guard maxTokens >= 1 else {
            throw ModelError.invalidSetting(name: "max tokens", expected: "at least 1", got: "\(maxTokens)")
        }
        guard prompt.count + maxTokens - 1 <= capacity else {
            throw ModelError.contextFull(needed: prompt.count + maxTokens - 1, capacity: capacity)
        }
        reset()
        var sampler = Sampler(sampling)
        var out: [Int32] = []
        out.reserveCapacity(maxTokens)
        let start = Clock.now()
        var logits = try forward(prompt)                          // prefill: the whole prompt in batches
        let prefillEnd = Clock.now()
        var token = sampler.next(logits)
        let firstToken = Clock.now()
        out.append(token)
        onToken?(token)
        var stopped = stopTokens.contains(token)
        var single: [Int32] = [0]
        while !stopped && out.count < maxTokens {                 // decode: one token per pass
            single[0] = token
            logits = try single.withUnsafeBufferPointer { try forward($0, logitsFrom: 0) }
            token = sampler.next(logits)
            out.append(token)
            onToken?(token)
            stopped = stopTokens.contains(token)
        }
        let end = Clock.now()
        return GenerationResult(promptTokens: prompt.count, tokens: out, stopped: stopped,
                                ttftSeconds: firstToken - start, prefillSeconds: prefillEnd - start,
                                decodeSeconds: end - firstToken)
    }
}

/// Peak and current resident memory of this process from /proc/self/status.
public enum ProcessMemory {
    /// VmHWM (peak resident set) in bytes, nil where /proc is unavailable.
    public static var peakResidentBytes: Int? { field("VmHWM:") }
    /// VmRSS (current resident set) in bytes.
    public static var residentBytes: Int? { field("VmRSS:") }

    /// Resets the peak resident set (VmHWM) to the current resident set by writing 5 to /proc/self/clear_refs;
    /// false where that is not possible (no /proc, or a kernel without the reset).
    @discardableResult
    public static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let written = "5".utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, 1) }
        return written == 1
    }

    static func field(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}
