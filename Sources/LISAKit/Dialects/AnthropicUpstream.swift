import Foundation
public import NIOCore

/// OpenAI chat completions sent to an upstream that speaks Anthropic Messages (a model with
/// `upstreamAPI: anthropic`), and its answers turned back into chat completions: the request
/// as a pure function, the buffered answer as a pure function, the stream as a state
/// machine (``AnthropicChatStreamTranslator``). `Documentation/Dialects.md` has the tables.
///
/// Every inbound dialect that rides on chat completions (chat itself, Responses, and
/// Messages with grounding) reaches a Claude endpoint this way; a plain Messages request
/// to such a model is passed through untouched instead.
public enum AnthropicUpstream {
    /// The `anthropic-version` LISA sends.
    public static let apiVersion = "2023-06-01"
    /// `max_tokens` when the chat request sets neither `max_tokens` nor
    /// `max_completion_tokens` (Messages requires one).
    public static let defaultMaxTokens: Int64 = 4096

    /// Chat members with no Messages equivalent: refused, naming the member.
    static let refusedMembers: [String: String] = [
        "n": "Anthropic Messages returns one choice",
        "logprobs": "Anthropic Messages does not return log probabilities",
        "top_logprobs": "Anthropic Messages does not return log probabilities",
        "logit_bias": "Anthropic Messages has no logit bias",
        "frequency_penalty": "Anthropic Messages has no frequency penalty",
        "presence_penalty": "Anthropic Messages has no presence penalty",
        "seed": "Anthropic Messages has no seed",
        "audio": "Anthropic Messages has no audio output",
        "modalities": "Anthropic Messages answers in text only",
        "prediction": "Anthropic Messages has no predicted outputs",
        "functions": "use tools: the deprecated functions member is not translated",
        "function_call": "use tool_choice: the deprecated function_call member is not translated",
        "web_search_options": "web search runs on OpenAI's servers",
        "reasoning_effort": "set Anthropic's thinking member instead",
    ]
    /// Chat members that mean nothing to a Messages upstream and are left out: LISA's own
    /// `lisa`, usage reporting (Anthropic always reports usage), OpenAI storage and tiers.
    static let omittedMembers: Set<String> = ["lisa", "stream_options", "store", "metadata", "service_tier"]
    /// Chat members translated below; any other member goes upstream as it is (`top_k`, `thinking`).
    static let translatedMembers: Set<String> = [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream", "tools", "tool_choice",
        "parallel_tool_calls", "user", "response_format",
    ]

    // MARK: - Request

