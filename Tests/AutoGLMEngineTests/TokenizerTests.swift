import Testing
@testable import AutoGLMEngine

/// A vocabulary of the 256 byte symbols plus the given extra tokens (ids 256...).
func byteVocabulary(extra: [String]) -> [String] {
    (0..<256).map { ByteLevel.symbol(for: UInt8($0)) } + extra
}

@Suite("Tokenizer building blocks")
struct TokenizerTests {
    @Test func byteAlphabet() {
        #expect(ByteLevel.symbol(for: 0x20) == "Ġ")
        #expect(ByteLevel.symbol(for: 0x0A) == "Ċ")
        #expect(ByteLevel.symbol(for: UInt8(ascii: "a")) == "a")
        #expect(ByteLevel.symbol(for: 0xAD) == "Ń")
        let all = (0..<256).map { ByteLevel.symbol(for: UInt8($0)) }
        #expect(Set(all).count == 256)
        #expect(ByteLevel.bytes(of: all.joined()) == (0..<256).map(UInt8.init))
        #expect(ByteLevel.bytes(of: "中") == nil)
    }

    func pieces(_ text: String, _ kind: PreTokenizerKind = .smollm) -> [String] {
        var bytes = Array(text.utf8)
        var result: [String] = []
        bytes.withUnsafeMutableBufferPointer { buffer in
            let view = UnsafeBufferPointer(buffer)
            PreTokenizer(kind: kind).split(view) { range in
                result.append(String(decoding: view[range], as: UTF8.self))
            }
        }
        return result
    }

    @Test func preTokenizerPattern() {
        #expect(pieces("Hello world") == ["Hello", " world"])
        #expect(pieces("a  b") == ["a", " ", " b"])
        #expect(pieces("x\n\ny") == ["x", "\n", "\n", "y"])
        #expect(pieces("  end  ") == [" ", " end", "  "])
        #expect(pieces("don't I'm we'll they've") == ["don", "'t", " I", "'m", " we", "'ll", " they", "'ve"])
        #expect(pieces("DON'T") == ["DON", "'", "T"])
        #expect(pieces("\"'s") == ["\"'", "s"])
        #expect(pieces("a, b!?") == ["a", ",", " b", "!?"])
        #expect(pieces("a\u{00A0}b") == ["a", "\u{00A0}", "b"])
        #expect(pieces("e\u{0301}t\u{00E9}") == ["e", "\u{0301}", "t\u{00E9}"])
        #expect(pieces("中文 test") == ["中文", " test"])
        #expect(pieces("") == [])
    }

    @Test func digitsAreIsolatedForSmolLM() {
        #expect(pieces("in 2024!") == ["in", " ", "2", "0", "2", "4", "!"])
        #expect(pieces("x١٢ ½") == ["x", "١", "٢", " ", "½"])
        #expect(pieces("in 2024!", .gpt2) == ["in", " 2024", "!"])
    }

    @Test func mergesApplyByRankThenLeftmost() throws {
        let vocab = byteVocabulary(extra: ["bc", "ab", "abc", "aa"])
        let tokenizer = try Tokenizer(tokens: vocab, tokenTypes: nil, merges: ["b c", "a b", "a bc", "a a"],
                                      preTokenizer: .gpt2)
        let bc: Int32 = 256, abc: Int32 = 258, aa: Int32 = 259
        // "b c" outranks "a b", so abc = a + bc.
        #expect(tokenizer.encode("abc") == [abc])
        #expect(tokenizer.encode("bcbc") == [bc, bc])
        // Equal ranks merge leftmost first.
        #expect(tokenizer.encode("aaa") == [aa, Int32(UInt8(ascii: "a"))])
        #expect(try tokenizer.decode(tokenizer.encode("aaa abc")) == "aaa abc")
    }

    @Test func specialTokensInText() throws {
        let vocab = byteVocabulary(extra: ["<|im_start|>", "<|im_end|>", "<tool>"])
        let types = Array(repeating: TokenType.normal.rawValue, count: 256).map(Int.init)
            + [Int(TokenType.control.rawValue), Int(TokenType.control.rawValue), Int(TokenType.userDefined.rawValue)]
        let tokenizer = try Tokenizer(tokens: vocab, tokenTypes: types, merges: [], preTokenizer: .smollm, eosTokenID: 257)
        let text = "<|im_start|>hi<tool><|im_end|>"
        let special = tokenizer.encode(text, parseSpecial: true)
        #expect(special == [256, 104, 105, 258, 257])
        let plain = tokenizer.encode(text)
        #expect(plain.first == Int32(UInt8(ascii: "<")))
        #expect(plain.contains(258), "user-defined tokens are always recognised")
        #expect(!plain.contains(256) && !plain.contains(257))
        #expect(try tokenizer.decode(special) == text)
        #expect(try tokenizer.decode(special, skipSpecial: true) == "hi<tool>")
        #expect(tokenizer.endOfGenerationIDs == [257])
        #expect(tokenizer.encode("x", addBOS: true) == [120], "no BOS token in this vocabulary")
    }

