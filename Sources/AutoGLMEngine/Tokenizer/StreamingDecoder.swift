// Incremental detokenisation that never splits a UTF-8 character.

/// Turns generated token ids into text as they arrive. A token may end in the middle of a multi-byte character
/// (byte-level BPE splits emoji and CJK across tokens); those bytes are held back until the character completes.
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public var skipSpecial: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Bytes received but not yet returned (an incomplete character, at most 3 bytes).
    public var pendingByteCount: Int { pending.count }

    /// Adds one token and returns the text that is now complete (possibly empty).
    public mutating func append(_ id: Int32) throws(TokenizerError) -> String {
        let piece = try tokenizer.pieceBytes(id)
        if skipSpecial, tokenizer.isControl(id) { return "" }
        pending.append(contentsOf: piece)
        let cut = StreamingDecoder.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is held back (an incomplete character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside an incomplete UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        // Find the last byte that is not a continuation byte, within the last four.
        var start = count - 1
        while start >= 0, start >= count - 4, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0, start >= count - 4 else { return count }
        let lead = bytes[start]
        let needed: Int
        switch lead {
        case 0xC0..<0xE0: needed = 2
        case 0xE0..<0xF0: needed = 3
        case 0xF0..<0xF8: needed = 4
        default: needed = 1
        }
        return start + needed > count ? start : count
    }
}