    /// The Messages request for a chat-completions request.
    ///
    /// - Throws: ``LISAError/Code/invalidRequest`` naming the member that is wrong or cannot be expressed.
    public static func messagesRequest(fromChat body: JSONValue) throws(LISAError) -> JSONValue {
        var (request, out, tokenLimit) = try ChatTranslationStart.begin(
            body, upstream: "Anthropic", refused: refusedMembers, handled: translatedMembers.union(omittedMembers)
        )
        let maxTokens = tokenLimit ?? defaultMaxTokens
        guard maxTokens >= 1 else { throw .invalidRequest("max_tokens must be at least 1.", param: "max_tokens") }
        out["max_tokens"] = .integer(maxTokens)
        switch request["stop"] {
        case nil: break
        case .string(let stop)?: out["stop_sequences"] = [.string(stop)]
        case .array(let stops)? where stops.allSatisfy({ $0.stringValue != nil }): out["stop_sequences"] = .array(stops)
        default: throw .invalidRequest("stop must be a string or an array of strings.", param: "stop")
        }
        if let format = try request.object("response_format"), try format.string("type") != "text" {
            throw .invalidRequest(
                "response_format \(try format.string("type") ?? "") is not supported by this model's Anthropic upstream; describe the format in the prompt or use a tool.",
                param: "response_format.type", reason: "unsupported_parameter"
            )
        }
        if let user = try request.string("user") { out["metadata"] = ["user_id": .string(user)] }
        if let tools = try request.array("tools") {
            var translated: [JSONValue] = []
            for (index, tool) in tools.enumerated() { translated.append(try messagesTool(tool, path: "tools[\(index)]")) }
            out["tools"] = .array(translated)
        }
        var choice: JSONObject?
        switch request["tool_choice"] {
        case nil: break
        case .string("auto")?: choice = ["type": "auto"]
        case .string("none")?: choice = ["type": "none"]
        case .string("required")?: choice = ["type": "any"]
        case .object?:
            let object = try request.object("tool_choice")!
            guard try object.string("type") == "function", let function = try object.object("function") else {
                throw .invalidRequest("tool_choice must name a function tool.", param: "tool_choice.type")
            }
            choice = ["type": "tool", "name": .string(try function.requiredString("name"))]
        default:
            throw .invalidRequest("tool_choice must be 'auto', 'none', 'required' or a function.", param: "tool_choice")
        }
        if try request.bool("parallel_tool_calls") == false {
            choice = choice ?? ["type": "auto"]
            choice?["disable_parallel_tool_use"] = true
        }
        if let choice { out["tool_choice"] = .object(choice) }

        guard let items = try request.array("messages"), !items.isEmpty else {
            throw .invalidRequest("messages must contain at least one message.", param: "messages")
        }
        var system: [String] = []
        var messages: [JSONValue] = []
        var pendingResults: [JSONValue] = []
        func flushResults() {
            guard !pendingResults.isEmpty else { return }
            messages.append(["role": "user", "content": .array(pendingResults)])
            pendingResults = []
        }
        for (index, item) in items.enumerated() {
            let path = "messages[\(index)]"
            let message = try RequestObject(item, path: path)
            let role = try message.requiredString("role")
            if role != "tool" { flushResults() }
            switch role {
            case "system", "developer":
                guard messages.isEmpty else {
                    throw .invalidRequest(
                        "Anthropic takes system text only before the conversation; move this \(role) message to the start.", param: path
                    )
                }
                system.append(try text(of: message["content"], path: message.param("content")) ?? "")
            case "user":
                messages.append(["role": "user", "content": try userContent(message["content"], path: message.param("content"))])
            case "assistant":
                var blocks: [JSONValue] = []
                if let text = try text(of: message["content"], path: message.param("content")), !text.isEmpty {
                    blocks.append(["type": "text", "text": .string(text)])
                }
                for (callIndex, call) in (try message.array("tool_calls") ?? []).enumerated() {
                    let callPath = "\(path).tool_calls[\(callIndex)]"
                    let object = try RequestObject(call, path: callPath)
                    guard let function = try object.object("function") else {
                        throw .invalidRequest("\(callPath).function is required.", param: "\(callPath).function")
                    }
                    let arguments = try function.string("arguments") ?? "{}"
                    let input: JSONValue
                    do {
                        input = try AnthropicDialect.toolInput(arguments)
                    } catch {
                        throw .invalidRequest(
                            "\(callPath).function.arguments must be a JSON object for an Anthropic upstream.", param: "\(callPath).function.arguments"
                        )
                    }
                    blocks.append([
                        "type": "tool_use", "id": .string(try object.string("id") ?? DialectJSON.id("toolu_")),
                        "name": .string(try function.requiredString("name")), "input": input,
                    ])
                }
                // An empty assistant turn says nothing; Messages refuses empty content.
                if !blocks.isEmpty { messages.append(["role": "assistant", "content": .array(blocks)]) }
            case "tool":
                pendingResults.append([
                    "type": "tool_result", "tool_use_id": .string(try message.requiredString("tool_call_id")),
                    "content": .string(try text(of: message["content"], path: message.param("content")) ?? ""),
                ])
            default:
                throw .invalidRequest("\(path).role '\(role)' cannot be sent to an Anthropic upstream.", param: "\(path).role")
            }
        }
        flushResults()
        guard !messages.isEmpty else {
            throw .invalidRequest("messages needs at least one user message for an Anthropic upstream.", param: "messages")
        }
        if !system.isEmpty { out["system"] = .string(system.joined(separator: "\n\n")) }
        out["messages"] = .array(messages)
        return .object(out)
    }

