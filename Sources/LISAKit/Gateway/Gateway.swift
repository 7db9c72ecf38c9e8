import AsyncHTTPClient
import Foundation
public import Logging
public import NIOCore
import NIOFoundationCompat
import NIOHTTP1
public import Tracing

/// The OpenAI-compatible gateway: decodes requests, picks an endpoint of the model,
/// forwards upstream and relays the answer. Also registers and removes models.
///
/// It knows nothing of HTTP servers: the Hummingbird binding (`LISAHummingbird`) and any
/// other front end call it with the request body and write back the ``GatewayResponse``.
public final class Gateway: Sendable {
    public let registry: ModelRegistry
    /// Sends requests to endpoints (HTTP to OpenAI-compatible servers, or any other conformer).
    public let provider: any InferenceProvider
    /// The gateway's metrics (served at `/metrics` by LISAServe).
    public let metrics: GatewayMetrics
    /// Group-based roles and per-model permissions.
    public let access: AccessConfiguration
    /// Set when the process begins to shut down: open streams end with an error event by
    /// its deadline (LISAServe begins it with its grace period).
    public let drain = DrainSignal()
    /// Budgets, usage records and the request log; `nil`: none of them.
    public let accountant: UsageAccountant?
    /// Where the spans of inference calls go (a GenAI span per call, one per upstream
    /// attempt); `nil`: none are made, and a client's `traceparent` is passed upstream as it is.
    public let tracer: (any Tracer)?
    /// What buffered answers may hold in memory, per call and in all.
    public let answerMemory: AnswerMemoryBudget
    private let logger: Logger

    /// The largest upstream body LISA buffers for a non-streaming answer (64 MiB).
    public static let maxBufferedResponseSize = 64 * 1024 * 1024

