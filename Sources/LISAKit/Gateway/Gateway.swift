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
    public let store: any StateStore
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
        registry: ModelRegistry, store: any StateStore, provider: any InferenceProvider, metrics: GatewayMetrics = GatewayMetrics(),
        access: AccessConfiguration = AccessConfiguration(), accountant: UsageAccountant? = nil, tracer: (any Tracer)? = nil,
        answerMemory: AnswerMemoryBudget = AnswerMemoryBudget(), logger: Logger
    ) {
        self.answerMemory = answerMemory
        self.accountant = accountant
        self.tracer = tracer
        self.access = access
        self.registry = registry
        self.store = store
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
            guard case .object(var members) = try Self.decode(JSONValue.self, from: body) else {
                throw .invalidRequest("The request body must be a JSON object.")
            }
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
            try Self.checkJSON(body)
            if let quick = Request.routingFields(in: body) { return quick }
            let request = try Self.decodeChecked(Request.self, from: body)
            try request.validate()
            return RoutingFields(model: request.model, stream: request.isStreaming, user: request.user)
        }
        let model = try resolve(fields.model, serving: Request.modelType, for: context.principal)
        try checkStreaming(fields.stream, model: model)
        return try await route(Request.operation, model: model, stream: fields.stream, user: fields.user, context: context, inbound: body) {
            modelName throws(LISAError) in
            if let edited = JSONMemberScanner.replacingStringMember("model", with: modelName, in: body) { return edited }
            var request = try Self.decodeChecked(Request.self, from: body)
            request.model = modelName
            return try Self.encode(request)
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
            guard var wire = try Self.wire(for: operation, to: candidate, primary: position == 0) else { continue }
            wire.contentType = contentType
            // A Messages or Responses client of a chat upstream: its dialect translates the answer after.
            wire.translatedByDialect = context.operationLabel != nil && wire.operation == .chatCompletions
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
                upstreamBody = try Self.upstreamBody(body(candidate.definition.modelName), for: &wire)
            } catch where position > 0 {
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
        metrics.request(model: requested, endpoint: error.endpointLabel ?? "none", status: GatewayMetrics.statusLabel(for: error), duration: ContinuousClock.now - start)
        throw redacted(error, for: context)
    }

    /// The body for one candidate: the inbound request, translated where its wire says so.
    static func upstreamBody(_ inbound: ByteBuffer, for wire: inout Wire) throws(LISAError) -> ByteBuffer {
        switch wire.answer {
        case .anthropicToChat:
            return DialectJSON.encode(try AnthropicUpstream.messagesRequest(fromChat: try decode(JSONValue.self, from: inbound)))
        case .responsesToChat:
            return DialectJSON.encode(try ResponsesUpstream.responsesRequest(fromChat: try decode(JSONValue.self, from: inbound)))
        case .teiRerank:
            wire.original = inbound
            return DialectJSON.encode(try Rerank.teiRequest(from: try decode(JSONValue.self, from: inbound)))
        case .asIs, .raw:
            return inbound
        }
    }

    /// How a request reaches one candidate: the operation on the wire and what its answer
    /// needs to become the inbound dialect's.
    struct Wire: Sendable {
        enum Answer: Sendable {
            /// A JSON object or an event stream in the inbound dialect.
            case asIs
            /// Anthropic Messages, answered as chat completions.
            case anthropicToChat
            /// OpenAI Responses, answered as chat completions.
            case responsesToChat
            /// TEI's rerank shape, answered in Cohere's and vLLM's.
            case teiRerank
            /// Any bytes of an allowed media type (audio, subtitles), relayed as they arrive.
            case raw
        }
        var operation: UpstreamOperation
        var answer: Answer
        var contentType = "application/json"
        /// The inbound request, where the answer's translation needs it (TEI rerank's `top_n`).
        var original: ByteBuffer?
        /// Client headers carried on: `anthropic-beta` when a Messages request passes through.
        var headers: [(name: String, value: String)] = []
        /// Whether the client's dialect translates the answer once the gateway has it.
        var translatedByDialect = false
    }

    /// The wire for `operation` to `model`; `nil` to skip a fallback that cannot take it.
    static func wire(for operation: UpstreamOperation, to model: RoutableModel, primary: Bool) throws(LISAError) -> Wire? {
        switch (operation, model.definition.upstreamAPI) {
        case (.chatCompletions, .anthropic):
            return Wire(operation: .messages, answer: .anthropicToChat)
        case (.chatCompletions, .openAIResponses):
            return Wire(operation: .responses, answer: .responsesToChat)
        case (.messages, .anthropic), (.countTokens, .anthropic), (.responses, .openAIResponses):
            return Wire(operation: operation, answer: .asIs)
        case (.messages, _), (.countTokens, _), (.responses, _):
            return nil
        case (.rerank, _) where model.definition.inferenceContainer == .tei:
            return Wire(operation: .teiRerank, answer: .teiRerank)
        case (.audioSpeech, _), (.audioTranscriptions, _), (.audioTranslations, _):
            return Wire(operation: operation, answer: .raw)
        case (_, .anthropic), (_, .openAIResponses):
            guard primary else { return nil }
            let (what, route) = model.definition.upstreamAPI == .anthropic ? ("an Anthropic Messages", "/v1/messages") : ("an OpenAI Responses", "/v1/responses")
            throw .invalidRequest(
                "The model '\(model.definition.modelId)' has \(what) upstream: call it through /v1/chat/completions or \(route).",
                param: "model", reason: "model_type_mismatch"
            )
        default:
            return Wire(operation: operation, answer: .asIs)
        }
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
        _ wire: Wire,
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
        model.recordRequest(at: monotonicSeconds())
        var tried: [Int] = []
        var lastError: LISAError?
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...max(model.retry.maxAttempts, 1) {
            if attempt > 1 {
                guard model.tryRetry(at: monotonicSeconds()) else {
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
            guard let endpoint = model.pool.choose(affinityKey: sessionKey, excluding: tried, at: monotonicSeconds()) else {
                if tried.isEmpty {
                    lastError = LISAError.serviceUnavailable(
                        "No endpoint of the model '\(modelID)' can take the request: all are unhealthy, open-circuited or at capacity.",
                        retryAfter: 1
                    ).markedRetriable
                }
                break
            }
            tried.append(endpoint.index)
            let endpointLogger = logger.adding("lisa.endpoint", "\(endpoint.index):\(endpoint.label)")
            do {
                return try await tryEndpoint(
                    wire, model: model, requested: requested, endpoint: endpoint, body: body, stream: stream, start: start,
                    ticket: ticket, attempt: attempt, logger: endpointLogger
                )
            } catch {
                var error = error
                error.endpointLabel = endpoint.label
                lastError = error
                guard error.isRetriable else { throw error }
            }
        }
        throw lastError ?? .serviceUnavailable("The model '\(modelID)' has no endpoint to send the request to.")
    }

    /// One attempt on one endpoint. Throws errors marked retriable when nothing reached the
    /// client and another endpoint may do better.
    private func tryEndpoint(
        _ wire: Wire,
        model: RoutableModel,
        requested: String,
        endpoint: Endpoint,
        body: ByteBuffer,
        stream: Bool,
        start: ContinuousClock.Instant,
        ticket: UsageAccountant.Ticket?,
        attempt: Int,
        logger: RequestLogger
    ) async throws(LISAError) -> GatewayResponse {
        let modelID = model.definition.modelId
        let timeouts = model.definition.timeouts
        var attemptHeaders = wire.headers
        let attemptSpan = self.attemptSpan(wire.operation, endpoint: endpoint, attempt: attempt, parent: ticket?.span?.context, headers: &attemptHeaders)
        let upstreamHeaders = attemptHeaders
        let endAttempt: @Sendable (_ status: Int?, _ error: String?) -> Void = { status, error in
            guard let attemptSpan else { return }
            if let status { attemptSpan.attributes["http.response.status_code"] = status }
            if let error {
                attemptSpan.attributes["error.type"] = error
                attemptSpan.setStatus(SpanStatus(code: .error, message: error))
            }
            attemptSpan.end()
        }
        let total = timeouts?.totalSeconds.map { Duration.seconds(clamping: $0) } ?? provider.timeouts.request
        // A stream's head comes at once from model servers; a buffered answer's comes with the
        // whole answer, so only the total bounds it unless the model sets a first-byte limit.
        let firstByteLimit = timeouts?.firstByteSeconds ?? (stream ? provider.timeouts.streamFirstByte.seconds : nil)
        let sent = ContinuousClock.now
        endpoint.begin()
        let response: UpstreamResponse
        do {
            response = try await provider.send(
                wire.operation, body: body, contentType: wire.contentType, headers: upstreamHeaders, to: endpoint.definition, stream: stream,
                deadline: .now() + .init(total), firstByteTimeout: firstByteLimit.map { Duration.seconds(clamping: $0) },
                logger: logger.logger
            )
        } catch {
            endpoint.end()
            endAttempt(nil, error.spanErrorType)
            let elapsed = (ContinuousClock.now - sent).seconds
            if case .cancelled = error.reason {
                logger.debug("request cancelled: the client went away")
            } else {
                logger.warning("upstream request failed", metadata: ["lisa.reason": "\(error)"])
            }
            switch error.reason {
            case .connectFailed(let why):
                endpoint.record(.failure(elapsed: elapsed), at: monotonicSeconds())
                throw LISAError.badGateway(
                    "No endpoint of the model '\(modelID)' could be reached (\(why)).", reason: "upstream_unreachable"
                ).markedRetriable
            case .tls(let detail):
                endpoint.record(.failure(elapsed: elapsed), at: monotonicSeconds())
                let tls = (endpoint.definition.tls ?? UpstreamTLS()).over(provider.defaultTLS)
                let why = await TLSDiagnosis.explain(url: endpoint.definition.url, tls: tls, fallback: detail)
                logger.warning("upstream TLS failed", metadata: ["lisa.endpoint": "\(endpoint.label)", "lisa.reason": "\(why)"])
                throw LISAError.badGateway(
                    "TLS with endpoint \(endpoint.label) of model '\(modelID)' failed: \(why).", reason: "upstream_tls_error"
                ).markedRetriable
            case .connectionClosed:
                endpoint.record(.failure(elapsed: elapsed), at: monotonicSeconds())
                throw LISAError.badGateway(
                    "The upstream of model '\(modelID)' closed the connection before answering.", reason: "upstream_closed"
                ).markedRetriable
            case .timedOut:
                endpoint.record(.failure(elapsed: elapsed), at: monotonicSeconds())
                // Nothing reached the client: another endpoint may answer (the retry budget
                // bounds the extra load), and this one's circuit counts the stall.
                ticket?.delivered()
                throw LISAError.gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.").markedRetriable
            case .cancelled:
                endpoint.record(.abandoned(elapsed: elapsed), at: monotonicSeconds())
                ticket?.delivered()
                throw .cancelled()
            case .other:
                endpoint.record(.failure(elapsed: elapsed), at: monotonicSeconds())
                throw .badGateway("The upstream of model '\(modelID)' failed before answering.")
            }
        }
        let firstByte = ContinuousClock.now - sent
        guard (200..<300).contains(response.status) else {
            let errorBody = try? await response.body.collect(upTo: 1024 * 1024)
            endpoint.end()
            endAttempt(response.status, String(response.status))
            var error = Self.error(forUpstreamStatus: response.status, body: errorBody, headers: response.headers, modelID: modelID, logger: logger)
            // An upstream's message names the model as it knows it: the client sees its own name.
            if !model.definition.passUpstreamModelName { error = error.naming(model.definition.modelName, as: requested) }
            switch response.status {
            case 429:
                endpoint.record(.abandoned(elapsed: 0), at: monotonicSeconds())
                throw error.markedRetriable
            case 502, 503, 504, 529:
                endpoint.record(.failure(elapsed: firstByte.seconds), at: monotonicSeconds())
                throw error.markedRetriable
            case 500...:
                endpoint.record(.failure(elapsed: firstByte.seconds), at: monotonicSeconds())
                throw error
            default:
                endpoint.record(.success(firstByte: firstByte.seconds), at: monotonicSeconds())
                throw error
            }
        }
        endpoint.record(.success(firstByte: firstByte.seconds), at: monotonicSeconds())
        ticket?.delivered()
        let contentType = response.headers.first(name: "Content-Type") ?? "application/json"
        let metrics = self.metrics
        if wire.answer == .raw, !Self.readsUsage(of: wire.operation, contentType: contentType) {
            guard let relayedType = Self.relayableMediaType(contentType) else {
                endpoint.end()
                endAttempt(response.status, "upstream_invalid_response")
                logger.warning("upstream answered a media type LISA does not relay", metadata: ["lisa.content_type": "\(contentType)"])
                throw .badGateway("The upstream of model '\(modelID)' answered with a media type LISA does not relay.", reason: "upstream_invalid_response")
            }
            metrics.overhead(model: requested, (ContinuousClock.now - start) - firstByte)
            let label = endpoint.label
            let idle = timeouts?.streamIdleSeconds.map { Duration.seconds(clamping: $0) } ?? provider.timeouts.streamIdle
            let served = model.definition
            let status = response.status
            let relayed = RelayedBody(body: response.body, deadline: sent + total, idleTimeout: idle) { failed in
                endpoint.end()
                endAttempt(status, failed ? "stream_error" : nil)
                ticket?.finish(servedBy: served, endpoint: label, usage: nil, outputEstimate: 0, firstToken: nil, failed: failed)
                if failed { metrics.streamError(model: requested) }
                metrics.request(model: requested, endpoint: label, status: GatewayMetrics.statusLabel(for: nil), duration: ContinuousClock.now - start)
            }
            return GatewayResponse(contentType: relayedType, body: .bytes(relayed))
        }
        if stream && contentType.lowercased().hasPrefix("text/event-stream") {
            metrics.overhead(model: requested, (ContinuousClock.now - start) - firstByte)
            let label = endpoint.label
            let upstreamEvents =
                switch wire.answer {
                case .anthropicToChat:
                    UpstreamBody(TranslatedEventBody(base: response.body, translator: AnthropicChatStreamTranslator(created: Self.now())))
                case .responsesToChat:
                    UpstreamBody(TranslatedEventBody(base: response.body, translator: ResponsesChatStreamTranslator(created: Self.now())))
                default:
                    response.body
                }
            // Translated answers are chat chunks by now, ending with [DONE].
            let framing: ServerSentEventRelay.Framing =
                switch (wire.answer, wire.operation) {
                case (.asIs, .messages): .anthropic
                case (.asIs, .responses): .responses
                default: .openAI
                }
            let idle = timeouts?.streamIdleSeconds.map { Duration.seconds(clamping: $0) } ?? provider.timeouts.streamIdle
            let served = model.definition
            var relay = ServerSentEventRelay(
                body: upstreamEvents, modelID: requested, logger: logger.withMetadata, deadline: sent + total, idleTimeout: idle, drain: drain, framing: framing
            ) { [status = response.status] summary in
                endpoint.end()
                endAttempt(status, summary.stalled ? "stream_idle_timeout" : summary.failed ? "stream_error" : nil)
                // A stream that went quiet counts against its endpoint, as a stall before the head does.
                if summary.stalled { endpoint.record(.failure(elapsed: idle.seconds), at: monotonicSeconds()) }
                if let firstEvent = summary.firstEvent { metrics.timeToFirstToken(model: requested, firstEvent - start) }
                if let usage = summary.usage { metrics.tokens(model: requested, usage: usage) }
                ticket?.finish(
                    servedBy: served, endpoint: label, usage: summary.usage, outputEstimate: summary.events, firstToken: summary.firstEvent,
                    failed: summary.failed
                )
                if summary.failed { metrics.streamError(model: requested) }
                metrics.request(model: requested, endpoint: label, status: GatewayMetrics.statusLabel(for: nil), duration: ContinuousClock.now - start)
            }
            // Every chunk names the model the client asked for, unless this model shows its upstream's.
            if !model.definition.passUpstreamModelName { relay = relay.answering(asModel: requested) }
            return GatewayResponse(contentType: "text/event-stream", body: .eventStream(relay))
        }
        var buffer: ByteBuffer
        // What the answer costs until it is written: more when it is translated here, most
        // when the client's dialect translates it after (held as parsed JSON meanwhile).
        let factor =
            wire.translatedByDialect
            ? AnswerMemoryBudget.Factor.translatedForDialect
            : wire.answer == .asIs ? AnswerMemoryBudget.Factor.passedThrough : AnswerMemoryBudget.Factor.translatedFromUpstream
        let charge = answerMemory.charge(factor: factor)
        do {
            let collect = { @Sendable () async throws(UpstreamFailure) -> ByteBuffer in
                do {
                    return try await response.body.collect(upTo: Self.maxBufferedResponseSize, charging: charge)
                } catch {
                    throw UpstreamFailure(classifying: error)
                }
            }
            // The provider's deadline may stop at the head; the body then gets what is left of it here.
            buffer = provider.deadlineCoversBody ? try await collect() : try await Self.withFirstByteTimeout(((sent + total) - ContinuousClock.now).seconds, collect)
            endpoint.end()
            endAttempt(response.status, nil)
        } catch {
            endpoint.end()
            endAttempt(response.status, error.spanErrorType)
            if Task.isCancelled { throw .cancelled() }
            logger.warning("reading the upstream answer failed", metadata: ["lisa.reason": "\(error)"])
            if case .timedOut = error.reason {
                throw .gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.")
            }
            if let refusal = charge.refusal {
                charge.release()
                switch refusal {
                case .tooLargeForOneCall(let limit):
                    throw .badGateway(
                        "The upstream of model '\(modelID)' sent an answer larger than LISA holds for one call (\(limit) bytes for this answer).",
                        reason: "upstream_answer_too_large"
                    )
                case .budgetSpent:
                    metrics.answerMemoryRefused()
                    throw LISAError(
                        .upstreamUnavailable, "LISA holds as many buffered answers as its memory budget allows; retry shortly.",
                        reason: "answer_memory_budget", retryAfter: 1
                    )
                }
            }
            throw .badGateway("The upstream of model '\(modelID)' sent an incomplete or oversized answer.")
        }
        let finished = ContinuousClock.now
        metrics.overhead(model: requested, (finished - start) - (finished - sent))
        metrics.timeToFirstToken(model: requested, finished - start)
        // A large answer is translated and renamed off the event loops: it would hold up every
        // other connection of this one meanwhile.
        let rename = !model.definition.passUpstreamModelName
        let collected = buffer
        buffer = try await Self.offEventLoops(ifLarge: collected.readableBytes) { () throws(LISAError) -> ByteBuffer in
            try Self.translatedAnswer(collected, wire: wire, modelID: modelID, requested: requested, request: body, rename: rename)
        }
        var reported: Usage?
        if let usageBytes = JSONMemberScanner.value(of: "usage", in: buffer) {
            let usage: Usage? =
                if wire.operation == .messages {
                    AnthropicUpstream.usage(try? JSONDecoder().decode(JSONValue.self, from: usageBytes))
                } else if wire.operation == .responses {
                    ResponsesUpstream.usage(try? JSONDecoder().decode(JSONValue.self, from: usageBytes))
                } else {
                    Usage.quickRead(usageBytes) ?? (try? JSONDecoder().decode(Usage.self, from: usageBytes))
                }
            if let usage { metrics.tokens(model: requested, usage: usage) }
            reported = usage
        }
        // Images and transcripts report usage in their own shapes, or their length in seconds.
        var usageEstimated = false
        if reported == nil, let media = Self.mediaUsage(wire.operation, answer: buffer) {
            if !media.estimated { metrics.tokens(model: requested, usage: media.usage) }
            (reported, usageEstimated) = (media.usage, media.estimated)
        }
        metrics.request(model: requested, endpoint: endpoint.label, status: GatewayMetrics.statusLabel(for: nil), duration: finished - start)
        // LISA answers these routes with JSON only: whatever the upstream labelled its body,
        // it is never relayed as HTML or script from LISA's origin.
        guard buffer.readableBytesView.first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }) == UInt8(ascii: "{") else {
            logger.warning("upstream answered a body that is not a JSON object", metadata: ["lisa.content_type": "\(contentType)"])
            throw .badGateway("The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
        }
        // Without the upstream's count, a text answer is about four bytes a token, less the JSON
        // around it; vectors, scores and images are no output tokens.
        let answersText = ([.chatCompletions, .completions, .messages, .responses] as [UpstreamOperation]).contains(wire.operation)
        ticket?.finish(
            servedBy: model.definition, endpoint: endpoint.label, usage: reported, usageEstimated: usageEstimated,
            outputEstimate: answersText ? max(buffer.readableBytes - 300, 0) / 4 : 0, firstToken: finished
        )
        var answer = GatewayResponse(contentType: "application/json", body: .buffer(buffer))
        answer.memoryCharge = charge
        return answer
    }

    /// A buffered answer in the client's dialect, naming the model the client asked for
    /// unless `rename` is off.
    static func translatedAnswer(
        _ buffer: ByteBuffer, wire: Wire, modelID: String, requested: String, request body: ByteBuffer, rename: Bool
    ) throws(LISAError) -> ByteBuffer {
        var buffer = buffer
        if wire.answer == .anthropicToChat {
            // Read block by block: a large answer is never held as a whole parsed tree.
            guard let chat = try AnthropicUpstream.chatCompletion(fromMessageBytes: buffer, created: Self.now()) else {
                throw .badGateway("The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(chat)
        } else if wire.answer == .responsesToChat {
            guard let chat = try ResponsesUpstream.chatCompletion(fromResponseBytes: buffer) else {
                throw .badGateway("The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(chat)
        } else if wire.answer == .teiRerank {
            guard let ranked = try? JSONValue(parsing: buffer) else {
                throw .badGateway("The upstream of model '\(modelID)' answered with something other than JSON.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(try Rerank.answer(fromTEI: ranked, request: wire.original ?? body, model: requested))
        }
        // The answer names the model the client asked for, unless this model shows its upstream's.
        if rename { buffer = AnswerModelName(requested).rewriting(answer: buffer) }
        return buffer
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

    /// Runs `operation`, failing it with `.timedOut` if it has not returned within `seconds`.
    static func withFirstByteTimeout<T: Sendable>(
        _ seconds: Double?, _ operation: @escaping @Sendable () async throws(UpstreamFailure) -> T
    ) async throws(UpstreamFailure) -> T {
        guard let seconds else { return try await operation() }
        do {
            return try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await EventLoopTimer.sleep(for: .seconds(clamping: seconds))
                    throw UpstreamFailure(reason: .timedOut)
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch let failure as UpstreamFailure {
            throw failure
        } catch {
            throw UpstreamFailure(reason: Task.isCancelled ? .cancelled : .other("\(error)"))
        }
    }

    static func error(forUpstreamStatus status: Int, body: ByteBuffer?, headers: HTTPHeaders, modelID: String, logger: RequestLogger) -> LISAError {
        // OpenAI's envelope, or the flat one vLLM and other FastAPI servers send ({"object":"error","message":…}).
        let upstream =
            body.flatMap { try? JSONDecoder().decode(ErrorResponse.self, from: $0) }?.error
            ?? body.flatMap { try? JSONDecoder().decode(ErrorResponse.Body.self, from: $0) }
        let detail = upstream?.message ?? body.map { String(buffer: $0).prefix(300) }.map(String.init) ?? ""
        logger.warning("upstream answered an error", metadata: ["lisa.status": "\(status)", "lisa.detail": "\(detail)"])
        let suffix = detail.isEmpty ? "" : ": \(detail)"
        switch status {
        case 400, 413, 422:
            let body = upstream ?? ErrorResponse.Body(message: detail, type: "invalid_request_error")
            return .upstreamClientError(status: status == 422 ? 400 : status, body: body)
        case 401, 403:
            return .badGateway("The upstream of model '\(modelID)' rejected LISA's credentials (HTTP \(status)).", reason: "upstream_auth_failed")
        case 404:
            return .badGateway(
                "The upstream of model '\(modelID)' answered 404; check the model's modelName and URL\(suffix)", reason: "upstream_not_found"
            )
        case 429:
            let retryAfter = headers.first(name: "Retry-After").flatMap { Int($0) }
            return .rateLimited("The upstream of model '\(modelID)' is rate limiting requests\(suffix)", retryAfter: retryAfter)
        case 503, 529:
            return .serviceUnavailable("The upstream of model '\(modelID)' is unavailable\(suffix)")
        case 504:
            return .gatewayTimeout("The upstream of model '\(modelID)' timed out\(suffix)")
        default:
            return .badGateway("The upstream of model '\(modelID)' failed with HTTP \(status)\(suffix)")
        }
    }

    // MARK: - JSON

    /// Decodes a request body, reporting the failing JSON path in a 400.
    public static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(LISAError) -> T {
        try checkJSON(body)
        return try decodeChecked(type, from: body)
    }

    /// Refuses a body that is not exactly one unambiguous JSON value (400).
    static func checkJSON(_ body: ByteBuffer) throws(LISAError) {
        guard body.readableBytes > 0 else {
            throw .invalidRequest("The request body is empty; send a JSON object.")
        }
        // One parse decides everything: a body that another parser could read differently
        // (duplicate keys, a BOM, NaN, bad UTF-8, deep nesting) is refused before it is read.
        do {
            try StrictJSON.validate(body)
        } catch where error.isWellFormed {
            throw .invalidRequest("Invalid request body: \(error.message).", param: error.path)
        } catch {
            throw .invalidRequest("The request body is not valid JSON: \(error.message) (byte \(error.offset)).")
        }
    }

    /// Decodes a body that passed ``checkJSON(_:)``, reporting the failing JSON path in a 400.
    static func decodeChecked<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(LISAError) -> T {
        // Any JSON is read with its members in the client's order (JSONDecoder loses it).
        if T.self == JSONValue.self, let value = try? JSONValue(parsing: body) as? T { return value }
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch let error as DecodingError {
            throw .invalidRequest("Invalid request body: \(error.lisaDescription)", param: Self.param(of: error))
        } catch {
            throw .invalidRequest("The request body is not valid JSON.")
        }
    }

    static func encode<T: Encodable>(_ value: T) throws(LISAError) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        do {
            return try encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
        } catch {
            throw .invalidRequest("The request could not be re-encoded: \(error)")
        }
    }

    private static func param(of error: DecodingError) -> String? {
        let path: [any CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): path = context.codingPath
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        @unknown default: return nil
        }
        return path.isEmpty ? nil : DecodingError.path(path)
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The longest duration LISA makes from a number of seconds it was given: 10⁹ s (about
    /// 31 years), as good as forever for a timeout.
    static let longestFromSeconds = Duration.seconds(1_000_000_000)

    /// `seconds` to the millisecond, held to `0...`\(``longestFromSeconds``): a setting or an
    /// answer's number can be anything (`.inf`, `1e300`, negative), and converting those traps.
    package static func seconds(clamping seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return seconds == .infinity ? longestFromSeconds : .zero }
        guard seconds < 1_000_000_000 else { return longestFromSeconds }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}

/// A request whose `model` the gateway rewrites.
protocol ModelNamed {
    var model: String { get set }
}

/// What the gateway needs of an OpenAI request it serves.
protocol GatewayRequest: Codable, Sendable, ModelNamed {
    static var operation: UpstreamOperation { get }
    static var modelType: ModelType { get }
    var isStreaming: Bool { get }
    var user: String? { get }
    /// Checks what decoding cannot (non-empty lists).
    func validate() throws(LISAError)
    /// The routing fields read in one pass when the body has the common shape (the request
    /// would decode and validate with the same fields); `nil` sends it to the typed decode.
    static func routingFields(in body: ByteBuffer) -> RoutingFields?
}

extension GatewayRequest {
    static func routingFields(in body: ByteBuffer) -> RoutingFields? { nil }
}

extension ChatCompletionRequest: GatewayRequest {
    static var operation: UpstreamOperation { .chatCompletions }
    static var modelType: ModelType { .textgen }
    var isStreaming: Bool { stream ?? false }

    func validate() throws(LISAError) {
        guard !messages.isEmpty else {
            throw .invalidRequest("messages must contain at least one message.", param: "messages")
        }
    }
}

extension CompletionRequest: GatewayRequest {
    static var operation: UpstreamOperation { .completions }
    static var modelType: ModelType { .textgen }
    var isStreaming: Bool { stream ?? false }

    func validate() throws(LISAError) {}
}

extension EmbeddingRequest: GatewayRequest {
    static var operation: UpstreamOperation { .embeddings }
    static var modelType: ModelType { .embedding }
    var isStreaming: Bool { false }

    func validate() throws(LISAError) {
        guard !input.isEmpty else {
            throw .invalidRequest("input must not be empty.", param: "input")
        }
    }
}

/// A logger and the request's metadata, merged only when something is logged: changing a
/// `Logger`'s metadata re-renders it in some handlers, which is too costly per request.
struct RequestLogger: Sendable {
    let logger: Logger
    var metadata: Logger.Metadata

    func adding(_ key: String, _ value: String) -> RequestLogger {
        var copy = self
        copy.metadata[key] = .string(value)
        return copy
    }

    /// A `Logger` carrying the metadata, for code that logs rarely (stream failures).
    var withMetadata: Logger {
        var logger = logger
        for (key, value) in metadata { logger[metadataKey: key] = value }
        return logger
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.info(message(), metadata: metadata.merging(extra) { $1 })
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.debug(message(), metadata: metadata.merging(extra) { $1 })
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.warning(message(), metadata: metadata.merging(extra) { $1 })
    }
}

extension LISAError {
    /// The error with every mention of the upstream's model name `upstream` in the message a
    /// client sees (an upstream's own 4xx message) replaced by `requested`.
    func naming(_ upstream: String, as requested: String) -> LISAError {
        guard !upstream.isEmpty, upstream != requested, message.contains(upstream) else { return self }
        return LISAError(
            code, message.replacingOccurrences(of: upstream, with: requested), param: param, reason: reason, retryAfter: retryAfter,
            upstreamStatus: upstreamStatus, underlying: underlying
        )
    }
}

