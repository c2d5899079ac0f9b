// Splitting text into pieces before BPE, following the GPT-2 pattern (optionally with digits isolated).

/// The pre-tokenizers this implementation knows, by their `tokenizer.ggml.pre` name.
public enum PreTokenizerKind: String, Sendable, CaseIterable {
    /// The GPT-2 pattern: contractions ('s 't 're 've 'm 'll 'd), ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`,
    /// `\s+(?!\S)`, `\s+`.
    case gpt2
    /// SmolLM's: every number character is first split off on its own, then the GPT-2 pattern runs on the rest.
    case smollm

    /// Whether number characters are isolated one by one before the GPT-2 pattern.
    var isolatesDigits: Bool { self == .smollm }
}

/// Splits UTF-8 text into pre-tokens, as byte ranges. Hand-written equivalent of the regular expressions above,
/// working on Unicode scalars with the Unicode general categories (L*, N*) and the White_Space property.
struct PreTokenizer: Sendable {
    let kind: PreTokenizerKind

    /// Character classes used by the pattern.
    enum CharClass: UInt8 {
        case letter, number, space, otherWhitespace, other
    }

    private static let asciiClasses: [CharClass] = (0..<128).map { value in
        let scalar = Unicode.Scalar(UInt8(value))
        if value == 0x20 { return .space }
        if scalar.properties.isWhitespace { return .otherWhitespace }
        if (0x30...0x39).contains(value) { return .number }
        if (0x41...0x5A).contains(value) || (0x61...0x7A).contains(value) { return .letter }
        return .other
    }

    static func charClass(_ scalar: Unicode.Scalar) -> CharClass {
        if scalar.value < 128 { return asciiClasses[Int(scalar.value)] }
        let properties = scalar.properties
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return properties.isWhitespace ? .otherWhitespace : .other
        }
    }

    /// Calls `body` with the byte range of each pre-token of `bytes`, which must be valid UTF-8, in order.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        // Decode once: byte offset, value and class of every scalar (plus an end sentinel offset).
        var starts: [Int] = []
        var values: [UInt32] = []
        var classes: [CharClass] = []
        starts.reserveCapacity(bytes.count + 1)
        values.reserveCapacity(bytes.count)
        classes.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let lead = bytes[i]
            var value: UInt32
            var length: Int
            switch lead {
            case 0..<0x80: value = UInt32(lead); length = 1
            case 0xC0..<0xE0: value = UInt32(lead & 0x1F); length = 2
            case 0xE0..<0xF0: value = UInt32(lead & 0x0F); length = 3
            default: value = UInt32(lead & 0x07); length = 4
            }
            length = min(length, bytes.count - i)
            for k in 1..<max(length, 1) { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
            starts.append(i)
            values.append(value)
            classes.append(PreTokenizer.charClass(Unicode.Scalar(value) ?? "\u{FFFD}"))
            i += length
        }
        starts.append(bytes.count)
        let n = values.count

        func emit(_ lo: Int, _ hi: Int) { body(starts[lo]..<starts[hi]) }

        if kind.isolatesDigits {
            var segmentStart = 0
            for index in 0..<n where classes[index] == .number {
                if segmentStart < index { splitPattern(values, classes, segmentStart, index, emit) }
                emit(index, index + 1)
                segmentStart = index + 1
            }
            if segmentStart < n { splitPattern(values, classes, segmentStart, n, emit) }
        } else {
            splitPattern(values, classes, 0, n, emit)
        }
    }

    /// The GPT-2 pattern over scalars lo..<hi, whose end is the end of the input for the look-ahead.
    private func splitPattern(_ values: [UInt32], _ classes: [CharClass], _ lo: Int, _ hi: Int,
                              _ emit: (Int, Int) -> Void) {
        let apostrophe: UInt32 = 0x27
        var i = lo
        while i < hi {
            // 's 't 're 've 'm 'll 'd (lowercase only, ASCII apostrophe)
            if values[i] == apostrophe, i + 1 < hi {
                let a = values[i + 1]
                if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 {   // s t m d
                    emit(i, i + 2); i += 2; continue
                }
                if i + 2 < hi {
                    let b = values[i + 2]
                    if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) {  // re ve ll
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
            var j = i
            if classes[i] == .space, i + 1 < hi {
                let next = classes[i + 1]
                if next == .letter || next == .number || next == .other { j = i + 1 }
            }
            let runClass = classes[j]
            if runClass == .letter || runClass == .number || runClass == .other {
                var end = j + 1
                while end < hi, classes[end] == runClass { end += 1 }
                emit(i, end); i = end; continue
            }
            // Whitespace: `\s+(?!\S)` leaves the last whitespace character for the next piece when a
            // non-space follows; `\s+` takes a lone whitespace character that is not a space.
            var end = i + 1
            while end < hi, classes[end] == .space || classes[end] == .otherWhitespace { end += 1 }
            if end < hi, end - i >= 2 { end -= 1 }
            emit(i, end); i = end
        }
    }
}
