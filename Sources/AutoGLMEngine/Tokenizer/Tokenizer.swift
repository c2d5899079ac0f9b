// Byte-level BPE tokenizer built from GGUF metadata (`tokenizer.ggml.*`).

/// Kinds of vocabulary entries, as stored in `tokenizer.ggml.token_type`.
public enum TokenType: Int32, Sendable {
    case normal = 1
    case unknown = 2
    /// Control tokens such as "<|im_start|>": only recognised in text when asked, never produced by BPE.
    case control = 3
    /// Tokens added by the user: always recognised in text.
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// A byte-level BPE tokenizer (the "gpt2" tokenizer family of GGUF), as used by SmolLM2, GPT-2, Qwen and GLM.
///
/// Encoding: special tokens are cut out of the text first (see `encode`), the remaining text is split by the
/// pre-tokenizer, each piece's UTF-8 bytes become byte symbols, and merges are applied lowest rank first
/// (leftmost first among equal ranks) until none applies.
public struct Tokenizer: Sendable {
    public static let supportedModels = ["gpt2"]

    /// Vocabulary strings as stored (byte-level symbols for normal tokens, literal text for special tokens).
    public let tokens: [String]
    public let tokenTypes: [TokenType]
    public let preTokenizer: PreTokenizerKind
    public let bosTokenID: Int32?
    public let eosTokenID: Int32?
    public let paddingTokenID: Int32?
    public let unknownTokenID: Int32?
    /// Whether the model expects a BOS token in front of prompts (`tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool

    /// Token id for every byte's symbol, -1 where the vocabulary has none.
    private let byteTokens: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Every token's bytes, concatenated; token i is pieceBytes[pieceStarts[i]..<pieceStarts[i + 1]].
    private let pieceBytes: [UInt8]
    private let pieceStarts: [Int32]
    private let idByToken: [String: Int32]
    /// Special tokens to find in text, longest first.
    private let specialTokens: [(bytes: [UInt8], id: Int32, alwaysRecognised: Bool)]
    private let splitter: PreTokenizer

    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    public init(file: GGUFFile) throws(TokenizerError) {
        do {
            let model = try file.requireString("tokenizer.ggml.model")
            guard Tokenizer.supportedModels.contains(model) else {
                throw TokenizerError.unsupportedModel(found: model, supported: Tokenizer.supportedModels)
            }
            let preName = try file.string("tokenizer.ggml.pre") ?? "gpt2"
            let pre: PreTokenizerKind
            switch preName {
            case "smollm": pre = .smollm
            case "gpt2", "default": pre = .gpt2
            default:
                throw TokenizerError.unsupportedPreTokenizer(found: preName, supported: PreTokenizerKind.allCases.map(\.rawValue))
            }
            let tokens = try file.requireStringArray("tokenizer.ggml.tokens")
            let types = try file.intArray("tokenizer.ggml.token_type")
            let merges = try file.stringArray("tokenizer.ggml.merges") ?? []
            func specialID(_ key: String) throws -> Int32? {
                guard let id = try file.int(key) else { return nil }
                guard id >= 0, id < tokens.count else {
                    throw TokenizerError.invalidSpecialTokenID(key: key, id: id, vocabularySize: tokens.count)
                }
                return Int32(id)
            }
            try self.init(
                tokens: tokens, tokenTypes: types, merges: merges, preTokenizer: pre,
                bosTokenID: specialID("tokenizer.ggml.bos_token_id"),
                eosTokenID: specialID("tokenizer.ggml.eos_token_id"),
                paddingTokenID: specialID("tokenizer.ggml.padding_token_id"),
                unknownTokenID: specialID("tokenizer.ggml.unknown_token_id"),
                addsBOS: file.bool("tokenizer.ggml.add_bos_token") ?? false)
        } catch let error as TokenizerError {
            throw error
        } catch let error as GGUFError {
            throw .metadata(error)
        } catch {
            throw .inconsistentVocabulary(reason: "\(error)")
        }
    }