    public init(
        registry: ModelRegistry, provider: any InferenceProvider, metrics: GatewayMetrics = GatewayMetrics(),
        access: AccessConfiguration = AccessConfiguration(), accountant: UsageAccountant? = nil, tracer: (any Tracer)? = nil,
        answerMemory: AnswerMemoryBudget = AnswerMemoryBudget(), logger: Logger
    ) {
        self.answerMemory = answerMemory
        self.accountant = accountant
        self.tracer = tracer
        self.access = access
        self.registry = registry
        self.provider = provider
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: - Inference

    /// `GET /v1/models`: the models `principal` may use (others are not listed).
    public func modelList(for principal: Principal = .admin) -> ModelList {
        guard access.mayCallInference(principal) else { return ModelList(data: []) }
        return ModelList(
            data: registry.allModels().filter { $0.status.servesTraffic && access.mayUse($0.definition, principal) }.map { model in
                ModelList.Model(
                    id: model.definition.modelId, created: model.created, ownedBy: "lisa",
                    lisa: .init(
                        modelType: model.definition.modelType.rawValue, streaming: model.definition.streaming,
                        health: ModelManager.ModelRecord.health(of: model.pool.endpoints.map(\.status))
                    )
                )
            }
        )
    }

    /// `POST /v1/chat/completions`.
    public func chatCompletions(body: ByteBuffer, context: InferenceContext) async throws(LISAError) -> GatewayResponse {
        try await serve(ChatCompletionRequest.self, body: body, context: context)
    }

    /// `POST /v1/completions`.
    public func completions(body: ByteBuffer, context: InferenceContext) async throws(LISAError) -> GatewayResponse {
        try await serve(CompletionRequest.self, body: body, context: context)
    }

    /// `POST /v1/embeddings`.
    public func embeddings(body: ByteBuffer, context: InferenceContext) async throws(LISAError) -> GatewayResponse {
        try await serve(EmbeddingRequest.self, body: body, context: context)
    }

    /// `POST /v1/messages` to a model whose upstream speaks Anthropic Messages: the client's
    /// bytes pass through with `model` replaced, and the answer (buffered or streamed) comes
    /// back in Messages' own form. The caller has checked the request
    /// (``AnthropicDialect/chatRequest(from:requireMaxTokens:)``) and resolved `model`.
    /// Fallbacks that do not speak Messages are skipped.
    public func messages(body: ByteBuffer, model: RoutableModel, stream: Bool, context: InferenceContext) async throws(LISAError)
        -> GatewayResponse
    {
        try await passThrough(.messages, body: body, model: model, stream: stream, context: context)
    }

    /// `POST /v1/responses` to a model whose upstream speaks the Responses API: the client's
    /// bytes pass through with `model` replaced; the answer and events come back as sent.
    /// The caller has checked the request, resolved `model`, and owns any
    /// `previous_response_id`. Fallbacks that do not speak Responses are skipped.
    public func responses(body: ByteBuffer, model: RoutableModel, stream: Bool, context: InferenceContext) async throws(LISAError)
        -> GatewayResponse
    {
        try await passThrough(.responses, body: body, model: model, stream: stream, context: context)
    }

    private func passThrough(_ operation: UpstreamOperation, body: ByteBuffer, model: RoutableModel, stream: Bool, context: InferenceContext)
        async throws(LISAError) -> GatewayResponse
    {
        try checkStreaming(stream, model: model)
        return try await route(operation, model: model, stream: stream, user: nil, context: context, inbound: body) { modelName throws(LISAError) in
            if let edited = JSONMemberScanner.replacingStringMember("model", with: modelName, in: body) { return edited }
            guard case .object(var members) = try RequestJSON.decode(JSONValue.self, from: body) else {
                throw .invalidRequest("The request body must be a JSON object.")
            }
            members["model"] = .string(modelName)
            return DialectJSON.encode(.object(members))
        }
    }

    /// A chat request a dialect has read, checked and translated, to `model`, which the
    /// dialect resolved for the caller (``textModel(_:for:)``): neither is read again.
    /// `encoded` is `chat` as JSON text, when the dialect has it already.
    public func chatCompletions(translated chat: JSONValue, encoded: ByteBuffer? = nil, model: RoutableModel, context: InferenceContext)
        async throws(LISAError) -> GatewayResponse
    {
        let stream = chat["stream"] == .bool(true)
        try checkStreaming(stream, model: model)
        let body = encoded ?? DialectJSON.encode(chat)
        return try await route(.chatCompletions, model: model, stream: stream, user: chat["user"]?.stringValue, context: context, inbound: body) {
            modelName throws(LISAError) in
            if let edited = JSONMemberScanner.replacingStringMember("model", with: modelName, in: body) { return edited }
            guard case .object(var members) = chat else { throw .invalidRequest("The request body must be a JSON object.") }
            members["model"] = .string(modelName)
            return DialectJSON.encode(.object(members))
        }
    }

    /// Decodes and checks a request, resolves its model for the caller, and routes it.
    private func serve<Request: GatewayRequest>(
        _ type: Request.Type, body: ByteBuffer, context: InferenceContext
    ) async throws(LISAError) -> GatewayResponse {
        // The common shape is read in one pass; anything else gets the typed decode, which
        // accepts exactly what the quick read does and more, and names what is wrong. A large
        // body is read off the event loops.
        let fields = try await Self.offEventLoops(ifLarge: body.readableBytes) { () throws(LISAError) -> RoutingFields in
            try RequestJSON.checkJSON(body)
            if let quick = Request.routingFields(in: body) { return quick }
            let request = try RequestJSON.decodeChecked(Request.self, from: body)
            try request.validate()
            return RoutingFields(model: request.model, stream: request.isStreaming, user: request.user)
        }
        let model = try resolve(fields.model, serving: Request.modelType, for: context.principal)
        try checkStreaming(fields.stream, model: model)
        return try await route(Request.operation, model: model, stream: fields.stream, user: fields.user, context: context, inbound: body) {
            modelName throws(LISAError) in
            if let edited = JSONMemberScanner.replacingStringMember("model", with: modelName, in: body) { return edited }
            var request = try RequestJSON.decodeChecked(Request.self, from: body)
            request.model = modelName
            return try RequestJSON.encode(request)
        }
    }

    /// The text-generation model `modelID` as `principal` may use it: 404 when it does not
    /// exist for them, 503 when it is not serving (token counting asks this without routing).
    public func textModel(_ modelID: String, for principal: Principal) throws(LISAError) -> RoutableModel {
        try resolve(modelID, serving: .textgen, for: principal)
    }

    func resolve(_ modelID: String, serving type: ModelType, for principal: Principal) throws(LISAError) -> RoutableModel {
        guard access.mayCallInference(principal) else {
            throw .forbidden("Calling models needs membership of the user group.")
        }
        guard !modelID.isEmpty else {
            throw .invalidRequest("model must not be empty.", param: "model")
        }
        // A model the caller may not use answers as if it did not exist, so its name does not leak.
        guard let model = registry.model(modelID), access.mayUse(model.definition, principal) else {
            throw .modelNotFound(modelID)
        }
        guard model.status.servesTraffic else {
            throw .modelNotReady(modelID, status: model.status.rawValue)
        }
        guard model.definition.modelType == type else {
            let what = type == .embedding ? "embeddings" : "text generation"
            throw .invalidRequest(
                "The model '\(modelID)' is a \(model.definition.modelType.rawValue) model and does not serve \(what).",
                param: "model", reason: "model_type_mismatch"
            )
        }
        return model
    }

    func checkStreaming(_ stream: Bool, model: RoutableModel) throws(LISAError) {
        if stream && !model.definition.streaming {
            throw .invalidRequest("The model '\(model.definition.modelId)' does not support streaming.", param: "stream")
        }
    }

    /// Routes one request: the model's endpoints (balanced, with retries on another endpoint
    /// before the first byte), then its fallback models in order.
    func route(
        _ operation: UpstreamOperation,
        model: RoutableModel,
        stream: Bool,
        user: String?,
        context: InferenceContext,
        contentType: String = "application/json",
        inbound: ByteBuffer? = nil,
        media: MediaEstimate? = nil,
        body: (String) throws(LISAError) -> ByteBuffer
    ) async throws(LISAError) -> GatewayResponse {
        let span = callSpan(operation, model: model, stream: stream, inbound: inbound, context: context)
        // A call refused here (budget, state store) has its ticket, and span, closed already.
        let ticket =
            try await accountant?.open(operation, model: model, inbound: inbound, media: media, context: context, span: span)
            ?? span.map { UsageAccountant.Ticket(spanOnly: $0, requested: model.definition.modelId, context: context) }
        do {
            return try await routeCandidates(
                operation, model: model, stream: stream, user: user, context: context, contentType: contentType, ticket: ticket, body: body
            )
        } catch {
            ticket?.finish(error: error)
            throw error
        }
    }

    private func routeCandidates(
        _ operation: UpstreamOperation,
        model: RoutableModel,
        stream: Bool,
        user: String?,
        context: InferenceContext,
        contentType: String,
        ticket: UsageAccountant.Ticket?,
        body: (String) throws(LISAError) -> ByteBuffer
    ) async throws(LISAError) -> GatewayResponse {
        let start = ContinuousClock.now
        let requested = model.definition.modelId
        let header = (model.definition.sessionHeader ?? "x-session-id").lowercased()
        let sessionKey = context.headers[header] ?? user
        let logger = RequestLogger(logger: context.logger, metadata: ["lisa.request_id": "\(context.requestID)", "lisa.model": "\(requested)"])

        var candidates = [model]
        for id in model.definition.fallbacks {
            if let fallback = registry.model(id), fallback.status.servesTraffic, fallback.definition.modelType == model.definition.modelType,
                access.mayUse(fallback.definition, context.principal),
                !candidates.contains(where: { $0 === fallback })
            {
                candidates.append(fallback)
            }
        }
        var lastError: LISAError?
        for (position, candidate) in candidates.enumerated() {
            guard var wire = try UpstreamWire(for: operation, to: candidate, primary: position == 0) else { continue }
            wire.contentType = contentType
            // A Messages or Responses client of a chat upstream: its dialect translates the answer after.
            wire.translatedByDialect = context.dialect != .chatCompletions && wire.operation == .chatCompletions
            if wire.operation.isAnthropic, wire.answer == .asIs, let beta = context.headers["anthropic-beta"].flatMap(Self.anthropicBeta) {
                wire.headers.append((name: "anthropic-beta", value: beta))
            }
            // Not tracing: the client's trace goes on upstream as it came.
            if tracer == nil, let parent = context.headers["traceparent"], TraceIdentity(traceparent: parent) != nil {
                wire.headers.append((name: "traceparent", value: parent))
                if let state = context.headers["tracestate"], state.utf8.count <= 512 { wire.headers.append((name: "tracestate", value: state)) }
            }
            let upstreamBody: ByteBuffer
            do {
                upstreamBody = try wire.body(from: body(candidate.definition.modelName))
            } catch let error where position > 0 {
                // A fallback that cannot take this request (another upstream API refuses a
                // member) is skipped; the caller hears why the models before it failed.
                logger.info("fallback skipped", metadata: ["lisa.fallback": "\(candidate.definition.modelId)", "lisa.reason": "\(error.message)"])
                continue
            }
            if position > 0 {
                metrics.fallback(model: requested, to: candidate.definition.modelId)
                logger.info("falling back", metadata: ["lisa.fallback": "\(candidate.definition.modelId)"])
            }
            do {
                return try await attempts(
                    wire, model: candidate, requested: requested, body: upstreamBody, stream: stream, sessionKey: sessionKey,
                    start: start, ticket: ticket, logger: logger
                )
            } catch {
                lastError = error
                if !error.allowsFallback { break }
            }
        }
        let error = lastError ?? .serviceUnavailable("The model '\(requested)' has no endpoint to send the request to.")
        metrics.request(
            model: requested, endpoint: error.endpointLabel ?? "none", status: GatewayMetrics.statusLabel(for: error),
            duration: ContinuousClock.now - start)
        throw redacted(error, for: context)
    }

    /// Upstream failures name endpoints, certificate issuers, CA paths and upstream bodies:
    /// administrators see them; everyone else a generic message with the request id (the
    /// detail is in the log under the same id).
    func redacted(_ error: LISAError, for context: InferenceContext) -> LISAError {
        guard error.isUpstreamFailure, error.code != .notReady, !access.isAdmin(context.principal) else {
            return error
        }
        context.logger.info(
            "upstream failure reported without detail", metadata: ["lisa.request_id": "\(context.requestID)", "lisa.detail": "\(error.message)"]
        )
        let what: String
        switch error.code {
        case .upstreamUnavailable: what = "is unavailable"
        case .upstreamTimeout: what = "did not answer in time"
        default: what = "failed"
        }
        return error.replacingMessage(
            "The upstream of the model \(what) (\(error.reason ?? "upstream_error")). An administrator can find the details in LISA's log under request id \(context.requestID)."
        )
    }

    /// Tries the model's endpoints, retrying retriable failures within the retry policy and budget.
    private func attempts(
        _ wire: UpstreamWire,
        model: RoutableModel,
        requested: String,
        body: ByteBuffer,
        stream: Bool,
        sessionKey: String?,
        start: ContinuousClock.Instant,
        ticket: UsageAccountant.Ticket?,
        logger: RequestLogger
    ) async throws(LISAError) -> GatewayResponse {
        let modelID = model.definition.modelId
        model.recordRequest()
        var tried: [Int] = []
        var lastError: LISAError?
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...max(model.retry.maxAttempts, 1) {
            if attempt > 1 {
                guard model.tryRetry() else {
                    logger.warning("retry budget exhausted")
                    break
                }
                metrics.retry(model: requested, reason: lastError?.reason ?? "error")
                do {
                    try await EventLoopTimer.sleep(for: model.retry.backoff(beforeRetry: attempt - 1, using: &generator))
                } catch {
                    throw .cancelled()
                }
            }
            guard let endpoint = model.pool.choose(affinityKey: sessionKey, excluding: tried) else {
                if tried.isEmpty {
                    lastError =
                        LISAError.serviceUnavailable(
                            "No endpoint of the model '\(modelID)' can take the request: all are unhealthy, open-circuited or at capacity.",
                            retryAfter: 1
                        ).markedRetriable
                }
                break
            }
            tried.append(endpoint.index)
            let endpointLogger = logger.adding("lisa.endpoint", "\(endpoint.index):\(endpoint.label)")
            do {
                let attempt = UpstreamAttempt(
                    gateway: self, wire: wire, model: model, requested: requested, endpoint: endpoint, body: body, stream: stream, start: start,
                    ticket: ticket, number: attempt, logger: endpointLogger
                )
                return try await attempt.run()
            } catch {
                var error = error
                error.endpointLabel = endpoint.label
                lastError = error
                guard error.isRetriable else { throw error }
            }
        }
        throw lastError ?? .serviceUnavailable("The model '\(modelID)' has no endpoint to send the request to.")
    }

    /// Runs `work` where it is cheap to: in place for an answer of `size` bytes up to 256 KiB,
    /// off the event loops for larger ones (it would hold up every other connection of the
    /// loop meanwhile).
    static func offEventLoops<T: Sendable>(ifLarge size: Int, _ work: @Sendable () throws(LISAError) -> T) async throws(LISAError) -> T {
        guard size > 256 * 1024 else { return try work() }
        let result: Result<T, LISAError> = await withTaskExecutorPreference(globalConcurrentExecutor) {
            do throws(LISAError) {
                return .success(try work())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// A client's `anthropic-beta` value, if it is a list of beta names (letters, digits,
    /// `-`, `_`, `.`, commas and spaces, at most 1024 bytes): anything else is not sent on.
    static func anthropicBeta(_ value: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_., ".utf8)
        guard !value.isEmpty, value.utf8.count <= 1024, value.utf8.allSatisfy(allowed.contains) else { return nil }
        return value
    }

}
