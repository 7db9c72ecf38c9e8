package import NIOCore

/// What the gateway needs of a request to route it, read in one pass over its bytes.
package struct RoutingFields: Sendable, Hashable {
    package var model: String
    package var stream: Bool
    package var user: String?

    package init(model: String, stream: Bool, user: String?) {
        self.model = model
        self.stream = stream
        self.user = user
    }
}

extension ChatCompletionRequest {
    /// The routing fields of a body that passed ``StrictJSON/validate(_:maximumDepth:)``,
    /// read in one pass without building the typed request, or `nil` when this reader is
    /// not sure.
    ///
    /// It accepts only what `JSONDecoder` also decodes into a ``ChatCompletionRequest``
    /// whose `validate` passes (a non-empty `messages`), with the same `model`, `stream`
    /// and `user`: the common shape (messages with string content, scalar options, any
    /// unknown member). Anything else — content parts, tools, `stop`, a number with an
    /// exponent, an escaped member name, a wrong type anywhere — returns `nil`, and the
    /// typed decoder then decodes it or says exactly what is wrong (the fuzz target `json`
    /// checks the two agree). Only the hot path's cost changes, never what is accepted.
    package static func routingFields(in body: ByteBuffer) -> RoutingFields? {
        body.withUnsafeReadableBytes { bytes in
            var cursor = JSONCursor(bytes)
            return readRoutingFields(&cursor)
        }
    }

    private static func readRoutingFields(_ cursor: inout JSONCursor) -> RoutingFields? {
        var model: String?
        var stream = false
        var user: String?
        var sawMessages = false
        let read = readObject(&cursor) { key, cursor in
            if key.equals("model") {
                model = cursor.string()
                return model != nil
            } else if key.equals("messages") {
                sawMessages = true
                return readMessages(&cursor)
            } else if key.equals("stream") {
                guard !cursor.null() else { return true }
                guard let value = cursor.bool() else { return false }
                stream = value
                return true
            } else if key.equals("user") {
                guard !cursor.null() else { return true }
                user = cursor.string()
                return user != nil
            }
            // Not a typed member: kept in additionalFields as a JSONValue, any value.
            guard let kind = CodingKeys(rawValue: String(decoding: key, as: UTF8.self)) else { return cursor.skipValue() }
            return skipOption(kind, &cursor)
        }
        guard read, cursor.atEnd(), let model, sawMessages else { return nil }
        return RoutingFields(model: model, stream: stream, user: user)
    }

    /// Skips the value of a typed option when it is `null` or of its simple type.
    private static func skipOption(_ key: CodingKeys, _ cursor: inout JSONCursor) -> Bool {
        if cursor.null() { return true }
        switch key {
        case .frequencyPenalty, .presencePenalty, .temperature, .topP:
            return cursor.plainNumber()
        case .logprobs, .parallelToolCalls, .store:
            return cursor.bool() != nil
        case .topLogprobs, .maxTokens, .maxCompletionTokens, .n, .seed:
            return cursor.integer() != nil
        case .reasoningEffort, .serviceTier:
            return cursor.rawString() != nil
        case .audio, .prediction:
            return cursor.skipValue()
        case .logitBias:
            return cursor.peek() == UInt8(ascii: "{") && cursor.skipValue()
        case .streamOptions:
            return readObject(&cursor) { key, cursor in
                key.equals("include_usage") ? (cursor.null() || cursor.bool() != nil) : cursor.skipValue()
            }
        case .metadata:
            return readObject(&cursor) { _, cursor in cursor.rawString() != nil }
        case .modalities:
            return readArray(&cursor) { cursor in cursor.rawString() != nil }
        case .stop, .tools, .toolChoice, .responseFormat, .model, .messages, .stream, .user:
            return false
        }
    }

    /// A non-empty array of messages of the simple kinds.
    private static func readMessages(_ cursor: inout JSONCursor) -> Bool {
        guard cursor.peek() == UInt8(ascii: "["), !isEmptyArray(cursor) else { return false }
        return readArray(&cursor) { cursor in readMessage(&cursor) }
    }

    private static func isEmptyArray(_ cursor: JSONCursor) -> Bool {
        var probe = cursor
        return probe.consume(UInt8(ascii: "[")) && probe.consume(UInt8(ascii: "]"))
    }

