import Foundation
public import Hummingbird
import LISAHummingbird
public import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import Synchronization

/// An in-process OpenAI-compatible server that speaks the real wire format, for tests and
/// benchmarks. Its behaviour is chosen by the `model` it receives (LISA's `modelName`):
///
/// | model | behaviour |
/// |---|---|
/// | anything else | echoes the last user message: `"echo: <text>"`, streamed word by word |
/// | `fail-500`, `fail-503`, `fail-400`, `fail-429` | answers that status with an OpenAI error body |
/// | `break-stream` | streams two chunks, then drops the connection (no `[DONE]`) |
/// | `no-done` | streams the answer, then ends the body cleanly without `[DONE]` |
/// | `slow` | waits ``Configuration/slowDelay`` before answering (or between chunks) |
/// | `stall-stream` | streams two chunks, then sends nothing for ``Configuration/stallDuration`` |
/// | `redirect` | answers 307 to `/v1/redirected` (which counts what reaches it) |
/// | `html-200` | answers 200 with a `text/html` page (a script), not JSON |
/// | `count-messages` | answers `messages: N roles: system,user,…` (what the conversation held) |
/// | `think` | answers with `reasoning_content` ("thinking about <text>") before the echo |
/// | `burst` | streams the echo as usual, but the whole stream in one write (chat and completions) |
///
/// A chat request with `tools` (and `tool_choice` other than `none`) whose last message is
/// the user's calls the named or first tool with `{"text": "<the user's text>"}`
/// (`finish_reason: tool_calls`; streamed, the arguments come in two deltas). After a
/// `tool` message the answer is `"tool said: <its content>"`. A `max_tokens` of 1 ends the
/// answer after its first word with `finish_reason: length`.
///
/// It also speaks Anthropic Messages natively (`/v1/messages`, `count_tokens`; see
/// `FakeUpstream+Anthropic.swift`), the OpenAI Responses API (`FakeUpstream+Responses.swift`), vLLM's `/tokenize`, and the other OpenAI routes
/// (images, audio, moderations, rerank; `FakeUpstream+Routes.swift`).
///
/// Streams send one chunk per ``Configuration/chunkDelay``. Embeddings are deterministic
/// 8-dimensional vectors (or `dimensions`) derived from the input text.
public final class FakeUpstream: Sendable {
    /// Settings for the fake.
    public struct Configuration: Sendable {
        /// Pause between streamed chunks. Default 20 ms.
        public var chunkDelay: Duration = .milliseconds(20)
        /// Pause used by the `slow` model. Default 5 s.
        public var slowDelay: Duration = .seconds(5)
        /// When set, requests must carry `Authorization: Bearer <apiKey>` (401 otherwise).
        public var apiKey: String?
        /// When true, every chat and completion request is accepted and never answered (until
        /// the client goes away or ``stallDuration`` passes): a replica that hangs.
        public var stall = false
        /// How long a stall lasts: `stall` above, and the `stall-stream` model's pause.
        public var stallDuration: Duration = .seconds(30)
        /// How many 4 KiB chunks `/v1/audio/speech` sends, and the pause between them.
        public var speechChunks = 6
        public var speechChunkDelay: Duration = .milliseconds(200)

        public init() {}
    }

    /// What the fake has seen, for assertions.
    public struct Observations: Sendable {
        /// Requests received per path.
        public var requests: [String: Int] = [:]
        /// The last request body, decoded.
        public var lastBody: JSONValue?
        /// The last JSON request body (chat, completions, embeddings, Messages, Responses) as
        /// its bytes arrived.
        public var lastRawBody: String?
        /// The last `Authorization` header.
        public var lastAuthorization: String?
        /// The last `x-api-key` and `anthropic-version` headers (Messages requests).
        public var lastAPIKey: String?
        public var lastAnthropicVersion: String?
        /// Requests whose client went away before the fake finished answering.
        public var cancelled = 0
        /// Requests answered completely.
        public var completed = 0
    }

