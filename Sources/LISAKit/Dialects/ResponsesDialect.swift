import Foundation

/// OpenAI Responses (`/v1/responses`) onto chat completions and back, as pure functions and
/// a streaming state machine. `Documentation/Dialects.md` has the tables.
///
/// LISA runs no tools of its own: built-in tools (web search, file search, code
/// interpreter, MCP, …), stored prompts, conversations and background mode are refused with a
/// 400 naming the member; function tools go to the model as chat tools.
public struct ResponsesDialect: Dialect {
    public init() {}

    public var name: DialectName { .responses }

    /// Members LISA translates or echoes; any other top-level member goes upstream as it is.
    static let translatedMembers: Set<String> = [
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature", "top_p",
        "text", "reasoning", "metadata", "store", "previous_response_id", "stream", "user", "include", "truncation", "service_tier",
        "top_logprobs", "safety_identifier", "prompt_cache_key", "stream_options", "lisa", "background", "max_tool_calls",
    ]
    static let refusedMembers: [String: String] = [
        "conversation": "LISA keeps conversations through previous_response_id, not the Conversations API",
        "prompt": "LISA has no stored prompt templates",
    ]

    /// A Responses request read once: the chat request to send, the input items (with ids)
    /// to store, and the request's settings to echo in the response object.
    public struct Translation: Sendable {
        /// The chat-completions request body (history, instructions and input included).
        public var chat: JSONValue
        /// The input as items, each with an `id`, as `input_items` lists them.
        public var inputItems: [JSONValue]
        /// The input as chat messages (without instructions), for the stored conversation.
        public var inputMessages: [JSONValue]
        /// The model the client asked for.
        public var model: String
        public var stream: Bool
        /// Whether the response is stored (`store`, default true).
        public var store: Bool
        public var previousResponseID: String?
        /// The response object's echoed settings (instructions, tools, temperature, …).
        public var echo: JSONObject
    }

    /// Reads the members of a Responses request that decide where it goes, before the
    /// conversation it continues is loaded.
    public static func previousResponseID(in body: JSONValue) throws(LISAError) -> String? {
        try RequestObject(body, path: "").string("previous_response_id")
    }

