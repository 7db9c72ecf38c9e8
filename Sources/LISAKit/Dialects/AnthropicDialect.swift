import Foundation
import NIOCore

/// Anthropic Messages (`/v1/messages`) onto OpenAI chat completions and back, as pure
/// functions and a streaming state machine. `Documentation/Dialects.md` has the tables.
///
/// What chat completions cannot express is refused with a 400 naming the member (server
/// tools, MCP connectors, images in tool results); prompt-caching hints (`cache_control`)
/// and `redacted_thinking` blocks, which only Anthropic's own servers can use, are left out
/// of the upstream request, as the documentation says.
public struct AnthropicDialect: Dialect {
    public init() {}

    public var name: DialectName { .messages }

    /// Members LISA translates; any other top-level member goes upstream as it is.
    static let translatedMembers: Set<String> = [
        "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k",
        "tools", "tool_choice", "thinking", "service_tier", "lisa",
    ]
    /// Members that need Anthropic's own servers.
    static let refusedMembers: [String: String] = [
        "mcp_servers": "MCP connectors run on Anthropic's servers; LISA's upstreams cannot reach them",
        "container": "code-execution containers run on Anthropic's servers",
    ]

    // MARK: - Request

    /// The chat-completions request for a Messages request (`max_tokens` optional when
    /// `requireMaxTokens` is false, as for `count_tokens`).
    ///
    /// - Throws: ``LISAError/Code/invalidRequest`` naming the member that is wrong or cannot be expressed.
    public static func chatRequest(from body: JSONValue, requireMaxTokens: Bool = true) throws(LISAError) -> JSONValue {
        let request = try RequestObject(body, path: "")
        for (member, why) in refusedMembers where request.has(member) {
            throw .invalidRequest("\(member) is not supported: \(why).", param: member, reason: "unsupported_parameter")
        }
        var chat: JSONObject = [:]
        for (key, value) in request.members where !translatedMembers.contains(key) {
            chat[key] = value
        }
        chat["model"] = .string(try request.requiredString("model"))
        if let maxTokens = try request.integer("max_tokens") {
            guard maxTokens >= 1 else { throw .invalidRequest("max_tokens must be at least 1.", param: "max_tokens") }
            chat["max_tokens"] = .integer(maxTokens)
        } else if requireMaxTokens {
            throw .invalidRequest("max_tokens is required.", param: "max_tokens")
        }
        var messages: [JSONValue] = []
        if let system = request["system"] {
            messages.append(["role": "system", "content": .string(try systemText(system))])
        }
        guard let items = try request.array("messages") else { throw .invalidRequest("messages is required.", param: "messages") }
        guard !items.isEmpty else { throw .invalidRequest("messages must contain at least one message.", param: "messages") }
        for (index, item) in items.enumerated() {
            messages += try chatMessages(from: item, path: "messages[\(index)]")
        }
        chat["messages"] = .array(messages)
        for key in ["temperature", "top_p"] {
            if let value = try request.number(key) { chat[key] = value }
        }
        if let topK = try request.integer("top_k") { chat["top_k"] = .integer(topK) }
        if let stops = try request.array("stop_sequences") {
            guard stops.allSatisfy({ $0.stringValue != nil }) else {
                throw .invalidRequest("stop_sequences must be an array of strings.", param: "stop_sequences")
            }
            if !stops.isEmpty { chat["stop"] = .array(stops) }
        }
        if let stream = try request.bool("stream"), stream {
            chat["stream"] = true
            chat["stream_options"] = ["include_usage": true]
        }
        if let metadata = try request.object("metadata"), let user = try metadata.string("user_id") {
            chat["user"] = .string(user)
        }
        if let tools = try request.array("tools") {
            var chatTools: [JSONValue] = []
            for (index, tool) in tools.enumerated() { chatTools.append(try chatTool(tool, path: "tools[\(index)]")) }
            chat["tools"] = .array(chatTools)
        }
        if let choice = try request.object("tool_choice") {
            let (value, parallel) = try chatToolChoice(choice)
            chat["tool_choice"] = value
            if let parallel { chat["parallel_tool_calls"] = .bool(parallel) }
        }
        if let thinking = try request.object("thinking") {
            // Reasoning upstreams (vLLM's reasoning parsers, DeepSeek) take an effort; the
            // budget itself has no chat-completions member and is kept for those that read it.
            if try thinking.string("type") == "enabled" {
                chat["thinking"] = .object(thinking.members)
            }
        }
        if let tier = request["service_tier"] { chat["service_tier"] = tier }
        if let lisa = request["lisa"] { chat["lisa"] = lisa }
        return .object(chat)
    }

