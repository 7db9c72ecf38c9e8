import Foundation
import HTTPTypes
import Hummingbird
import LISAHummingbird
import LISAKit
import NIOCore
import NIOFoundationCompat
import Synchronization

/// The fake's Anthropic Messages server, in Anthropic's wire format: `POST /v1/messages`
/// (buffered and streamed with the documented event sequence) and
/// `POST /v1/messages/count_tokens`, plus vLLM's `POST /tokenize`.
///
/// It checks what Anthropic checks: `anthropic-version` is required, `x-api-key` must match
/// ``Configuration/apiKey`` when one is set, `max_tokens` is required. By `model`:
///
/// | model | behaviour |
/// |---|---|
/// | anything else | `"echo: <last user text>"`; with `tools`, a `tool_use` of the named or first tool with `{"text": …}`; after a `tool_result`, `"tool said: <content>"` |
/// | `show-request` | answers with the request it received as JSON text: the body, `x-api-key`, `anthropic-version`, and whether `Authorization` came |
/// | `think` | a `thinking` block before the text |
/// | `fail-529` | 529 `overloaded_error` |
/// | `fail-400` | 400 `invalid_request_error` |
/// | `break-stream` | streamed: two text deltas, then `event: error` (`overloaded_error`) and the end |
///
/// `max_tokens: 1` ends after the first word with `stop_reason: max_tokens`; a stop sequence
/// that occurs in the answer ends it there with `stop_reason: stop_sequence`.
/// Token counts are characters: `count_tokens` and vLLM's `/tokenize` count the characters of
/// every text in the messages (and `system`), so tests can tell them from LISA's estimate;
/// llama.cpp's `/apply-template` writes a `"<role>: <content>\n"` line per message, and
/// `/tokenize` of `content` counts its characters.
extension FakeUpstream {
    func addAnthropicRoutes(to router: Router<LISARequestContext>) {
        router.post("/v1/messages") { request, _ in try await self.handleMessages(request) }
        router.post("/v1/messages/count_tokens") { request, _ in
            guard let body = try await self.anthropicRequest(request) else {
                return try Self.anthropicError(status: 401, type: "authentication_error", message: "invalid x-api-key")
            }
            return try Self.json(["input_tokens": .integer(Int64(Self.characters(in: body)))])
        }
        router.post("/tokenize") { request, _ in
            let buffer = try await request.body.collect(upTo: 8 * 1024 * 1024)
            let body = try JSONDecoder().decode(JSONValue.self, from: buffer)
            self.state.withLock { state in
                state.requests[request.uri.path, default: 0] += 1
                state.lastBody = body
            }
            // llama.cpp sends {"content"}; vLLM {"model", "messages"}.
            if let content = body["content"]?.stringValue {
                return try Self.json(["tokens": .array(content.map { _ in 1 })])
            }
            let count = Self.characters(in: body)
            return try Self.json(["count": .integer(Int64(count)), "max_model_len": 8192, "tokens": .array((0..<count).map { _ in 1 })])
        }
        router.post("/apply-template") { request, _ in
            let buffer = try await request.body.collect(upTo: 8 * 1024 * 1024)
            let body = try JSONDecoder().decode(JSONValue.self, from: buffer)
            self.state.withLock { $0.requests[request.uri.path, default: 0] += 1 }
            let prompt = (body["messages"]?.arrayValue ?? []).map { message in
                "\(message["role"]?.stringValue ?? ""): \(message["content"]?.stringValue ?? "")\n"
            }.joined()
            return try Self.json(["prompt": .string(prompt)])
        }
    }

    /// The request's body, after recording it; `nil` when the key does not match.
    private func anthropicRequest(_ request: Request) async throws -> JSONValue? {
        let buffer = try await request.body.collect(upTo: 64 * 1024 * 1024)
        let body = try JSONDecoder().decode(JSONValue.self, from: buffer)
        let key = request.headers[HTTPField.Name("x-api-key")!]
        state.withLock { state in
            state.requests[request.uri.path, default: 0] += 1
            state.lastBody = body
            state.lastRawBody = String(buffer: buffer)
            state.lastAuthorization = request.headers[.authorization]
            state.lastAPIKey = key
            state.lastAnthropicVersion = request.headers[HTTPField.Name("anthropic-version")!]
        }
        if let apiKey = configuration.apiKey, key != apiKey { return nil }
        return body
    }

