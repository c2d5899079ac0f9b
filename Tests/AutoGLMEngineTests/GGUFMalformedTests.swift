import Foundation
import Testing
@testable import AutoGLMEngine

/// Broken files must produce a GGUFError that names the problem, never a crash.
@Suite("GGUF malformed input")
struct GGUFMalformedTests {
    /// Parses `bytes` and returns the error's description; records an issue when parsing succeeds
    /// or throws something other than GGUFError.
    func failure(_ bytes: [UInt8]) -> String {
        do {
            _ = try GGUFTestFixtures.parse(bytes)
            Issue.record("parsing succeeded but should have failed")
            return ""
        } catch let error as GGUFError {
            return error.description
        } catch {
            Issue.record("unexpected error type: \(error)")
            return ""
        }
    }

    @Test func everyPrefixOfTheHeaderIsTruncated() {
        let (bytes, headerEnd) = RawGGUF.small()
        for length in 0..<headerEnd {
            let message = failure(Array(bytes[0..<length]))
            // A prefix shorter than 4 bytes cannot hold the magic; everything else is a truncated field.
            #expect(message.contains("truncated"), "prefix \(length): \(message)")
            #expect(message.contains("test.gguf"))
        }
    }

    @Test func prefixesInsideTensorDataRunPastTheEnd() {
        let (bytes, _) = RawGGUF.small()
        for length in [bytes.count - 1, bytes.count - 16, bytes.count - 17, bytes.count - 40, bytes.count - 47] {
            let message = failure(Array(bytes[0..<length]))
            #expect(message.contains("past end of file"), "prefix \(length): \(message)")
        }
    }

    @Test func badMagic() {
        var (bytes, _) = RawGGUF.small()
        bytes[0] = UInt8(ascii: "X")
        let message = failure(bytes)
        #expect(message.contains("bad magic"))
        #expect(message.contains("58 47 55 46"))
    }

    @Test(arguments: [UInt32(0), 1, 4, 0x0300_0000])
    func unsupportedVersion(version: UInt32) {
        var (bytes, _) = RawGGUF.small()
        withUnsafeBytes(of: version.littleEndian) { bytes.replaceSubrange(4..<8, with: $0) }
        let message = failure(bytes)
        #expect(message.contains("unsupported version \(version)"))
        if version == 0x0300_0000 { #expect(message.contains("big-endian")) }
    }

    @Test func tensorPastEndOfFile() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("big", dims: [1024, 1024], type: GGMLType.f32.rawValue, offset: 0)
        g.pad()
        g.data(4096)
        let message = failure(g.bytes)
        #expect(message.contains("tensor 'big'"))
        #expect(message.contains("past end of file"))
    }

