// Multi-threaded streaming read of a large buffer: the sustained DRAM read bandwidth this process can reach.

import Dispatch

/// One bandwidth measurement: every pass's rate and their median.
public struct BandwidthMeasurement: Sendable, Codable, Equatable {
    /// Bytes read per pass (the buffer size).
    public let bytes: Int
    public let threads: Int
    /// Read rate of each pass, in bytes per second, in the order they ran.
    public let passBytesPerSecond: [Double]

    enum CodingKeys: String, CodingKey {
        case bytes, threads, passBytesPerSecond = "pass_bytes_per_second"
    }

    public init(bytes: Int, threads: Int, passBytesPerSecond: [Double]) {
        self.bytes = bytes; self.threads = threads; self.passBytesPerSecond = passBytesPerSecond
    }

    /// Median rate over the passes, bytes per second.
    public var medianBytesPerSecond: Double { Statistics.median(passBytesPerSecond) }

    /// Median of the last third of the passes over the median of the first third, at most 1: how much of the
    /// initial rate a long streaming run keeps. 1 with fewer than three passes.
    public var sustainedRatio: Double {
        let n = passBytesPerSecond.count
        guard n >= 3 else { return 1 }
        let third = n / 3
        let first = Statistics.median(Array(passBytesPerSecond.prefix(third)))
        let last = Statistics.median(Array(passBytesPerSecond.suffix(third)))
        guard first > 0 else { return 1 }
        return min(1, last / first)
    }
}

public enum MemoryBandwidthProbe {
    /// Reads a `bytes`-long buffer `passes` times, split over the pool's threads, after one untimed warm-up pass.
    /// The buffer is written once first so every page is resident. Throws for a non-positive size or pass count.
    public static func measure(bytes: Int, passes: Int, pool: ComputePool) throws -> BandwidthMeasurement {
        let vectorBytes = MemoryLayout<SIMD16<Float>>.stride
        guard bytes >= vectorBytes * 4 else {
            throw CalibrationError.invalidOption(name: "bandwidth bytes", expected: "at least \(vectorBytes * 4)",
                                                 got: "\(bytes)")
        }
        guard passes > 0 else {
            throw CalibrationError.invalidOption(name: "passes", expected: "a positive count", got: "\(passes)")
        }
        let vectors = bytes / vectorBytes
        let usedBytes = vectors * vectorBytes
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: usedBytes, alignment: 64)
        defer { buffer.deallocate() }
        // Touch every page with distinct values so nothing can be served from a shared zero page.
        let floats = buffer.bindMemory(to: Float.self, capacity: usedBytes / 4)
        pool.parallelRanges(usedBytes / 4, minimumChunk: 1 << 16) { range in
            for i in range { floats[i] = Float(i & 1023) * 0.001 }
        }
        let chunkVectors = max(1024, vectors / (pool.threadCount * 16))
        let chunks = (vectors + chunkVectors - 1) / chunkVectors
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunks)
        defer { partial.deallocate() }
        let base = UnsafeRawPointer(buffer)
        var rates: [Double] = []
        rates.reserveCapacity(passes)
        var checksum: Float = 0
        for pass in 0...passes {
            let start = DispatchTime.now().uptimeNanoseconds
            pool.parallelFor(chunks) { c in
                let lo = c * chunkVectors, hi = min(lo + chunkVectors, vectors)
                partial[c] = sumVectors(base, lo, hi)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            for c in 0..<chunks { checksum += partial[c] }
            if pass > 0 { rates.append(Double(usedBytes) / max(seconds, 1e-9)) }
        }
        // The sums feed a value the caller cannot see, so the reads cannot be removed.
        blackHole(checksum)
        return BandwidthMeasurement(bytes: usedBytes, threads: pool.threadCount, passBytesPerSecond: rates)
    }

    /// Sum of the 16-float vectors `lo..<hi`, four independent accumulators so the loads are the bottleneck.
    @inline(never)
    static func sumVectors(_ base: UnsafeRawPointer, _ lo: Int, _ hi: Int) -> Float {
        let stride = MemoryLayout<SIMD16<Float>>.stride
        var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
        var i = lo
        while i + 4 <= hi {
            let p = base + i * stride
            a += p.load(as: SIMD16<Float>.self)
            b += p.load(fromByteOffset: stride, as: SIMD16<Float>.self)
            c += p.load(fromByteOffset: 2 * stride, as: SIMD16<Float>.self)
            d += p.load(fromByteOffset: 3 * stride, as: SIMD16<Float>.self)
            i += 4
        }
        while i < hi {
            a += (base + i * stride).load(as: SIMD16<Float>.self)
            i += 1
        }
        return ((a + b) + (c + d)).sum()
    }

    @inline(never)
    static func blackHole(_ value: Float) {
        if value.isNaN { print("", terminator: "") }
    }
}

/// Small statistics helpers for calibration figures.
public enum Statistics {
    /// Median of the values (mean of the middle two for an even count); 0 for none.
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        let n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }
}
