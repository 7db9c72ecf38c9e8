import Foundation
import Logging
public import NIOCore
import NIOFoundationCompat
import Synchronization

extension ResponsesDialect {
    /// `POST /v1/responses`. A stored response (`store`, the default) belongs to the caller,
    /// lives in the state store (every replica reads it) and continues with
    /// `previous_response_id`; a streamed one is stored before `response.completed` is sent.
    /// The model is resolved once, here: to a model whose upstream speaks Responses the
    /// client's bytes pass through; to any other the request is translated onto the chat path.
    public func serve(_ body: ByteBuffer, context: InferenceContext, runtime: LISARuntime) async throws -> GatewayResponse {
        var context = context
        context.dialect = .responses
        let request = try await LISARuntime.translatingOffEventLoops(ifLarge: body.readableBytes) { try DialectJSON.decode(body) }
        var history: [JSONValue] = []
        var continuesUpstream = true
        if let previous = try Self.previousResponseID(in: request) {
            guard let stored = try await runtime.storedResponse(id: previous, for: context.principal) else {
                throw LISAError.notFound("Previous response with id '\(previous)' not found.", reason: "previous_response_not_found")
            }
            history = try await offEventLoops { try stored.messages() }
            continuesUpstream = stored.passedThrough == true
        }
        // A grounded request (`lisa.rag`) is resolved on the chat path, after retrieval.
        var resolved: RoutableModel?
        if request["lisa"] == nil, case .string(let modelID)? = request["model"] {
            let model = try runtime.gateway.textModel(modelID, for: context.principal)
            if continuesUpstream, model.definition.upstreamAPI == .openAIResponses {
                return try await passThrough(request, body: body, history: history, model: model, context: context, runtime: runtime)
            }
            resolved = model
        }
        let conversation = history
        // The request and the conversation it continues, translated and encoded: large ones off the event loops.
        let (translation, chatBody) = try await LISARuntime.translatingOffEventLoops(ifLarge: body.readableBytes + (history.isEmpty ? 0 : 256 * 1024))
        {
            let translation = try Self.translate(request, history: conversation)
            return (translation, DialectJSON.encode(translation.chat))
        }
        if translation.store { try await LISARuntime.checkStorable(translation, history: history, quotas: runtime.configuration.quotas) }
        let id = DialectJSON.id("resp_")
        let created = Int64(Date().timeIntervalSince1970)
        let owner = context.principal.username
        let answer =
            if let resolved {
                try await runtime.gateway.chatCompletions(translated: translation.chat, encoded: chatBody, model: resolved, context: context)
            } else {
                try await runtime.forward(.chatCompletions, body: chatBody, context: context)
            }
        let store = runtime.store.records
        let quotas = runtime.configuration.quotas
        switch answer.body {
        case .buffer(let buffer):
            let response = try await Gateway.offEventLoops(ifLarge: buffer.readableBytes) { () throws(LISAError) -> JSONValue in
                try Self.response(fromChat: try LISARuntime.upstreamJSON(buffer), id: id, createdAt: created, translation: translation)
            }
            if translation.store {
                try await LISARuntime.save(response, translation: translation, history: history, owner: owner, in: store, quotas: quotas)
            }
            // The translation holds the answer's memory charge until it is written.
            var translated = GatewayResponse(contentType: "application/json", body: .buffer(DialectJSON.encode(response)))
            translated.memoryCharge = answer.memoryCharge
            return translated
        case .eventStream(let relay):
            let saved = Mutex(false)
            let logger = context.logger
            // Only a stored response needs to see the translator after each chunk.
            var storeFinal: (@Sendable (ResponsesStreamTranslator) async -> Void)?
            if translation.store {
                storeFinal = { translator in
                    guard let final = translator.final,
                        !saved.withLock({
                            let was = $0; $0 = true; return was
                        })
                    else { return }
                    do {
                        try await LISARuntime.save(final, translation: translation, history: conversation, owner: owner, in: store, quotas: quotas)
                    } catch {
                        logger.error("storing a streamed response failed", metadata: ["lisa.response_id": "\(id)", "lisa.error": "\(error)"])
                    }
                }
            }
            let translated = relay.translating(
                with: ResponsesStreamTranslator(id: id, createdAt: created, translation: translation), afterEvent: storeFinal)
            return GatewayResponse(contentType: "text/event-stream", body: .eventStream(translated))

        case .bytes:
            throw LISAError.badGateway("The upstream answered a chat request with a byte stream.")
        }
    }