    public let configuration: Configuration
    let state = Mutex(Observations())
    /// The responses the fake stored, by id: how deep in a `previous_response_id` chain each is.
    let responsesStore = Mutex([String: Int]())

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// A snapshot of what the fake has seen.
    public var observations: Observations { state.withLock { $0 } }

    /// Runs the fake on `127.0.0.1` at a free port for the duration of `body`, which gets the
    /// base URL (`http://127.0.0.1:PORT/v1`).
    public func withRunning<T: Sendable>(port: Int = 0, _ body: @Sendable (String) async throws -> T) async throws -> T {
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = makeApplication(port: port) { port in portContinuation.yield(port) }
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "fake-upstream")))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serviceGroup.run() }
            var iterator = portStream.makeAsyncIterator()
            guard let boundPort = await iterator.next() else { throw CancellationError() }
            do {
                let result = try await body("http://127.0.0.1:\(boundPort)/v1")
                await serviceGroup.triggerGracefulShutdown()
                group.cancelAll()
                return result
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                group.cancelAll()
                throw error
            }
        }
    }

    /// The fake as a Hummingbird application (for the `lisa-fake-upstream` executable).
    public func makeApplication(
        host: String = "127.0.0.1", port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }
    ) -> some ApplicationProtocol {
        var logger = Logger(label: "fake-upstream")
        logger.logLevel = .warning
        return Application(
            router: makeRouter(),
            server: .lisaHTTP1(),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    func makeRouter() -> Router<LISARequestContext> {
        let router = Router(context: LISARequestContext.self)
        router.get("/health") { _, _ in "OK" }
        router.get("/v1/models") { _, _ in
            try Self.json(["object": "list", "data": [["id": "echo", "object": "model", "created": 0, "owned_by": "fake"]]])
        }
        router.post("/v1/chat/completions") { request, context in try await self.handle(request, context: context, kind: .chat) }
        router.post("/v1/completions") { request, context in try await self.handle(request, context: context, kind: .completion) }
        router.post("/v1/embeddings") { request, context in try await self.handle(request, context: context, kind: .embedding) }
        addAnthropicRoutes(to: router)
        addResponsesRoutes(to: router)
        addOtherRoutes(to: router)
        router.post("/v1/redirected") { request, _ in
            self.state.withLock { $0.requests[request.uri.path, default: 0] += 1 }
            return try Self.json(["redirected": true])
        }
        return router
    }

    private enum Kind { case chat, completion, embedding }

    private func handle(_ request: Request, context: LISARequestContext, kind: Kind) async throws -> Response {
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
        let model = body["model"]?.stringValue ?? ""
        switch model {
        case "fail-500": return try Self.error(status: 500, message: "The fake upstream failed.", type: "server_error")
        case "fail-503": return try Self.error(status: 503, message: "The fake upstream is overloaded.", type: "server_error")
        case "fail-400":
            return try Self.error(status: 400, message: "This model's maximum context length is 8 tokens.", type: "invalid_request_error")
        case "redirect":
            return Response(status: .temporaryRedirect, headers: [.location: "/v1/redirected"])
        case "html-200":
            return Response(
                status: .ok, headers: [.contentType: "text/html"],
                body: .init(byteBuffer: ByteBuffer(string: "<html><script>alert(document.cookie)</script></html>"))
            )
        case "fail-429":
            var response = try Self.error(status: 429, message: "Rate limit reached.", type: "rate_limit_error")
            response.headers[.retryAfter] = "7"
            return response
        default: break
        }
        let stream = body["stream"] == .bool(true)
        if configuration.stall {
            let duration = configuration.stallDuration
            do {
                try await context.cancellingWhenClientLeaves { try await Task.sleep(for: duration) }
            } catch {
                state.withLock { $0.cancelled += 1 }
                throw error
            }
        }
        if model == "slow" && !stream {
            // Sleep while watching the connection, so a client that goes away is noticed.
            do {
                let delay = configuration.slowDelay
                try await context.cancellingWhenClientLeaves {
                    try await Task.sleep(for: delay)
                }
            } catch {
                state.withLock { $0.cancelled += 1 }
                throw error
            }
        }
        var text = Self.replyText(for: body, kind: kind)
        let toolCall = kind == .chat ? Self.toolCall(for: body) : nil
        var finish = toolCall == nil ? "stop" : "tool_calls"
        if body["max_tokens"] == .integer(1), toolCall == nil {
            text = String(text.split(separator: " ").first ?? "")
            finish = "length"
        }
        let reasoning = model == "think" ? "thinking about \(text)" : nil
        switch kind {
        case .embedding:
            defer { state.withLock { $0.completed += 1 } }
            return try Self.json(Self.embeddingResponse(for: body))
        case .chat, .completion:
            if stream {
                return streamingResponse(
                    text: toolCall == nil ? text : "", model: model, kind: kind, body: body, finish: finish, toolCall: toolCall, reasoning: reasoning
                )
            }
            defer { state.withLock { $0.completed += 1 } }
            var answer = Self.completionResponse(text: text, model: model, kind: kind)
            if case .object(var object) = answer, kind == .chat, case .array(var choices) = object["choices"] ?? .null,
                case .object(var choice) = choices[0], case .object(var message) = choice["message"] ?? .null
            {
                if let toolCall {
                    message["content"] = nil
                    message["tool_calls"] = [
                        [
                            "id": .string(toolCall.id), "type": "function",
                            "function": ["name": .string(toolCall.name), "arguments": .string(toolCall.arguments)],
                        ]
                    ]
                }
                if let reasoning { message["reasoning_content"] = .string(reasoning) }
                choice["message"] = .object(message)
                choice["finish_reason"] = .string(finish)
                choices[0] = .object(choice)
                object["choices"] = .array(choices)
                answer = .object(object)
            }
            return try Self.json(answer)
        }
    }

    private func streamingResponse(
        text: String, model: String, kind: Kind, body: JSONValue, finish: String = "stop",
        toolCall: (id: String, name: String, arguments: String)? = nil, reasoning: String? = nil
    ) -> Response {
        let words = text.split(separator: " ").map(String.init)
        let includeUsage = body["stream_options"]?["include_usage"] == .bool(true)
        let delay = model == "slow" ? configuration.slowDelay / 10 : configuration.chunkDelay
        let id = "chatcmpl-fake\(Int.random(in: 1000...9999))"
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                // The model `burst` sends its whole stream in one write, as a fast model's
                // chunks arrive together: what a relay costs per event, not per read.
                let burst = model == "burst"
                var pending = ByteBuffer()
                func send(_ buffer: ByteBuffer) async throws {
                    if burst {
                        pending.writeImmutableBuffer(buffer)
                    } else {
                        try await writer.write(buffer)
                    }
                }
                do {
                    func chatChunk(_ delta: JSONValue) -> JSONValue {
                        [
                            "id": .string(id), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": .string(model),
                            "choices": [["index": 0, "finish_reason": nil, "delta": delta]],
                        ]
                    }
                    if let reasoning {
                        try await send(Self.event(chatChunk(["role": "assistant", "reasoning_content": .string(reasoning)])))
                    }
                    if let toolCall {
                        let half = toolCall.arguments.index(toolCall.arguments.startIndex, offsetBy: toolCall.arguments.count / 2)
                        try await send(
                            Self.event(
                                chatChunk([
                                    "role": "assistant",
                                    "tool_calls": [
                                        [
                                            "index": 0, "id": .string(toolCall.id), "type": "function",
                                            "function": ["name": .string(toolCall.name), "arguments": ""],
                                        ]
                                    ],
                                ]))
                        )
                        for piece in [toolCall.arguments[..<half], toolCall.arguments[half...]] {
                            if !burst { try await Task.sleep(for: delay) }
                            try await send(
                                Self.event(chatChunk(["tool_calls": [["index": 0, "function": ["arguments": .string(String(piece))]]]])))
                        }
                    }
                    for (index, word) in words.enumerated() {
                        let piece = index == 0 ? word : " " + word
                        let chunk: JSONValue =
                            kind == .chat
                            ? [
                                "id": .string(id), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": .string(model),
                                "choices": [
                                    [
                                        "index": 0, "finish_reason": nil,
                                        "delta": index == 0 ? ["role": "assistant", "content": .string(piece)] : ["content": .string(piece)],
                                    ]
                                ],
                            ]
                            : [
                                "id": .string(id), "object": "text_completion", "created": 1_700_000_000, "model": .string(model),
                                "choices": [["index": 0, "text": .string(piece), "finish_reason": nil, "logprobs": nil]],
                            ]
                        try await send(Self.event(chunk))
                        if model == "break-stream" && index == 1 {
                            throw FakeUpstreamError.droppedConnection
                        }
                        if model == "stall-stream" && index == 1 {
                            try await Task.sleep(for: self.configuration.stallDuration)
                        }
                        if !burst { try await Task.sleep(for: delay) }
                    }
                    let finish: JSONValue =
                        kind == .chat
                        ? [
                            "id": .string(id), "object": "chat.completion.chunk", "created": 1_700_000_000, "model": .string(model),
                            "choices": [["index": 0, "delta": [:], "finish_reason": .string(finish)]],
                        ]
                        : [
                            "id": .string(id), "object": "text_completion", "created": 1_700_000_000, "model": .string(model),
                            "choices": [["index": 0, "text": "", "finish_reason": "stop", "logprobs": nil]],
                        ]
                    try await send(Self.event(finish))
                    if includeUsage {
                        let usage: JSONValue = [
                            "id": .string(id), "object": kind == .chat ? "chat.completion.chunk" : "text_completion",
                            "created": 1_700_000_000, "model": .string(model), "choices": [],
                            "usage": [
                                "prompt_tokens": 5, "completion_tokens": .integer(Int64(words.count)),
                                "total_tokens": .integer(Int64(5 + words.count)),
                            ],
                        ]
                        try await send(Self.event(usage))
                    }
                    if model != "no-done" {
                        try await send(ByteBuffer(string: "data: [DONE]\n\n"))
                    }
                    if burst { try await writer.write(pending) }
                    try await writer.finish(nil)
                    self.state.withLock { $0.completed += 1 }
                } catch FakeUpstreamError.droppedConnection {
                    throw FakeUpstreamError.droppedConnection
                } catch {
                    self.state.withLock { $0.cancelled += 1 }
                    throw error
                }
            }
        )
    }

    /// The tool call a chat request with tools gets (see the type's documentation).
    private static func toolCall(for body: JSONValue) -> (id: String, name: String, arguments: String)? {
        guard case .array(let tools) = body["tools"] ?? .null, let first = tools.first, body["tool_choice"] != "none",
            case .array(let messages) = body["messages"] ?? .null, messages.last?["role"] == "user"
        else { return nil }
        let name = body["tool_choice"]?["function"]?["name"]?.stringValue ?? first["function"]?["name"]?.stringValue ?? "tool"
        let text = replyText(for: body, kind: .chat).dropFirst("echo: ".count)
        let arguments = (try? String(decoding: JSONEncoder().encode(JSONValue.object(["text": .string(String(text))])), as: UTF8.self)) ?? "{}"
        return ("call_fake\(Int.random(in: 1000...9999))", name, arguments)
    }

    private static func replyText(for body: JSONValue, kind: Kind) -> String {
        switch kind {
        case .chat:
            guard case .array(let messages) = body["messages"] ?? .null else { return "echo:" }
            if body["model"] == "count-messages" {
                return "messages: \(messages.count) roles: \(messages.compactMap { $0["role"]?.stringValue }.joined(separator: ","))"
            }
            if let last = messages.last, last["role"] == "tool" {
                return "tool said: \(last["content"]?.stringValue ?? "")"
            }
            let last = messages.last { $0["role"] == "user" }
            let content: String
            switch last?["content"] {
            case .string(let text): content = text
            case .array(let parts): content = parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
            default: content = ""
            }
            return "echo: \(content)"
        case .completion:
            switch body["prompt"] {
            case .string(let text): return "echo: \(text)"
            case .array(let items): return "echo: \(items.compactMap(\.stringValue).joined(separator: " "))"
            default: return "echo:"
            }
        case .embedding:
            return ""
        }
    }

    private static func completionResponse(text: String, model: String, kind: Kind) -> JSONValue {
        let tokens = Int64(text.split(separator: " ").count)
        let usage: JSONValue = ["prompt_tokens": 5, "completion_tokens": .integer(tokens), "total_tokens": .integer(5 + tokens)]
        switch kind {
        case .chat:
            return [
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": .string(model),
                "choices": [["index": 0, "message": ["role": "assistant", "content": .string(text)], "finish_reason": "stop", "logprobs": nil]],
                "usage": usage, "system_fingerprint": "fake",
            ]
        default:
            return [
                "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": .string(model),
                "choices": [["index": 0, "text": .string(text), "finish_reason": "stop", "logprobs": nil]], "usage": usage,
            ]
        }
    }

    /// A deterministic embedding of `text`: a normalized vector derived from its bytes.
    public static func embedding(of text: String, dimensions: Int = 8) -> [Float] {
        var vector = [Float](repeating: 0, count: dimensions)
        for (index, byte) in text.utf8.enumerated() {
            vector[(index + Int(byte)) % dimensions] += Float(byte) / 255
        }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }

    private static func embeddingResponse(for body: JSONValue) -> JSONValue {
        let inputs: [String]
        switch body["input"] {
        case .string(let text): inputs = [text]
        case .array(let items): inputs = items.map { $0.stringValue ?? "\($0)" }
        default: inputs = []
        }
        let dimensions: Int = if case .integer(let value) = body["dimensions"] ?? .null { Int(value) } else { 8 }
        let base64 = body["encoding_format"] == "base64"
        let data: [JSONValue] = inputs.enumerated().map { index, text in
            let vector = embedding(of: text, dimensions: dimensions)
            let encoded: JSONValue
            if base64 {
                var bytes = Data()
                for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                encoded = .string(bytes.base64EncodedString())
            } else {
                encoded = .array(vector.map { .number(Double($0)) })
            }
            return ["object": "embedding", "index": .integer(Int64(index)), "embedding": encoded]
        }
        let tokens = Int64(inputs.reduce(0) { $0 + $1.split(separator: " ").count })
        return [
            "object": "list", "data": .array(data), "model": body["model"] ?? "fake",
            "usage": ["prompt_tokens": .integer(tokens), "total_tokens": .integer(tokens)],
        ]
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    private static func event(_ value: JSONValue) throws -> ByteBuffer {
        var buffer = ByteBuffer(string: "data: ")
        buffer.writeBytes(try Self.encoder.encode(value))
        buffer.writeString("\n\n")
        return buffer
    }

    static func json(_ value: JSONValue) throws -> Response {
        let data = try Self.encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: data))
    }

    static func error(status: Int, message: String, type: String) throws -> Response {
        let body = ErrorResponse(error: .init(message: message, type: type, param: nil, code: nil))
        let data = try Self.encoder.encodeAsByteBuffer(body, allocator: ByteBufferAllocator())
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: data))
    }
}

enum FakeUpstreamError: Error {
    case droppedConnection
}