    /// Builds the tokenizer from vocabulary arrays. `tokenTypes` (raw `TokenType` values) defaults to all normal;
    /// `merges` are "left right" rules in priority order.
    public init(tokens: [String], tokenTypes: [Int]?, merges: [String], preTokenizer: PreTokenizerKind,
                bosTokenID: Int32? = nil, eosTokenID: Int32? = nil, paddingTokenID: Int32? = nil,
                unknownTokenID: Int32? = nil, addsBOS: Bool = false) throws(TokenizerError) {
        guard !tokens.isEmpty else { throw .inconsistentVocabulary(reason: "no tokens") }
        guard tokens.count < Int(Int32.max) else { throw .inconsistentVocabulary(reason: "\(tokens.count) tokens") }
        var types: [TokenType] = []
        if let tokenTypes {
            guard tokenTypes.count == tokens.count else {
                throw .inconsistentVocabulary(reason: "\(tokens.count) tokens but \(tokenTypes.count) token types")
            }
            types.reserveCapacity(tokenTypes.count)
            for (index, raw) in tokenTypes.enumerated() {
                guard let value = Int32(exactly: raw), let type = TokenType(rawValue: value) else {
                    throw .inconsistentVocabulary(reason: "token \(index) has unknown type \(raw)")
                }
                types.append(type)
            }
        } else {
            types = Array(repeating: .normal, count: tokens.count)
        }
        for (key, id) in [("bos", bosTokenID), ("eos", eosTokenID), ("padding", paddingTokenID), ("unknown", unknownTokenID)] {
            if let id, id < 0 || Int(id) >= tokens.count {
                throw .invalidSpecialTokenID(key: "\(key) token id", id: Int(id), vocabularySize: tokens.count)
            }
        }

        var idByToken: [String: Int32] = [:]
        idByToken.reserveCapacity(tokens.count)
        var pieceBytes: [UInt8] = []
        var pieceStarts: [Int32] = [0]
        pieceStarts.reserveCapacity(tokens.count + 1)
        var specials: [(bytes: [UInt8], id: Int32, alwaysRecognised: Bool)] = []
        for (index, token) in tokens.enumerated() {
            idByToken[token] = Int32(index)
            switch types[index] {
            case .control, .userDefined:
                let bytes = Array(token.utf8)
                pieceBytes.append(contentsOf: bytes)
                if !bytes.isEmpty { specials.append((bytes, Int32(index), types[index] == .userDefined)) }
            case .normal, .byte, .unknown, .unused:
                // Byte-level symbols decode to raw bytes; anything outside the byte alphabet is kept as text.
                pieceBytes.append(contentsOf: ByteLevel.bytes(of: token) ?? Array(token.utf8))
            }
            guard pieceBytes.count < Int(Int32.max) else { throw .inconsistentVocabulary(reason: "token text too large") }
            pieceStarts.append(Int32(pieceBytes.count))
        }

        // Bytes without a symbol in the vocabulary (SmolLM2 lacks a few control bytes and the bytes that never
        // occur in UTF-8) are dropped when encoding, as llama.cpp and Hugging Face tokenizers do.
        var byteTokens = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            byteTokens[byte] = idByToken[ByteLevel.symbol(for: UInt8(byte))] ?? -1
        }
        guard byteTokens.contains(where: { $0 >= 0 }) else {
            throw .inconsistentVocabulary(reason: "no byte-level symbols (is this a byte-level BPE vocabulary?)")
        }

        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, rule) in merges.enumerated() {
            // The separator is the first space after the first character (a symbol is never a bare space).
            let scalars = rule.unicodeScalars
            guard let space = scalars.dropFirst().firstIndex(of: " ") else {
                throw .invalidMerge(index: rank, rule: rule, reason: "expected two symbols separated by a space")
            }
            let left = String(scalars[..<space])
            let right = String(scalars[scalars.index(after: space)...])
            guard let leftID = idByToken[left], let rightID = idByToken[right] else {
                throw .invalidMerge(index: rank, rule: rule, reason: "a symbol is not in the vocabulary")
            }
            guard let mergedID = idByToken[left + right] else {
                throw .invalidMerge(index: rank, rule: rule, reason: "the merged symbol '\(left + right)' is not in the vocabulary")
            }
            let key = UInt64(UInt32(leftID)) << 32 | UInt64(UInt32(rightID))
            if mergeTable[key] == nil {
                mergeTable[key] = UInt64(rank) << 32 | UInt64(UInt32(mergedID))
            }
        }

