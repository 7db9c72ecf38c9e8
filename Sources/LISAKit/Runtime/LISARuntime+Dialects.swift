import Foundation
import Logging
public import NIOCore
import NIOFoundationCompat
import Synchronization

/// The Anthropic Messages and OpenAI Responses dialects: each request is translated onto the
/// chat-completions path (``forward(_:body:context:)``), so access control, limits, grounding,
/// fallbacks, retries, timeouts and metrics are the same as for chat completions, and the
/// answer is translated back — buffered or streamed event by event.
extension LISARuntime {
    // MARK: - Anthropic Messages

    /// `POST /v1/messages`: the body in Anthropic's shape; the answer in it too. To a model
    /// whose upstream speaks Messages (`upstreamAPI: anthropic`) the client's bytes pass
    /// through untouched but for `model`; a request with `lisa.rag` is grounded on the chat
    /// path and translated both ways.
    ///
    /// - Throws: ``LISAError`` (the binding answers it in Anthropic's error shape).
    public func messages(body: ByteBuffer, context: InferenceContext) async throws -> GatewayResponse {
        var context = context
        context.operationLabel = context.operationLabel ?? "messages"
        let (request, chat) = try await Self.translatingOffEventLoops(ifLarge: body.readableBytes) {
            let request = try DialectJSON.decode(body)
            return (request, try AnthropicDialect.chatRequest(from: request))
        }
        let model = chat["model"]?.stringValue ?? ""
        if request["lisa"] == nil {
            let resolved = try gateway.textModel(model, for: context.principal)
            if resolved.definition.upstreamAPI == .anthropic {
                return try await gateway.messages(body: body, model: resolved, stream: request["stream"] == .bool(true), context: context)
            }
        }
        let answer = try await forward(.chatCompletions, body: DialectJSON.encode(chat), context: context)
        switch answer.body {
        case .buffer(let buffer):
            let translated = try await Gateway.offEventLoops(ifLarge: buffer.readableBytes) { () throws(LISAError) -> ByteBuffer in
                DialectJSON.encode(try AnthropicDialect.message(fromChat: try Self.upstreamJSON(buffer), model: model))
            }
            // The translation holds the answer's memory charge until it is written.
            var message = GatewayResponse(contentType: "application/json", body: .buffer(translated))
            message.memoryCharge = answer.memoryCharge
            return message
        case .eventStream(let relay):
            return GatewayResponse(contentType: "text/event-stream", body: .eventStream(relay.translating(with: AnthropicStreamTranslator(model: model))))

        case .bytes:
            throw LISAError.badGateway("The upstream answered a chat request with a byte stream.")
        }
    }

    /// `POST /v1/messages/count_tokens`: the input tokens of a Messages request, for a model
    /// the caller may use, by the upstream's own tokenizer where it has one (an Anthropic
    /// upstream's `count_tokens`, vLLM's `/tokenize`), else the documented estimate
    /// (``AnthropicDialect/estimatedInputTokens(chatRequest:)``).
    public func countTokens(body: ByteBuffer, context: InferenceContext) async throws -> Int {
        let request = try DialectJSON.decode(body)
        let chat = try AnthropicDialect.chatRequest(from: request, requireMaxTokens: false)
        let model = try gateway.textModel(chat["model"]?.stringValue ?? "", for: context.principal)
        if let counted = await gateway.upstreamTokenCount(messagesRequest: body, chatRequest: chat, model: model, context: context) {
            return counted
        }
        return AnthropicDialect.estimatedInputTokens(chatRequest: chat)
    }

    // MARK: - OpenAI Responses

