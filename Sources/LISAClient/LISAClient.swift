public import AsyncHTTPClient
public import Foundation
@_exported import LISAAPI
@_exported import LISAOpenAI
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A typed async client for a LISA server: the OpenAI routes and the models API.
///
/// `lisactl` is built on it; embedders can use it from scripts and services.
///
/// ```swift
/// let lisa = LISAClient(baseURL: "http://127.0.0.1:8080", apiKey: key)
/// for try await chunk in lisa.streamChatCompletion(request) { print(chunk.choices.first?.delta.content ?? "", terminator: "") }
/// ```
public struct LISAClient: Sendable {
    /// A registered model as the models API returns it.
    public struct Model: Sendable, Decodable {
        public var definition: ModelDefinition
        /// `configuration` or `api`.
        public var source: String
        /// The lifecycle status, such as `InService`.
        public var status: String
        /// Why the model is `Failed`.
        public var statusReason: String?
        /// A hosted model's replicas.
        public var replicas: [ReplicaRecord]?
        /// Each endpoint's health, circuit, load and latency.
        public var endpointStatus: [EndpointStatus]
        /// `healthy`, `degraded`, `down` or `none` (no endpoints).
        public var health: String

        enum CodingKeys: String, CodingKey, CaseIterable { case source, status, statusReason, replicas, endpointStatus, health }

        public init(from decoder: any Decoder) throws {
            definition = try ModelDefinition(from: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            source = try c.decodeIfPresent(String.self, forKey: .source) ?? "api"
            status = try c.decodeIfPresent(String.self, forKey: .status) ?? "unknown"
            statusReason = try c.decodeIfPresent(String.self, forKey: .statusReason)
            replicas = try c.decodeIfPresent([ReplicaRecord].self, forKey: .replicas)
            endpointStatus = try c.decodeIfPresent([EndpointStatus].self, forKey: .endpointStatus) ?? []
            health = try c.decodeIfPresent(String.self, forKey: .health) ?? "unknown"
            for key in CodingKeys.allCases { definition.additionalFields.removeValue(forKey: key.rawValue) }
        }
    }

    public let baseURL: String
    public let apiKey: String?
    private let httpClient: HTTPClient
    /// Deadline for one call (streams included). Default 10 minutes.
    public var timeout: Duration = .seconds(600)

    /// - Parameters:
    ///   - baseURL: The server's root, such as `http://127.0.0.1:8080`.
    ///   - apiKey: Sent as `Authorization: Bearer …`.
    ///   - httpClient: The client to use; the process-wide shared one by default.
    public init(baseURL: String, apiKey: String?, httpClient: HTTPClient = .shared) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey
        self.httpClient = httpClient
    }

    /// `GET /whoami`: who the client's credential signs in as, and what it may do.
    public func whoami() async throws -> CallerIdentity {
        try await send(.GET, "/whoami", as: CallerIdentity.self)
    }

    // MARK: Models API

    /// `GET /models`.
    public func models() async throws -> [Model] {
        struct Envelope: Decodable { var models: [Model] }
        return try await send(.GET, "/models", as: Envelope.self).models
    }

    /// `GET /models/{id}`.
    public func model(id: String) async throws -> Model {
        try await send(.GET, "/models/\(Self.escape(id))", as: Model.self)
    }

    /// `POST /models`.
    public func createModel(_ definition: ModelDefinition) async throws -> Model {
        try await send(.POST, "/models", body: definition, as: Model.self)
    }

    /// `PUT /models/{id}`: a JSON merge patch of the definition, or `{"enabled": true|false}`.
    public func updateModel(id: String, patch: JSONValue) async throws -> Model {
        try await send(.PUT, "/models/\(Self.escape(id))", body: patch, as: Model.self)
    }

    /// `DELETE /models/{id}`; returns whether the model is gone already (a hosted model is
    /// `Deleting` until its replicas have stopped).
    @discardableResult
    public func deleteModel(id: String) async throws -> Bool {
        struct Deleted: Decodable { var deleted: Bool? }
        return try await send(.DELETE, "/models/\(Self.escape(id))", as: Deleted.self).deleted ?? true
    }

    /// `GET /models/{id}/test`: a minimal real request to the model, its latency or error.
    public func testModel(id: String) async throws -> ModelTestResult {
        try await send(.GET, "/models/\(Self.escape(id))/test", as: ModelTestResult.self)
    }

