import Foundation
public import NIOCore

/// OpenAI chat completions sent to an upstream that speaks the OpenAI Responses API (a model
/// with `upstreamAPI: openai-responses`), and its answers turned back into chat completions:
/// the request and the buffered answer as pure functions, the stream as a state machine
/// (``ResponsesChatStreamTranslator``). A Responses request to such a model is passed
/// through instead. `Documentation/Dialects.md` has the tables.
public enum ResponsesUpstream {
    /// Chat members with no Responses equivalent: refused, naming the member.
    static let refusedMembers: [String: String] = [
        "n": "the Responses API returns one answer",
        "stop": "the Responses API has no stop sequences",
        "logprobs": "use the Responses API's include member through /v1/responses",
        "top_logprobs": "use the Responses API's include member through /v1/responses",
        "logit_bias": "the Responses API has no logit bias",
        "frequency_penalty": "the Responses API has no frequency penalty",
        "presence_penalty": "the Responses API has no presence penalty",
        "seed": "the Responses API has no seed",
        "audio": "the Responses API has no audio output",
        "modalities": "the Responses API answers in text here",
        "prediction": "the Responses API has no predicted outputs",
        "functions": "use tools: the deprecated functions member is not translated",
        "function_call": "use tool_choice: the deprecated function_call member is not translated",
        "web_search_options": "call /v1/responses with the web search tool instead",
    ]
    /// Left out: LISA's own `lisa`, and usage reporting (the Responses API always reports usage).
    static let omittedMembers: Set<String> = ["lisa", "stream_options", "store"]
    static let translatedMembers: Set<String> = [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stream", "tools", "tool_choice",
        "parallel_tool_calls", "user", "response_format", "reasoning_effort", "metadata",
    ]

    // MARK: - Request

