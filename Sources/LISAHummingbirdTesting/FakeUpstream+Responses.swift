import Foundation
import HTTPTypes
import Hummingbird
import LISAHummingbird
import LISAKit
import NIOCore
import NIOFoundationCompat
import Synchronization

/// The fake's OpenAI Responses server (`POST /v1/responses`), buffered and streamed with the
/// documented events and sequence numbers. It stores what it answers (unless `store: false`)
/// so `previous_response_id` works against it, and answers 404 for an id it does not know.
/// By `model`:
///
/// | model | behaviour |
/// |---|---|
/// | anything else | `"echo: <last user text>"`; with `tools`, a `function_call` of the named or first tool with `{"text": …}`; after a `function_call_output`, `"tool said: <output>"` |
/// | `show-request` | answers with the request as JSON text (the body, and whether `Authorization` came) |
/// | `count-history` | `"history: N"`: how many earlier responses the `previous_response_id` chain holds |
/// | `think` | a `reasoning` item before the message |
/// | `break-stream` | streamed: two text deltas, then `event: error` and the end |
///
/// `max_output_tokens: 1` ends after the first word, `status: incomplete`.
extension FakeUpstream {
    func addResponsesRoutes(to router: Router<LISARequestContext>) {
        router.post("/v1/responses") { request, _ in try await self.handleResponses(request) }
    }

