import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The OpenAI-compatible gateway: decodes requests, picks an endpoint of the model,
/// forwards upstream and relays the answer. Also registers and removes models.
///
/// It knows nothing of HTTP servers: the Hummingbird binding (`LISAHummingbird`) and any
/// other front end call it with the request body and write back the ``GatewayResponse``.
public final class Gateway: Sendable {
    public let registry: ModelRegistry
    public let store: any StateStore
    public let provider: OpenAICompatibleProvider
    private let logger: Logger

    /// The largest upstream body LISA buffers for a non-streaming answer (64 MiB).
    public static let maxBufferedResponseSize = 64 * 1024 * 1024

    public init(registry: ModelRegistry, store: any StateStore, provider: OpenAICompatibleProvider, logger: Logger) {
        self.registry = registry
        self.store = store
        self.provider = provider
        self.logger = logger
    }

    /// Loads models into the registry: those of the configuration first, then those stored.
    ///
    /// A stored model whose id is also declared in the configuration is skipped with a warning.
    public func loadModels(configured: [ModelDefinition]) async throws {
        for model in configured {
            try model.validate()
            if !registry.add(model, source: .configuration) {
                throw LISAError.invalidRequest("The configuration declares modelId '\(model.modelId)' twice.")
            }
        }
        for model in try await store.models() {
            if !registry.add(model, source: .api) {
                logger.warning(
                    "stored model shadowed by the configuration file", metadata: ["lisa.model": "\(model.modelId)"]
                )
            }
        }
    }

    // MARK: - Inference

    /// `GET /v1/models`.
    public func modelList() -> ModelList {
        ModelList(
            data: registry.allModels().map { model in
                ModelList.Model(id: model.definition.modelId, created: model.created, ownedBy: "lisa")
            }
        )
    }

    /// `POST /v1/chat/completions`.
    public func chatCompletions(body: ByteBuffer, logger: Logger) async throws(LISAError) -> GatewayResponse {
        var request = try Self.decode(ChatCompletionRequest.self, from: body)
        guard !request.messages.isEmpty else {
            throw .invalidRequest("messages must contain at least one message.", param: "messages")
        }
        let model = try resolve(request.model, serving: .textgen)
        let stream = request.stream ?? false
        try checkStreaming(stream, model: model)
        request.model = model.definition.modelName
        return try await forward(.chatCompletions, body: try Self.encode(request), model: model, stream: stream, logger: logger)
    }

    /// `POST /v1/completions`.
    public func completions(body: ByteBuffer, logger: Logger) async throws(LISAError) -> GatewayResponse {
        var request = try Self.decode(CompletionRequest.self, from: body)
        let model = try resolve(request.model, serving: .textgen)
        let stream = request.stream ?? false
        try checkStreaming(stream, model: model)
        request.model = model.definition.modelName
        return try await forward(.completions, body: try Self.encode(request), model: model, stream: stream, logger: logger)
    }

    /// `POST /v1/embeddings`.
    public func embeddings(body: ByteBuffer, logger: Logger) async throws(LISAError) -> GatewayResponse {
        var request = try Self.decode(EmbeddingRequest.self, from: body)
        guard !request.input.isEmpty else {
            throw .invalidRequest("input must not be empty.", param: "input")
        }
        let model = try resolve(request.model, serving: .embedding)
        request.model = model.definition.modelName
        return try await forward(.embeddings, body: try Self.encode(request), model: model, stream: false, logger: logger)
    }

    private func resolve(_ modelID: String, serving type: ModelType) throws(LISAError) -> RoutableModel {
        guard !modelID.isEmpty else {
            throw .invalidRequest("model must not be empty.", param: "model")
        }
        guard let model = registry.model(modelID) else {
            throw .modelNotFound(modelID)
        }
        guard model.definition.modelType == type else {
            let what = type == .embedding ? "embeddings" : "text generation"
            throw .invalidRequest(
                "The model '\(modelID)' is a \(model.definition.modelType.rawValue) model and does not serve \(what).",
                param: "model", code: "model_type_mismatch"
            )
        }
        return model
    }