    /// The Responses request for a chat-completions request. It is sent with `store: false`:
    /// the upstream keeps nothing of a chat call.
    ///
    /// - Throws: ``LISAError/Code/invalidRequest`` naming the member that is wrong or cannot be expressed.
    public static func responsesRequest(fromChat body: JSONValue) throws(LISAError) -> JSONValue {
        var (request, out, tokenLimit) = try ChatTranslationStart.begin(
            body, upstream: "Responses", refused: refusedMembers, handled: translatedMembers.union(omittedMembers)
        )
        out["store"] = false
        if let tokenLimit { out["max_output_tokens"] = .integer(tokenLimit) }
        if let parallel = try request.bool("parallel_tool_calls") { out["parallel_tool_calls"] = .bool(parallel) }
        if let user = try request.string("user") { out["user"] = .string(user) }
        if let metadata = request["metadata"] { out["metadata"] = metadata }
        if let effort = try request.string("reasoning_effort") { out["reasoning"] = ["effort": .string(effort)] }
        if let format = try request.object("response_format") {
            switch try format.requiredString("type") {
            case "text": break
            case "json_object": out["text"] = ["format": ["type": "json_object"]]
            case "json_schema":
                guard let schema = try format.object("json_schema") else {
                    throw .invalidRequest("response_format.json_schema is required.", param: "response_format.json_schema")
                }
                var converted: JSONObject = ["type": "json_schema", "name": .string(try schema.requiredString("name"))]
                for key in ["schema", "strict", "description"] { if let value = schema[key] { converted[key] = value } }
                out["text"] = ["format": .object(converted)]
            case let other:
                throw .invalidRequest("response_format.type '\(other)' is not known.", param: "response_format.type")
            }
        }
        if let tools = try request.array("tools") {
            var translated: [JSONValue] = []
            for (index, value) in tools.enumerated() {
                let tool = try RequestObject(value, path: "tools[\(index)]")
                guard try tool.string("type") == "function", let function = try tool.object("function") else {
                    throw .invalidRequest("\(tool.param("type")) must be 'function' for a Responses upstream.", param: tool.param("type"))
                }
                var converted: JSONObject = ["type": "function", "name": .string(try function.requiredString("name"))]
                for key in ["description", "parameters", "strict"] { if let value = function[key] { converted[key] = value } }
                translated.append(.object(converted))
            }
            out["tools"] = .array(translated)
        }
        switch request["tool_choice"] {
        case nil: break
        case .string(let mode)? where ["auto", "none", "required"].contains(mode): out["tool_choice"] = .string(mode)
        case .object?:
            let object = try request.object("tool_choice")!
            guard try object.string("type") == "function", let function = try object.object("function") else {
                throw .invalidRequest("tool_choice must name a function tool.", param: "tool_choice.type")
            }
            out["tool_choice"] = ["type": "function", "name": .string(try function.requiredString("name"))]
        default:
            throw .invalidRequest("tool_choice must be 'auto', 'none', 'required' or a function.", param: "tool_choice")
        }

        guard let messages = try request.array("messages"), !messages.isEmpty else {
            throw .invalidRequest("messages must contain at least one message.", param: "messages")
        }
        var instructions: [String] = []
        var input: [JSONValue] = []
        for (index, value) in messages.enumerated() {
            let path = "messages[\(index)]"
            let message = try RequestObject(value, path: path)
            let role = try message.requiredString("role")
            switch role {
            case "system", "developer":
                let text = try AnthropicUpstream.text(of: message["content"], path: message.param("content")) ?? ""
                if input.isEmpty {
                    instructions.append(text)
                } else {
                    input.append(["type": "message", "role": .string(role), "content": .string(text)])
                }
            case "user":
                input.append(["type": "message", "role": "user", "content": try userContent(message["content"], path: message.param("content"))])
            case "assistant":
                if let text = try AnthropicUpstream.text(of: message["content"], path: message.param("content")), !text.isEmpty {
                    input.append(["type": "message", "role": "assistant", "content": [["type": "output_text", "text": .string(text)]]])
                }
                for (callIndex, call) in (try message.array("tool_calls") ?? []).enumerated() {
                    let object = try RequestObject(call, path: "\(path).tool_calls[\(callIndex)]")
                    guard let function = try object.object("function") else {
                        throw .invalidRequest("\(object.param("function")) is required.", param: object.param("function"))
                    }
                    input.append([
                        "type": "function_call", "call_id": .string(try object.requiredString("id")),
                        "name": .string(try function.requiredString("name")), "arguments": .string(try function.string("arguments") ?? "{}"),
                    ])
                }
            case "tool":
                input.append([
                    "type": "function_call_output", "call_id": .string(try message.requiredString("tool_call_id")),
                    "output": .string(try AnthropicUpstream.text(of: message["content"], path: message.param("content")) ?? ""),
                ])
            default:
                throw .invalidRequest("\(path).role '\(role)' cannot be sent to a Responses upstream.", param: "\(path).role")
            }
        }
        if !instructions.isEmpty { out["instructions"] = .string(instructions.joined(separator: "\n\n")) }
        out["input"] = .array(input)
        return .object(out)
    }

    static func userContent(_ content: JSONValue?, path: String) throws(LISAError) -> JSONValue {
        switch content {
        case .string(let text)?: return .string(text)
        case .array(let parts)?:
            var out: [JSONValue] = []
            for (index, part) in parts.enumerated() {
                let object = try RequestObject(part, path: "\(path)[\(index)]")
                switch try object.requiredString("type") {
                case "text": out.append(["type": "input_text", "text": .string(try object.requiredString("text"))])
                case "image_url":
                    guard let image = try object.object("image_url") else {
                        throw .invalidRequest("\(object.param("image_url")) is required.", param: object.param("image_url"))
                    }
                    var converted: JSONObject = ["type": "input_image", "image_url": .string(try image.requiredString("url"))]
                    if let detail = try image.string("detail") { converted["detail"] = .string(detail) }
                    out.append(.object(converted))
                case let other:
                    throw .invalidRequest(
                        "\(object.param("type")) '\(other)' cannot be sent to a Responses upstream.", param: object.param("type"),
                        reason: "unsupported_content"
                    )
                }
            }
            return .array(out)
        default:
            throw .invalidRequest("\(path) must be a string or an array of parts.", param: path)
        }
    }

    // MARK: - Answer