    /// A message's text: the string, or its text parts; anything else is refused.
    static func text(of content: JSONValue?, path: String) throws(LISAError) -> String? {
        switch content {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case .array(let parts)?:
            var texts: [String] = []
            for (index, part) in parts.enumerated() {
                let object = try RequestObject(part, path: "\(path)[\(index)]")
                guard try object.string("type") == "text" else {
                    throw .invalidRequest("\(object.path) must be a text part here.", param: object.param("type"))
                }
                texts.append(try object.requiredString("text"))
            }
            return texts.joined()
        default:
            throw .invalidRequest("\(path) must be a string or an array of parts.", param: path)
        }
    }

    static func userContent(_ content: JSONValue?, path: String) throws(LISAError) -> JSONValue {
        switch content {
        case .string(let text)?: return .string(text)
        case .array(let parts)?:
            var blocks: [JSONValue] = []
            for (index, part) in parts.enumerated() {
                let object = try RequestObject(part, path: "\(path)[\(index)]")
                switch try object.requiredString("type") {
                case "text":
                    blocks.append(["type": "text", "text": .string(try object.requiredString("text"))])
                case "image_url":
                    guard let image = try object.object("image_url") else {
                        throw .invalidRequest("\(object.param("image_url")) is required.", param: object.param("image_url"))
                    }
                    blocks.append(["type": "image", "source": try imageSource(try image.requiredString("url"), path: image.param("url"))])
                case let other:
                    throw .invalidRequest(
                        "\(object.param("type")) '\(other)' cannot be sent to an Anthropic upstream.", param: object.param("type"),
                        reason: "unsupported_content"
                    )
                }
            }
            return .array(blocks)
        default:
            throw .invalidRequest("\(path) must be a string or an array of parts.", param: path)
        }
    }

