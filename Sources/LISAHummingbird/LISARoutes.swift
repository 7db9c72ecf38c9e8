import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import LISAKit
import LISAWebUI
import NIOCore
import Logging
import NIOFoundationCompat

/// LISA's HTTP API as Hummingbird routes, to mount on any `Router`.
///
/// ```swift
/// let router = Router(context: LISARequestContext.self)
/// LISARoutes(gateway: gateway, adminKey: verifier).add(to: router)
/// ```
///
/// Adds the OpenAI routes (`/v1/...` and `/v2/serve/...`), the models API, the API-token
/// routes, `/metrics` and the health routes. Every route but health needs credentials (the
/// admin key or an API token); management routes need an administrator. Every error is
/// answered in OpenAI's shape (``OpenAIErrorMiddleware``).
public struct LISARoutes: Sendable {
    public let gateway: Gateway
    /// The models API: lifecycle, hosting, replica logs.
    public let models: ModelManager
    public let authenticator: Authenticator
    public let tokens: APITokenService
    /// Per-principal request rates; `nil`: unlimited.
    public let rateLimiter: RateLimiter?
    /// The largest request body accepted (413 above it).
    public var maxRequestBodySize: Int
    /// Retrieval-augmented generation: the repositories API and grounded chat. `nil`: not mounted.
    public var rag: RAGService?
    /// Whether a request without credentials may sign in with a verified TLS client
    /// certificate (CN → username, OU → groups). Set when serving HTTPS with a client CA.
    public var acceptsClientCertificates = false
    /// What each user may store (sessions, templates).
    public var quotas = StorageQuotas()

    public init(
        gateway: Gateway, models: ModelManager, authenticator: Authenticator, tokens: APITokenService, rateLimiter: RateLimiter? = nil,
        maxRequestBodySize: Int = 10 * 1024 * 1024
    ) {
        self.gateway = gateway
        self.models = models
        self.authenticator = authenticator
        self.tokens = tokens
        self.rateLimiter = rateLimiter
        self.maxRequestBodySize = maxRequestBodySize
    }

    /// The routes of a runtime: its gateway, models, access control, limits, quotas and RAG.
    public init(runtime: LISARuntime) {
        let configuration = runtime.configuration
        self.init(
            gateway: runtime.gateway, models: runtime.models, authenticator: runtime.authenticator, tokens: runtime.tokens,
            rateLimiter: runtime.rateLimiter, maxRequestBodySize: configuration.maxRequestBodySize
        )
        acceptsClientCertificates = configuration.serverTLS?.clientCA != nil
        rag = runtime.rag
        quotas = configuration.quotas
    }

    /// Routes where only the admin key (and the gateway's stored API tokens) authenticate.
    public init(gateway: Gateway, models: ModelManager, adminKey: AdminKeyVerifier, maxRequestBodySize: Int = 10 * 1024 * 1024) {
        self.init(
            gateway: gateway, models: models, authenticator: Authenticator(adminKey: adminKey, store: gateway.store, access: gateway.access),
            tokens: APITokenService(store: gateway.store, access: gateway.access, logger: Logger(label: "lisa.tokens")),
            maxRequestBodySize: maxRequestBodySize
        )
    }

    /// A management route: registered only behind ``AdminOnlyMiddleware``.
    public struct ManagementRoute: Sendable {
        public let method: HTTPRequest.Method
        public let path: String
        let handler: @Sendable (LISARoutes, ManagementCall) async throws -> Response
    }

    /// What a management route's handler gets: the JSON body (POST, PUT), the path
    /// parameter, the query, the caller.
    struct ManagementCall: Sendable {
        var body: ByteBuffer
        var parameter: String
        var query: [String: String]
        var principal: Principal
    }