    /// `POST /v1/responses`. A stored response (`store`, the default) belongs to the caller,
    /// lives in the state store (every replica reads it) and continues with
    /// `previous_response_id`; a streamed one is stored before `response.completed` is sent.
    public func responses(body: ByteBuffer, context: InferenceContext) async throws -> GatewayResponse {
        var context = context
        context.operationLabel = context.operationLabel ?? "responses"
        let request = try await Self.translatingOffEventLoops(ifLarge: body.readableBytes) { try DialectJSON.decode(body) }
        var history: [JSONValue] = []
        var continuesUpstream = true
        if let previous = try ResponsesDialect.previousResponseID(in: request) {
            guard let stored = try await storedResponse(id: previous, for: context.principal) else {
                throw LISAError.notFound("Previous response with id '\(previous)' not found.", reason: "previous_response_not_found")
            }
            history = try await offEventLoops { try stored.messages() }
            continuesUpstream = stored.passedThrough == true
        }
        if request["lisa"] == nil, continuesUpstream, case .string(let modelID)? = request["model"] {
            let resolved = try gateway.textModel(modelID, for: context.principal)
            if resolved.definition.upstreamAPI == .openAIResponses {
                return try await passThroughResponses(request, body: body, history: history, model: resolved, context: context)
            }
        }
        let conversation = history
        // The request and the conversation it continues, translated and encoded: large ones off the event loops.
        let (translation, chatBody) = try await Self.translatingOffEventLoops(ifLarge: body.readableBytes + (history.isEmpty ? 0 : 256 * 1024)) {
            let translation = try ResponsesDialect.translate(request, history: conversation)
            return (translation, DialectJSON.encode(translation.chat))
        }
        if translation.store { try await Self.checkStorable(translation, history: history, quotas: configuration.quotas) }
        let id = DialectJSON.id("resp_")
        let created = Int64(Date().timeIntervalSince1970)
        let owner = context.principal.username
        let answer = try await forward(.chatCompletions, body: chatBody, context: context)
        let store = self.store
        let quotas = configuration.quotas
        switch answer.body {
        case .buffer(let buffer):
            let response = try await Gateway.offEventLoops(ifLarge: buffer.readableBytes) { () throws(LISAError) -> JSONValue in
                try ResponsesDialect.response(fromChat: try Self.upstreamJSON(buffer), id: id, createdAt: created, translation: translation)
            }
            if translation.store {
                try await Self.save(response, translation: translation, history: history, owner: owner, in: store, quotas: quotas)
            }
            // The translation holds the answer's memory charge until it is written.
            var translated = GatewayResponse(contentType: "application/json", body: .buffer(DialectJSON.encode(response)))
            translated.memoryCharge = answer.memoryCharge
            return translated
        case .eventStream(let relay):
            let saved = Mutex(false)
            let logger = context.logger
            let translated = relay.translating(with: ResponsesStreamTranslator(id: id, createdAt: created, translation: translation)) { translator in
                guard translation.store, let final = translator.final, !saved.withLock({ let was = $0; $0 = true; return was }) else { return }
                do {
                    try await Self.save(final, translation: translation, history: conversation, owner: owner, in: store, quotas: quotas)
                } catch {
                    logger.error("storing a streamed response failed", metadata: ["lisa.response_id": "\(id)", "lisa.error": "\(error)"])
                }
            }
            return GatewayResponse(contentType: "text/event-stream", body: .eventStream(translated))

        case .bytes:
            throw LISAError.badGateway("The upstream answered a chat request with a byte stream.")
        }
    }

    /// A Responses request to a model whose upstream speaks Responses: the bytes go through
    /// (`previous_response_id` too, once LISA has checked the caller owns it), and LISA
    /// keeps its own record of a stored answer, so retrieval, input items, deletion and
    /// ownership work from every replica as for translated responses.
    private func passThroughResponses(
        _ request: JSONValue, body: ByteBuffer, history: [JSONValue], model: RoutableModel, context: InferenceContext
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
        let translation = try? ResponsesDialect.translate(request, history: history)
        let answer = try await gateway.responses(body: body, model: model, stream: request["stream"] == .bool(true), context: context)
        guard store else { return answer }
        let owner = context.principal.username
        let stateStore = self.store
        let quotas = configuration.quotas
        switch answer.body {
        case .buffer(let buffer):
            let response = try Self.upstreamJSON(buffer)
            try await Self.savePassedThrough(response, translation: translation, history: history, owner: owner, in: stateStore, quotas: quotas)
            return answer
        case .eventStream(let relay):
            let saved = Mutex(false)
            let logger = context.logger
            let observed = relay.translating(with: ResponsesPassThroughObserver()) { observer in
                guard let final = observer.final, !saved.withLock({ let was = $0; $0 = true; return was }) else { return }
                do {
                    try await Self.savePassedThrough(final, translation: translation, history: history, owner: owner, in: stateStore, quotas: quotas)
                } catch {
                    logger.error("storing a streamed response failed", metadata: ["lisa.error": "\(error)"])
                }
            }
            return GatewayResponse(contentType: answer.contentType, body: .eventStream(observed))
        case .bytes:
            throw LISAError.badGateway("The upstream answered a Responses request with a byte stream.")
        }
    }