        self.tokens = tokens
        self.tokenTypes = types
        self.preTokenizer = preTokenizer
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.paddingTokenID = paddingTokenID
        self.unknownTokenID = unknownTokenID
        self.addsBOS = addsBOS
        self.byteTokens = byteTokens
        self.merges = mergeTable
        self.pieceBytes = pieceBytes
        self.pieceStarts = pieceStarts
        self.idByToken = idByToken
        self.specialTokens = specials.sorted { $0.bytes.count > $1.bytes.count }
        self.splitter = PreTokenizer(kind: preTokenizer)
    }

    // MARK: Lookup

    /// The id of the vocabulary entry spelled exactly `token` (e.g. "<|im_end|>", or "Ġthe").
    public func id(forToken token: String) -> Int32? { idByToken[token] }

    public func tokenType(_ id: Int32) -> TokenType? {
        guard id >= 0, Int(id) < tokens.count else { return nil }
        return tokenTypes[Int(id)]
    }

    /// Whether `id` is a control token (never text).
    public func isControl(_ id: Int32) -> Bool { tokenType(id) == .control }

    /// Tokens that end a generated turn: EOS plus the control tokens "<|im_end|>", "<|endoftext|>", "<|eot_id|>",
    /// "<|end|>" where the vocabulary has them.
    public var endOfGenerationIDs: Set<Int32> {
        var ids = Set<Int32>()
        if let eosTokenID { ids.insert(eosTokenID) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<|user|>", "<|observation|>"] {
            if let id = idByToken[name], isControl(id) { ids.insert(id) }
        }
        return ids
    }

    /// The bytes a token stands for (literal text for special tokens).
    public func pieceBytes(_ id: Int32) throws(TokenizerError) -> ArraySlice<UInt8> {
        guard id >= 0, Int(id) < tokens.count else { throw .invalidTokenID(id: id, vocabularySize: tokens.count) }
        return pieceBytes[Int(pieceStarts[Int(id)])..<Int(pieceStarts[Int(id) + 1])]
    }

    // MARK: Encoding

    /// Encodes `text` to token ids.
    ///
    /// - Parameters:
    ///   - addBOS: put the BOS token first (when the vocabulary has one).
    ///   - parseSpecial: recognise control tokens written in the text ("<|im_start|>") as single tokens. Without it
    ///     they are encoded as ordinary text; user-defined tokens are always recognised.
    public func encode(_ text: String, addBOS: Bool = false, parseSpecial: Bool = false) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 2)
        if addBOS, let bosTokenID { ids.append(bosTokenID) }
        var utf8 = Array(text.utf8)
        utf8.withUnsafeMutableBufferPointer { mutable in
            let bytes = UnsafeBufferPointer(mutable)
            var workspace = BPEWorkspace()
            var segmentStart = 0
            var position = 0
            while position < bytes.count {
                if let special = matchSpecial(bytes, at: position, parseSpecial: parseSpecial) {
                    encodeOrdinary(bytes, segmentStart..<position, into: &ids, workspace: &workspace)
                    ids.append(special.id)
                    position += special.length
                    segmentStart = position
                } else {
                    position += 1
                }
            }
            encodeOrdinary(bytes, segmentStart..<bytes.count, into: &ids, workspace: &workspace)
        }
        return ids
    }

    private func matchSpecial(_ bytes: UnsafeBufferPointer<UInt8>, at position: Int,
                              parseSpecial: Bool) -> (id: Int32, length: Int)? {
        let first = bytes[position]
        for special in specialTokens where special.bytes[0] == first && (parseSpecial || special.alwaysRecognised) {
            let length = special.bytes.count
            guard position + length <= bytes.count else { continue }
            var equal = true
            for k in 1..<length where bytes[position + k] != special.bytes[k] {
                equal = false
                break
            }
            if equal { return (special.id, length) }
        }
        return nil
    }

    private func encodeOrdinary(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into ids: inout [Int32],
                                workspace: inout BPEWorkspace) {
        guard !range.isEmpty else { return }
        let segment = UnsafeBufferPointer(rebasing: bytes[range])
        splitter.split(segment) { piece in
            bpe(UnsafeBufferPointer(rebasing: segment[piece]), into: &ids, workspace: &workspace)
        }
    }

    /// Merges one pre-token's bytes: a min-heap of candidate pairs keyed by (rank, left position), with stale
    /// entries skipped when popped. O(n log n) in the piece length.
    private func bpe(_ piece: UnsafeBufferPointer<UInt8>, into ids: inout [Int32], workspace w: inout BPEWorkspace) {
        let n = piece.count
        if n == 1 {
            let id = byteTokens[Int(piece[0])]
            if id >= 0 { ids.append(id) }
            return
        }
        w.reset(n)
        for (k, byte) in piece.enumerated() {
            w.symbols[k] = byteTokens[Int(byte)]
            w.alive[k] = true
            w.next[k] = Int32(k + 1)
            w.previous[k] = Int32(k - 1)
        }
        w.next[n - 1] = -1
        for k in 0..<(n - 1) {
            if let merge = mergeFor(w.symbols[k], w.symbols[k + 1]) { w.push(rank: merge.rank, position: k) }
        }
        while let (rank, position) = w.pop() {
            let right = Int(w.next[position])
            guard w.alive[position], right >= 0,
                  let merge = mergeFor(w.symbols[position], w.symbols[right]), merge.rank == rank else { continue }
            // Merge right into position.
            w.symbols[position] = merge.id
            w.alive[right] = false
            let after = Int(w.next[right])
            w.next[position] = Int32(after)
            if after >= 0 { w.previous[after] = Int32(position) }
            let before = Int(w.previous[position])
            if before >= 0, let m = mergeFor(w.symbols[before], merge.id) { w.push(rank: m.rank, position: before) }
            if after >= 0, let m = mergeFor(merge.id, w.symbols[after]) { w.push(rank: m.rank, position: position) }
        }
        var k = 0
        while k >= 0 {
            if w.symbols[k] >= 0 { ids.append(w.symbols[k]) }   // bytes without a symbol are dropped
            k = Int(w.next[k])
        }
    }

    @inline(__always)
    private func mergeFor(_ left: Int32, _ right: Int32) -> (rank: UInt32, id: Int32)? {
        guard let packed = merges[UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))] else {
            return nil
        }
        return (UInt32(packed >> 32), Int32(truncatingIfNeeded: packed & 0xFFFF_FFFF))
    }

    // MARK: Decoding

    /// The bytes of a token sequence.
    public func decodeBytes(_ ids: [Int32], skipSpecial: Bool = false) throws(TokenizerError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            let piece = try pieceBytes(id)
            if skipSpecial, isControl(id) { continue }
            bytes.append(contentsOf: piece)
        }
        return bytes
    }

    /// Decodes ids to text. Control tokens appear as their text unless `skipSpecial`. Byte sequences that are not
    /// valid UTF-8 (possible for arbitrary id sequences) become U+FFFD.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) throws(TokenizerError) -> String {
        String(decoding: try decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }
}

/// Scratch space for BPE, reused across the pieces of one `encode` call.
struct BPEWorkspace {
    var symbols: [Int32] = []
    var next: [Int32] = []
    var previous: [Int32] = []
    var alive: [Bool] = []
    /// Min-heap of rank << 32 | position.
    var heap: [UInt64] = []

    mutating func reset(_ n: Int) {
        if symbols.count < n {
            symbols = Array(repeating: 0, count: n)
            next = Array(repeating: 0, count: n)
            previous = Array(repeating: 0, count: n)
            alive = Array(repeating: false, count: n)
        }
        heap.removeAll(keepingCapacity: true)
    }

    mutating func push(rank: UInt32, position: Int) {
        heap.append(UInt64(rank) << 32 | UInt64(position))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent] <= heap[child] { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> (rank: UInt32, position: Int)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= heap.count { break }
                let right = left + 1
                let smaller = right < heap.count && heap[right] < heap[left] ? right : left
                if heap[parent] <= heap[smaller] { break }
                heap.swapAt(parent, smaller)
                parent = smaller
            }
        }
        return (UInt32(top >> 32), Int(top & 0xFFFF_FFFF))
    }
}
