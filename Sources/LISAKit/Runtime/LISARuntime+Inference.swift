import Foundation
public import Logging
public import NIOCore
import NIOFoundationCompat
import Synchronization

/// Calling models in process: the same routing, retries, fallbacks, access checks, limits of
/// the upstream and metrics as a request through the server, with typed values and no HTTP
/// server. The bytes go through the gateway's byte path, so both are one code path.
extension LISARuntime {
    /// The server's byte path: `body` goes upstream exactly as the client sent it (a chat
    /// request with `lisa.rag` is grounded first: retrieval, a context message, and the
    /// sources in the answer's `lisa` member or, streaming, in an event before `[DONE]`).
    /// Every binding calls this; the typed calls below are built on it.
    ///
    /// - Throws: ``LISAError``.
    public func forward(_ operation: UpstreamOperation, body: ByteBuffer, context: InferenceContext) async throws -> GatewayResponse {
        switch operation {
        case .completions:
            return try await gateway.completions(body: body, context: context)
        case .embeddings:
            return try await gateway.embeddings(body: body, context: context)
        case .chatCompletions:
            guard let grounded = try await rag.ground(body, for: context.principal) else {
                return try await gateway.chatCompletions(body: body, context: context)
            }
            var answer = try await gateway.chatCompletions(body: grounded.body, context: context)
            switch answer.body {
            case .buffer(let buffer):
                answer.body = .buffer(RAGService.attach(grounded.sources, to: buffer))
            case .eventStream(let relay):
                answer.body = .eventStream(relay.injecting(beforeDone: RAGService.sourcesEvent(grounded.sources, model: grounded.model)))
            case .bytes:
                break
            }
            return answer
        case .messages:
            return try await messages(body: body, context: context)
        default:
            throw LISAError.invalidRequest(
                "forward(\(operation)) is not an inbound operation: call media(_:body:contentType:context:) for images, audio, moderations and rerank."
            )
        }
    }

    /// The OpenAI routes beyond text (`/v1/images/*`, `/v1/audio/*`, `/v1/moderations`,
    /// `/v1/rerank`): ``Gateway/media(_:body:contentType:context:)`` with the same access
    /// control, routing and metrics as chat.
    public func media(_ route: MediaRoute, body: ByteBuffer, contentType: String?, context: InferenceContext) async throws -> GatewayResponse {
        try await gateway.media(route, body: body, contentType: contentType, context: context)
    }

    /// A chat completion for `principal` (the admin key's principal by default). A request
    /// with `lisa.rag` is grounded first; the sources come back in the answer's `lisa` member
    /// (`additionalFields["lisa"]`).
    ///
    /// - Throws: ``LISAError`` (unknown model, access, upstream failures).
    public func chatCompletion(_ request: ChatCompletionRequest, as principal: Principal = .admin, logger: Logger? = nil) async throws
        -> ChatCompletion
    {
        var request = request
        request.stream = false
        let answer = try await forward(.chatCompletions, body: try Self.encode(request), context: context(principal, logger))
        guard case .buffer(let buffer) = answer.body else { throw LISAError.badGateway("The upstream streamed an answer that was not asked for.") }
        return try Self.decodeAnswer(ChatCompletion.self, from: buffer)
    }

    /// A streamed chat completion: chunks as the upstream sends them, ending after its
    /// `[DONE]`; an upstream that breaks mid-stream ends the sequence with a ``LISAError``.
    /// Cancelling the consuming task cancels the upstream request.
    public func streamChatCompletion(_ request: ChatCompletionRequest, as principal: Principal = .admin, logger: Logger? = nil)
        -> AsyncThrowingStream<ChatCompletionChunk, any Error>
    {
        let (stream, continuation) = AsyncThrowingStream<ChatCompletionChunk, any Error>.makeStream()
        let task = Task {
            do {
                var request = request
                request.stream = true
                let answer = try await forward(.chatCompletions, body: try Self.encode(request), context: context(principal, logger))
                guard case .eventStream(let relay) = answer.body else {
                    throw LISAError.badGateway("The upstream answered a stream request without a stream.")
                }
                let parser = Mutex(ServerSentEventParser())
                let done = Mutex(false)
                try await relay.pump { chunk in
                    let events = try parser.withLock { try $0.feed(chunk) }
                    for parsed in events {
                        if parsed.event.isDone {
                            done.withLock { $0 = true }
                        } else if parsed.event.event == "error" {
                            let message = (try? JSONDecoder().decode(ErrorResponse.self, from: Data(parsed.event.data.utf8)))?.error.message
                            throw LISAError.badGateway(message ?? "The upstream failed during the stream.")
                        } else {
                            continuation.yield(try Self.decodeAnswer(ChatCompletionChunk.self, from: ByteBuffer(string: parsed.event.data)))
                        }
                    }
                }
                guard done.withLock({ $0 }) else { throw LISAError.badGateway("The upstream ended the stream before it was complete.") }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Embeddings for `principal`.
    public func embeddings(_ request: EmbeddingRequest, as principal: Principal = .admin, logger: Logger? = nil) async throws
        -> EmbeddingResponse
    {
        let answer = try await forward(.embeddings, body: try Self.encode(request), context: context(principal, logger))
        guard case .buffer(let buffer) = answer.body else { throw LISAError.badGateway("The embedding model streamed its answer.") }
        return try Self.decodeAnswer(EmbeddingResponse.self, from: buffer)
    }

    /// A text completion (`/v1/completions`) for `principal`.
    public func completion(_ request: CompletionRequest, as principal: Principal = .admin, logger: Logger? = nil) async throws
        -> Completion
    {
        var request = request
        request.stream = false
        let answer = try await forward(.completions, body: try Self.encode(request), context: context(principal, logger))
        guard case .buffer(let buffer) = answer.body else { throw LISAError.badGateway("The upstream streamed an answer that was not asked for.") }
        return try Self.decodeAnswer(Completion.self, from: buffer)
    }

    private func context(_ principal: Principal, _ logger: Logger?) -> InferenceContext {
        InferenceContext(
            requestID: "lisa-\(UUID().uuidString.prefix(12).lowercased())", principal: principal,
            logger: logger ?? Logger(label: "lisa.runtime")
        )
    }

    private static func encode(_ request: some Encodable) throws -> ByteBuffer {
        do {
            return try JSONEncoder().encodeAsByteBuffer(request, allocator: ByteBufferAllocator())
        } catch {
            throw LISAError.invalidRequest("The request cannot be encoded as JSON: \(error)")
        }
    }

    private static func decodeAnswer<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: buffer)
        } catch {
            throw LISAError.badGateway("The upstream's answer is not a valid \(type): \(error)")
        }
    }
}