    /// A chat image URL as a Messages image source: a `data:` URL becomes base64 data.
    static func imageSource(_ url: String, path: String) throws(LISAError) -> JSONValue {
        guard url.hasPrefix("data:") else { return ["type": "url", "url": .string(url)] }
        guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
            throw .invalidRequest("\(path) must be a base64 data URL or an http(s) URL.", param: path)
        }
        let mediaType = url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count)
        return ["type": "base64", "media_type": .string(String(mediaType)), "data": .string(String(url[url.index(after: comma)...]))]
    }

    static func messagesTool(_ value: JSONValue, path: String) throws(LISAError) -> JSONValue {
        let tool = try RequestObject(value, path: path)
        guard try tool.string("type") == "function", let function = try tool.object("function") else {
            throw .invalidRequest("\(tool.param("type")) must be 'function' for an Anthropic upstream.", param: tool.param("type"))
        }
        var out: JSONObject = [
            "name": .string(try function.requiredString("name")),
            "input_schema": function["parameters"] ?? ["type": "object", "properties": [:]],
        ]
        if let description = try function.string("description") { out["description"] = .string(description) }
        return .object(out)
    }

    // MARK: - Answer

    /// The chat completion for a Messages answer.
    ///
    /// - Throws: ``LISAError/Code/upstreamFailed`` when the answer is not a message.
    public static func chatCompletion(fromMessage message: JSONValue, created: Int64) throws(LISAError) -> JSONValue {
        guard message["type"]?.stringValue == "message", let blocks = message["content"]?.arrayValue else { throw notAMessage }
        var translation = MessageAnswerTranslation()
        for block in blocks { translation.add(block: block) }
        return translation.chatCompletion(message: message, created: created)
    }

    /// The chat completion for a Messages answer given as JSON text, read one content block
    /// at a time: the whole answer is never held as a parsed tree. Its output is byte for byte
    /// that of ``chatCompletion(fromMessage:created:)``; `nil` when `bytes` is not JSON.
    ///
    /// - Throws: ``LISAError/Code/upstreamFailed`` when the answer is not a message.
    static func chatCompletion(fromMessageBytes bytes: ByteBuffer, created: Int64) throws(LISAError) -> JSONValue? {
        switch JSONSlices.split(bytes, leaving: "content") {
        case .invalid: return nil
        case .ambiguous:
            guard let message = try? JSONValue(parsing: bytes) else { return nil }
            return try chatCompletion(fromMessage: message, created: created)
        case .notObject: throw notAMessage
        case .object(let head, let content):
            let message = JSONValue.object(head)
            guard message["type"]?.stringValue == "message", let content, JSONSlices.firstByte(of: bytes, in: content) == UInt8(ascii: "[")
            else { throw notAMessage }
            var translation = MessageAnswerTranslation()
            let complete = JSONSlices.forEachElement(of: bytes, in: content) { range in
                guard let block = try? JSONValue(parsing: JSONSlices.slice(of: bytes, range)) else { return false }
                translation.add(block: block)
                return true
            }
            guard complete else { return nil }
            return translation.chatCompletion(message: message, created: created)
        }
    }

    static var notAMessage: LISAError {
        .badGateway("The Anthropic upstream's answer is not a message.", reason: "upstream_invalid_response")
    }

    /// A Messages answer's content blocks gathered into a chat completion, block by block.
    struct MessageAnswerTranslation {
        var text = ""
        var reasoning = ""
        var calls: [JSONValue] = []

        mutating func add(block: JSONValue) {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "thinking": reasoning += block["thinking"]?.stringValue ?? ""
            case "tool_use":
                calls.append([
                    "id": block["id"] ?? .string(DialectJSON.id("call_")), "type": "function",
                    "function": ["name": block["name"] ?? "", "arguments": .string(DialectJSON.string(block["input"] ?? [:]))],
                ])
            default: break
            }
        }

        /// The completion, with what the answer says besides its content read from `message`.
        func chatCompletion(message: JSONValue, created: Int64) -> JSONValue {
            var assistant: JSONObject = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
            if !calls.isEmpty { assistant["tool_calls"] = .array(calls) }
            if !reasoning.isEmpty { assistant["reasoning_content"] = .string(reasoning) }
            let (finish, matched) = finishReason(stop: message["stop_reason"]?.stringValue, sequence: message["stop_sequence"])
            var choice: JSONObject = ["index": 0, "message": .object(assistant), "finish_reason": .string(finish)]
            if let matched { choice["stop_reason"] = .string(matched) }
            return [
                "id": .string(message["id"]?.stringValue ?? DialectJSON.id("msg_")), "object": "chat.completion", "created": .integer(created),
                "model": message["model"] ?? "", "choices": [.object(choice)], "usage": chatUsage(message["usage"]),
            ]
        }
    }

    /// Messages' stop reason as chat's finish reason, with the matched stop sequence (kept
    /// as vLLM does, in the choice's `stop_reason`).
    public static func finishReason(stop: String?, sequence: JSONValue?) -> (String, String?) {
        switch stop {
        case "max_tokens": ("length", nil)
        case "tool_use": ("tool_calls", nil)
        case "refusal": ("content_filter", nil)
        case "stop_sequence": ("stop", sequence?.stringValue)
        default: ("stop", nil)
        }
    }

    /// Messages usage as chat usage: cache reads and writes count as prompt tokens.
    static func chatUsage(_ usage: JSONValue?) -> JSONValue {
        let cached = usage?["cache_read_input_tokens"]?.tokenCount ?? 0
        let prompt = (usage?["input_tokens"]?.tokenCount ?? 0) + cached + (usage?["cache_creation_input_tokens"]?.tokenCount ?? 0)
        let completion = usage?["output_tokens"]?.tokenCount ?? 0
        var out: JSONObject = [
            "prompt_tokens": .integer(prompt), "completion_tokens": .integer(completion), "total_tokens": .integer(prompt + completion),
        ]
        if cached > 0 { out["prompt_tokens_details"] = ["cached_tokens": .integer(cached)] }
        return .object(out)
    }

    /// Token usage in the gateway's form from a Messages answer or stream event.
    static func usage(_ value: JSONValue?) -> Usage? {
        guard let value, value.objectValue != nil else { return nil }
        let usage = chatUsage(value)
        return Usage(
            promptTokens: Int(usage["prompt_tokens"]?.int64Value ?? 0), completionTokens: Int(usage["completion_tokens"]?.int64Value ?? 0),
            totalTokens: Int(usage["total_tokens"]?.int64Value ?? 0)
        )
    }
}