    static func savePassedThrough(
        _ response: JSONValue, translation: ResponsesDialect.Translation?, history: [JSONValue], owner: String, in store: any StateStore,
        quotas: StorageQuotas
    ) async throws {
        guard let id = response["id"]?.stringValue, id.hasPrefix("resp_"), id.count <= 64 else { return }
        if let translation {
            try await save(response, translation: translation, history: history, owner: owner, in: store, quotas: quotas, passedThrough: true)
            return
        }
        try await put(StoredResponse(owner: owner, response: response, inputItems: [], messages: [], passedThrough: true), in: store, quotas: quotas)
    }

    /// `GET /v1/responses/{id}`: a response the caller stored (404 for anyone else's).
    public func response(id: String, for principal: Principal) async throws -> JSONValue {
        try DialectJSON.decode(try await responseBody(id: id, for: principal))
    }

    /// `GET /v1/responses/{id}` as the bytes to answer: the response object as it was stored,
    /// not decoded.
    public func responseBody(id: String, for principal: Principal) async throws -> ByteBuffer {
        guard let stored = try await storedResponse(id: id, for: principal) else { throw Self.responseNotFound(id) }
        return stored.responseBody
    }

    /// `DELETE /v1/responses/{id}`.
    public func deleteResponse(id: String, for principal: Principal) async throws -> JSONValue {
        guard try await storedResponse(id: id, for: principal) != nil, try await store.deleteRecord(kind: StoredResponse.kind, id: id) else {
            throw Self.responseNotFound(id)
        }
        return ["id": .string(id), "object": "response", "deleted": true]
    }

    /// `GET /v1/responses/{id}/input_items`: the items the response was given, newest first
    /// unless `ascending`, `limit` (1–100) at a time after the item `after`.
    public func responseInputItems(id: String, for principal: Principal, limit: Int = 20, ascending: Bool = false, after: String? = nil)
        async throws -> JSONValue
    {
        try DialectJSON.decode(try await responseInputItemsBody(id: id, for: principal, limit: limit, ascending: ascending, after: after))
    }

    /// ``responseInputItems(id:for:limit:ascending:after:)`` as the bytes to answer: the page
    /// is cut from the stored item lines without decoding them.
    public func responseInputItemsBody(id: String, for principal: Principal, limit: Int = 20, ascending: Bool = false, after: String? = nil)
        async throws -> ByteBuffer
    {
        guard (1...100).contains(limit) else { throw LISAError.invalidRequest("limit must be between 1 and 100.", param: "limit") }
        guard let stored = try await storedResponse(id: id, for: principal) else { throw Self.responseNotFound(id) }
        return try await offEventLoops { try stored.inputItemsPage(limit: limit, ascending: ascending, after: after) }
    }

    private static func responseNotFound(_ id: String) -> LISAError {
        .notFound("No response with id '\(id)' found.", reason: "response_not_found")
    }

    /// The caller's stored response, read only as far as its header (who owns it); a record
    /// of the earlier layout is decoded whole, off the event loops.
    func storedResponse(id: String, for principal: Principal) async throws -> StoredResponseRecord? {
        guard id.hasPrefix("resp_"), id.count <= 64, let body = try await store.record(kind: StoredResponse.kind, id: id) else { return nil }
        let stored = try await offEventLoops { try StoredResponseRecord(body: body) }
        return stored.owner == principal.username ? stored : nil
    }

    /// Refuses (413, before the upstream is called) a request whose stored record would be
    /// larger than `quotas.maxStoredResponseBytes` by its input and conversation alone.
    static func checkStorable(_ translation: ResponsesDialect.Translation, history: [JSONValue], quotas: StorageQuotas) async throws {
        let input = StoredResponse(
            owner: "", response: .null, inputItems: translation.inputItems, messages: history + translation.inputMessages, passedThrough: nil
        )
        let size = try await offEventLoops { try StoredResponseRecord.encode(input).utf8.count }
        guard size <= quotas.maxStoredResponseBytes else { throw storedResponseTooLarge(size, quotas: quotas) }
    }