    /// A Responses request to a model whose upstream speaks Responses: the bytes go through
    /// (`previous_response_id` too, once LISA has checked the caller owns it), and LISA
    /// keeps its own record of a stored answer, so retrieval, input items, deletion and
    /// ownership work from every replica as for translated responses.
    private func passThrough(
        _ request: JSONValue, body: ByteBuffer, history: [JSONValue], model: RoutableModel, context: InferenceContext, runtime: LISARuntime
    ) async throws -> GatewayResponse {
        // What LISA cannot check or follow is refused even here: a conversation id may be
        // anyone's under the upstream's one key, and a background response would be polled
        // through LISA's stored copy, which never changes.
        if request["conversation"] != nil, request["conversation"] != .null {
            throw LISAError.invalidRequest(
                "conversation is not supported: LISA cannot check who owns an upstream conversation; use previous_response_id.",
                param: "conversation", reason: "unsupported_parameter"
            )
        }
        if request["background"] == .bool(true) {
            throw LISAError.invalidRequest(
                "background is not supported: LISA answers while the request is open (stream it for long answers).", param: "background",
                reason: "unsupported_parameter"
            )
        }
        let store = request["store"] != .bool(false)
        // The stored record's items and conversation, as the translated path keeps them; a
        // request only the upstream understands (built-in tools) is stored without them.
        let translation = try? Self.translate(request, history: history)
        let answer = try await runtime.gateway.responses(body: body, model: model, stream: request["stream"] == .bool(true), context: context)
        guard store else { return answer }
        let owner = context.principal.username
        let stateStore = runtime.store.records
        let quotas = runtime.configuration.quotas
        switch answer.body {
        case .buffer(let buffer):
            let response = try LISARuntime.upstreamJSON(buffer)
            try await LISARuntime.savePassedThrough(
                response, translation: translation, history: history, owner: owner, in: stateStore, quotas: quotas)
            return answer
        case .eventStream(let relay):
            let saved = Mutex(false)
            let logger = context.logger
            let observed = relay.translating(with: ResponsesPassThroughObserver()) { observer in
                guard let final = observer.final,
                    !saved.withLock({
                        let was = $0; $0 = true; return was
                    })
                else { return }
                do {
                    try await LISARuntime.savePassedThrough(
                        final, translation: translation, history: history, owner: owner, in: stateStore, quotas: quotas)
                } catch {
                    logger.error("storing a streamed response failed", metadata: ["lisa.error": "\(error)"])
                }
            }
            return GatewayResponse(contentType: answer.contentType, body: .eventStream(observed))
        case .bytes:
            throw LISAError.badGateway("The upstream answered a Responses request with a byte stream.")
        }
    }

    /// OpenAI's envelope and statuses: Responses is an OpenAI API.
    public func errorAnswer(for error: LISAError, requestID: String?) -> DialectErrorAnswer {
        ChatCompletionsDialect().errorAnswer(for: error, requestID: requestID)
    }

    public func errorStatus(for error: LISAError) -> Int {
        ChatCompletionsDialect.status(for: error)
    }

    /// `event: error` with `{"type": "error", "code", "message", "param", "sequence_number"}`.
    public func errorEvent(for error: LISAError) -> ServerSentEvent {
        let body: JSONValue = [
            "type": "error", "code": .string(error.code == .upstreamTimeout ? "timeout" : "server_error"), "message": .string(error.message),
            "param": .null, "sequence_number": 0,
        ]
        return DialectJSON.event("error", body)
    }
}