/// An Anthropic Messages stream as a chat-completions stream, event by event: text and
/// thinking deltas become `content` and `reasoning_content` deltas, each `tool_use` block a
/// tool call whose `input_json_delta`s become argument deltas, `message_delta` the finish
/// chunk and a usage chunk, `message_stop` the `[DONE]`. An `error` event ends the stream
/// as a failure (``failure``), never as a completion.
public struct AnthropicChatStreamTranslator: ServerSentEventTranslator {
    private var id = DialectJSON.id("msg_")
    private var model = ""
    private let created: Int64
    private var inputUsage: JSONValue = [:]
    /// Tool-call index of each open `tool_use` content block.
    private var toolIndex: [Int64: Int] = [:]
    private var toolCount = 0
    /// The upstream's error message, once it sent `event: error`.
    public private(set) var failure: String?

    /// Whether plain text and thinking deltas are written straight; tests turn it off to
    /// compare with the chunks built as JSON values.
    var writesDeltasStraight = true

    public init(created: Int64) {
        self.created = created
    }

    /// A text or thinking delta is written straight: the bytes ``translate(_:)`` gives,
    /// without parsing the event into a tree or building the chunk as JSON values.
    public mutating func translate(_ event: ServerSentEvent, into buffer: inout ByteBuffer) {
        if writesDeltasStraight, failure == nil, let delta = UpstreamTextDelta.readAnthropic(event.data), delta.kind != .refusal {
            let key: StaticString = delta.kind == .content ? "content" : "reasoning_content"
            ChatChunkWriter.writeDelta(id: id, created: created, model: model, key: key, text: delta.text, into: &buffer)
            return
        }
        for translated in translate(event) { translated.write(to: &buffer) }
    }

