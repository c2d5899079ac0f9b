// ChatML prompt formatting (SmolLM2, Qwen and others) and prompt token construction.

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// A chat prompt format. Only ChatML is implemented:
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n` to prompt a reply.
/// When the conversation does not open with a system message, the default system prompt (if any) is inserted.
public struct ChatTemplate: Sendable, Equatable {
    public enum Format: String, Sendable, Codable {
        case chatML = "chatml"
    }

    public static let turnStart = "<|im_start|>"
    public static let turnEnd = "<|im_end|>"

    public var format: Format
    public var defaultSystemPrompt: String?

    /// SmolLM2-Instruct's template.
    public static let smolLM2 = ChatTemplate(
        format: .chatML, defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    public init(format: Format, defaultSystemPrompt: String?) {
        self.format = format
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Recognises a Jinja chat template's source. ChatML templates are recognised by their turn markers; a literal
    /// default system turn (`<|im_start|>system\n...<|im_end|>`) becomes the default system prompt.
    public init(templateSource source: String) throws(TokenizerError) {
        guard source.contains(ChatTemplate.turnStart), source.contains(ChatTemplate.turnEnd) else {
            throw .unrecognisedChatTemplate(reason: "no \(ChatTemplate.turnStart)/\(ChatTemplate.turnEnd) markers (only ChatML is supported)")
        }
        format = .chatML
        defaultSystemPrompt = nil
        // The newline may be a real one or the two characters "\n" inside a Jinja string literal.
        for (opener, escaped) in [(ChatTemplate.turnStart + "system\n", false), (ChatTemplate.turnStart + "system\\n", true)] {
            guard let open = source.firstRange(of: opener),
                  let close = source[open.upperBound...].firstRange(of: ChatTemplate.turnEnd) else { continue }
            let literal = String(source[open.upperBound..<close.lowerBound])
            // Only a plain literal counts; an expression (message content) is not a default.
            guard !literal.contains("'"), !literal.contains("\""), !literal.contains("{"), !literal.contains("+") else { continue }
            defaultSystemPrompt = escaped ? literal.replacingEscapedNewlines() : literal
            break
        }
    }

    /// Reads `tokenizer.chat_template` from a GGUF file.
    public init(file: GGUFFile) throws(TokenizerError) {
        let source: String
        do {
            source = try file.requireString("tokenizer.chat_template")
        } catch {
            throw .metadata(error)
        }
        try self.init(templateSource: source)
    }

    /// The messages with the default system turn put first when needed.
    func effectiveMessages(_ messages: [ChatMessage]) -> [ChatMessage] {
        if let defaultSystemPrompt, messages.first?.role != "system" {
            return [.system(defaultSystemPrompt)] + messages
        }
        return messages
    }

    /// The prompt as text.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var text = ""
        for message in effectiveMessages(messages) {
            text += ChatTemplate.turnStart + message.role + "\n" + message.content + ChatTemplate.turnEnd + "\n"
        }
        if addGenerationPrompt { text += ChatTemplate.turnStart + "assistant\n" }
        return text
    }

    /// The prompt as token ids. Turn markers are inserted as their control tokens and message text is encoded as
    /// plain text, so a message that contains "<|im_end|>" cannot end its turn early. For ordinary messages the
    /// result equals `tokenizer.encode(render(messages), parseSpecial: true)`.
    public func promptTokens(_ messages: [ChatMessage], tokenizer: Tokenizer,
                             addGenerationPrompt: Bool = true) throws(TokenizerError) -> [Int32] {
        guard let start = tokenizer.id(forToken: ChatTemplate.turnStart) else { throw .missingToken(ChatTemplate.turnStart) }
        guard let end = tokenizer.id(forToken: ChatTemplate.turnEnd) else { throw .missingToken(ChatTemplate.turnEnd) }
        var ids: [Int32] = []
        if tokenizer.addsBOS, let bos = tokenizer.bosTokenID { ids.append(bos) }
        let newline = tokenizer.encode("\n")
        for message in effectiveMessages(messages) {
            ids.append(start)
            ids += tokenizer.encode(message.role + "\n" + message.content)
            ids.append(end)
            ids += newline
        }
        if addGenerationPrompt {
            ids.append(start)
            ids += tokenizer.encode("assistant\n")
        }
        return ids
    }
}

extension String {
    fileprivate func replacingEscapedNewlines() -> String {
        var result = ""
        var iterator = makeIterator()
        while let c = iterator.next() {
            if c == "\\" {
                if let n = iterator.next() {
                    result.append(n == "n" ? "\n" : n)
                }
            } else {
                result.append(c)
            }
        }
        return result
    }
}
