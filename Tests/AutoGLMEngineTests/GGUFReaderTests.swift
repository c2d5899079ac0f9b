import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("GGML types")
struct GGMLTypeTests {
    @Test func rawValuesMatchTheFormat() {
        let expected: [(GGMLType, UInt32)] = [
            (.f32, 0), (.f16, 1), (.q4_0, 2), (.q4_1, 3), (.q5_0, 6), (.q5_1, 7), (.q8_0, 8), (.q8_1, 9),
            (.q2_K, 10), (.q3_K, 11), (.q4_K, 12), (.q5_K, 13), (.q6_K, 14), (.q8_K, 15), (.iq2_XXS, 16),
            (.iq4_NL, 20), (.iq4_XS, 23), (.i8, 24), (.i16, 25), (.i32, 26), (.i64, 27), (.f64, 28),
            (.iq1_M, 29), (.bf16, 30), (.tq1_0, 34), (.tq2_0, 35), (.mxfp4, 39),
        ]
        for (type, raw) in expected { #expect(type.rawValue == raw, "\(type)") }
        for removed: UInt32 in [4, 5, 31, 32, 33, 36, 37, 38, 40] { #expect(GGMLType(rawValue: removed) == nil) }
    }

    @Test func blockLayouts() {
        let expected: [(GGMLType, Int, Int)] = [
            (.f32, 1, 4), (.f16, 1, 2), (.bf16, 1, 2), (.q4_0, 32, 18), (.q4_1, 32, 20), (.q5_0, 32, 22),
            (.q5_1, 32, 24), (.q8_0, 32, 34), (.q8_1, 32, 36), (.q2_K, 256, 84), (.q3_K, 256, 110),
            (.q4_K, 256, 144), (.q5_K, 256, 176), (.q6_K, 256, 210), (.q8_K, 256, 292), (.iq4_NL, 32, 18),
            (.iq4_XS, 256, 136), (.iq1_M, 256, 56), (.tq2_0, 256, 66), (.mxfp4, 32, 17),
        ]
        for (type, block, bytes) in expected {
            #expect(type.blockSize == block, "\(type)")
            #expect(type.blockByteCount == bytes, "\(type)")
        }
        #expect(GGMLType.q4_0.bitsPerElement == 4.5)
        #expect(GGMLType.q8_0.byteCount(dimensions: [64, 3]) == 2 * 34 * 3)
        #expect(GGMLType.q4_K.byteCount(dimensions: [128]) == nil)
        #expect(GGMLType.f32.byteCount(dimensions: [Int.max / 2, 4]) == nil)
        #expect(GGMLType(name: "q4_k") == .q4_K)
    }
}

@Suite("GGUF reader and writer")
struct GGUFReaderTests {
    static let allValues: [(key: String, value: GGUFValue)] = [
        ("t.u8", .uint8(200)), ("t.i8", .int8(-100)), ("t.u16", .uint16(60000)), ("t.i16", .int16(-30000)),
        ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(1.5e-5)),
        ("t.bool", .bool(true)), ("t.string", .string("héllo 中文 🙂")), ("t.u64", .uint64(UInt64.max)),
        ("t.i64", .int64(Int64.min)), ("t.f64", .float64(-2.25)),
        ("t.strings", .strings(["a", "", "<|im_end|>"])),
        ("t.ints", .int32s([1, -2, 3])),
        ("t.floats", .float32s([0.5, -1])),
        ("t.empty", .array(.float32, [])),
        ("t.nested", .array(.array, [.array(.uint8, [.uint8(1)]), .array(.uint8, [])])),
    ]

    @Test(arguments: [32, 64, 128])
    func writerRoundTrip(alignment: Int) throws {
        let types: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q4_K, .q6_K, .i8, .mxfp4]
        var tensors: [(descriptor: GGUFTensorDescriptor, bytes: [UInt8])] = []
        for (i, type) in types.enumerated() {
            let descriptor = GGUFTensorDescriptor(name: "t\(i).\(type)", dimensions: [type.blockSize * 2, 3], type: type)
            let size = try #require(descriptor.byteCount)
            tensors.append((descriptor, (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }))
        }
        let path = GGUFTestFixtures.temporaryPath("roundtrip.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFWriter.write(to: path, metadata: Self.allValues, tensors: tensors, alignment: alignment)

        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.alignment == alignment)
        let expectedKeys = Self.allValues.map(\.key) + (alignment == 32 ? [] : ["general.alignment"])
        #expect(file.metadataKeys == expectedKeys)
        for (key, value) in Self.allValues { #expect(file[key] == value, "\(key)") }
        #expect(file.tensors.count == types.count)
        for (info, tensor) in zip(file.tensors, tensors) {
            #expect(info.name == tensor.descriptor.name)
            #expect(info.dimensions == tensor.descriptor.dimensions)
            #expect(info.type == tensor.descriptor.type)
            #expect(info.offset % alignment == 0)
            #expect(Array(file.data(for: info)) == tensor.bytes)
        }
        #expect(try file.requireString("t.string") == "héllo 中文 🙂")
        #expect(try file.requireInt("t.i32") == -2_000_000_000)
        #expect(try file.requireDouble("t.f64") == -2.25)
        #expect(try file.stringArray("t.strings") == ["a", "", "<|im_end|>"])
        #expect(try file.intArray("t.ints") == [1, -2, 3])
        #expect(file["t.floats"]?.doubleArray == [0.5, -1])
        // UInt64.max does not fit in Int, so it must not be read as one.
        #expect(throws: GGUFError.typeMismatch(path: path, key: "t.u64", expected: "integer", found: "uint64")) {
            try file.int("t.u64")
        }
    }