    /// Every management route, so none can be added without the admin check (tests enumerate it).
    public static let managementRoutes: [ManagementRoute] = [
        ManagementRoute(method: .get, path: "/models") { routes, _ in
            try encode(ModelsEnvelope(models: routes.models.records()))
        },
        ManagementRoute(method: .post, path: "/models") { routes, call in
            let definition = try Gateway.decode(ModelDefinition.self, from: call.body)
            return try encode(try await routes.models.create(definition))
        },
        ManagementRoute(method: .get, path: "/models/{modelId}") { routes, call in
            try encode(try routes.models.record(id: call.parameter))
        },
        ManagementRoute(method: .put, path: "/models/{modelId}") { routes, call in
            let patch = try Gateway.decode(JSONValue.self, from: call.body)
            return try encode(try await routes.models.update(id: call.parameter, patch: patch))
        },
        ManagementRoute(method: .delete, path: "/models/{modelId}") { routes, call in
            let record = try await routes.models.delete(id: call.parameter)
            let gone = (try? routes.models.record(id: call.parameter)) == nil
            return try encode(DeletedModel(modelId: call.parameter, deleted: gone, status: gone ? "Deleted" : record.status.rawValue))
        },
        ManagementRoute(method: .get, path: "/models/{modelId}/logs") { routes, call in
            let tail = call.query["tail"].flatMap(Int.init) ?? 100
            guard (1...10_000).contains(tail) else { throw LISAError.invalidRequest("tail must be between 1 and 10000.", param: "tail") }
            let text = try await routes.models.logs(id: call.parameter, tail: tail)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text))
            )
        },
        ManagementRoute(method: .get, path: "/metrics") { routes, _ in
            routes.gateway.metrics.refresh(models: routes.gateway.registry.allModels())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: routes.gateway.metrics.registry.emitToBuffer()))
            )
        },
        ManagementRoute(method: .post, path: "/admin/rotate-key") { routes, call in
            struct RotateRequest: Decodable { var gracePeriodSeconds: Double? }
            let grace = call.body.readableBytes > 0 ? try Gateway.decode(RotateRequest.self, from: call.body).gracePeriodSeconds : nil
            let rotation = try await routes.authenticator.adminKeys.rotate(gracePeriod: grace ?? 3600, store: routes.gateway.store)
            routes.tokens.auditRotation(by: call.principal, until: rotation.previousKeyValidUntil)
            return try encode(rotation)
        },
        ManagementRoute(method: .post, path: "/api-tokens/{id}") { routes, call in
            let create = try Gateway.decode(APITokenService.CreateRequest.self, from: call.body)
            return try encode(try await routes.tokens.create(create, for: call.parameter, by: call.principal), status: .created)
        },
    ]

    /// Adds the routes and their middleware to `router`.
    public func add<Context: LISARoutesContext>(to router: Router<Context>) {
        router.middlewares.add(RequestIDMiddleware<Context>())
        router.middlewares.add(OpenAIErrorMiddleware<Context>())
        router.middlewares.add(CanonicalPathMiddleware<Context>())

        router.get("/health") { _, _ in try Self.json(["status": "OK"]) }
        router.get("/health/readiness") { _, _ in try Self.json(["status": "OK"]) }
        router.get("/health/liveliness") { _, _ in try Self.json(["status": "OK"]) }
        // The OpenAPI 3.1 description of these routes (scripts/openapi.py writes it).
        router.get("/openapi.json") { _, _ in
            guard let document = WebAssets.embedded.asset(named: "openapi.json") else {
                throw LISAError.notFound("This build has no OpenAPI document.")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-cache"],
                body: .init(byteBuffer: ByteBuffer(bytes: document.bytes))
            )
        }

        let api = router.group().add(middleware: AuthenticationMiddleware<Context>(
                authenticator: authenticator, rateLimiter: rateLimiter, acceptsClientCertificates: acceptsClientCertificates
            ))
        let gateway = self.gateway
        for prefix in ["/v1", "/v2/serve"] {
            api.get("\(prefix)/models") { _, context in try Self.encode(gateway.modelList(for: try context.requirePrincipal())) }
            api.post("\(prefix)/chat/completions") { request, context in
                try await inference(request, context: context, operation: gateway.chatCompletions, grounding: rag)
            }
            api.post("\(prefix)/completions") { request, context in
                try await inference(request, context: context, operation: gateway.completions)
            }
            api.post("\(prefix)/embeddings") { request, context in
                try await inference(request, context: context, operation: gateway.embeddings)
            }
        }

        // Who the caller is and what they may do (clients use it to decide what to show).
        let access = gateway.access
        api.get("/whoami") { _, context in
            try Self.encode(CallerIdentity(try context.requirePrincipal(), access: access))
        }

        // API tokens: users manage their own; administrators everyone's.
        let tokens = self.tokens
        api.post("/api-tokens") { request, context in
            let body = try await collectJSON(request)
            let create = try Gateway.decode(APITokenService.CreateRequest.self, from: body)
            return try Self.encode(try await tokens.create(create, for: nil, by: try context.requirePrincipal()), status: .created)
        }
        api.get("/api-tokens") { _, context in
            try Self.encode(TokenList(tokens: try await tokens.list(by: try context.requirePrincipal())))
        }
        api.get("/api-tokens/{id}") { _, context in
            try Self.encode(try await tokens.get(id: try context.parameters.require("id"), by: try context.requirePrincipal()))
        }
        api.delete("/api-tokens/{id}") { _, context in
            let id = try context.parameters.require("id")
            try await tokens.revoke(id: id, by: try context.requirePrincipal())
            return try Self.encode(["id": id, "revoked": "true"])
        }

        if let rag {
            RAGRoutes<Context>(rag: rag, maxRequestBodySize: maxRequestBodySize).add(to: api)
        }
        SessionRoutes<Context>(
            sessions: SessionService(store: gateway.store, access: gateway.access, quotas: quotas), maxRequestBodySize: maxRequestBodySize
        ).add(to: api)

        let admin = api.group().add(middleware: AdminOnlyMiddleware<Context>(access: gateway.access))
        for route in Self.managementRoutes {
            let parameter = route.path.firstRange(of: "{").map { start in
                String(route.path[route.path.index(after: start.lowerBound)..<route.path.firstIndex(of: "}")!])
            }
            admin.on(RouterPath(route.path), method: route.method) { request, context in
                var query: [String: String] = [:]
                for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
                let call = ManagementCall(
                    body: route.method == .post || route.method == .put ? try await collectJSON(request) : ByteBuffer(),
                    parameter: parameter.flatMap { context.parameters.get($0) } ?? "",
                    query: query,
                    principal: try context.requirePrincipal()
                )
                return try await route.handler(self, call)
            }
        }
    }

    /// Runs an inference operation. The upstream call is cancelled if the client goes away
    /// before the answer starts; once streaming, a failed write ends the relay, which
    /// cancels the upstream request.
    private func inference<Context: LISARoutesContext>(
        _ request: Request,
        context: Context,
        operation: @escaping @Sendable (ByteBuffer, InferenceContext) async throws(LISAError) -> GatewayResponse,
        grounding rag: RAGService? = nil
    ) async throws -> Response {
        let received = try await collectJSON(request)
        // Grounded chat: retrieve, add the context, and return the sources with the answer.
        let grounded = try await rag?.ground(received, for: try context.requirePrincipal())
        let body = grounded?.body ?? received
        let sources = grounded?.sources
        var headers: [String: String] = [:]
        for field in request.headers where field.name.canonicalName.hasPrefix("x-") {
            headers[field.name.canonicalName] = field.value
        }
        let inference = InferenceContext(
            requestID: context.requestID ?? "", headers: headers, principal: try context.requirePrincipal(), logger: context.logger
        )
        let answer = try await context.cancellingWhenClientLeaves {
            try await operation(body, inference)
        }
        var responseHeaders: HTTPFields = [.contentType: answer.contentType]
        switch answer.body {
        case .buffer(let buffer):
            let body = sources.map { (200..<300).contains(answer.status) ? RAGService.attach($0, to: buffer) : buffer } ?? buffer
            return Response(status: .init(code: answer.status), headers: responseHeaders, body: .init(byteBuffer: body))
        case .eventStream(let relay):
            responseHeaders[.cacheControl] = "no-cache"
            responseHeaders[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(
                status: .init(code: answer.status), headers: responseHeaders,
                body: ResponseBody { [context] writer in
                    // Read the upstream in a task that is cancelled when the client leaves (which
                    // cancels the upstream request); hand each event over with backpressure.
                    let events = AsyncThrowingChannel<ByteBuffer, any Error>()
                    let injector = sources.map { SourcesInjector(event: RAGService.sourcesEvent($0, model: "lisa")) }
                    let reader = Task {
                        do {
                            try await context.cancellingWhenClientLeaves {
                                try await relay.pump { chunk in
                                    for piece in injector?.process(chunk) ?? [chunk] { await events.send(piece) }
                                }
                            }
                            events.finish()
                        } catch {
                            events.fail(error)
                        }
                    }
                    defer { reader.cancel() }
                    for try await chunk in events {
                        try await writer.write(chunk)
                    }
                    try await writer.finish(nil)
                }
            )
        }
    }

    /// Collects a JSON request body, enforcing the content type and the size limit.
    ///
    /// The request's body is read through a copy so the original stays usable for
    /// detecting a client that disconnects.
    private func collectJSON(_ request: Request) async throws -> ByteBuffer {
        try await Self.collectJSON(request, limit: maxRequestBodySize)
    }

    /// The JSON body of `request` (415 without a JSON content type, 413 over `limit`), for
    /// every route group LISA mounts.
    ///
    /// The content type is required, empty bodies included: a browser sends a cross-site
    /// request without a preflight only as a form or plain text, so no such request can
    /// reach a route that acts on JSON (where a client certificate would sign it in).
    static func collectJSON(_ request: Request, limit: Int) async throws -> ByteBuffer {
        guard let contentType = request.headers[.contentType] else {
            throw LISAError.unsupportedMediaType("(none)")
        }
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json")) else {
            throw LISAError.unsupportedMediaType(contentType)
        }
        return try await collect(request, limit: limit)
    }

    /// The body of `request`, 413 (never 500) when it is larger than `limit`, whether it
    /// declares its length or arrives chunked.
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw LISAError.payloadTooLarge(limit: limit)
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw LISAError.payloadTooLarge(limit: limit)
        } catch is NIOTooManyBytesError {
            throw LISAError.payloadTooLarge(limit: limit)
        }
    }

    private static func json(_ value: [String: String]) throws -> Response {
        try encode(value)
    }

    static func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .secondsSince1970
        let buffer = try encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }
}

struct ModelsEnvelope: Encodable {
    var models: [ModelManager.ModelRecord]
}

struct TokenList: Encodable {
    var tokens: [APIToken.View]
}

extension LISARoutesContext {
    /// The authenticated principal; a 401 if the route was reached without one.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw LISAError.unauthorized("Authentication required.") }
        return principal
    }
}

struct DeletedModel: Encodable {
    var modelId: String
    /// `false` while a hosted model's replicas are still stopping (`status: Deleting`).
    var deleted: Bool
    var status: String
}