    @Test func tensorOffsetPastEndOfFile() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("far", dims: [4], type: GGMLType.f32.rawValue, offset: UInt64.max - 31)
        g.pad()
        g.data(16)
        #expect(failure(g.bytes).contains("past end of file"))
    }

    @Test func tensorCountTwoToTheForty() {
        var g = RawGGUF()
        g.header(tensors: 1 << 40, kvs: 0)
        g.data(64)
        let message = failure(g.bytes)
        #expect(message.contains("tensor count 1099511627776"))
        #expect(message.contains("impossible"))
    }

    @Test func absurdKeyValueCount() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: UInt64.max)
        g.kvU32("a", 1)
        let message = failure(g.bytes)
        #expect(message.contains("metadata key/value count \(UInt64.max)"))
    }

    @Test func absurdArrayCount() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("tokenizer.ggml.tokens")
        g.u32(GGUFValueType.array.rawValue)
        g.u32(GGUFValueType.string.rawValue)
        g.u64(1 << 50)
        g.data(64)
        let message = failure(g.bytes)
        #expect(message.contains("element count of 'tokenizer.ggml.tokens'"))
        #expect(message.contains("impossible"))
    }

    @Test func unknownValueType() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("general.weird")
        g.u32(13)
        g.u32(0)
        let message = failure(g.bytes)
        #expect(message.contains("unknown value type 13 for 'general.weird'"))
    }

    @Test func unknownArrayElementType() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("general.list")
        g.u32(GGUFValueType.array.rawValue)
        g.u32(99)
        g.u64(0)
        #expect(failure(g.bytes).contains("unknown value type 99"))
    }

    @Test func unknownTensorType() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [32], type: 4, offset: 0)
        g.pad()
        g.data(128)
        let message = failure(g.bytes)
        #expect(message.contains("tensor 'w'"))
        #expect(message.contains("unknown tensor type 4"))
    }

    @Test func misalignedTensorOffset() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [4], type: GGMLType.f32.rawValue, offset: 8)
        g.pad()
        g.data(64)
        let message = failure(g.bytes)
        #expect(message.contains("misaligned"))
        #expect(message.contains("multiple of 32"))
    }

    @Test func stringLengthPastEnd() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("general.name")
        g.u32(GGUFValueType.string.rawValue)
        g.u64(1000)
        g.data(10)
        let message = failure(g.bytes)
        #expect(message.contains("truncated"))
        #expect(message.contains("'general.name' (string of 1000 bytes)"))
    }

    @Test func keyLengthPastEnd() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.u64(UInt64.max)
        g.data(16)
        #expect(failure(g.bytes).contains("key of metadata entry 0 (string of \(UInt64.max) bytes)"))
    }

    @Test func invalidUTF8() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.u64(2)
        g.u8(0xC3)
        g.u8(0x28)
        g.u32(GGUFValueType.uint8.rawValue)
        g.u8(0)
        #expect(failure(g.bytes).contains("not valid UTF-8"))
    }

    @Test func invalidBool() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("flag")
        g.u32(GGUFValueType.bool.rawValue)
        g.u8(7)
        #expect(failure(g.bytes).contains("'flag' is invalid: bool byte at 40 is 7"))
    }

    @Test func duplicateKey() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 2)
        g.kvU32("a", 1)
        g.kvU32("a", 2)
        #expect(failure(g.bytes).contains("duplicate metadata key 'a'"))
    }

    @Test func duplicateTensorName() {
        var g = RawGGUF()
        g.header(tensors: 2, kvs: 0)
        g.tensorInfo("w", dims: [8], type: GGMLType.f32.rawValue, offset: 0)
        g.tensorInfo("w", dims: [8], type: GGMLType.f32.rawValue, offset: 32)
        g.pad()
        g.data(64)
        #expect(failure(g.bytes).contains("duplicate tensor name 'w'"))
    }

    @Test(arguments: [UInt32(0), 3, 48])
    func invalidAlignment(alignment: UInt32) {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.kvU32("general.alignment", alignment)
        #expect(failure(g.bytes).contains("general.alignment must be a positive power of two, found \(alignment)"))
    }

    @Test func alignmentOfWrongType() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.kvString("general.alignment", "32")
        #expect(failure(g.bytes).contains("general.alignment must be a positive power of two"))
    }

    @Test func tooManyDimensions() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [1, 1, 1, 1, 1], type: GGMLType.f32.rawValue, offset: 0)
        g.pad()
        g.data(32)
        #expect(failure(g.bytes).contains("5 dimensions, expected 1...4"))
    }

    @Test func zeroDimensions() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [], type: GGMLType.f32.rawValue, offset: 0)
        g.pad()
        g.data(32)
        #expect(failure(g.bytes).contains("0 dimensions, expected 1...4"))
    }

    @Test func zeroSizedDimension() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [4, 0], type: GGMLType.f32.rawValue, offset: 0)
        g.pad()
        g.data(32)
        #expect(failure(g.bytes).contains("dimension 1 is 0, expected > 0"))
    }

    @Test func elementCountOverflow() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [1 << 32, 1 << 32], type: GGMLType.f32.rawValue, offset: 0)
        g.pad()
        g.data(32)
        #expect(failure(g.bytes).contains("element count of [4294967296, 4294967296] overflows"))
    }

    @Test func byteCountOverflow() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [1 << 31, 1 << 31], type: GGMLType.f64.rawValue, offset: 0)
        g.pad()
        g.data(32)
        #expect(failure(g.bytes).contains("overflows"))
    }

    @Test func partialQuantBlock() {
        var g = RawGGUF()
        g.header(tensors: 1, kvs: 0)
        g.tensorInfo("w", dims: [48, 2], type: GGMLType.q8_0.rawValue, offset: 0)
        g.pad()
        g.data(256)
        #expect(failure(g.bytes).contains("row length 48 is not a multiple of the Q8_0 block size 32"))
    }

    @Test func overlappingTensors() {
        var g = RawGGUF()
        g.header(tensors: 2, kvs: 0)
        g.tensorInfo("a", dims: [16], type: GGMLType.f32.rawValue, offset: 0)
        g.tensorInfo("b", dims: [16], type: GGMLType.f32.rawValue, offset: 32)
        g.pad()
        g.data(128)
        #expect(failure(g.bytes).contains("tensors 'a' and 'b' overlap"))
    }

    @Test func deeplyNestedArrays() {
        var g = RawGGUF()
        g.header(tensors: 0, kvs: 1)
        g.string("deep")
        g.u32(GGUFValueType.array.rawValue)
        for _ in 0..<10_000 {
            g.u32(GGUFValueType.array.rawValue)
            g.u64(1)
        }
        #expect(failure(g.bytes).contains("nested deeper than 8 levels"))
    }

    @Test func missingAndUnreadableFiles() {
        #expect {
            try GGUFFile(path: "/nonexistent/dir/model.gguf")
        } throws: { error in
            "\(error)".contains("/nonexistent/dir/model.gguf: cannot open file: No such file or directory")
        }
        #expect {
            try GGUFFile(path: "/tmp")
        } throws: { error in
            "\(error)".contains("not a regular file")
        }
        #expect(failure([]).contains("truncated reading magic at byte 0"))
    }

    /// Random corruption of a valid file must never crash; it either parses or throws GGUFError.
    @Test func randomCorruptionNeverCrashes() throws {
        let (bytes, headerEnd) = RawGGUF.small()
        var rng = MalformedInputRNG(seed: 42)
        for _ in 0..<3000 {
            var copy = bytes
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let at = Int(rng.next() % UInt64(headerEnd))
                copy[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            do {
                _ = try GGUFTestFixtures.parse(copy)
            } catch is GGUFError {
                // expected for most corruptions
            }
        }
    }
}

struct MalformedInputRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
