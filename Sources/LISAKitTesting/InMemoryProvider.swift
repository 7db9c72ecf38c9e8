import Foundation
public import LISAKit
public import Logging
public import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// An ``InferenceProvider`` that answers in process, with no sockets: each call goes to a
/// handler. Gateway tests that need no wire use it (routing, retries, fallbacks, access
/// checks, metrics), fast and deterministic.
///
/// ```swift
/// let gateway = Gateway(registry: registry, store: store, provider: InMemoryProvider.echo, logger: logger)
/// ```
public struct InMemoryProvider: InferenceProvider {
    /// One call the gateway made.
    public struct Call: Sendable {
        public var operation: UpstreamOperation
        public var body: ByteBuffer
        public var endpoint: EndpointDefinition
        public var stream: Bool
        /// `application/json`, or a form's media type.
        public var contentType = "application/json"
        /// The client headers the gateway carried on.
        public var headers: [(name: String, value: String)] = []

        /// The body decoded (the tests' view of what the upstream received).
        public var json: JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: body) }
    }

    public typealias Handler = @Sendable (Call) async throws(UpstreamFailure) -> UpstreamResponse

    public var timeouts = UpstreamTimeouts()
    public var defaultTLS: UpstreamTLS?
    private let handler: Handler

    public init(handler: @escaping Handler) {
        self.handler = handler
    }

    /// Answers `request` through the handler, within its first-byte limit.
    public func send(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse {
        let call = Call(
            operation: request.operation, body: request.body, endpoint: request.endpoint, stream: request.stream, contentType: request.contentType,
            headers: request.headers
        )
        return try await FirstByteTimer.run(within: request.firstByteTimeout) { () async throws(UpstreamFailure) in try await handler(call) }
    }

    /// What this provider's handler answers `call` (a handler that wraps another provider's).
    public func answer(_ call: Call) async throws(UpstreamFailure) -> UpstreamResponse {
        try await handler(call)
    }

    /// A JSON answer.
    public static func json(_ value: JSONValue, status: Int = 200) -> UpstreamResponse {
        let bytes = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        return UpstreamResponse(
            status: status, headers: ["Content-Type": "application/json"], body: UpstreamBody([ByteBuffer(bytes: bytes)])
        )
    }

    /// A server-sent event stream: one `data:` event per value, then `[DONE]`.
    public static func events(_ values: [JSONValue]) -> UpstreamResponse {
        var buffers = values.map { value in
            ByteBuffer(string: "data: \(String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self))\n\n")
        }
        buffers.append(ByteBuffer(string: "data: [DONE]\n\n"))
        return UpstreamResponse(status: 200, headers: ["Content-Type": "text/event-stream"], body: UpstreamBody(buffers))
    }

    /// Answers like ``FakeUpstream``'s default model: `"echo: <last user message>"`, streamed
    /// word by word when asked; embeddings are 4-dimensional vectors of the inputs' lengths.
    public static let echo = InMemoryProvider { call in
        let body = call.json
        let model = body?["model"]?.stringValue ?? ""
        switch call.operation {
        case .embeddings:
            let inputs: [String] =
                if case .array(let items) = body?["input"] ?? .null { items.compactMap(\.stringValue) } else { [body?["input"]?.stringValue ?? ""] }
            let data: [JSONValue] = inputs.enumerated().map { index, text in
                ["object": "embedding", "index": .integer(Int64(index)), "embedding": [.number(Double(text.count)), 1, 0, 0]]
            }
            return json(["object": "list", "model": .string(model), "data": .array(data)])
        case .chatCompletions, .completions:
            var last = ""
            if case .array(let messages) = body?["messages"] ?? .null {
                last = messages.last { $0["role"] == "user" }?["content"]?.stringValue ?? ""
            } else {
                last = body?["prompt"]?.stringValue ?? ""
            }
            let text = "echo: \(last)"
            if call.stream {
                let words = text.split(separator: " ").enumerated().map { index, word in
                    JSONValue.object([
                        "id": "chatcmpl-memory", "object": "chat.completion.chunk", "created": 0, "model": .string(model),
                        "choices": [["index": 0, "delta": ["content": .string(index == 0 ? String(word) : " \(word)")], "finish_reason": nil]],
                    ])
                }
                return events(words)
            }
            if call.operation == .completions {
                return json([
                    "id": "cmpl-memory", "object": "text_completion", "created": 0, "model": .string(model),
                    "choices": [["index": 0, "text": .string(text), "finish_reason": "stop"]],
                    "usage": ["prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3],
                ])
            }
            return json([
                "id": "chatcmpl-memory", "object": "chat.completion", "created": 0, "model": .string(model),
                "choices": [["index": 0, "message": ["role": "assistant", "content": .string(text)], "finish_reason": "stop"]],
                "usage": ["prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3],
            ])
        default:
            return UpstreamResponse(
                status: 404, headers: ["Content-Type": "application/json"],
                body: UpstreamBody([ByteBuffer(string: #"{"error":{"message":"not served in memory","type":"not_found"}}"#)])
            )
        }
    }
}