    /// Translates a Responses request; `history` is the stored conversation of
    /// `previous_response_id` as chat messages.
    ///
    /// - Throws: ``LISAError/Code/invalidRequest`` naming the member that is wrong or cannot be expressed.
    public static func translate(_ body: JSONValue, history: [JSONValue] = []) throws(LISAError) -> Translation {
        let request = try RequestObject(body, path: "")
        for (member, why) in refusedMembers where request.has(member) {
            throw .invalidRequest("\(member) is not supported: \(why).", param: member, reason: "unsupported_parameter")
        }
        if try request.bool("background") == true {
            throw .invalidRequest(
                "background is not supported: LISA answers while the request is open (stream it for long answers).", param: "background",
                reason: "unsupported_parameter"
            )
        }
        var chat: JSONObject = [:]
        for (key, value) in request.members where !translatedMembers.contains(key) {
            chat[key] = value
        }
        let model = try request.requiredString("model")
        chat["model"] = .string(model)
        var echo: JSONObject = [:]

        var messages: [JSONValue] = []
        if let instructions = try request.string("instructions") {
            messages.append(["role": "system", "content": .string(instructions)])
            echo["instructions"] = .string(instructions)
        }
        messages += history
        guard let input = request["input"] else { throw .invalidRequest("input is required.", param: "input") }
        let (items, inputMessages) = try inputItems(input)
        messages += inputMessages
        guard !messages.isEmpty else { throw .invalidRequest("input must contain at least one item.", param: "input") }
        chat["messages"] = .array(messages)

        if let maxTokens = try request.integer("max_output_tokens") {
            guard maxTokens >= 1 else { throw .invalidRequest("max_output_tokens must be at least 1.", param: "max_output_tokens") }
            chat["max_tokens"] = .integer(maxTokens)
            echo["max_output_tokens"] = .integer(maxTokens)
        }
        for key in ["temperature", "top_p"] {
            if let value = try request.number(key) {
                chat[key] = value
                echo[key] = value
            }
        }
        if let tools = try request.array("tools") {
            var chatTools: [JSONValue] = []
            for (index, tool) in tools.enumerated() { chatTools.append(try chatTool(tool, path: "tools[\(index)]")) }
            chat["tools"] = .array(chatTools)
            echo["tools"] = .array(tools)
        }
        if let choice = request["tool_choice"] {
            chat["tool_choice"] = try chatToolChoice(choice)
            echo["tool_choice"] = choice
        }
        if let parallel = try request.bool("parallel_tool_calls") {
            chat["parallel_tool_calls"] = .bool(parallel)
            echo["parallel_tool_calls"] = .bool(parallel)
        }
        if let text = try request.object("text") {
            if let format = try text.object("format") {
                if let responseFormat = try responseFormat(format) { chat["response_format"] = responseFormat }
            }
            if let verbosity = try text.string("verbosity") { chat["verbosity"] = .string(verbosity) }
            echo["text"] = .object(text.members)
        }
        if let reasoning = try request.object("reasoning") {
            if let effort = try reasoning.string("effort") { chat["reasoning_effort"] = .string(effort) }
            echo["reasoning"] = .object(reasoning.members)
        }
        if let metadata = try request.object("metadata") {
            guard metadata.members.count <= 16, metadata.members.values.allSatisfy({ ($0.stringValue?.count ?? 513) <= 512 }) else {
                throw .invalidRequest("metadata holds at most 16 string values of at most 512 characters.", param: "metadata")
            }
            echo["metadata"] = .object(metadata.members)
        }
        let safetyIdentifier = try request.string("safety_identifier")
        if let user = try request.string("user") ?? safetyIdentifier {
            chat["user"] = .string(user)
            echo["user"] = .string(user)
        }
        if let topLogprobs = try request.integer("top_logprobs") {
            chat["logprobs"] = true
            chat["top_logprobs"] = .integer(topLogprobs)
        }
        if let truncation = try request.string("truncation") {
            guard truncation == "disabled" || truncation == "auto" else {
                throw .invalidRequest("truncation must be 'auto' or 'disabled'.", param: "truncation")
            }
            echo["truncation"] = .string(truncation)
        }
        if let include = request["include"] {
            guard include.arrayValue?.allSatisfy({ $0.stringValue != nil }) == true else {
                throw .invalidRequest("include must be an array of strings.", param: "include")
            }
        }
        if let tier = request["service_tier"] { chat["service_tier"] = tier }
        if let lisa = request["lisa"] { chat["lisa"] = lisa }
        let stream = try request.bool("stream") ?? false
        if stream {
            chat["stream"] = true
            chat["stream_options"] = ["include_usage": true]
        }
        let previous = try request.string("previous_response_id")
        let store = try request.bool("store") ?? true
        echo["store"] = .bool(store)
        return Translation(
            chat: .object(chat), inputItems: items, inputMessages: inputMessages, model: model, stream: stream, store: store,
            previousResponseID: previous, echo: echo
        )
    }

    /// The input as stored items (each with an id) and as chat messages.
    static func inputItems(_ input: JSONValue) throws(LISAError) -> ([JSONValue], [JSONValue]) {
        switch input {
        case .string(let text):
            let item: JSONValue = [
                "type": "message", "id": .string(DialectJSON.id("msg_")), "role": "user", "status": "completed",
                "content": [["type": "input_text", "text": .string(text)]],
            ]
            return ([item], [["role": "user", "content": .string(text)]])
        case .array(let values):
            var items: [JSONValue] = []
            var messages: [JSONValue] = []
            for (index, value) in values.enumerated() {
                let path = "input[\(index)]"
                let item = try RequestObject(value, path: path)
                var stored = item.members
                let type = try item.string("type") ?? (item.has("role") ? "message" : "")
                stored["type"] = .string(type)
                switch type {
                case "message":
                    messages.append(try chatMessage(item, path: path))
                    if stored["id"] == nil { stored["id"] = .string(DialectJSON.id("msg_")) }
                case "function_call":
                    let call: JSONValue = [
                        "id": .string(try item.requiredString("call_id")), "type": "function",
                        "function": ["name": .string(try item.requiredString("name")), "arguments": .string(try item.requiredString("arguments"))],
                    ]
                    // Calls after an assistant message (or each other) belong to that message.
                    if case .object(var last) = messages.last ?? .null, last["role"] == "assistant", last["tool_calls"] != nil || index > 0 {
                        var calls = last["tool_calls"]?.arrayValue ?? []
                        calls.append(call)
                        last["tool_calls"] = .array(calls)
                        messages[messages.count - 1] = .object(last)
                    } else {
                        messages.append(["role": "assistant", "content": nil, "tool_calls": [call]])
                    }
                    if stored["id"] == nil { stored["id"] = .string(DialectJSON.id("fc_")) }
                case "function_call_output":
                    let output: String
                    switch item["output"] ?? .string("") {
                    case .string(let text): output = text
                    case .array(let parts):
                        var texts: [String] = []
                        for (partIndex, part) in parts.enumerated() {
                            let object = try RequestObject(part, path: "\(path).output[\(partIndex)]")
                            guard try object.string("type") == "input_text" else {
                                throw .invalidRequest(
                                    "\(path).output[\(partIndex)]: a chat-completions tool message carries text only.",
                                    param: "\(path).output[\(partIndex)].type"
                                )
                            }
                            texts.append(try object.requiredString("text"))
                        }
                        output = texts.joined(separator: "\n")
                    default: throw .invalidRequest("\(path).output must be a string or an array of input_text parts.", param: "\(path).output")
                    }
                    messages.append(["role": "tool", "tool_call_id": .string(try item.requiredString("call_id")), "content": .string(output)])
                    if stored["id"] == nil { stored["id"] = .string(DialectJSON.id("fco_")) }
                case "reasoning":
                    // A model's own reasoning, passed back: chat upstreams take none in the
                    // prompt, so it is kept in the stored items only.
                    if stored["id"] == nil { stored["id"] = .string(DialectJSON.id("rs_")) }
                case "item_reference":
                    throw .invalidRequest(
                        "\(path): item references are not supported; continue a conversation with previous_response_id.", param: "\(path).type",
                        reason: "unsupported_input_item"
                    )
                default:
                    throw .invalidRequest(
                        "\(path) is a '\(type)' item, which LISA cannot send to a chat-completions model (LISA runs no built-in tools).",
                        param: "\(path).type", reason: "unsupported_input_item"
                    )
                }
                items.append(.object(stored))
            }
            return (items, messages)
        default:
            throw .invalidRequest("input must be a string or an array of input items.", param: "input")
        }
    }