    private func handleMessages(_ request: Request) async throws -> Response {
        let version = request.headers[HTTPField.Name("anthropic-version")!]
        guard let body = try await anthropicRequest(request) else {
            return try Self.anthropicError(status: 401, type: "authentication_error", message: "invalid x-api-key")
        }
        guard version != nil else {
            return try Self.anthropicError(status: 400, type: "invalid_request_error", message: "anthropic-version: header is required")
        }
        guard let maxTokens = body["max_tokens"]?.int64Value else {
            return try Self.anthropicError(status: 400, type: "invalid_request_error", message: "max_tokens: Field required")
        }
        let model = body["model"]?.stringValue ?? ""
        switch model {
        case "fail-529": return try Self.anthropicError(status: 529, type: "overloaded_error", message: "Overloaded")
        case "fail-400": return try Self.anthropicError(status: 400, type: "invalid_request_error", message: "prompt is too long")
        default: break
        }
        let messages = body["messages"]?.arrayValue ?? []
        let last = messages.last
        var blocks: [JSONValue] = []
        var stopReason = "end_turn"
        var stopSequence: JSONValue = .null
        if model == "think" {
            blocks.append(["type": "thinking", "thinking": "thinking about it", "signature": "fake-signature"])
        }
        let lastBlocks = last?["content"]?.arrayValue ?? []
        if let result = lastBlocks.first(where: { $0["type"] == "tool_result" }) {
            let content = result["content"]?.stringValue ?? result["content"]?.arrayValue?.compactMap { $0["text"]?.stringValue }.joined() ?? ""
            blocks.append(["type": "text", "text": .string("tool said: \(content)")])
        } else if let tools = body["tools"]?.arrayValue, let first = tools.first, body["tool_choice"]?["type"] != "none" {
            let name = body["tool_choice"]?["name"] ?? first["name"] ?? "tool"
            blocks.append([
                "type": "tool_use", "id": .string("toolu_fake\(Int.random(in: 1000...9999))"), "name": name,
                "input": ["text": .string(Self.userText(last))],
            ])
            stopReason = "tool_use"
        } else {
            let seen: JSONValue = [
                "body": body, "x-api-key": request.headers[HTTPField.Name("x-api-key")!].map(JSONValue.string) ?? .null,
                "anthropic-version": version.map(JSONValue.string) ?? .null, "authorization": .bool(request.headers[.authorization] != nil),
                "anthropic-beta": request.headers[HTTPField.Name("anthropic-beta")!].map(JSONValue.string) ?? .null,
            ]
            var text = model == "show-request" ? String(decoding: try Self.encoder.encode(seen), as: UTF8.self) : "echo: \(Self.userText(last))"
            if maxTokens == 1 {
                text = String(text.split(separator: " ").first ?? "")
                stopReason = "max_tokens"
            }
            for stop in body["stop_sequences"]?.arrayValue?.compactMap(\.stringValue) ?? [] where model != "show-request" {
                if let range = text.range(of: stop) {
                    text = String(text[..<range.lowerBound])
                    stopReason = "stop_sequence"
                    stopSequence = .string(stop)
                    break
                }
            }
            blocks.append(["type": "text", "text": .string(text)])
        }
        let inputTokens = Int64(Self.characters(in: body))
        let outputTokens = Int64(blocks.reduce(0) { $0 + ($1["text"]?.stringValue?.split(separator: " ").count ?? 1) })
        let id = "msg_fake\(Int.random(in: 1000...9999))"
        if body["stream"] == .bool(true) {
            return streamMessage(
                id: id, model: model, blocks: blocks, stopReason: stopReason, stopSequence: stopSequence, input: inputTokens, output: outputTokens
            )
        }
        state.withLock { $0.completed += 1 }
        return try Self.json([
            "id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": .array(blocks),
            "stop_reason": .string(stopReason), "stop_sequence": stopSequence,
            "usage": ["input_tokens": .integer(inputTokens), "output_tokens": .integer(outputTokens), "cache_read_input_tokens": 0],
        ])
    }