    static func systemText(_ system: JSONValue) throws(LISAError) -> String {
        switch system {
        case .string(let text): return text
        case .array(let blocks):
            var texts: [String] = []
            for (index, block) in blocks.enumerated() {
                let object = try RequestObject(block, path: "system[\(index)]")
                guard try object.string("type") == "text" else {
                    throw .invalidRequest("system[\(index)] must be a text block.", param: "system[\(index)].type")
                }
                texts.append(try object.requiredString("text"))
            }
            return texts.joined(separator: "\n\n")
        default:
            throw .invalidRequest("system must be a string or an array of text blocks.", param: "system")
        }
    }

    /// One Messages message as chat messages: a user message's `tool_result` blocks become
    /// `tool` messages (before the rest of the message, as chat completions orders them).
    static func chatMessages(from item: JSONValue, path: String) throws(LISAError) -> [JSONValue] {
        let message = try RequestObject(item, path: path)
        let role = try message.requiredString("role")
        guard role == "user" || role == "assistant" else {
            throw .invalidRequest("\(path).role must be 'user' or 'assistant'.", param: "\(path).role")
        }
        guard let content = message["content"] else { throw .invalidRequest("\(path).content is required.", param: "\(path).content") }
        if case .string(let text) = content {
            return [["role": .string(role), "content": .string(text)]]
        }
        guard case .array(let blocks) = content else {
            throw .invalidRequest("\(path).content must be a string or an array of content blocks.", param: "\(path).content")
        }
        return role == "user" ? try userMessages(blocks, path: "\(path).content") : [try assistantMessage(blocks, path: "\(path).content")]
    }

    static func userMessages(_ blocks: [JSONValue], path: String) throws(LISAError) -> [JSONValue] {
        var toolMessages: [JSONValue] = []
        var parts: [JSONValue] = []
        for (index, item) in blocks.enumerated() {
            let blockPath = "\(path)[\(index)]"
            let block = try RequestObject(item, path: blockPath)
            switch try block.requiredString("type") {
            case "text":
                parts.append(["type": "text", "text": .string(try block.requiredString("text"))])
            case "image":
                parts.append(["type": "image_url", "image_url": ["url": .string(try imageURL(block, path: blockPath))]])
            case "document":
                parts.append(try documentPart(block, path: blockPath))
            case "tool_result":
                let id = try block.requiredString("tool_use_id")
                var text = try toolResultText(block["content"], path: "\(blockPath).content")
                if try block.bool("is_error") == true { text = "Error: " + text }
                toolMessages.append(["role": "tool", "tool_call_id": .string(id), "content": .string(text)])
            case let other:
                throw .invalidRequest(
                    "\(blockPath) is a '\(other)' block, which a user message cannot carry to a chat-completions model.",
                    param: "\(blockPath).type", reason: "unsupported_content_block"
                )
            }
        }
        guard !parts.isEmpty else { return toolMessages }
        let content: JSONValue =
            if parts.count == 1, let text = parts[0]["text"]?.stringValue { .string(text) } else { .array(parts) }
        return toolMessages + [["role": "user", "content": content]]
    }