    static func chatMessage(_ item: RequestObject, path: String) throws(LISAError) -> JSONValue {
        let role = try item.requiredString("role")
        guard ["user", "system", "developer", "assistant"].contains(role) else {
            throw .invalidRequest("\(path).role must be user, system, developer or assistant.", param: "\(path).role")
        }
        guard let content = item["content"] else { throw .invalidRequest("\(path).content is required.", param: "\(path).content") }
        if case .string(let text) = content { return ["role": .string(role), "content": .string(text)] }
        guard case .array(let parts) = content else {
            throw .invalidRequest("\(path).content must be a string or an array of content parts.", param: "\(path).content")
        }
        var chatParts: [JSONValue] = []
        var refusal: String?
        for (index, value) in parts.enumerated() {
            let partPath = "\(path).content[\(index)]"
            let part = try RequestObject(value, path: partPath)
            switch try part.requiredString("type") {
            case "input_text", "output_text", "text":
                chatParts.append(["type": "text", "text": .string(try part.requiredString("text"))])
            case "refusal" where role == "assistant":
                refusal = try part.requiredString("refusal")
            case "input_image" where role == "user":
                if part.has("file_id") {
                    throw .invalidRequest(
                        "\(partPath).file_id: LISA has no Files API; send image_url (a URL or data URL).", param: "\(partPath).file_id")
                }
                var image: JSONObject = ["url": .string(try part.requiredString("image_url"))]
                if let detail = try part.string("detail") { image["detail"] = .string(detail) }
                chatParts.append(["type": "image_url", "image_url": .object(image)])
            case "input_file" where role == "user":
                guard let data = try part.string("file_data") else {
                    throw .invalidRequest("\(partPath): LISA has no Files API; send the file as file_data.", param: "\(partPath).file_data")
                }
                var file: JSONObject = ["file_data": .string(data)]
                if let name = try part.string("filename") { file["filename"] = .string(name) }
                chatParts.append(["type": "file", "file": .object(file)])
            case "input_audio" where role == "user":
                guard let audio = try part.object("input_audio") else {
                    throw .invalidRequest("\(partPath).input_audio is required.", param: "\(partPath).input_audio")
                }
                chatParts.append(["type": "input_audio", "input_audio": .object(audio.members)])
            case let other:
                throw .invalidRequest(
                    "\(partPath) is a '\(other)' part, which a \(role) message cannot carry.", param: "\(partPath).type",
                    reason: "unsupported_content_part"
                )
            }
        }
        let textOnly = chatParts.allSatisfy { $0["type"] == "text" }
        var message: JSONObject = ["role": .string(role)]
        if role != "user" || textOnly {
            guard textOnly else { throw .invalidRequest("\(path): a \(role) message carries text only.", param: "\(path).content") }
            message["content"] = .string(chatParts.compactMap { $0["text"]?.stringValue }.joined())
        } else {
            message["content"] = .array(chatParts)
        }
        if let refusal { message["refusal"] = .string(refusal) }
        return .object(message)
    }