    private func checkStreaming(_ stream: Bool, model: RoutableModel) throws(LISAError) {
        if stream && !model.definition.streaming {
            throw .invalidRequest("The model '\(model.definition.modelId)' does not support streaming.", param: "stream")
        }
    }

    /// Sends the request to the model's next endpoint, failing over to the others when a
    /// connection cannot be made (nothing was sent, so no work is duplicated).
    private func forward(
        _ operation: UpstreamOperation,
        body: ByteBuffer,
        model: RoutableModel,
        stream: Bool,
        logger: Logger
    ) async throws(LISAError) -> GatewayResponse {
        let modelID = model.definition.modelId
        let endpoints = model.endpointsForNextRequest()
        var lastFailure: UpstreamFailure?
        for (attempt, endpoint) in endpoints.enumerated() {
            var logger = logger
            logger[metadataKey: "lisa.model"] = "\(modelID)"
            logger[metadataKey: "lisa.endpoint"] = "\(attempt)"
            let response: UpstreamResponse
            do {
                response = try await provider.send(operation, body: body, to: endpoint, stream: stream, logger: logger)
            } catch {
                logger.warning("upstream request failed", metadata: ["lisa.reason": "\(error)"])
                lastFailure = error
                if error.isSafeToRetry { continue }
                break
            }
            return try await relay(response, model: model, stream: stream, logger: logger)
        }
        throw Self.error(for: lastFailure, modelID: modelID)
    }

    private func relay(_ response: UpstreamResponse, model: RoutableModel, stream: Bool, logger: Logger) async throws(LISAError) -> GatewayResponse {
        let modelID = model.definition.modelId
        guard (200..<300).contains(response.status) else {
            let body = try? await response.body.collect(upTo: 1024 * 1024)
            throw Self.error(forUpstreamStatus: response.status, body: body, headers: response.headers, modelID: modelID, logger: logger)
        }
        let contentType = response.headers.first(name: "Content-Type") ?? "application/json"
        if stream && contentType.lowercased().hasPrefix("text/event-stream") {
            return GatewayResponse(
                status: response.status, contentType: "text/event-stream",
                body: .eventStream(ServerSentEventRelay(body: response.body, modelID: modelID, logger: logger))
            )
        }
        do {
            let buffer = try await response.body.collect(upTo: Self.maxBufferedResponseSize)
            return GatewayResponse(status: response.status, contentType: contentType, body: .buffer(buffer))
        } catch {
            if Task.isCancelled { throw .badGateway("The request was cancelled.") }
            let failure = UpstreamFailure(classifying: error)
            logger.warning("reading the upstream answer failed", metadata: ["lisa.reason": "\(failure)"])
            if case .timedOut = failure.reason {
                throw .gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.")
            }
            throw .badGateway("The upstream of model '\(modelID)' sent an incomplete or oversized answer.")
        }
    }

    static func error(for failure: UpstreamFailure?, modelID: String) -> LISAError {
        guard let failure else {
            return .serviceUnavailable("The model '\(modelID)' has no endpoint to send the request to.")
        }
        switch failure.reason {
        case .connectFailed(let why):
            return .badGateway("No endpoint of the model '\(modelID)' could be reached (\(why)).", code: "upstream_unreachable")
        case .timedOut:
            return .gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.")
        case .cancelled:
            return .badGateway("The request was cancelled.", code: "cancelled")
        case .other:
            return .badGateway("The upstream of model '\(modelID)' failed before answering.")
        }
    }