    /// The chat completion for a response object.
    ///
    /// - Throws: ``LISAError/Code/upstreamFailed`` when it is not a response, or it failed.
    public static func chatCompletion(fromResponse response: JSONValue) throws(LISAError) -> JSONValue {
        guard response["object"]?.stringValue == "response", let output = response["output"]?.arrayValue else { throw notAResponse }
        try checkNotFailed(response)
        var translation = ResponseAnswerTranslation()
        for item in output { translation.add(item: item) }
        return translation.chatCompletion(response: response)
    }

    /// The chat completion for a response given as JSON text, read one output item (and one
    /// message content part) at a time: the whole answer is never held as a parsed tree. Its
    /// output is byte for byte that of ``chatCompletion(fromResponse:)``; `nil` when `bytes`
    /// is not JSON.
    ///
    /// - Throws: ``LISAError/Code/upstreamFailed`` when it is not a response, or it failed.
    static func chatCompletion(fromResponseBytes bytes: ByteBuffer) throws(LISAError) -> JSONValue? {
        switch JSONSlices.split(bytes, leaving: "output") {
        case .invalid: return nil
        case .ambiguous:
            guard let response = try? JSONValue(parsing: bytes) else { return nil }
            return try chatCompletion(fromResponse: response)
        case .notObject: throw notAResponse
        case .object(let head, let output):
            let response = JSONValue.object(head)
            guard response["object"]?.stringValue == "response", let output, JSONSlices.firstByte(of: bytes, in: output) == UInt8(ascii: "[")
            else { throw notAResponse }
            try checkNotFailed(response)
            var translation = ResponseAnswerTranslation()
            func parsed(_ range: Range<Int>) -> JSONValue? { try? JSONValue(parsing: JSONSlices.slice(of: bytes, range)) }
            let complete = JSONSlices.forEachElement(of: bytes, in: output) { item in
                // Anything but an object has no type, and is skipped as the tree reading skips it.
                guard JSONSlices.firstByte(of: bytes, in: item) == UInt8(ascii: "{") else { return true }
                guard let members = JSONSlices.members(of: bytes, in: item) else { return false }
                let type = members.last(where: { $0.key == "type" }).flatMap { parsed($0.value) }
                guard type?.stringValue == "message" else {
                    guard let whole = parsed(item) else { return false }
                    translation.add(item: whole)
                    return true
                }
                // A message's parts one by one: a message may carry very many.
                guard let content = members.last(where: { $0.key == "content" })?.value,
                    JSONSlices.firstByte(of: bytes, in: content) == UInt8(ascii: "[")
                else { return true }
                return JSONSlices.forEachElement(of: bytes, in: content) { range in
                    guard let part = parsed(range) else { return false }
                    translation.add(messagePart: part)
                    return true
                }
            }
            guard complete else { return nil }
            return translation.chatCompletion(response: response)
        }
    }

    static var notAResponse: LISAError {
        .badGateway("The Responses upstream's answer is not a response.", reason: "upstream_invalid_response")
    }

    static func checkNotFailed(_ response: JSONValue) throws(LISAError) {
        if response["status"]?.stringValue == "failed" {
            let message = response["error"]?["message"]?.stringValue ?? "the response failed"
            throw .badGateway("The Responses upstream failed: \(message)")
        }
    }

    /// A response's output items gathered into a chat completion, item by item.
    struct ResponseAnswerTranslation {
        var text = ""
        var refusal = ""
        var reasoning = ""
        var calls: [JSONValue] = []

        mutating func add(item: JSONValue) {
            switch item["type"]?.stringValue {
            case "message":
                for part in item["content"]?.arrayValue ?? [] { add(messagePart: part) }
            case "reasoning":
                reasoning += reasoningText(item)
            case "function_call":
                calls.append(functionCall(item))
            default: break
            }
        }

        /// One part of a `message` item's content.
        mutating func add(messagePart part: JSONValue) {
            if part["type"] == "output_text" { text += part["text"]?.stringValue ?? "" }
            if part["type"] == "refusal" { refusal += part["refusal"]?.stringValue ?? "" }
        }