    static func chatTool(_ value: JSONValue, path: String) throws(LISAError) -> JSONValue {
        let tool = try RequestObject(value, path: path)
        let type = try tool.requiredString("type")
        guard type == "function" else {
            throw .invalidRequest(
                "\(path) is a '\(type)' tool; LISA runs no built-in tools, so only function tools reach the model.", param: "\(path).type",
                reason: "unsupported_tool"
            )
        }
        var function: JSONObject = ["name": .string(try tool.requiredString("name"))]
        if let description = try tool.string("description") { function["description"] = .string(description) }
        if let parameters = try tool.object("parameters") { function["parameters"] = .object(parameters.members) }
        if let strict = try tool.bool("strict") { function["strict"] = .bool(strict) }
        return ["type": "function", "function": .object(function)]
    }

    static func chatToolChoice(_ choice: JSONValue) throws(LISAError) -> JSONValue {
        switch choice {
        case .string("auto"), .string("none"), .string("required"): return choice
        case .object:
            let object = try RequestObject(choice, path: "tool_choice")
            guard try object.string("type") == "function" else {
                throw .invalidRequest(
                    "tool_choice names a '\(try object.string("type") ?? "")' tool; only function tools are served.", param: "tool_choice.type")
            }
            return ["type": "function", "function": ["name": .string(try object.requiredString("name"))]]
        default:
            throw .invalidRequest("tool_choice must be auto, none, required or a function.", param: "tool_choice")
        }
    }

    static func responseFormat(_ format: RequestObject) throws(LISAError) -> JSONValue? {
        switch try format.requiredString("type") {
        case "text": return nil
        case "json_object": return ["type": "json_object"]
        case "json_schema":
            var schema: JSONObject = ["name": .string(try format.requiredString("name"))]
            guard let body = try format.object("schema") else {
                throw .invalidRequest("text.format.schema is required.", param: "text.format.schema")
            }
            schema["schema"] = .object(body.members)
            if let strict = try format.bool("strict") { schema["strict"] = .bool(strict) }
            if let description = try format.string("description") { schema["description"] = .string(description) }
            return ["type": "json_schema", "json_schema": .object(schema)]
        case let other:
            throw .invalidRequest("text.format.type '\(other)' is not one of text, json_object, json_schema.", param: "text.format.type")
        }
    }

    // MARK: - Response

    /// The response object: every member the SDKs read, with the request's settings echoed.
    public static func responseObject(
        id: String, createdAt: Int64, translation: Translation, status: String, output: [JSONValue], usage: JSONValue?,
        error: JSONValue? = nil, incompleteReason: String? = nil, lisa: JSONValue? = nil
    ) -> JSONValue {
        let echo = translation.echo
        var object: JSONObject = [
            "id": .string(id), "object": "response", "created_at": .integer(createdAt), "status": .string(status),
            "model": .string(translation.model), "output": .array(output), "error": error ?? .null,
            "incomplete_details": incompleteReason.map { ["reason": .string($0)] } ?? .null,
            "instructions": echo["instructions"] ?? .null, "max_output_tokens": echo["max_output_tokens"] ?? .null,
            "metadata": echo["metadata"] ?? .object([:]), "parallel_tool_calls": echo["parallel_tool_calls"] ?? true,
            "previous_response_id": translation.previousResponseID.map(JSONValue.string) ?? .null,
            "temperature": echo["temperature"] ?? .integer(1), "top_p": echo["top_p"] ?? .integer(1), "tool_choice": echo["tool_choice"] ?? "auto",
            "tools": echo["tools"] ?? [], "text": echo["text"] ?? ["format": ["type": "text"]],
            "reasoning": echo["reasoning"] ?? ["effort": nil, "summary": nil], "store": echo["store"] ?? true,
            "truncation": echo["truncation"] ?? "disabled", "user": echo["user"] ?? .null, "background": false,
            "usage": usage.map(responsesUsage) ?? .null,
        ]
        if let lisa { object["lisa"] = lisa }
        return .object(object)
    }

    /// Chat usage as Responses usage.
    static func responsesUsage(_ usage: JSONValue) -> JSONValue {
        let input = usage["prompt_tokens"]?.tokenCount ?? 0
        let output = usage["completion_tokens"]?.tokenCount ?? 0
        return [
            "input_tokens": .integer(input),
            "input_tokens_details": ["cached_tokens": .integer(usage["prompt_tokens_details"]?["cached_tokens"]?.tokenCount ?? 0)],
            "output_tokens": .integer(output),
            "output_tokens_details": ["reasoning_tokens": .integer(usage["completion_tokens_details"]?["reasoning_tokens"]?.tokenCount ?? 0)],
            "total_tokens": .integer(usage["total_tokens"]?.tokenCount ?? input + output),
        ]
    }

