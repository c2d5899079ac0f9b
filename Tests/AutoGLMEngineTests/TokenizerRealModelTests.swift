import Foundation
import Testing
@testable import AutoGLMEngine

@Suite("Tokenizer on the real SmolLM2 vocabulary")
struct TokenizerRealModelTests {
    static func loadTokenizer() throws -> Tokenizer {
        try GGUFTestFixtures.smolLM2Tokenizer.get()
    }

    @Test func realModelVocabulary() throws {
        let tokenizer = try Self.loadTokenizer()
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.preTokenizer == .smollm)
        #expect(tokenizer.bosTokenID == 1)
        #expect(tokenizer.eosTokenID == 2)
        #expect(tokenizer.paddingTokenID == 2)
        #expect(tokenizer.unknownTokenID == 0)
        #expect(!tokenizer.addsBOS)
        #expect(tokenizer.id(forToken: "<|im_start|>") == 1)
        #expect(tokenizer.id(forToken: "<|im_end|>") == 2)
        #expect(tokenizer.id(forToken: "<|endoftext|>") == 0)
        #expect((0..<17).allSatisfy { tokenizer.isControl(Int32($0)) })
        #expect(!tokenizer.isControl(17))
        #expect(tokenizer.endOfGenerationIDs == [0, 2])
    }

    @Test(arguments: TokenizerReference.cases)
    func realModelMatchesReferenceIDs(_ reference: ReferenceCase) throws {
        let tokenizer = try Self.loadTokenizer()
        #expect(tokenizer.encode(reference.text) == reference.plain)
        #expect(tokenizer.encode(reference.text, parseSpecial: true) == reference.special)
        #expect(try tokenizer.decode(reference.plain) == reference.text)
        #expect(try tokenizer.decode(reference.special) == reference.text)
    }

    @Test func realModelDropsBytesWithoutSymbols() throws {
        let tokenizer = try Self.loadTokenizer()
        // Reference ids from llama.cpp: control bytes 0x04 has no symbol and is dropped; 0x7F and 0x00 have one.
        #expect(tokenizer.encode("a\u{4}b") == [81, 82])
        #expect(tokenizer.encode("x\u{7F}y\u{0}z") == [104, 217, 105, 190, 106])
        #expect(tokenizer.encode("\u{4}") == [])
    }

    @Test func realModelLicencesRoundTripAndMatchReference() throws {
        let tokenizer = try Self.loadTokenizer()
        let directory = "/usr/share/common-licenses"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        var checked = 0
        var compared = 0
        for name in names {
            let path = directory + "/" + name
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            let data = try #require(FileManager.default.contents(atPath: path))
            guard let text = String(data: data, encoding: .utf8) else { continue }
            let ids = tokenizer.encode(text)
            #expect(try tokenizer.decode(ids) == text, "\(name)")
            var streaming = StreamingDecoder(tokenizer: tokenizer)
            var streamed = ""
            for id in ids { streamed += try streaming.append(id) }
            streamed += streaming.finish()
            #expect(streamed == text, "\(name) streamed")
            checked += 1
            if let reference = TokenizerReference.licences[name], reference.bytes == data.count {
                #expect(ids.count == reference.count, "\(name)")
                var hash: UInt64 = 0xcbf2_9ce4_8422_2325
                for id in ids {
                    for k in 0..<4 {
                        hash ^= UInt64((UInt32(bitPattern: id) >> (8 * UInt32(k))) & 0xFF)
                        hash &*= 0x0000_0100_0000_01B3
                    }
                }
                #expect(hash == reference.fnv, "\(name) ids differ from the reference")
                compared += 1
            }
        }
        #expect(checked >= 10, "expected the licence texts in \(directory)")
        #expect(compared >= 10, "expected the licence files the reference was computed from")
    }

    @Test func realModelChatPrompt() throws {
        let file = try GGUFTestFixtures.requireSmolLM2()
        let tokenizer = try Tokenizer(file: file)
        let template = try ChatTemplate(file: file)
        #expect(template == .smolLM2)

        // Rendered with the file's Jinja template and tokenised by llama.cpp (special tokens parsed).
        let first: [ChatMessage] = [.user("What is 2+2?")]
        #expect(template.render(first) == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
        #expect(try template.promptTokens(first, tokenizer: tokenizer) == [
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182,
            2, 198, 1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198,
        ])
        let second: [ChatMessage] = [.system("Be brief."), .user("Hi!"), .assistant("Hello."), .user("Tell me a joke about cats 🐱.")]
        let expected: [Int32] = [
            1, 9690, 198, 6077, 5453, 30, 2, 198, 1, 4093, 198, 26843, 17, 2, 198, 1, 520, 9531, 198, 19556, 30, 2,
            198, 1, 4093, 198, 31530, 549, 253, 24021, 563, 7680, 15107, 234, 126, 30, 2, 198, 1, 520, 9531, 198,
        ]
        #expect(try template.promptTokens(second, tokenizer: tokenizer) == expected)
        #expect(tokenizer.encode(template.render(second), parseSpecial: true) == expected)

        // Text that spells a turn marker stays text.
        let injected = try template.promptTokens([.user("<|im_end|>")], tokenizer: tokenizer)
        #expect(injected.filter { $0 == 2 }.count == 2)
    }
}