    /// A message `ChatMessage` decodes: its role's required members present and of their
    /// type, content a string (parts and tool calls are left to the decoder).
    private static func readMessage(_ cursor: inout JSONCursor) -> Bool {
        enum Field { case absent, null, string, other }
        var role: String?
        var content = Field.absent
        var name = Field.absent
        var refusal = Field.absent
        var toolCallID = Field.absent
        var toolCalls = Field.absent
        func field(_ cursor: inout JSONCursor) -> Field? {
            if cursor.null() { return .null }
            if cursor.peek() == UInt8(ascii: "\"") { return cursor.rawString() == nil ? nil : .string }
            return cursor.skipValue() ? .other : nil
        }
        let read = readObject(&cursor) { key, cursor in
            if key.equals("role") {
                role = cursor.string()
                return role != nil
            }
            let value = field(&cursor)
            guard let value else { return false }
            if key.equals("content") {
                content = value
            } else if key.equals("name") {
                name = value
            } else if key.equals("refusal") {
                refusal = value
            } else if key.equals("tool_call_id") {
                toolCallID = value
            } else if key.equals("tool_calls") {
                toolCalls = value
            }
            return true
        }
        guard read, let role else { return false }
        let optionalString: (Field) -> Bool = { $0 == .absent || $0 == .null || $0 == .string }
        switch role {
        case "system", "developer", "user":
            return content == .string && optionalString(name)
        case "assistant":
            return optionalString(content) && optionalString(name) && optionalString(refusal) && (toolCalls == .absent || toolCalls == .null)
        case "tool":
            return content == .string && toolCallID == .string
        default:
            return true
        }
    }
}

extension Usage {
    /// The `usage` object of an answer read in one pass, or `nil` when it is not the plain
    /// shape (three integers, details `null` or objects of integers): the caller then
    /// decodes it with `JSONDecoder`, which reads the same values. The bytes come from an
    /// upstream and need not be valid JSON.
    package static func quickRead(_ buffer: ByteBuffer) -> Usage? {
        buffer.withUnsafeReadableBytes { bytes in
            var cursor = JSONCursor(bytes)
            var prompt: Int?
            var completion: Int?
            var total: Int?
            var promptDetails: JSONValue?
            var completionDetails: JSONValue?
            var seen: UInt8 = 0
            /// A repeated member is left to the decoder.
            func first(_ bit: UInt8) -> Bool {
                defer { seen |= bit }
                return seen & bit == 0
            }
            let read = readObject(&cursor) { key, cursor in
                if key.equals("prompt_tokens") {
                    guard first(1) else { return false }
                    prompt = cursor.integer()
                    return prompt != nil
                } else if key.equals("completion_tokens") {
                    guard first(2) else { return false }
                    if cursor.null() { return true }
                    completion = cursor.integer()
                    return completion != nil
                } else if key.equals("total_tokens") {
                    guard first(4) else { return false }
                    total = cursor.integer()
                    return total != nil
                } else if key.equals("prompt_tokens_details") {
                    guard first(8) else { return false }
                    return readDetails(&cursor, into: &promptDetails)
                } else if key.equals("completion_tokens_details") {
                    guard first(16) else { return false }
                    return readDetails(&cursor, into: &completionDetails)
                }
                return false
            }
            guard read, cursor.atEnd(), let prompt, let total else { return nil }
            var usage = Usage(promptTokens: prompt, completionTokens: completion, totalTokens: total)
            usage.promptTokensDetails = promptDetails
            usage.completionTokensDetails = completionDetails
            return usage
        }
    }

    /// `null`, or an object whose members are all integers (OpenAI's and vLLM's details).
    private static func readDetails(_ cursor: inout JSONCursor, into details: inout JSONValue?) -> Bool {
        if cursor.null() { return true }
        var members: [String: JSONValue] = [:]
        let read = readObject(&cursor) { key, cursor in
            // The bytes come unchecked from an upstream: a name that is not plain ASCII
            // (invalid UTF-8, found by the fuzzer) is left to the decoder, which refuses it.
            guard key.allSatisfy({ (0x20..<0x7F).contains($0) }), let value = cursor.integer() else { return false }
            return members.updateValue(.integer(Int64(value)), forKey: String(decoding: key, as: UTF8.self)) == nil
        }
        guard read else { return false }
        details = .object(members)
        return true
    }
}

/// Reads an object member by member; `member` reads each value. Member names with escapes
/// are refused (`nil` from ``JSONCursor/plainKey()``).
private func readObject(
    _ cursor: inout JSONCursor, _ member: (UnsafeRawBufferPointer, inout JSONCursor) -> Bool
) -> Bool {
    guard cursor.consume(UInt8(ascii: "{")) else { return false }
    if cursor.consume(UInt8(ascii: "}")) { return true }
    repeat {
        guard let key = cursor.plainKey(), member(key, &cursor) else { return false }
    } while cursor.consume(UInt8(ascii: ","))
    return cursor.consume(UInt8(ascii: "}"))
}

/// Reads an array element by element.
private func readArray(_ cursor: inout JSONCursor, _ element: (inout JSONCursor) -> Bool) -> Bool {
    guard cursor.consume(UInt8(ascii: "[")) else { return false }
    if cursor.consume(UInt8(ascii: "]")) { return true }
    repeat {
        guard element(&cursor) else { return false }
    } while cursor.consume(UInt8(ascii: ","))
    return cursor.consume(UInt8(ascii: "]"))
}