    @Test func streamingWriterTakesChunksAndChecksSizes() throws {
        let descriptor = GGUFTensorDescriptor(name: "w", dimensions: [1024, 16], type: .f32)
        let path = GGUFTestFixtures.temporaryPath("stream.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFWriter.write(to: path, metadata: [("general.architecture", .string("llama"))], tensors: [descriptor]) { _, sink in
            for row in 0..<16 {
                try sink.write(elements: (0..<1024).map { Float(row * 1024 + $0) })
            }
        }
        let file = try GGUFFile(path: path)
        let data = file.data(for: try file.requireTensor("w"))
        let floats = Array(data.bindMemory(to: Float.self))
        #expect(floats.count == 16 * 1024)
        #expect(floats.enumerated().allSatisfy { Float($0.offset) == $0.element })

        let short = GGUFTestFixtures.temporaryPath("short.gguf")
        #expect {
            try GGUFWriter.write(to: short, metadata: [], tensors: [descriptor]) { _, sink in
                try sink.write(elements: [Float](repeating: 0, count: 100))
            }
        } throws: { error in
            "\(error)".contains("got 400 bytes, expected 65536")
        }
        #expect(!FileManager.default.fileExists(atPath: short))
        #expect(!FileManager.default.fileExists(atPath: short + ".partial"))
        #expect {
            try GGUFWriter.write(to: short, metadata: [], tensors: [descriptor]) { _, sink in
                try sink.write([UInt8](repeating: 0, count: 65537))
            }
        } throws: { error in
            "\(error)".contains("more than its 65536 bytes")
        }
    }

    @Test func writerRejectsInconsistentInput() {
        let path = GGUFTestFixtures.temporaryPath("bad.gguf")
        let cases: [([(key: String, value: GGUFValue)], [GGUFTensorDescriptor], Int, String)] = [
            ([("a", .bool(true)), ("a", .bool(false))], [], 32, "duplicate metadata key 'a'"),
            ([("a", .array(.int32, [.string("x")]))], [], 32, "declared as int32 holds a string"),
            ([], [.init(name: "x", dimensions: [16], type: .q4_0)], 32, "does not fit type Q4_0"),
            ([], [.init(name: "x", dimensions: [1], type: .f32), .init(name: "x", dimensions: [1], type: .f32)], 32,
             "duplicate tensor name 'x'"),
            ([], [], 48, "alignment 48 is not a positive power of two"),
            ([("general.alignment", .uint32(64))], [], 32, "general.alignment is 64 but alignment is 32"),
        ]
        for (metadata, tensors, alignment, message) in cases {
            #expect {
                try GGUFWriter.write(to: path, metadata: metadata, tensors: tensors, alignment: alignment) { _, _ in }
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    @Test func modelConfigFromGLM4Metadata() throws {
        let path = GGUFTestFixtures.temporaryPath("glm4.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("glm4")), ("glm4.block_count", .uint32(40)),
            ("glm4.embedding_length", .uint32(4096)), ("glm4.feed_forward_length", .uint32(13696)),
            ("glm4.attention.head_count", .uint32(32)), ("glm4.attention.head_count_kv", .uint32(2)),
            ("glm4.context_length", .uint32(65536)), ("glm4.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("glm4.rope.dimension_count", .uint32(64)), ("glm4.vocab_size", .uint32(151552)),
        ]
        let output = GGUFTensorDescriptor(name: "output.weight", dimensions: [32], type: .f32)
        try GGUFWriter.write(to: path, metadata: metadata, tensors: [(output, [UInt8](repeating: 0, count: 128))])
        let config = try GGUFModelConfig(file: GGUFFile(path: path))
        #expect(config.architecture == "glm4")
        #expect(config.blockCount == 40)
        #expect(config.headDimension == 128)
        #expect(config.headCountKV == 2)
        #expect(config.queryGroupSize == 16)
        #expect(config.ropeDimensionCount == 64)
        #expect(config.ropeFreqBase == 10_000)
        #expect(config.vocabularySize == 151552)
        #expect(!config.tiedOutput)
        #expect(config.fileType == nil)

        let missing = GGUFTestFixtures.temporaryPath("missing.gguf")
        defer { try? FileManager.default.removeItem(atPath: missing) }
        try GGUFWriter.write(to: missing, metadata: metadata.filter { $0.key != "glm4.feed_forward_length" },
                             tensors: [GGUFTensorDescriptor]()) { _, _ in }
        #expect(throws: GGUFError.missingKey(path: missing, key: "glm4.feed_forward_length")) {
            try GGUFModelConfig(file: GGUFFile(path: missing))
        }
        #expect("\(GGUFError.missingKey(path: missing, key: "glm4.feed_forward_length"))"
            .contains("missing metadata key 'glm4.feed_forward_length'"))
    }

    @Test func smallRawFileParses() throws {
        let (bytes, _) = RawGGUF.small()
        let file = try GGUFTestFixtures.parse(bytes)
        #expect(file.architecture == "llama")
        #expect(file.tensors.map(\.name) == ["a", "b"])
        #expect(try file.data(named: "b").allSatisfy { $0 == 2 })
        #expect(file.tensor(named: "c") == nil)
        #expect(throws: GGUFError.missingTensor(path: "test.gguf", name: "c")) { try file.requireTensor("c") }
        #expect(throws: GGUFError.typeMismatch(path: "test.gguf", key: "llama.block_count", expected: "string", found: "uint32")) {
            try file.requireString("llama.block_count")
        }
    }

    @Test func mappedFileReadsTheFileAndHandlesEmptyFiles() throws {
        let path = GGUFTestFixtures.temporaryPath("mapped.bin")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let contents = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents)))
        let mapped = try MappedFile(path: path)
        #expect(mapped.count == 10_000)
        #expect(Array(mapped.bytes) == contents)

        let empty = GGUFTestFixtures.temporaryPath("empty.bin")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(try MappedFile(path: empty).count == 0)
        #expect {
            try GGUFFile(path: empty)
        } throws: { "\($0)".contains("truncated reading magic at byte 0") }
    }

    @Test func version2IsAccepted() throws {
        var (bytes, _) = RawGGUF.small()
        bytes[4] = 2
        #expect(try GGUFTestFixtures.parse(bytes).version == 2)
    }
}