    private func handleResponses(_ request: Request) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 64 * 1024 * 1024)
        let body = try JSONDecoder().decode(JSONValue.self, from: buffer)
        state.withLock { state in
            state.requests[request.uri.path, default: 0] += 1
            state.lastBody = body
            state.lastRawBody = String(buffer: buffer)
            state.lastAuthorization = request.headers[.authorization]
        }
        if let apiKey = configuration.apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            return try Self.error(status: 401, message: "Incorrect API key provided.", type: "invalid_request_error")
        }
        var depth = 0
        if let previous = body["previous_response_id"]?.stringValue {
            guard let known = responsesStore.withLock({ $0[previous] }) else {
                let error: JSONValue = [
                    "error": [
                        "message": .string("Previous response with id '\(previous)' not found."), "type": "invalid_request_error",
                        "param": "previous_response_id", "code": "previous_response_not_found",
                    ]
                ]
                return Response(
                    status: .notFound, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: try Self.encoder.encodeAsByteBuffer(error, allocator: ByteBufferAllocator())))
            }
            depth = known + 1
        }
        let model = body["model"]?.stringValue ?? ""
        let items: [JSONValue] =
            if case .string(let text)? = body["input"] { [["type": "message", "role": "user", "content": .string(text)]] } else {
                body["input"]?.arrayValue ?? []
            }
        let last = items.last
        let id = "resp_fake\(UInt64.random(in: 1_000_000...9_999_999))"
        var output: [JSONValue] = []
        var status = "completed"
        var incomplete: JSONValue = .null
        if model == "think" {
            output.append([
                "type": "reasoning", "id": "rs_fake", "summary": [], "content": [["type": "reasoning_text", "text": "thinking about it"]],
            ])
        }
        if last?["type"] == "function_call_output" {
            output.append(Self.responsesMessage("tool said: \(last?["output"]?.stringValue ?? "")"))
        } else if let tools = body["tools"]?.arrayValue, let first = tools.first, body["tool_choice"] != "none" {
            let name = body["tool_choice"]?["name"] ?? first["name"] ?? "tool"
            let arguments = String(decoding: try Self.encoder.encode(JSONValue.object(["text": .string(Self.inputText(last))])), as: UTF8.self)
            output.append([
                "type": "function_call", "id": "fc_fake", "call_id": .string("call_fake\(Int.random(in: 1000...9999))"), "name": name,
                "arguments": .string(arguments), "status": "completed",
            ])
        } else {
            var text: String
            switch model {
            case "show-request":
                let seen: JSONValue = ["body": body, "authorization": .bool(request.headers[.authorization] != nil)]
                text = String(decoding: try Self.encoder.encode(seen), as: UTF8.self)
            case "count-history": text = "history: \(depth)"
            default: text = "echo: \(Self.inputText(last))"
            }
            if body["max_output_tokens"]?.int64Value == 1 {
                text = String(text.split(separator: " ").first ?? "")
                status = "incomplete"
                incomplete = ["reason": "max_output_tokens"]
            }
            output.append(Self.responsesMessage(text))
        }
        let words = output.reduce(0) { $0 + (($1["content"]?.arrayValue?.first?["text"]?.stringValue ?? "x").split(separator: " ").count) }
        let response: JSONValue = [
            "id": .string(id), "object": "response", "created_at": 1_700_000_000, "status": .string(status), "model": .string(model),
            "output": .array(output), "incomplete_details": incomplete, "error": nil, "store": .bool(body["store"] != .bool(false)),
            "usage": [
                "input_tokens": .integer(Int64(Self.inputText(last).count)), "output_tokens": .integer(Int64(words)),
                "total_tokens": .integer(Int64(Self.inputText(last).count + words)), "input_tokens_details": ["cached_tokens": 0],
                "output_tokens_details": ["reasoning_tokens": 0],
            ],
        ]
        if body["store"] != .bool(false) { responsesStore.withLock { $0[id] = depth } }
        if body["stream"] == .bool(true) { return streamResponse(response, model: model) }
        state.withLock { $0.completed += 1 }
        return try Self.json(response)
    }

    private func streamResponse(_ response: JSONValue, model: String) -> Response {
        let delay = configuration.chunkDelay
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var sequence: Int64 = 0
                func send(_ type: String, _ data: [String: JSONValue]) async throws {
                    var object = data
                    object["type"] = .string(type)
                    object["sequence_number"] = .integer(sequence)
                    sequence += 1
                    var buffer = ByteBuffer(string: "event: \(type)\ndata: ")
                    buffer.writeBytes(try Self.encoder.encode(JSONValue.object(object)))
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                }
                var pending = response.objectValue!
                pending["status"] = "in_progress"
                pending["output"] = []
                try await send("response.created", ["response": .object(pending)])
                try await send("response.in_progress", ["response": .object(pending)])
                for (index, item) in (response["output"]?.arrayValue ?? []).enumerated() {
                    let position = JSONValue.integer(Int64(index))
                    switch item["type"]?.stringValue {
                    case "function_call":
                        var opened = item.objectValue!
                        opened["arguments"] = ""
                        opened["status"] = "in_progress"
                        try await send("response.output_item.added", ["output_index": position, "item": .object(opened)])
                        let arguments = item["arguments"]?.stringValue ?? ""
                        let half = arguments.index(arguments.startIndex, offsetBy: arguments.count / 2)
                        for piece in [arguments[..<half], arguments[half...]] {
                            try await Task.sleep(for: delay)
                            try await send(
                                "response.function_call_arguments.delta",
                                ["output_index": position, "item_id": item["id"] ?? "", "delta": .string(String(piece))])
                        }
                        try await send(
                            "response.function_call_arguments.done",
                            ["output_index": position, "item_id": item["id"] ?? "", "arguments": .string(arguments)])
                    case "message":
                        let text = item["content"]?.arrayValue?.first?["text"]?.stringValue ?? ""
                        try await send(
                            "response.output_item.added",
                            [
                                "output_index": position,
                                "item": ["type": "message", "id": item["id"] ?? "", "role": "assistant", "status": "in_progress", "content": []],
                            ])
                        try await send(
                            "response.content_part.added",
                            [
                                "output_index": position, "item_id": item["id"] ?? "", "content_index": 0,
                                "part": ["type": "output_text", "text": "", "annotations": []],
                            ])
                        for (wordIndex, word) in text.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
                            try await Task.sleep(for: delay)
                            try await send(
                                "response.output_text.delta",
                                [
                                    "output_index": position, "item_id": item["id"] ?? "", "content_index": 0,
                                    "delta": .string(wordIndex == 0 ? String(word) : " " + word),
                                ])
                            if model == "break-stream" && wordIndex == 1 {
                                try await send("error", ["code": "server_error", "message": "The fake upstream broke.", "param": nil])
                                try await writer.finish(nil)
                                return
                            }
                        }
                        try await send(
                            "response.output_text.done",
                            ["output_index": position, "item_id": item["id"] ?? "", "content_index": 0, "text": .string(text)])
                        try await send(
                            "response.content_part.done",
                            [
                                "output_index": position, "item_id": item["id"] ?? "", "content_index": 0,
                                "part": ["type": "output_text", "text": .string(text), "annotations": []],
                            ])
                    default:
                        try await send("response.output_item.added", ["output_index": position, "item": item])
                    }
                    try await send("response.output_item.done", ["output_index": position, "item": item])
                }
                let terminal = response["status"] == "incomplete" ? "response.incomplete" : "response.completed"
                try await send(terminal, ["response": response])
                try await writer.finish(nil)
                self.state.withLock { $0.completed += 1 }
            }
        )
    }

    private static func responsesMessage(_ text: String) -> JSONValue {
        [
            "type": "message", "id": .string("msg_fake\(Int.random(in: 1000...9999))"), "role": "assistant", "status": "completed",
            "content": [["type": "output_text", "text": .string(text), "annotations": []]],
        ]
    }

    /// The text of an input item (a message's string or its input_text parts).
    private static func inputText(_ item: JSONValue?) -> String {
        switch item?["content"] {
        case .string(let text)?: return text
        case .array(let parts)?: return parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
        default: return ""
        }
    }
}