    /// `GET /models/{id}/logs`: the last `tail` lines of each replica of a hosted model.
    public func modelLogs(id: String, tail: Int = 100) async throws -> String {
        let response = try await execute(.GET, "/models/\(Self.escape(id))/logs?tail=\(tail)", body: nil)
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw LISAClientError(status: Int(response.status.code), body: body)
        }
        return String(buffer: body)
    }

    // MARK: RAG

    /// `POST /repository`.
    public func createRepository(_ repository: RAGRepository) async throws -> RAGRepository {
        try await send(.POST, "/repository", body: repository, as: RAGRepository.self)
    }

    /// `GET /repository`: the repositories the caller may use.
    public func repositories() async throws -> [RAGRepository] {
        try await send(.GET, "/repository", as: [RAGRepository].self)
    }

    /// `DELETE /repository/{id}`.
    public func deleteRepository(id: String) async throws {
        _ = try await send(.DELETE, "/repository/\(Self.escape(id))", as: JSONValue.self)
    }

    /// `POST /repository/{id}/upload`: one file, multipart; returns its ingestion job.
    public func upload(
        _ data: Data, filename: String, to repository: String, collection: String? = nil, chunkSize: Int? = nil, chunkOverlap: Int? = nil
    ) async throws -> IngestionJob {
        let boundary = "lisa-\(UUID().uuidString)"
        var body = ByteBuffer()
        func field(_ name: String, _ value: String) {
            body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
        }
        if let collection { field("collectionId", collection) }
        if let chunkSize { field("chunkSize", String(chunkSize)) }
        if let chunkOverlap { field("chunkOverlap", String(chunkOverlap)) }
        let quoted = filename.replacingOccurrences(of: "\"", with: "")
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(quoted)\"\r\n")
        body.writeString("Content-Type: application/octet-stream\r\n\r\n")
        body.writeBytes(data)
        body.writeString("\r\n--\(boundary)--\r\n")
        return try await send(
            .POST, "/repository/\(Self.escape(repository))/upload", bodyBuffer: body, contentType: "multipart/form-data; boundary=\(boundary)",
            as: IngestionJob.self
        )
    }

    /// `GET /repository/{id}/jobs/{jobId}`.
    public func job(_ jobId: String, in repository: String) async throws -> IngestionJob {
        try await send(.GET, "/repository/\(Self.escape(repository))/jobs/\(Self.escape(jobId))", as: IngestionJob.self)
    }

    /// `GET /repository/{id}/document`.
    public func documents(in repository: String) async throws -> [RAGDocument] {
        try await send(.GET, "/repository/\(Self.escape(repository))/document", as: [RAGDocument].self)
    }

    /// `DELETE /repository/{id}/document/{documentId}`.
    public func deleteDocument(_ documentId: String, in repository: String) async throws {
        _ = try await send(.DELETE, "/repository/\(Self.escape(repository))/document/\(Self.escape(documentId))", as: JSONValue.self)
    }

    /// `GET /repository/{id}/similaritySearch`.
    public func search(_ query: String, in repository: String, collection: String? = nil, topK: Int = 3) async throws -> [RAGSource] {
        var components = URLComponents()
        components.queryItems =
            [URLQueryItem(name: "query", value: query), URLQueryItem(name: "topK", value: String(topK))]
            + (collection.map { [URLQueryItem(name: "collectionId", value: $0)] } ?? [])
        struct Found: Decodable { var docs: [RAGSource] }
        return try await send(
            .GET, "/repository/\(Self.escape(repository))/similaritySearch?\(components.percentEncodedQuery ?? "")", as: Found.self
        ).docs
    }

    // MARK: API tokens

    /// `POST /api-tokens` (own token) or `POST /api-tokens/{username}` (admin, for a user).
    public func createToken(_ request: APITokenCreateRequest, for username: String? = nil) async throws -> APITokenCreated {
        let path = username.map { "/api-tokens/\(Self.escape($0))" } ?? "/api-tokens"
        return try await send(.POST, path, body: request, as: APITokenCreated.self)
    }

    /// `GET /api-tokens`: all tokens for admins, one's own otherwise.
    public func tokens() async throws -> [APITokenView] {
        struct Envelope: Decodable { var tokens: [APITokenView] }
        return try await send(.GET, "/api-tokens", as: Envelope.self).tokens
    }

    /// `DELETE /api-tokens/{id}`.
    public func revokeToken(id: String) async throws {
        _ = try await send(.DELETE, "/api-tokens/\(Self.escape(id))", as: JSONValue.self)
    }

    // MARK: Usage and budgets

    /// `GET /usage` with its query parameters (`from`, `to`, `bucket`, `groupBy`, `user`, `model`).
    public func usage(_ parameters: [String: String] = [:]) async throws -> UsageReport {
        var components = URLComponents()
        components.queryItems = parameters.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        let query = parameters.isEmpty ? "" : "?\(components.percentEncodedQuery ?? "")"
        return try await send(.GET, "/usage\(query)", as: UsageReport.self)
    }

    /// `GET /budgets`: where the caller's budgets stand, or (admins) those of `user` in `groups`.
    public func budgets(user: String? = nil, groups: [String] = [], tokenID: String? = nil) async throws -> BudgetList {
        var items: [URLQueryItem] = []
        if let user { items.append(URLQueryItem(name: "user", value: user)) }
        if !groups.isEmpty { items.append(URLQueryItem(name: "groups", value: groups.joined(separator: ","))) }
        if let tokenID { items.append(URLQueryItem(name: "tokenId", value: tokenID)) }
        var components = URLComponents()
        components.queryItems = items
        return try await send(.GET, items.isEmpty ? "/budgets" : "/budgets?\(components.percentEncodedQuery ?? "")", as: BudgetList.self)
    }

    /// `POST /admin/rotate-key`: a new admin key (shown once); the old one works for `gracePeriodSeconds`.
    public func rotateAdminKey(gracePeriodSeconds: Double? = nil) async throws -> AdminKeyRotation {
        struct Body: Encodable { var gracePeriodSeconds: Double? }
        return try await send(.POST, "/admin/rotate-key", body: Body(gracePeriodSeconds: gracePeriodSeconds), as: AdminKeyRotation.self)
    }

    // MARK: OpenAI API

    /// `GET /v1/models`.
    public func servedModels() async throws -> ModelList {
        try await send(.GET, "/v1/models", as: ModelList.self)
    }

    /// `POST /v1/chat/completions` without streaming.
    public func chatCompletion(_ request: ChatCompletionRequest) async throws -> ChatCompletion {
        var request = request
        request.stream = false
        return try await send(.POST, "/v1/chat/completions", body: request, as: ChatCompletion.self)
    }

    /// `POST /v1/chat/completions` with `stream: true`: chunks as they arrive.
    ///
    /// The stream throws ``LISAClientError`` when the server answers an error, before or
    /// during the stream; it finishes normally only after `data: [DONE]`.
    public func streamChatCompletion(_ request: ChatCompletionRequest) -> AsyncThrowingStream<ChatCompletionChunk, any Error> {
        var request = request
        request.stream = true
        let (stream, continuation) = AsyncThrowingStream<ChatCompletionChunk, any Error>.makeStream()
        let task = Task {
            do {
                let response = try await execute(.POST, "/v1/chat/completions", body: try Self.encode(request))
                guard response.status == .ok else {
                    throw LISAClientError(status: Int(response.status.code), body: try await response.body.collect(upTo: 1 << 20))
                }
                var parser = ServerSentEventParser()
                var done = false
                for try await buffer in response.body {
                    for parsed in try parser.feed(buffer) {
                        if parsed.event.isDone {
                            done = true
                            continue
                        }
                        let data = ByteBuffer(string: parsed.event.data)
                        if parsed.event.event == "error" {
                            throw LISAClientError(status: 200, body: data)
                        }
                        continuation.yield(try JSONDecoder().decode(ChatCompletionChunk.self, from: data))
                    }
                }
                guard done else { throw LISAClientError(status: 200, message: "the stream ended before [DONE]") }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// `POST /v1/completions` without streaming.
    public func completion(_ request: CompletionRequest) async throws -> Completion {
        try await send(.POST, "/v1/completions", body: request, as: Completion.self)
    }

    /// `POST /v1/embeddings`.
    public func embeddings(_ request: EmbeddingRequest) async throws -> EmbeddingResponse {
        try await send(.POST, "/v1/embeddings", body: request, as: EmbeddingResponse.self)
    }

    /// `POST /admin/backup`: downloads the server's backup archive to `path`, streaming it
    /// into a temporary file beside it that is synced and renamed into place only when the
    /// whole archive arrived (an interrupted download leaves nothing at `path`). Returns the
    /// bytes written.
    public func downloadBackup(to path: String) async throws -> Int64 {
        let target = URL(fileURLWithPath: path).standardizedFileURL
        let partial = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(UUID().uuidString.prefix(8))")
        let response = try await execute(.POST, "/admin/backup", body: ByteBuffer(string: "{}"))
        guard (200..<300).contains(response.status.code) else {
            throw LISAClientError(status: Int(response.status.code), body: try await response.body.collect(upTo: 1 << 20))
        }
        guard FileManager.default.createFile(atPath: partial.path, contents: nil, attributes: [.posixPermissions: 0o600]),
            let output = FileHandle(forWritingAtPath: partial.path)
        else { throw LISAClientError(status: 0, message: "cannot create \(partial.path)") }
        do {
            var written: Int64 = 0
            for try await buffer in response.body {
                try output.write(contentsOf: buffer.readableBytesView)
                written += Int64(buffer.readableBytes)
            }
            if let expected = response.headers.first(name: "content-length").flatMap(Int64.init), expected != written {
                throw LISAClientError(status: 0, message: "the backup ended after \(written) of \(expected) bytes")
            }
            try output.synchronize()
            try output.close()
            try FileManager.default.moveItem(at: partial, to: target)
            BackupRestore.syncDirectory(target.deletingLastPathComponent().path)
            return written
        } catch {
            try? output.close()
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
    }

    /// `POST path` with `body` sent as it is, the answer's bytes handed over as they arrive
    /// (a JSON body, or a stream's events exactly as sent): for the dialects this client has
    /// no types for (`/v1/messages`, `/v1/responses`) and for debugging.
    ///
    /// The stream throws ``LISAClientError`` when the server answers an error status.
    public func postRaw(_ path: String, body: Data) -> AsyncThrowingStream<Data, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
        let task = Task {
            do {
                let response = try await execute(.POST, path, body: ByteBuffer(data: body))
                guard (200..<300).contains(response.status.code) else {
                    throw LISAClientError(status: Int(response.status.code), body: try await response.body.collect(upTo: 1 << 20))
                }
                for try await buffer in response.body { continuation.yield(Data(buffer.readableBytesView)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: Transport

    private func send<Response: Decodable>(_ method: HTTPMethod, _ path: String, as type: Response.Type) async throws -> Response {
        try await send(method, path, bodyBuffer: nil, as: type)
    }

    private func send<Body: Encodable, Response: Decodable>(
        _ method: HTTPMethod, _ path: String, body: Body, as type: Response.Type
    ) async throws -> Response {
        try await send(method, path, bodyBuffer: try Self.encode(body), as: type)
    }

    private func send<Response: Decodable>(
        _ method: HTTPMethod, _ path: String, bodyBuffer: ByteBuffer?, contentType: String = "application/json", as type: Response.Type
    ) async throws -> Response {
        let response = try await execute(method, path, body: bodyBuffer, contentType: contentType)
        let body = try await response.body.collect(upTo: 256 * 1024 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw LISAClientError(status: Int(response.status.code), body: body)
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .secondsSince1970
            return try decoder.decode(type, from: body)
        } catch let error as DecodingError {
            throw LISAClientError(status: Int(response.status.code), message: "unexpected answer from the server: \(error.lisaDescription)")
        }
    }

    private func execute(
        _ method: HTTPMethod, _ path: String, body: ByteBuffer?, contentType: String = "application/json"
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey, !apiKey.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(body)
        }
        do {
            return try await httpClient.execute(request, deadline: .now() + .init(timeout))
        } catch let error as HTTPClientError {
            throw LISAClientError(status: 0, message: "cannot reach \(baseURL): \(error)")
        } catch {
            if error is CancellationError { throw error }
            throw LISAClientError(status: 0, message: "cannot reach \(baseURL): \(Self.describeConnectFailure(error))")
        }
    }

    /// A short reason for a failed connection: what a user can act on.
    private static func describeConnectFailure(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("refused") || text.contains("ECONNREFUSED") { return "connection refused" }
        if text.contains("reset by peer") || text.contains("ECONNRESET") { return "connection reset" }
        if text.contains("unreachable") || text.contains("No route") { return "host unreachable" }
        if text.lowercased().contains("resolve") || text.contains("getaddrinfo") { return "host name not resolved" }
        if text.contains("SSL") || text.contains("TLS") || text.contains("certificate") { return "TLS failed: \(text)" }
        return text
    }

    private static func encode<T: Encodable>(_ value: T) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return try encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
    }

    private static func escape(_ component: String) -> String {
        component.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? component
    }
}

/// An error answer from a LISA server (or no answer at all, `status` 0).
public struct LISAClientError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status; 0 when the server could not be reached.
    public let status: Int
    /// The server's error, when it sent one in OpenAI's shape.
    public let error: ErrorResponse.Body?
    public let message: String

    init(status: Int, body: ByteBuffer) {
        self.status = status
        let decoded = try? JSONDecoder().decode(ErrorResponse.self, from: body)
        self.error = decoded?.error
        self.message = decoded?.error.message ?? String(buffer: body).prefix(300).description
    }

    init(status: Int, message: String) {
        self.status = status
        self.error = nil
        self.message = message
    }

    public var description: String {
        status == 0 ? message : "HTTP \(status): \(message)"
    }
}
