import Foundation
public import NIOCore
import NIOFoundationCompat

extension AnthropicDialect {
    /// `POST /v1/messages`: the body in Anthropic's shape; the answer in it too. The model is
    /// resolved once, here. To a model whose upstream speaks Messages (`upstreamAPI:
    /// anthropic`) the client's bytes pass through untouched but for `model`; to any other the
    /// translated request goes on the chat path and the answer, buffered or event by event,
    /// is translated back. A request with `lisa.rag` is grounded on the chat path first.
    public func serve(_ body: ByteBuffer, context: InferenceContext, runtime: LISARuntime) async throws -> GatewayResponse {
        var context = context
        context.dialect = .messages
        let (request, chat) = try await LISARuntime.translatingOffEventLoops(ifLarge: body.readableBytes) {
            let request = try DialectJSON.decode(body)
            return (request, try Self.chatRequest(from: request))
        }
        let model = chat["model"]?.stringValue ?? ""
        let answer: GatewayResponse
        if request["lisa"] == nil {
            let resolved = try runtime.gateway.textModel(model, for: context.principal)
            if resolved.definition.upstreamAPI == .anthropic {
                return try await runtime.gateway.messages(body: body, model: resolved, stream: request["stream"] == .bool(true), context: context)
            }
            answer = try await runtime.gateway.chatCompletions(translated: chat, model: resolved, context: context)
        } else {
            answer = try await runtime.forward(.chatCompletions, body: DialectJSON.encode(chat), context: context)
        }
        switch answer.body {
        case .buffer(let buffer):
            let translated = try await Gateway.offEventLoops(ifLarge: buffer.readableBytes) { () throws(LISAError) -> ByteBuffer in
                DialectJSON.encode(try Self.message(fromChat: try LISARuntime.upstreamJSON(buffer), model: model))
            }
            // The translation holds the answer's memory charge until it is written.
            var message = GatewayResponse(contentType: "application/json", body: .buffer(translated))
            message.memoryCharge = answer.memoryCharge
            return message
        case .eventStream(let relay):
            return GatewayResponse(
                contentType: "text/event-stream", body: .eventStream(relay.translating(with: AnthropicStreamTranslator(model: model))))
        case .bytes:
            throw LISAError.badGateway("The upstream answered a chat request with a byte stream.")
        }
    }

    /// Anthropic's envelope (``errorBody(_:requestID:)``) with Anthropic's statuses: 529
    /// `overloaded_error` for an unavailable upstream, 500 `api_error` for a failed one.
    public func errorAnswer(for error: LISAError, requestID: String?) -> DialectErrorAnswer {
        DialectErrorAnswer(
            status: errorStatus(for: error), body: DialectJSON.encode(Self.errorBody(error, requestID: requestID)), retryAfter: error.retryAfter,
            asksForCredentials: error.code == .unauthenticated
        )
    }

    public func errorStatus(for error: LISAError) -> Int {
        switch error.code {
        case .upstreamUnavailable, .notReady: 529
        case .upstreamFailed, .cancelled, .internalError: 500
        default: ChatCompletionsDialect.status(for: error)
        }
    }

    public func errorEvent(for error: LISAError) -> ServerSentEvent {
        DialectJSON.event("error", Self.errorBody(error))
    }
}