    static func assistantMessage(_ blocks: [JSONValue], path: String) throws(LISAError) -> JSONValue {
        var text = ""
        var reasoning = ""
        var calls: [JSONValue] = []
        for (index, item) in blocks.enumerated() {
            let blockPath = "\(path)[\(index)]"
            let block = try RequestObject(item, path: blockPath)
            switch try block.requiredString("type") {
            case "text":
                text += try block.requiredString("text")
            case "tool_use":
                let input = try block.object("input")?.members ?? [:]
                calls.append([
                    "id": .string(try block.requiredString("id")), "type": "function",
                    "function": ["name": .string(try block.requiredString("name")), "arguments": .string(DialectJSON.string(.object(input)))],
                ])
            case "thinking":
                reasoning += try block.string("thinking") ?? ""
            case "redacted_thinking":
                // Encrypted for Anthropic's servers only: no other upstream can read it.
                continue
            case let other:
                throw .invalidRequest(
                    "\(blockPath) is a '\(other)' block, which an assistant message cannot carry to a chat-completions model.",
                    param: "\(blockPath).type", reason: "unsupported_content_block"
                )
            }
        }
        var message: JSONObject = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
        if !calls.isEmpty { message["tool_calls"] = .array(calls) }
        if !reasoning.isEmpty { message["reasoning_content"] = .string(reasoning) }
        return .object(message)
    }

    static func imageURL(_ block: RequestObject, path: String) throws(LISAError) -> String {
        guard let source = try block.object("source") else { throw .invalidRequest("\(path).source is required.", param: "\(path).source") }
        switch try source.requiredString("type") {
        case "base64":
            return "data:\(try source.requiredString("media_type"));base64,\(try source.requiredString("data"))"
        case "url":
            return try source.requiredString("url")
        case let other:
            throw .invalidRequest("\(path).source.type '\(other)' is not supported (use base64 or url).", param: "\(path).source.type")
        }
    }

    static func documentPart(_ block: RequestObject, path: String) throws(LISAError) -> JSONValue {
        guard let source = try block.object("source") else { throw .invalidRequest("\(path).source is required.", param: "\(path).source") }
        switch try source.requiredString("type") {
        case "text":
            return ["type": "text", "text": .string(try source.requiredString("data"))]
        case "base64":
            let media = try source.requiredString("media_type")
            return [
                "type": "file",
                "file": [
                    "file_data": .string("data:\(media);base64,\(try source.requiredString("data"))"),
                    "filename": .string(try block.string("title") ?? "document.pdf"),
                ],
            ]
        case let other:
            throw .invalidRequest(
                "\(path).source.type '\(other)' is not supported for documents (use base64 or text).", param: "\(path).source.type"
            )
        }
    }

    static func toolResultText(_ content: JSONValue?, path: String) throws(LISAError) -> String {
        switch content ?? .string("") {
        case .string(let text): return text
        case .array(let blocks):
            var texts: [String] = []
            for (index, item) in blocks.enumerated() {
                let block = try RequestObject(item, path: "\(path)[\(index)]")
                guard try block.requiredString("type") == "text" else {
                    throw .invalidRequest(
                        "\(path)[\(index)]: a chat-completions tool message carries text only.", param: "\(path)[\(index)].type",
                        reason: "unsupported_content_block"
                    )
                }
                texts.append(try block.requiredString("text"))
            }
            return texts.joined(separator: "\n")
        default:
            throw .invalidRequest("\(path) must be a string or an array of text blocks.", param: path)
        }
    }

    static func chatTool(_ value: JSONValue, path: String) throws(LISAError) -> JSONValue {
        let tool = try RequestObject(value, path: path)
        if let type = try tool.string("type"), type != "custom" {
            throw .invalidRequest(
                "\(path) is Anthropic's server tool '\(type)', which runs on Anthropic's servers; give LISA client tools (name, description, input_schema).",
                param: "\(path).type", reason: "unsupported_tool"
            )
        }
        var function: JSONObject = ["name": .string(try tool.requiredString("name"))]
        if let description = try tool.string("description") { function["description"] = .string(description) }
        guard let schema = try tool.object("input_schema") else {
            throw .invalidRequest("\(path).input_schema is required.", param: "\(path).input_schema")
        }
        function["parameters"] = .object(schema.members)
        return ["type": "function", "function": .object(function)]
    }