    public mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent] {
        guard failure == nil, let data = DialectJSON.object(in: event.data) else { return [] }
        let type = data["type"]?.stringValue ?? event.event ?? ""
        switch type {
        case "message_start":
            let message = data["message"]
            if let upstreamID = message?["id"]?.stringValue { id = upstreamID }
            model = message?["model"]?.stringValue ?? model
            inputUsage = message?["usage"] ?? [:]
            return [chunk(["role": "assistant", "content": ""])]
        case "content_block_start":
            let block = data["content_block"]
            let index = data["index"]?.int64Value ?? 0
            switch block?["type"]?.stringValue {
            case "tool_use":
                let call = toolCount
                toolCount += 1
                toolIndex[index] = call
                return [
                    chunk([
                        "tool_calls": [
                            [
                                "index": .integer(Int64(call)), "id": block?["id"] ?? .string(DialectJSON.id("call_")), "type": "function",
                                "function": ["name": block?["name"] ?? "", "arguments": ""],
                            ]
                        ]
                    ])
                ]
            case "text":
                if let text = block?["text"]?.stringValue, !text.isEmpty { return [chunk(["content": .string(text)])] }
                return []
            default:
                return []
            }
        case "content_block_delta":
            let delta = data["delta"]
            switch delta?["type"]?.stringValue {
            case "text_delta": return [chunk(["content": delta?["text"] ?? ""])]
            case "thinking_delta": return [chunk(["reasoning_content": delta?["thinking"] ?? ""])]
            case "input_json_delta":
                guard let call = toolIndex[data["index"]?.int64Value ?? -1] else { return [] }
                return [chunk(["tool_calls": [["index": .integer(Int64(call)), "function": ["arguments": delta?["partial_json"] ?? ""]]]])]
            default: return []
            }
        case "message_delta":
            let (finish, matched) = AnthropicUpstream.finishReason(
                stop: data["delta"]?["stop_reason"]?.stringValue, sequence: data["delta"]?["stop_sequence"])
            var finishChunk = chunkObject([:], finish: finish)
            if let matched, case .object(var object) = finishChunk, case .array(var choices) = object["choices"] ?? .null,
                case .object(var choice) = choices[0]
            {
                choice["stop_reason"] = .string(matched)
                choices[0] = .object(choice)
                object["choices"] = .array(choices)
                finishChunk = .object(object)
            }
            var usage = inputUsage.objectValue ?? [:]
            for (key, value) in data["usage"]?.objectValue ?? [:] { usage[key] = value }
            let usageChunk: JSONValue = [
                "id": .string(id), "object": "chat.completion.chunk", "created": .integer(created), "model": .string(model), "choices": [],
                "usage": AnthropicUpstream.chatUsage(.object(usage)),
            ]
            return [DialectJSON.event(nil, finishChunk), DialectJSON.event(nil, usageChunk)]
        case "message_stop":
            return [ServerSentEvent(data: "[DONE]")]
        case "error":
            failure = data["error"]?["message"]?.stringValue ?? "the upstream sent an error event"
            return []
        default:
            return []  // ping, content_block_stop, signature and citation deltas
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

/// An upstream body whose server-sent events are translated as they arrive (an Anthropic
/// upstream's stream as chat chunks). A translator that reports a ``failure`` ends the body
/// with ``UpstreamStreamFailure`` after the events before it.
struct TranslatedEventBody<Translator: ServerSentEventTranslator & FailureReporting>: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: UpstreamBody
    let translator: Translator

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: UpstreamBody.AsyncIterator
        var translator: Translator
        var parser = ServerSentEventParser()

        mutating func next() async throws -> ByteBuffer? {
            while true {
                if let failure = translator.failure { throw UpstreamStreamFailure(message: failure) }
                guard let chunk = try await base.next() else { return nil }
                var output = ByteBuffer()
                for parsed in try parser.feed(chunk) {
                    translator.translate(parsed.event, into: &output)
                }
                if output.readableBytes > 0 { return output }
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), translator: translator)
    }
}

/// A translator that can see its upstream fail (an Anthropic `error` event).
protocol FailureReporting {
    var failure: String? { get }
}

extension AnthropicChatStreamTranslator: FailureReporting {}

/// An upstream stream that reported an error in its own dialect.
struct UpstreamStreamFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { "the upstream reported an error: \(message)" }
}

/// What every translation of a chat request to another upstream API starts with: members
/// the target cannot carry refused (naming them), members LISA does not translate carried
/// over as they are, and `model`, `temperature`, `top_p`, `stream` and the token limit read.
enum ChatTranslationStart {
    static func begin(_ body: JSONValue, upstream: String, refused: [String: String], handled: Set<String>) throws(LISAError)
        -> (request: RequestObject, out: JSONObject, tokenLimit: Int64?)
    {
        let request = try RequestObject(body, path: "")
        for (member, why) in refused where request.has(member) {
            throw .invalidRequest(
                "\(member) is not supported by this model's \(upstream) upstream: \(why).", param: member, reason: "unsupported_parameter")
        }
        var out: JSONObject = [:]
        for (key, value) in request.members where !handled.contains(key) {
            out[key] = value
        }
        out["model"] = .string(try request.requiredString("model"))
        for key in ["temperature", "top_p"] {
            if let value = try request.number(key) { out[key] = value }
        }
        if let stream = try request.bool("stream") { out["stream"] = .bool(stream) }
        let completionLimit = try request.integer("max_completion_tokens")
        let tokenLimit = try request.integer("max_tokens")
        return (request, out, completionLimit ?? tokenLimit)
    }
}