        /// The completion, with what the answer says besides its output read from `response`.
        func chatCompletion(response: JSONValue) -> JSONValue {
            var message: JSONObject = ["role": "assistant", "content": text.isEmpty && (!calls.isEmpty || !refusal.isEmpty) ? .null : .string(text)]
            if !refusal.isEmpty { message["refusal"] = .string(refusal) }
            if !calls.isEmpty { message["tool_calls"] = .array(calls) }
            if !reasoning.isEmpty { message["reasoning_content"] = .string(reasoning) }
            return [
                "id": response["id"] ?? .string(DialectJSON.id("resp_")), "object": "chat.completion",
                "created": response["created_at"] ?? .integer(Gateway.now()), "model": response["model"] ?? "",
                "choices": [
                    ["index": 0, "message": .object(message), "finish_reason": .string(finishReason(response, calledTools: !calls.isEmpty))]
                ],
                "usage": chatUsage(response["usage"]),
            ]
        }
    }

    static func functionCall(_ item: JSONValue) -> JSONValue {
        [
            "id": item["call_id"] ?? item["id"] ?? .string(DialectJSON.id("call_")), "type": "function",
            "function": ["name": item["name"] ?? "", "arguments": item["arguments"] ?? "{}"],
        ]
    }

    static func reasoningText(_ item: JSONValue) -> String {
        let content = (item["content"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
        return content.isEmpty ? (item["summary"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined() : content
    }

    /// The chat finish reason of a response: `length` or `content_filter` for an incomplete
    /// one, `tool_calls` when it called tools, else `stop`.
    public static func finishReason(_ response: JSONValue, calledTools: Bool) -> String {
        if response["status"]?.stringValue == "incomplete" {
            return response["incomplete_details"]?["reason"]?.stringValue == "content_filter" ? "content_filter" : "length"
        }
        return calledTools ? "tool_calls" : "stop"
    }

    static func chatUsage(_ usage: JSONValue?) -> JSONValue {
        let input = usage?["input_tokens"]?.tokenCount ?? 0
        let output = usage?["output_tokens"]?.tokenCount ?? 0
        var out: JSONObject = ["prompt_tokens": .integer(input), "completion_tokens": .integer(output), "total_tokens": .integer(input + output)]
        if let cached = usage?["input_tokens_details"]?["cached_tokens"]?.int64Value {
            out["prompt_tokens_details"] = ["cached_tokens": .integer(cached)]
        }
        if let reasoning = usage?["output_tokens_details"]?["reasoning_tokens"]?.int64Value {
            out["completion_tokens_details"] = ["reasoning_tokens": .integer(reasoning)]
        }
        return .object(out)
    }

    static func usage(_ value: JSONValue?) -> Usage? {
        guard let value, value.objectValue != nil else { return nil }
        let usage = chatUsage(value)
        return Usage(
            promptTokens: Int(usage["prompt_tokens"]?.int64Value ?? 0), completionTokens: Int(usage["completion_tokens"]?.int64Value ?? 0),
            totalTokens: Int(usage["total_tokens"]?.int64Value ?? 0)
        )
    }
}

/// A Responses event stream as a chat-completions stream: `response.created` opens it, text,
/// reasoning and refusal deltas become `content`, `reasoning_content` and `refusal` deltas,
/// each `function_call` item a tool call whose argument deltas follow, `response.completed`
/// or `response.incomplete` the finish chunk, a usage chunk and `[DONE]`.
/// `response.failed` and `error` end it as a failure (``failure``).
public struct ResponsesChatStreamTranslator: ServerSentEventTranslator, FailureReporting {
    private var id = DialectJSON.id("resp_")
    private var model = ""
    private let created: Int64
    /// Tool-call index of each function-call item, by its output index.
    private var toolIndex: [Int64: Int] = [:]
    public private(set) var failure: String?

    /// Whether plain text, reasoning and refusal deltas are written straight; tests turn it
    /// off to compare with the chunks built as JSON values.
    var writesDeltasStraight = true

    public init(created: Int64) {
        self.created = created
    }

    /// A text, reasoning or refusal delta is written straight: the bytes ``translate(_:)``
    /// gives, without parsing the event into a tree or building the chunk as JSON values.
    public mutating func translate(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        if writesDeltasStraight, failure == nil, let delta = UpstreamTextDelta.readResponses(event.data) {
            let key: StaticString =
                switch delta.kind {
                case .content: "content"
                case .reasoning: "reasoning_content"
                case .refusal: "refusal"
                }
            ChatChunkWriter.writeDelta(id: id, created: created, model: model, key: key, text: delta.text, into: &buffer)
            return
        }
        for translated in translate(event) { translated.write(to: &buffer) }
    }

    public mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent] {
        guard failure == nil, let data = DialectJSON.object(in: event.data) else { return [] }
        switch data["type"]?.stringValue ?? event.event ?? "" {
        case "response.created":
            id = data["response"]?["id"]?.stringValue ?? id
            model = data["response"]?["model"]?.stringValue ?? model
            return [chunk(["role": "assistant", "content": ""])]
        case "response.output_item.added":
            guard let item = data["item"], item["type"] == "function_call" else { return [] }
            let call = toolIndex.count
            toolIndex[data["output_index"]?.int64Value ?? -1] = call
            return [
                chunk([
                    "tool_calls": [
                        [
                            "index": .integer(Int64(call)), "id": item["call_id"] ?? .string(DialectJSON.id("call_")), "type": "function",
                            "function": ["name": item["name"] ?? "", "arguments": item["arguments"] ?? ""],
                        ]
                    ]
                ])
            ]
        case "response.output_text.delta": return [chunk(["content": data["delta"] ?? ""])]
        case "response.refusal.delta": return [chunk(["refusal": data["delta"] ?? ""])]
        case "response.reasoning_text.delta", "response.reasoning_summary_text.delta": return [chunk(["reasoning_content": data["delta"] ?? ""])]
        case "response.function_call_arguments.delta":
            guard let call = toolIndex[data["output_index"]?.int64Value ?? -1] else { return [] }
            return [chunk(["tool_calls": [["index": .integer(Int64(call)), "function": ["arguments": data["delta"] ?? ""]]]])]
        case "response.completed", "response.incomplete":
            let response = data["response"] ?? [:]
            let finish = ResponsesUpstream.finishReason(response, calledTools: !toolIndex.isEmpty)
            let usage: JSONValue = [
                "id": .string(id), "object": "chat.completion.chunk", "created": .integer(created), "model": .string(model), "choices": [],
                "usage": ResponsesUpstream.chatUsage(response["usage"]),
            ]
            return [DialectJSON.event(nil, chunkObject([:], finish: finish)), DialectJSON.event(nil, usage), ServerSentEvent(data: "[DONE]")]
        case "response.failed":
            failure = data["response"]?["error"]?["message"]?.stringValue ?? "the response failed"
            return []
        case "error":
            failure = data["message"]?.stringValue ?? data["error"]?["message"]?.stringValue ?? "the upstream sent an error event"
            return []
        default:
            return []
        }
    }

    private func chunkObject(_ delta: JSONObject, finish: String?) -> JSONValue {
        [
            "id": .string(id), "object": "chat.completion.chunk", "created": .integer(created), "model": .string(model),
            "choices": [["index": 0, "delta": .object(delta), "finish_reason": finish.map(JSONValue.string) ?? .null]],
        ]
    }

    private func chunk(_ delta: JSONObject) -> ServerSentEvent {
        DialectJSON.event(nil, chunkObject(delta, finish: nil))
    }
}

/// Watches a passed-through Responses stream for its final response (to store it), and
/// relays every event unchanged.
struct ResponsesPassThroughObserver: ServerSentEventTranslator {
    private(set) var final: JSONValue?

    mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent] {
        if event.data.containsUTF8("\"response.completed\"") || event.data.containsUTF8("\"response.incomplete\""),
            let data = DialectJSON.object(in: event.data), let type = data["type"]?.stringValue,
            type == "response.completed" || type == "response.incomplete"
        {
            final = data["response"]
        }
        return [event]
    }
}