    static func storedResponseTooLarge(_ size: Int, quotas: StorageQuotas) -> LISAError {
        .payloadTooLarge(
            "This response would be stored with its input and conversation in \(size) bytes, more than quotas.maxStoredResponseBytes (\(quotas.maxStoredResponseBytes)). Send store: false, or start a new conversation.",
            reason: "stored_response_too_large"
        )
    }

    static func save(
        _ response: JSONValue, translation: ResponsesDialect.Translation, history: [JSONValue], owner: String, in store: any StateStore,
        quotas: StorageQuotas, passedThrough: Bool? = nil
    ) async throws {
        var messages = history + translation.inputMessages
        if let assistant = ResponsesDialect.assistantMessage(from: response["output"]?.arrayValue ?? []) { messages.append(assistant) }
        let stored = StoredResponse(owner: owner, response: response, inputItems: translation.inputItems, messages: messages, passedThrough: passedThrough)
        try await put(stored, in: store, quotas: quotas)
    }

    /// Stores a response within its owner's quotas (`maxStoredResponsesPerUser`,
    /// `maxStoredResponseBytesPerUser`): the owner's oldest stored responses make room, as a
    /// cache would. One response larger than the whole byte quota is not stored (a later
    /// `GET` answers 404) rather than evicting everything else.
    static func put(_ stored: StoredResponse, in store: any StateStore, quotas: StorageQuotas) async throws {
        guard let id = stored.response["id"]?.stringValue else { return }
        let body = try await offEventLoops { try StoredResponseRecord.encode(stored) }
        // An answer that alone takes the record past the cap is answered but not stored.
        guard body.utf8.count <= min(quotas.maxStoredResponseBytes, quotas.maxStoredResponseBytesPerUser) else { return }
        let summary = DialectJSON.string([
            "id": .string(id), "model": stored.response["model"] ?? .null, "created_at": stored.response["created_at"] ?? .null,
            "stored_at": .number(Date().timeIntervalSince1970),
        ])
        var usage = try await store.recordUsage(kind: StoredResponse.kind, parent: stored.owner)
        if usage.count >= quotas.maxStoredResponsesPerUser || usage.characters + body.utf8.count > quotas.maxStoredResponseBytesPerUser {
            let oldest = try await store.recordSummaries(kind: StoredResponse.kind, parent: stored.owner)
                .compactMap { DialectJSON.object(in: $0) }
                .sorted { Self.storedAt($0) < Self.storedAt($1) }
            for summary in oldest {
                guard usage.count >= quotas.maxStoredResponsesPerUser || usage.characters + body.utf8.count > quotas.maxStoredResponseBytesPerUser,
                    let oldID = summary["id"]?.stringValue, oldID != id
                else { break }
                _ = try await store.deleteRecord(kind: StoredResponse.kind, id: oldID)
                usage = try await store.recordUsage(kind: StoredResponse.kind, parent: stored.owner)
            }
        }
        try await store.putRecord(kind: StoredResponse.kind, id: id, parent: stored.owner, body: body, summary: summary)
    }

    private static func storedAt(_ summary: JSONValue) -> Double {
        switch summary["stored_at"] {
        case .number(let value)?: value
        case .integer(let value)?: Double(value)
        default: Double(summary["created_at"]?.int64Value ?? 0)
        }
    }

    /// Runs `work` in place for a small request (`size` bytes up to 256 KiB), off the event
    /// loops for a large one: decoding and translating it would hold up every other
    /// connection of the loop meanwhile.
    static func translatingOffEventLoops<T: Sendable>(ifLarge size: Int, _ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard size > 256 * 1024 else { return try work() }
        return try await offEventLoops { try work() }
    }

    /// An upstream's buffered answer as JSON (the gateway has checked it is an object).
    static func upstreamJSON(_ buffer: ByteBuffer) throws(LISAError) -> JSONValue {
        do {
            // LISA's own reader keeps the answer's member order (Foundation's does not).
            return try JSONValue(parsing: buffer)
        } catch {
            throw .badGateway("The upstream's answer is not valid JSON.", reason: "upstream_invalid_response")
        }
    }
}