    static func error(forUpstreamStatus status: Int, body: ByteBuffer?, headers: HTTPHeaders, modelID: String, logger: Logger) -> LISAError {
        let upstream = body.flatMap { try? JSONDecoder().decode(ErrorResponse.self, from: $0) }?.error
        let detail = upstream?.message ?? body.map { String(buffer: $0).prefix(300) }.map(String.init) ?? ""
        logger.warning("upstream answered an error", metadata: ["lisa.status": "\(status)", "lisa.detail": "\(detail)"])
        let suffix = detail.isEmpty ? "" : ": \(detail)"
        switch status {
        case 400, 413, 422:
            let body = upstream ?? ErrorResponse.Body(message: detail, type: "invalid_request_error")
            return .upstreamClientError(status: status == 422 ? 400 : status, body: body)
        case 401, 403:
            return .badGateway("The upstream of model '\(modelID)' rejected LISA's credentials (HTTP \(status)).", code: "upstream_auth_failed")
        case 404:
            return .badGateway(
                "The upstream of model '\(modelID)' answered 404; check the model's modelName and URL\(suffix)", code: "upstream_not_found"
            )
        case 429:
            let retryAfter = headers.first(name: "Retry-After").flatMap { Int($0) }
            return .rateLimited("The upstream of model '\(modelID)' is rate limiting requests\(suffix)", retryAfter: retryAfter)
        case 503:
            return .serviceUnavailable("The upstream of model '\(modelID)' is unavailable\(suffix)")
        case 504:
            return .gatewayTimeout("The upstream of model '\(modelID)' timed out\(suffix)")
        default:
            return .badGateway("The upstream of model '\(modelID)' failed with HTTP \(status)\(suffix)")
        }
    }

    // MARK: - Model registration

    /// A registered model as the management API shows it: the definition without secrets,
    /// where it came from, and its status.
    public struct ModelRecord: Sendable, Encodable {
        public var definition: ModelDefinition
        public var source: ModelSource
        public var status: String

        enum CodingKeys: String, CodingKey { case source, status }

        public func encode(to encoder: any Encoder) throws {
            try definition.redacted().encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(source, forKey: .source)
            try c.encode(status, forKey: .status)
        }
    }

    /// Every model, ordered by id.
    public func modelRecords() -> [ModelRecord] {
        registry.allModels().map(Self.record)
    }

    /// One model; 404 when unknown.
    public func modelRecord(id: String) throws(LISAError) -> ModelRecord {
        guard let model = registry.model(id) else { throw .modelNotFound(id) }
        return Self.record(model)
    }

    /// Validates, stores, then routes to a new model. Stored first: once this returns, the
    /// model survives a restart.
    public func registerModel(_ definition: ModelDefinition) async throws -> ModelRecord {
        try definition.validate()
        if let existing = registry.model(definition.modelId) {
            throw LISAError.conflict(
                "A model with modelId '\(definition.modelId)' already exists (\(existing.source.rawValue)).", code: "model_exists"
            )
        }
        try await store.insertModel(definition)
        guard registry.add(definition, source: .api) else {
            throw LISAError.conflict("A model with modelId '\(definition.modelId)' already exists.", code: "model_exists")
        }
        logger.info("model registered", metadata: ["lisa.model": "\(definition.modelId)"])
        return try modelRecord(id: definition.modelId)
    }

    /// Stops routing to a model and removes it from the store. Models declared in the
    /// configuration file cannot be deleted through the API (409).
    public func deleteModel(id: String) async throws {
        guard let model = registry.model(id) else { throw LISAError.modelNotFound(id) }
        guard model.source == .api else {
            throw LISAError.conflict(
                "The model '\(id)' is declared in the configuration file; remove it there.", code: "model_in_configuration"
            )
        }
        _ = try await store.deleteModel(id: id)
        registry.remove(id)
        logger.info("model deleted", metadata: ["lisa.model": "\(id)"])
    }

    private static func record(_ model: RoutableModel) -> ModelRecord {
        ModelRecord(definition: model.definition, source: model.source, status: "InService")
    }

    // MARK: - JSON

    /// Decodes a request body, reporting the failing JSON path in a 400.
    public static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(LISAError) -> T {
        guard body.readableBytes > 0 else {
            throw .invalidRequest("The request body is empty; send a JSON object.")
        }
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