    /// Status and incomplete reason for a chat finish reason.
    static func status(finish: String?) -> (String, String?) {
        switch finish {
        case "length": return ("incomplete", "max_output_tokens")
        case "content_filter": return ("incomplete", "content_filter")
        default: return ("completed", nil)
        }
    }

    /// The output items of a chat message: reasoning, the message, function calls.
    static func outputItems(reasoning: String?, text: String?, refusal: String?, calls: [(callID: String, name: String, arguments: String)])
        -> [JSONValue]
    {
        var items: [JSONValue] = []
        if let reasoning, !reasoning.isEmpty {
            items.append(reasoningItem(id: DialectJSON.id("rs_"), text: reasoning))
        }
        if (text?.isEmpty == false) || refusal != nil || calls.isEmpty {
            var content: [JSONValue] = []
            if let text, !text.isEmpty || refusal == nil { content.append(outputText(text)) }
            if let refusal { content.append(["type": "refusal", "refusal": .string(refusal)]) }
            if text == nil && refusal == nil { content.append(outputText("")) }
            items.append(messageItem(id: DialectJSON.id("msg_"), status: "completed", content: content))
        }
        for call in calls {
            items.append(
                functionCallItem(id: DialectJSON.id("fc_"), callID: call.callID, name: call.name, arguments: call.arguments, status: "completed"))
        }
        return items
    }

    static func outputText(_ text: String) -> JSONValue {
        ["type": "output_text", "text": .string(text), "annotations": [], "logprobs": []]
    }

    static func messageItem(id: String, status: String, content: [JSONValue]) -> JSONValue {
        ["type": "message", "id": .string(id), "status": .string(status), "role": "assistant", "content": .array(content)]
    }

    static func functionCallItem(id: String, callID: String, name: String, arguments: String, status: String) -> JSONValue {
        [
            "type": "function_call", "id": .string(id), "call_id": .string(callID), "name": .string(name), "arguments": .string(arguments),
            "status": .string(status),
        ]
    }

    static func reasoningItem(id: String, text: String) -> JSONValue {
        ["type": "reasoning", "id": .string(id), "summary": [], "content": [["type": "reasoning_text", "text": .string(text)]]]
    }

    /// The chat message that continues the conversation after `output` (for the stored history).
    public static func assistantMessage(from output: [JSONValue]) -> JSONValue? {
        var text = ""
        var calls: [JSONValue] = []
        for item in output {
            switch item["type"]?.stringValue {
            case "message":
                text += item["content"]?.arrayValue?.compactMap { $0["type"] == "output_text" ? $0["text"]?.stringValue : nil }.joined() ?? ""
            case "function_call":
                calls.append([
                    "id": item["call_id"] ?? "", "type": "function",
                    "function": ["name": item["name"] ?? "", "arguments": item["arguments"] ?? "{}"],
                ])
            default: continue
            }
        }
        guard !text.isEmpty || !calls.isEmpty else { return nil }
        var message: JSONObject = ["role": "assistant", "content": text.isEmpty ? .null : .string(text)]
        if !calls.isEmpty { message["tool_calls"] = .array(calls) }
        return .object(message)
    }

    /// The response object for a buffered chat completion.
    public static func response(fromChat completion: JSONValue, id: String, createdAt: Int64, translation: Translation) throws(LISAError) -> JSONValue
    {
        guard let choice = completion["choices"]?.arrayValue?.first, let message = choice["message"] else {
            throw .badGateway("The upstream's answer has no choice to translate.", reason: "upstream_invalid_response")
        }
        let calls = (message["tool_calls"]?.arrayValue ?? []).map { call in
            (
                callID: call["id"]?.stringValue ?? DialectJSON.id("call_"), name: call["function"]?["name"]?.stringValue ?? "",
                arguments: call["function"]?["arguments"]?.stringValue ?? "{}"
            )
        }
        let output = outputItems(
            reasoning: (message["reasoning_content"] ?? message["reasoning"])?.stringValue, text: message["content"]?.chatText,
            refusal: message["refusal"]?.stringValue, calls: calls
        )
        let (status, incomplete) = status(finish: choice["finish_reason"]?.stringValue)
        return responseObject(
            id: id, createdAt: createdAt, translation: translation, status: status, output: output, usage: completion["usage"],
            incompleteReason: incomplete, lisa: completion["lisa"]
        )
    }
}
