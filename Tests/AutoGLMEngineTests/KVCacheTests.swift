import Testing
import AutoGLMSpecs
@testable import AutoGLMEngine

@Suite("KV cache")
struct KVCacheTests {
    @Test("Stored rows equal the reference round trip and stay within the per-format error bound",
          arguments: KVCacheFormat.allCases, [40, 64, 7])
    func roundTrip(format: KVCacheFormat, headDim: Int) throws {
        var rng = AttentionRandom(seed: UInt64(headDim))
        let tokens = 5, kvHeads = 3
        var keys = rng.array(tokens * kvHeads * headDim, amplitude: 3)
        keys[0] = 0  // include an exact zero and a constant group
        for j in 0..<min(headDim, 32) { keys[kvHeads * headDim + j] = 0.25 }
        let values = rng.array(tokens * kvHeads * headDim)
        let cache = try KVCache(layers: 2, kvHeads: kvHeads, headDim: headDim, capacity: 8, format: format)
        for layer in 0..<2 { try cache.append(layer: layer, keys: keys, values: values, count: tokens) }
        try cache.commit(tokens)
        for t in 0..<tokens {
            for h in 0..<kvHeads {
                let range = ((t * kvHeads + h) * headDim)..<((t * kvHeads + h + 1) * headDim)
                let stored = try #require(try cache.storedRows(layer: 1, position: t, kvHead: h))
                let key = Array(keys[range]), value = Array(values[range])
                #expect(stored.key == AttentionReference.roundTrip(key, format: format))
                #expect(stored.value == AttentionReference.roundTrip(value, format: format))
                let bound = AttentionReference.roundTripBound(key, format: format)
                for j in 0..<headDim { #expect(abs(stored.key[j] - key[j]) <= bound[j], "t \(t) h \(h) j \(j)") }
            }
        }
    }

    @Test("Bytes per token follow the format: f32 4, f16 2, int8 1 + 2/32, int4 0.5 + 4/32 per element")
    func bytesPerToken() throws {
        for format in KVCacheFormat.allCases {
            let cache = try KVCache(layers: 3, kvHeads: 2, headDim: 128, capacity: 4096, format: format)
            let row = [Float](repeating: 0.5, count: 2 * 128)
            for layer in 0..<3 { try cache.append(layer: layer, keys: row, values: row, count: 1) }
            try cache.commit(1)
            // Storage grows in pages of 256 tokens.
            let expected = Double(3 * 2 * 2 * 128 * 256) * format.bytesPerElement
            #expect(Double(cache.residentBytes) == expected, "\(format)")
        }
    }

    @Test("Without a window residentBytes grows with the sequence; with one it stops at window + global tokens",
          arguments: KVCacheFormat.allCases)
    func memoryStaysFlatUnderWindow(format: KVCacheFormat) throws {
        let (w, g) = (300, 4)
        let full = try KVCache(layers: 2, kvHeads: 1, headDim: 32, capacity: 3000, format: format)
        let windowed = try KVCache(layers: 2, kvHeads: 1, headDim: 32, capacity: 3000, format: format, window: w,
                                   globalTokens: g)
        let row = [Float](repeating: 0.25, count: 32 * 200)
        var fullBytes: [Int] = [], windowBytes: [Int] = []
        for _ in 0..<10 {
            for cache in [full, windowed] {
                for layer in 0..<2 { try cache.append(layer: layer, keys: row, values: row, count: 200) }
                try cache.commit(200)
                // Decode steps too.
                for _ in 0..<5 {
                    for layer in 0..<2 { try cache.append(layer: layer, keys: row, values: row, count: 1) }
                    try cache.commit(1)
                }
            }
            fullBytes.append(full.residentBytes)
            windowBytes.append(windowed.residentBytes)
            #expect(windowed.residentTokens <= w + g)
        }
        #expect(full.length == 2050 && windowed.length == 2050)
        #expect(fullBytes.last! > 4 * fullBytes.first!)
        let bound = 2 * 2 * (w + g + 1) * KVRowLayout(format: format, headDim: 32).rowBytes
        #expect(windowBytes.allSatisfy { $0 <= bound })
        #expect(Set(windowBytes.dropFirst(2)).count == 1, "\(windowBytes)")
        #expect(windowed.residentTokens == w + g)
    }

    @Test("A windowed cache keeps the global tokens and the last window, and evicts the rest")
    func windowResidency() throws {
        let cache = try KVCache(layers: 1, kvHeads: 1, headDim: 4, capacity: 100, format: .f32, window: 5,
                                globalTokens: 2)
        for t in 0..<20 {
            let row = [Float](repeating: Float(t), count: 4)
            try cache.append(layer: 0, keys: row, values: row, count: 1)
            try cache.commit(1)
        }
        for t in 0..<20 {
            let stored = try cache.storedRows(layer: 0, position: t, kvHead: 0)
            if t < 2 || t >= 15 {
                #expect(stored?.key == [Float](repeating: Float(t), count: 4), "position \(t)")
            } else {
                #expect(stored == nil, "position \(t) should be evicted")
            }
        }
        #expect(cache.residentTokens == 7)
    }

    @Test("Reset empties the cache and frees storage")
    func reset() throws {
        let cache = try KVCache(layers: 1, kvHeads: 1, headDim: 8, capacity: 10, format: .int8)
        let row = [Float](repeating: 1, count: 8 * 3)
        try cache.append(layer: 0, keys: row, values: row, count: 3)
        try cache.commit(3)
        #expect(cache.length == 3 && cache.residentBytes > 0)
        cache.reset()
        #expect(cache.length == 0 && cache.residentTokens == 0 && cache.residentBytes == 0)
        try cache.append(layer: 0, keys: row, values: row, count: 3)
        try cache.commit(3)
        #expect(cache.length == 3)
    }

    @Test("Bad arguments throw clear errors")
    func errors() throws {
        #expect(throws: AttentionError.invalidParameter(name: "layers", expected: "> 0", got: 0)) {
            try KVCache(layers: 0, kvHeads: 1, headDim: 8, capacity: 10, format: .f32)
        }
        #expect(throws: AttentionError.invalidParameter(name: "window", expected: "> 0", got: 0)) {
            try KVCache(layers: 1, kvHeads: 1, headDim: 8, capacity: 10, format: .f32, window: 0)
        }
        let cache = try KVCache(layers: 2, kvHeads: 1, headDim: 8, capacity: 4, format: .f16)
        let row = [Float](repeating: 1, count: 8 * 5)
        #expect(throws: AttentionError.capacityExceeded(layer: 0, needed: 5, capacity: 4)) {
            try cache.append(layer: 0, keys: row, values: row, count: 5)
        }
        #expect(throws: AttentionError.layerOutOfRange(layer: 2, layers: 2)) {
            try cache.append(layer: 2, keys: row, values: row, count: 1)
        }
        try cache.append(layer: 0, keys: row, values: row, count: 2)
        #expect(throws: AttentionError.commitMismatch(layer: 1, appended: 0, committing: 2)) {
            try cache.commit(2)
        }
        #expect(AttentionError.capacityExceeded(layer: 0, needed: 5, capacity: 4).description.contains("capacity is 4"))
    }
}