    private func streamMessage(
        id: String, model: String, blocks: [JSONValue], stopReason: String, stopSequence: JSONValue, input: Int64, output: Int64
    ) -> Response {
        let delay = configuration.chunkDelay
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                func send(_ type: String, _ data: JSONValue) async throws {
                    var buffer = ByteBuffer(string: "event: \(type)\ndata: ")
                    buffer.writeBytes(try Self.encoder.encode(data))
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                }
                try await send(
                    "message_start",
                    [
                        "type": "message_start",
                        "message": [
                            "id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": [], "stop_reason": nil,
                            "stop_sequence": nil, "usage": ["input_tokens": .integer(input), "output_tokens": 1],
                        ],
                    ]
                )
                try await send("ping", ["type": "ping"])
                var sentDeltas = 0
                for (index, block) in blocks.enumerated() {
                    let position = JSONValue.integer(Int64(index))
                    switch block["type"]?.stringValue {
                    case "thinking":
                        try await send(
                            "content_block_start",
                            ["type": "content_block_start", "index": position, "content_block": ["type": "thinking", "thinking": ""]])
                        try await send(
                            "content_block_delta",
                            [
                                "type": "content_block_delta", "index": position,
                                "delta": ["type": "thinking_delta", "thinking": block["thinking"] ?? ""],
                            ])
                        try await send(
                            "content_block_delta",
                            ["type": "content_block_delta", "index": position, "delta": ["type": "signature_delta", "signature": "fake-signature"]])
                    case "tool_use":
                        try await send(
                            "content_block_start",
                            [
                                "type": "content_block_start", "index": position,
                                "content_block": ["type": "tool_use", "id": block["id"] ?? "", "name": block["name"] ?? "", "input": [:]],
                            ]
                        )
                        let json = String(decoding: try Self.encoder.encode(block["input"] ?? [:]), as: UTF8.self)
                        let half = json.index(json.startIndex, offsetBy: json.count / 2)
                        for piece in [json[..<half], json[half...]] {
                            try await Task.sleep(for: delay)
                            try await send(
                                "content_block_delta",
                                [
                                    "type": "content_block_delta", "index": position,
                                    "delta": ["type": "input_json_delta", "partial_json": .string(String(piece))],
                                ])
                        }
                    default:
                        try await send(
                            "content_block_start", ["type": "content_block_start", "index": position, "content_block": ["type": "text", "text": ""]])
                        let words = (block["text"]?.stringValue ?? "").split(separator: " ", omittingEmptySubsequences: false)
                        for (wordIndex, word) in words.enumerated() {
                            try await Task.sleep(for: delay)
                            let piece = wordIndex == 0 ? String(word) : " " + word
                            try await send(
                                "content_block_delta",
                                ["type": "content_block_delta", "index": position, "delta": ["type": "text_delta", "text": .string(piece)]])
                            sentDeltas += 1
                            if model == "break-stream" && sentDeltas == 2 {
                                try await send("error", ["type": "error", "error": ["type": "overloaded_error", "message": "Overloaded"]])
                                try await writer.finish(nil)
                                return
                            }
                        }
                    }
                    try await send("content_block_stop", ["type": "content_block_stop", "index": position])
                }
                try await send(
                    "message_delta",
                    [
                        "type": "message_delta", "delta": ["stop_reason": .string(stopReason), "stop_sequence": stopSequence],
                        "usage": ["output_tokens": .integer(output)],
                    ]
                )
                try await send("message_stop", ["type": "message_stop"])
                try await writer.finish(nil)
                self.state.withLock { $0.completed += 1 }
            }
        )
    }

    /// The text of a user message (its string, or its text blocks).
    private static func userText(_ message: JSONValue?) -> String {
        switch message?["content"] {
        case .string(let text)?: return text
        case .array(let blocks)?: return blocks.compactMap { $0["type"] == "text" ? $0["text"]?.stringValue : nil }.joined(separator: " ")
        default: return ""
        }
    }

    /// The fake tokenizer: one token per character of every text in `messages` and `system`.
    static func characters(in body: JSONValue) -> Int {
        func count(_ value: JSONValue?) -> Int {
            switch value {
            case .string(let text)?: return text.count
            case .array(let items)?: return items.reduce(0) { $0 + count($1["text"] ?? $1["content"]) }
            default: return 0
            }
        }
        return count(body["system"]) + (body["messages"]?.arrayValue ?? []).reduce(0) { $0 + count($1["content"]) }
    }

    static func anthropicError(status: Int, type: String, message: String) throws -> Response {
        let data = try encoder.encodeAsByteBuffer(
            JSONValue.object(["type": "error", "error": ["type": .string(type), "message": .string(message)]]), allocator: ByteBufferAllocator()
        )
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: data))
    }
}
