import Foundation
import Logging
public import NIOCore
import NIOFoundationCompat
import Synchronization

/// The Anthropic Messages and OpenAI Responses calls in process (each ``Dialect`` serves its
/// own: translated onto the chat path, or passed through to an upstream of its dialect), token
/// counting, and the stored responses every replica reads.
extension LISARuntime {
    // MARK: - Anthropic Messages

    /// `POST /v1/messages`: ``AnthropicDialect/serve(_:context:runtime:)``.
    ///
    /// - Throws: ``LISAError`` (answered in Anthropic's error shape).
    public func messages(body: ByteBuffer, context: InferenceContext) async throws -> GatewayResponse {
        try await AnthropicDialect().serve(body, context: context, runtime: self)
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

    /// `POST /v1/responses`: ``ResponsesDialect/serve(_:context:runtime:)``.
    public func responses(body: ByteBuffer, context: InferenceContext) async throws -> GatewayResponse {
        try await ResponsesDialect().serve(body, context: context, runtime: self)
    }

    static func savePassedThrough(
        _ response: JSONValue, translation: ResponsesDialect.Translation?, history: [JSONValue], owner: String, in store: RecordStore,
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
        guard try await storedResponse(id: id, for: principal) != nil, try await store.records.deleteRecord(kind: StoredResponse.kind, id: id) else {
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
        guard id.hasPrefix("resp_"), id.count <= 64, let body = try await store.records.record(kind: StoredResponse.kind, id: id) else { return nil }
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
        _ response: JSONValue, translation: ResponsesDialect.Translation, history: [JSONValue], owner: String, in store: RecordStore,
        quotas: StorageQuotas, passedThrough: Bool? = nil
    ) async throws {
        var messages = history + translation.inputMessages
        if let assistant = ResponsesDialect.assistantMessage(from: response["output"]?.arrayValue ?? []) { messages.append(assistant) }
        let stored = StoredResponse(
            owner: owner, response: response, inputItems: translation.inputItems, messages: messages, passedThrough: passedThrough)
        try await put(stored, in: store, quotas: quotas)
    }

    /// Stores a response within its owner's quotas (`maxStoredResponsesPerUser`,
    /// `maxStoredResponseBytesPerUser`): the owner's oldest stored responses make room, as a
    /// cache would. One response larger than the whole byte quota is not stored (a later
    /// `GET` answers 404) rather than evicting everything else.
    static func put(_ stored: StoredResponse, in store: RecordStore, quotas: StorageQuotas) async throws {
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