    static func chatToolChoice(_ choice: RequestObject) throws(LISAError) -> (JSONValue, Bool?) {
        let parallel = try choice.bool("disable_parallel_tool_use").map { !$0 }
        switch try choice.requiredString("type") {
        case "auto": return ("auto", parallel)
        case "any": return ("required", parallel)
        case "none": return ("none", parallel)
        case "tool": return (["type": "function", "function": ["name": .string(try choice.requiredString("name"))]], parallel)
        case let other:
            throw .invalidRequest("tool_choice.type '\(other)' is not one of auto, any, tool, none.", param: "tool_choice.type")
        }
    }

    // MARK: - Response

    /// The Messages answer for a chat completion. `model` is the model the client asked for.
    ///
    /// - Throws: ``LISAError/Code/upstreamFailed`` when the completion has no choice or a
    ///   tool call whose arguments are not a JSON object.
    public static func message(fromChat completion: JSONValue, model: String) throws(LISAError) -> JSONValue {
        guard let choice = completion["choices"]?.arrayValue?.first, let message = choice["message"] else {
            throw .badGateway("The upstream's answer has no choice to translate.", reason: "upstream_invalid_response")
        }
        var content: [JSONValue] = []
        if let reasoning = (message["reasoning_content"] ?? message["reasoning"])?.stringValue, !reasoning.isEmpty {
            content.append(["type": "thinking", "thinking": .string(reasoning), "signature": ""])
        }
        if let text = message["content"]?.chatText, !text.isEmpty {
            content.append(["type": "text", "text": .string(text)])
        }
        for call in message["tool_calls"]?.arrayValue ?? [] {
            content.append([
                "type": "tool_use", "id": .string(call["id"]?.stringValue ?? DialectJSON.id("toolu_")),
                "name": .string(call["function"]?["name"]?.stringValue ?? ""),
                "input": try toolInput(call["function"]?["arguments"]?.stringValue ?? "{}"),
            ])
        }
        let (stopReason, stopSequence) = stopReason(finish: choice["finish_reason"]?.stringValue, matched: choice["stop_reason"])
        var answer: JSONObject = [
            "id": .string(messageID(for: completion["id"]?.stringValue)), "type": "message", "role": "assistant", "model": .string(model),
            "content": .array(content), "stop_reason": .string(stopReason), "stop_sequence": stopSequence.map(JSONValue.string) ?? .null,
            "usage": usage(completion["usage"]),
        ]
        if let lisa = completion["lisa"] { answer["lisa"] = lisa }
        return .object(answer)
    }

    static func messageID(for upstreamID: String?) -> String {
        guard let upstreamID, !upstreamID.isEmpty else { return DialectJSON.id("msg_") }
        return upstreamID.hasPrefix("msg_") ? upstreamID : "msg_" + upstreamID
    }

