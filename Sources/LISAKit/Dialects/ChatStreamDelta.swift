import LISAOpenAI
import NIOCore

/// The text of one plain chat-completion chunk — a content or reasoning delta of the first
/// choice and nothing else a translator acts on — read in one pass over its bytes, without
/// building a JSON tree: nearly every event of a streamed answer is one.
///
/// It reads only what ``StrictJSON`` accepts (so the document has one reading, the same the
/// tree parser gives) and only the common shape: one choice of index 0, a delta of `role`,
/// `content` and `reasoning_content`/`reasoning`, a `null` `finish_reason`, and no `usage`,
/// `lisa`, `tool_calls` or `stop_reason` with a value. Anything else returns `nil`, and the
/// translator parses the chunk whole: only the cost changes, never the answer.
struct ChatStreamDelta: Equatable {
    /// The chunk's `id`.
    var id: String?
    /// `delta.content`, when a string.
    var content: String?
    /// `delta.reasoning_content`, or `delta.reasoning` when there is no `reasoning_content`.
    var reasoning: String?

    static func read(_ data: String) -> ChatStreamDelta? {
        var data = data
        return data.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            guard StrictJSON.isValid(bytes) else { return nil }
            var cursor = JSONCursor(bytes)
            var delta = ChatStreamDelta()
            var sawChoices = false
            let read = readObject(&cursor) { key, cursor in
                if key.equals("id") {
                    if cursor.null() { return true }
                    delta.id = cursor.string()
                    return delta.id != nil
                } else if key.equals("choices") {
                    sawChoices = true
                    return readChoices(&cursor, into: &delta)
                } else if key.equals("usage") {
                    return cursor.null()
                } else if key.equals("lisa") {
                    return false
                }
                return cursor.skipValue()
            }
            guard read, sawChoices, cursor.atEnd() else { return nil }
            return delta
        }
    }

    /// `[{"index": 0, "delta": {…}, "finish_reason": null, …}]`: exactly one choice.
    private static func readChoices(_ cursor: inout JSONCursor, into delta: inout ChatStreamDelta) -> Bool {
        guard cursor.consume(UInt8(ascii: "[")) else { return false }
        var sawDelta = false
        let read = readObject(&cursor) { key, cursor in
            if key.equals("index") {
                return cursor.integer() == 0
            } else if key.equals("delta") {
                sawDelta = true
                return readDelta(&cursor, into: &delta)
            } else if key.equals("finish_reason") || key.equals("stop_reason") || key.equals("tool_calls") {
                return cursor.null()
            }
            return cursor.skipValue()
        }
        return read && sawDelta && cursor.consume(UInt8(ascii: "]"))
    }

    private static func readDelta(_ cursor: inout JSONCursor, into delta: inout ChatStreamDelta) -> Bool {
        var sawReasoningContent = false
        return readObject(&cursor) { key, cursor in
            if key.equals("content") {
                return optionalString(&cursor, into: &delta.content)
            } else if key.equals("reasoning_content") {
                sawReasoningContent = true
                return optionalString(&cursor, into: &delta.reasoning)
            } else if key.equals("reasoning") {
                // `reasoning_content` wins wherever it is, also when null, as the tree reader has it.
                var reasoning: String?
                guard optionalString(&cursor, into: &reasoning) else { return false }
                if !sawReasoningContent { delta.reasoning = reasoning }
                return true
            } else if key.equals("role") {
                return cursor.null() || cursor.string() != nil
            } else if key.equals("tool_calls") || key.equals("function_call") {
                return cursor.null()
            }
            return cursor.skipValue()
        }
    }

    /// A string or `null` at the cursor.
    private static func optionalString(_ cursor: inout JSONCursor, into value: inout String?) -> Bool {
        if cursor.null() {
            value = nil
            return true
        }
        value = cursor.string()
        return value != nil
    }

    /// Reads an object whose members' names are plain, handing each to `member`.
    private static func readObject(_ cursor: inout JSONCursor, _ member: (UnsafeRawBufferPointer, inout JSONCursor) -> Bool) -> Bool {
        guard cursor.consume(UInt8(ascii: "{")) else { return false }
        if cursor.consume(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = cursor.plainKey(), member(key, &cursor) else { return false }
        } while cursor.consume(UInt8(ascii: ","))
        return cursor.consume(UInt8(ascii: "}"))
    }
}

