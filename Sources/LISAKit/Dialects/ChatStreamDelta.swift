import LISAOpenAI

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