    static func toolInput(_ arguments: String) throws(LISAError) -> JSONValue {
        let trimmed = arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return .object([:]) }
        guard let value = DialectJSON.object(in: trimmed) else {
            throw .badGateway(
                "The model called a tool with arguments that are not a JSON object, which Anthropic's tool_use needs.",
                reason: "upstream_invalid_tool_call"
            )
        }
        return value
    }

    /// Chat's finish reason as Messages' stop reason: `stop` is `end_turn`, or
    /// `stop_sequence` when the upstream names the stop string it matched (vLLM's
    /// `stop_reason`); `length` is `max_tokens`; `tool_calls` is `tool_use`;
    /// `content_filter` is `refusal`.
    public static func stopReason(finish: String?, matched: JSONValue?) -> (String, String?) {
        switch finish {
        case "length": return ("max_tokens", nil)
        case "tool_calls", "function_call": return ("tool_use", nil)
        case "content_filter": return ("refusal", nil)
        default:
            if let sequence = matched?.stringValue { return ("stop_sequence", sequence) }
            return ("end_turn", nil)
        }
    }

    static func usage(_ usage: JSONValue?) -> JSONValue {
        var result: JSONObject = [
            "input_tokens": .integer(usage?["prompt_tokens"]?.tokenCount ?? 0),
            "output_tokens": .integer(usage?["completion_tokens"]?.tokenCount ?? 0),
        ]
        if let cached = usage?["prompt_tokens_details"]?["cached_tokens"].map(\.tokenCount) {
            result["cache_read_input_tokens"] = .integer(cached)
            result["input_tokens"] = .integer(max(0, (usage?["prompt_tokens"]?.tokenCount ?? 0) - cached))
        }
        return .object(result)
    }

    // MARK: - Errors

    /// Anthropic's error type for a LISA error (`not_found_error`, `rate_limit_error`,
    /// `overloaded_error`, …); the binding picks the matching status.
    public static func errorType(for error: LISAError) -> String {
        switch error.code {
        case .invalidRequest, .operationNotAllowed, .conflict, .unsupportedContent, .upstreamRejected: "invalid_request_error"
        case .unauthenticated: "authentication_error"
        case .permissionDenied: "permission_error"
        case .notFound: "not_found_error"
        case .tooLarge: "request_too_large"
        case .rateLimited, .quotaExceeded: "rate_limit_error"
        case .upstreamUnavailable, .notReady: "overloaded_error"
        case .upstreamTimeout: "timeout_error"
        default: "api_error"
        }
    }

    /// `{"type": "error", "error": {"type": …, "message": …}, "request_id": …}`. Anthropic's
    /// shape has no `param`: the message starts with the member's path when it does not name it.
    public static func errorBody(_ error: LISAError, requestID: String? = nil) -> JSONValue {
        var message = error.message
        if let param = error.param, !message.contains(param) { message = "\(param): \(message)" }
        var body: JSONObject = ["type": "error", "error": ["type": .string(errorType(for: error)), "message": .string(message)]]
        if let requestID, !requestID.isEmpty { body["request_id"] = .string(requestID) }
        return .object(body)
    }

    // MARK: - Token counting

    /// An estimate of a chat request's input tokens where no tokenizer is declared: one token
    /// per four bytes of UTF-8 text (messages, system, tool definitions), plus four per
    /// message for the chat template, rounded up.
    public static func estimatedInputTokens(chatRequest: JSONValue) -> Int {
        var bytes = 0
        var overhead = 0
        for message in chatRequest["messages"]?.arrayValue ?? [] {
            overhead += 4
            bytes += (message["content"].map(textBytes) ?? 0)
            for call in message["tool_calls"]?.arrayValue ?? [] {
                bytes += (call["function"]?["name"]?.stringValue?.utf8.count ?? 0) + (call["function"]?["arguments"]?.stringValue?.utf8.count ?? 0)
            }
            bytes += message["reasoning_content"]?.stringValue?.utf8.count ?? 0
        }
        if let tools = chatRequest["tools"] { bytes += DialectJSON.encode(tools).readableBytes }
        return (bytes + 3) / 4 + overhead
    }

    private static func textBytes(_ value: JSONValue) -> Int {
        switch value {
        case .string(let text): return text.utf8.count
        case .array(let parts):
            // An image counts as what Anthropic documents for a mid-size image (~1,600 tokens).
            return parts.reduce(0) { $0 + ($1["text"]?.stringValue?.utf8.count ?? ($1["type"]?.stringValue == "image_url" ? 6400 : 0)) }
        default: return 0
        }
    }
}