    @Test func vocabularyErrors() {
        #expect {
            try Tokenizer(tokens: ["<s>", "</s>"], tokenTypes: nil, merges: [], preTokenizer: .gpt2)
        } throws: { "\($0)".contains("no byte-level symbols") }
        #expect {
            try Tokenizer(tokens: byteVocabulary(extra: []), tokenTypes: nil, merges: ["a b"], preTokenizer: .gpt2)
        } throws: { "\($0)".contains("merge 0 'a b' is invalid: the merged symbol 'ab' is not in the vocabulary") }
        #expect {
            try Tokenizer(tokens: byteVocabulary(extra: ["ab"]), tokenTypes: nil, merges: ["ab"], preTokenizer: .gpt2)
        } throws: { "\($0)".contains("expected two symbols separated by a space") }
        #expect {
            try Tokenizer(tokens: byteVocabulary(extra: []), tokenTypes: [1, 1], merges: [], preTokenizer: .gpt2)
        } throws: { "\($0)".contains("256 tokens but 2 token types") }
        #expect {
            try Tokenizer(tokens: byteVocabulary(extra: []), tokenTypes: nil, merges: [], preTokenizer: .gpt2, eosTokenID: 999)
        } throws: { "\($0)".contains("eos token id is 999, outside the vocabulary of 256 tokens") }
    }

    @Test func bytesWithoutSymbolsAreDropped() throws {
        let tokenizer = try Tokenizer(tokens: Array(byteVocabulary(extra: []).dropFirst(5)), tokenTypes: nil, merges: [],
                                      preTokenizer: .gpt2)
        // Byte 4 has no symbol; "a" is byte 97, id 92 after dropping the first five symbols.
        #expect(tokenizer.encode("a\u{4}a") == [92, 92])
        #expect(tokenizer.encode("\u{4}") == [])
    }

    @Test func decodeRejectsUnknownIDs() throws {
        let tokenizer = try Tokenizer(tokens: byteVocabulary(extra: []), tokenTypes: nil, merges: [], preTokenizer: .gpt2)
        #expect(throws: TokenizerError.invalidTokenID(id: 256, vocabularySize: 256)) { try tokenizer.decode([65, 256]) }
        #expect(throws: TokenizerError.invalidTokenID(id: -1, vocabularySize: 256)) { try tokenizer.decode([-1]) }
        // Arbitrary bytes decode without trapping, invalid UTF-8 becoming U+FFFD.
        #expect(try tokenizer.decode([0xFF, 65]) == "\u{FFFD}A")
    }

    @Test func streamingHoldsBackPartialCharacters() throws {
        let tokenizer = try Tokenizer(tokens: byteVocabulary(extra: []), tokenTypes: nil, merges: [], preTokenizer: .gpt2)
        let text = "a🙂é中!"
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var emitted: [String] = []
        for id in tokenizer.encode(text) { emitted.append(try decoder.append(id)) }
        #expect(emitted.joined() == text)
        #expect(emitted == ["a", "", "", "", "🙂", "", "é", "", "", "中", "!"])
        #expect(decoder.pendingByteCount == 0)
        // A dangling lead byte is reported as U+FFFD at the end.
        #expect(try decoder.append(0xE4) == "")
        #expect(decoder.finish() == "\u{FFFD}")
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xF0, 0x9F]) == 1)
        #expect(StreamingDecoder.completePrefixLength([0x80, 0x80, 0x80, 0x80, 0x80]) == 5)
        #expect(StreamingDecoder.completePrefixLength([]) == 0)
    }

    @Test func chatTemplateRecognitionAndRendering() throws {
        let source = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            + "{{ '<|im_start|>system\\nYou are kind.<|im_end|>\\n' }}{% endif %}"
            + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        let template = try ChatTemplate(templateSource: source)
        #expect(template == ChatTemplate(format: .chatML, defaultSystemPrompt: "You are kind."))
        #expect(template.render([.user("Hi")]) ==
            "<|im_start|>system\nYou are kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(template.render([.system("S"), .user("Hi")], addGenerationPrompt: false) ==
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        let plain = try ChatTemplate(templateSource: "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}")
        #expect(plain.defaultSystemPrompt == nil)
        #expect {
            try ChatTemplate(templateSource: "[INST] {{ message }} [/INST]")
        } throws: { "\($0)".contains("unrecognised chat template") }
    }
}