/// The text of one plain delta event of an upstream's own stream — Anthropic's
/// `content_block_delta` with a `text_delta` or `thinking_delta`, or a Responses
/// `response.*_text.delta` / `response.refusal.delta` — read in one pass like
/// ``ChatStreamDelta``; anything else returns `nil` and is parsed whole.
struct UpstreamTextDelta: Equatable {
    enum Kind: Equatable { case content, reasoning, refusal }
    var kind: Kind
    var text: String

    /// An Anthropic `content_block_delta` of text or thinking.
    static func readAnthropic(_ data: String) -> UpstreamTextDelta? {
        var isBlockDelta = false
        var found: UpstreamTextDelta?
        let read = readObject(data) { key, cursor in
            if key.equals("type") {
                isBlockDelta = cursor.string() == "content_block_delta"
                return isBlockDelta
            } else if key.equals("index") {
                return cursor.integer() != nil
            } else if key.equals("delta") {
                found = readAnthropicDelta(&cursor)
                return found != nil
            }
            return cursor.skipValue()
        }
        return read && isBlockDelta ? found : nil
    }

    /// `{"type": "text_delta", "text": …}` or `{"type": "thinking_delta", "thinking": …}`.
    private static func readAnthropicDelta(_ cursor: inout JSONCursor) -> UpstreamTextDelta? {
        var deltaType: String?
        var text: String?
        var thinking: String?
        let read = readMembers(&cursor) { key, cursor in
            if key.equals("type") {
                deltaType = cursor.string()
                return deltaType != nil
            } else if key.equals("text") {
                text = cursor.string()
                return text != nil
            } else if key.equals("thinking") {
                thinking = cursor.string()
                return thinking != nil
            }
            return cursor.skipValue()
        }
        guard read else { return nil }
        switch deltaType {
        case "text_delta": return text.map { UpstreamTextDelta(kind: .content, text: $0) }
        case "thinking_delta": return thinking.map { UpstreamTextDelta(kind: .reasoning, text: $0) }
        default: return nil
        }
    }

    /// A Responses text, reasoning or refusal delta event.
    static func readResponses(_ data: String) -> UpstreamTextDelta? {
        var kind: Kind?
        var text: String?
        let read = readObject(data) { key, cursor in
            if key.equals("type") {
                switch cursor.string() {
                case "response.output_text.delta": kind = .content
                case "response.reasoning_text.delta", "response.reasoning_summary_text.delta": kind = .reasoning
                case "response.refusal.delta": kind = .refusal
                default: return false
                }
                return true
            } else if key.equals("delta") {
                text = cursor.string()
                return text != nil
            }
            return cursor.skipValue()
        }
        guard read, let kind, let text else { return nil }
        return UpstreamTextDelta(kind: kind, text: text)
    }

    /// Reads the object in `data`, when ``StrictJSON`` accepts it (one reading, no duplicate
    /// member), handing each member to `member`; whether it was read to its end.
    private static func readObject(_ data: String, _ member: (UnsafeRawBufferPointer, inout JSONCursor) -> Bool) -> Bool {
        var data = data
        return data.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            guard StrictJSON.isValid(bytes) else { return false }
            var cursor = JSONCursor(bytes)
            return readMembers(&cursor, member) && cursor.atEnd()
        }
    }

    private static func readMembers(_ cursor: inout JSONCursor, _ member: (UnsafeRawBufferPointer, inout JSONCursor) -> Bool) -> Bool {
        guard cursor.consume(UInt8(ascii: "{")) else { return false }
        if cursor.consume(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = cursor.plainKey(), member(key, &cursor) else { return false }
        } while cursor.consume(UInt8(ascii: ","))
        return cursor.consume(UInt8(ascii: "}"))
    }
}

/// A chat-completion chunk of one delta member, written as the translators' `chunkObject`
/// builds it (`id`, `object`, `created`, `model`, one choice), as its event's bytes.
enum ChatChunkWriter {
    static func writeDelta(id: String, created: Int64, model: String, key: StaticString, text: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("data: {\"id\":")
        JSONValue.writeString(id, to: &buffer)
        buffer.writeStaticString(",\"object\":\"chat.completion.chunk\",\"created\":")
        buffer.writeString(String(created))
        buffer.writeStaticString(",\"model\":")
        JSONValue.writeString(model, to: &buffer)
        buffer.writeStaticString(",\"choices\":[{\"index\":0,\"delta\":{\"")
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
        JSONValue.writeString(text, to: &buffer)
        buffer.writeStaticString("},\"finish_reason\":null}]}\n\n")
    }
}
