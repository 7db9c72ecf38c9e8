import Foundation
public import HTTPTypes
public import Hummingbird
public import LISAKit
import LISAWebUI
import Logging
import NIOCore
import NIOFoundationCompat

/// LISA's HTTP API as Hummingbird routes, to mount on any `Router`.
///
/// ```swift
/// let runtime = try await LISARuntime(configuration: configuration, logger: logger)
/// let router = Router(context: LISARequestContext.self)
/// LISARoutes(runtime: runtime).add(to: router, at: "/lisa")
/// ```
///
/// Adds the OpenAI routes (`/v1/...` and `/v2/serve/...`), the models API, the API-token
/// routes, RAG, sessions, `/metrics` and the health routes. Every route but health needs
/// credentials (the admin key, an API token, an OIDC token); management routes need an
/// administrator. LISA's errors are answered in OpenAI's shape (``DialectErrorMiddleware``);
/// by default that middleware, the request ids and the path check apply to LISA's own
/// routes only, so the host app's routes and 404s stay its own.
public struct LISARoutes: Sendable {
    /// Where LISA's middleware (error shape, request ids, canonical paths) applies.
    public enum MiddlewareScope: Sendable {
        /// LISA's routes only (an app that mounts LISA beside its own routes).
        case routes
        /// The whole router, unknown paths included (a router that serves only LISA).
        case router
    }

    /// Everything the routes serve.
    public let runtime: LISARuntime
    public var gateway: Gateway { runtime.gateway }
    /// The models API: lifecycle, hosting, replica logs.
    public var models: ModelManager { runtime.models }
    public var authenticator: Authenticator { runtime.authenticator }
    public var tokens: APITokenService { runtime.tokens }
    /// The largest request body accepted (413 above it).
    public var maxRequestBodySize: Int
    /// Whether a request without credentials may sign in with a verified TLS client
    /// certificate (CN → username, OU → groups). Set when serving HTTPS with a client CA.
    public var acceptsClientCertificates: Bool
    /// What `GET /metrics` exports: the Prometheus backend the runtime records into (`nil`:
    /// no `/metrics` route; the app exports LISA's metrics through its own backend).
    public var prometheus: PrometheusMetrics?

    /// The routes of a runtime: its gateway, models, access control, limits, quotas and RAG.
    public init(runtime: LISARuntime, prometheus: PrometheusMetrics? = nil) {
        self.runtime = runtime
        self.prometheus = prometheus
        maxRequestBodySize = runtime.configuration.maxRequestBodySize
        acceptsClientCertificates = runtime.configuration.serverTLS?.clientCA != nil
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
        ManagementRoute(method: .post, path: "/models") { routes, call in
            let definition = try RequestJSON.decode(ModelDefinition.self, from: call.body)
            return try encode(try await routes.models.create(definition), status: .created)
        },
        ManagementRoute(method: .get, path: "/models/{modelId}") { routes, call in
            try encode(try routes.models.record(id: call.parameter))
        },
        ManagementRoute(method: .put, path: "/models/{modelId}") { routes, call in
            let patch = try RequestJSON.decode(JSONValue.self, from: call.body)
            return try encode(try await routes.models.update(id: call.parameter, patch: patch))
        },
        ManagementRoute(method: .delete, path: "/models/{modelId}") { routes, call in
            let record = try await routes.models.delete(id: call.parameter)
            let gone = (try? routes.models.record(id: call.parameter)) == nil
            return try encode(DeletedModel(modelId: call.parameter, deleted: gone, status: gone ? "Deleted" : record.status.rawValue))
        },
        ManagementRoute(method: .get, path: "/models/{modelId}/test") { routes, call in
            try encode(try await routes.runtime.testModel(call.parameter))
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
            guard let prometheus = routes.prometheus else {
                throw LISAError.notFound("This server exports its metrics through its own metrics backend, not /metrics.")
            }
            routes.gateway.metrics.refresh(models: routes.gateway.registry.allModels())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: prometheus.exposition())
            )
        },
        ManagementRoute(method: .post, path: "/admin/rotate-key") { routes, call in
            struct RotateRequest: Decodable { var gracePeriodSeconds: Double? }
            let grace = call.body.readableBytes > 0 ? try RequestJSON.decode(RotateRequest.self, from: call.body).gracePeriodSeconds : nil
            let rotation = try await routes.authenticator.adminKeys.rotate(gracePeriod: grace ?? 3600, settings: routes.runtime.store.settings)
            routes.tokens.auditRotation(by: call.principal, until: rotation.previousKeyValidUntil)
            return try encode(rotation)
        },
        // An online backup of the embedded state as one tar archive (StateBackup); its
        // snapshot files are removed once written, or when the client goes away.
        ManagementRoute(method: .post, path: "/admin/backup") { routes, call in
            let backup = try await routes.runtime.backup(by: call.principal, logger: Logger(label: "lisa.backup"))
            return Response(
                status: .ok,
                headers: [
                    .contentType: "application/x-tar", .contentDisposition: "attachment; filename=\"\(backup.fileName)\"",
                    .cacheControl: "no-store",
                ],
                body: ResponseBody(contentLength: Int(backup.size)) { writer in
                    defer { backup.remove() }
                    try await backup.write { piece in try await writer.write(piece) }
                    try await writer.finish(nil)
                }
            )
        },
        ManagementRoute(method: .post, path: "/api-tokens/{id}") { routes, call in
            let create = try RequestJSON.decode(APITokenService.CreateRequest.self, from: call.body)
            return try encode(try await routes.tokens.create(create, for: call.parameter, by: call.principal), status: .created)
        },
    ]

    /// Adds the routes under `prefix` (`""`: at the root) and LISA's middleware in `scope`.
    public func add<Context: LISARoutesContext>(to router: Router<Context>, at prefix: String = "", scope: MiddlewareScope = .routes) {
        let root: RouterGroup<Context>
        switch scope {
        case .router:
            router.middlewares.add(RequestIDMiddleware<Context>())
            router.middlewares.add(DialectErrorMiddleware<Context>())
            router.middlewares.add(CanonicalPathMiddleware<Context>())
            root = router.group(RouterPath(prefix))
        case .routes:
            root = router.group(RouterPath(prefix))
                .add(middleware: RequestIDMiddleware<Context>())
                .add(middleware: DialectErrorMiddleware<Context>())
                .add(middleware: CanonicalPathMiddleware<Context>())
        }
        add(to: root)
    }

    private func add<Context: LISARoutesContext>(to router: RouterGroup<Context>) {
        let runtime = self.runtime
        router.get("/health") { _, _ in try Self.json(["status": "OK"]) }
        // Ready while the state store answers (a load balancer or Kubernetes probe takes a
        // replica that cannot reach it out of rotation); 503 with the reason otherwise.
        router.get("/health/readiness") { _, _ in
            let readiness = await runtime.readiness()
            return try Self.encode(readiness, status: readiness.isReady ? .ok : .serviceUnavailable)
        }
        router.get("/health/liveliness") { _, _ in try Self.json(["status": "OK"]) }
        // Load-balancer probes often use HEAD: the same status, no body.
        router.head("/health") { _, _ in Response(status: .ok) }
        router.head("/health/liveliness") { _, _ in Response(status: .ok) }
        router.head("/health/readiness") { _, _ in Response(status: await runtime.readiness().isReady ? .ok : .serviceUnavailable) }
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

        var spanned = router.group()
        if let tracer = runtime.tracer { spanned = spanned.add(middleware: RequestSpanMiddleware<Context>(tracer: tracer)) }
        let authentication = AuthenticationMiddleware<Context>(
            authenticator: authenticator, rateLimiter: runtime.rateLimiter, acceptsClientCertificates: acceptsClientCertificates
        )
        let api = spanned.group().add(middleware: authentication)
        // Each dialect is a route group of its own: its errors, a refused sign-in and an
        // unknown path under its route included, come back in its shape.
        func dialectGroup(_ dialect: any Dialect) -> (open: RouterGroup<Context>, signedIn: RouterGroup<Context>) {
            var open = router.group().add(middleware: DialectErrorMiddleware<Context>(dialect))
            if let tracer = runtime.tracer { open = open.add(middleware: RequestSpanMiddleware<Context>(tracer: tracer, dialect: dialect)) }
            return (open, open.group().add(middleware: authentication))
        }
        let chat = dialectGroup(ChatCompletionsDialect()).signedIn
        let messages = dialectGroup(AnthropicDialect())
        let responses = dialectGroup(ResponsesDialect()).signedIn
        let gateway = self.gateway
        for prefix in ["/v1", "/v2/serve"] {
            chat.get("\(prefix)/models") { _, context in try Self.encode(gateway.modelList(for: try context.requirePrincipal())) }
            // One model as the list shows it; 404 for one the caller may not see (as for unknown ones).
            chat.get("\(prefix)/models/{id}") { _, context in
                let id = try context.parameters.require("id")
                guard let model = gateway.modelList(for: try context.requirePrincipal()).data.first(where: { $0.id == id }) else {
                    throw LISAError.modelNotFound(id)
                }
                return try Self.encode(model)
            }
            // The call route of each dialect: chat completions, Anthropic Messages (Claude
            // Code, the anthropic SDKs) and OpenAI Responses (the Agents SDK, Codex).
            for (group, dialect) in [
                (chat, ChatCompletionsDialect() as any Dialect), (messages.signedIn, AnthropicDialect()), (responses, ResponsesDialect()),
            ] {
                group.post("\(prefix)\(dialect.name.route)") { request, context in
                    try await inference(request, context: context) { runtime, body, inference in
                        try await dialect.serve(body, context: inference, runtime: runtime)
                    }
                }
            }
            chat.post("\(prefix)/completions") { request, context in
                try await inference(.completions, request, context: context)
            }
            chat.post("\(prefix)/embeddings") { request, context in
                try await inference(.embeddings, request, context: context)
            }
            messages.signedIn.post("\(prefix)/messages/count_tokens") { request, context in
                let body = try await collectJSON(request)
                let tokens = try await runtime.countTokens(body: body, context: try inferenceContext(request, context: context))
                return try Self.encode(["input_tokens": tokens])
            }
            // Anthropic's other routes (batches, files, models under /v1/messages) are not
            // served, and say so in Anthropic's shape.
            for path in ["\(prefix)/messages", "\(prefix)/messages/count_tokens", "\(prefix)/messages/**"] {
                for method in [HTTPRequest.Method.get, .head, .options, .put, .patch, .delete] + (path.hasSuffix("**") ? [.post] : []) {
                    messages.open.on(RouterPath(path), method: method) { _, _ -> Response in throw HTTPError(.notFound) }
                }
            }
            // Images, audio, moderations and rerank, routed to models of the matching type.
            for route in MediaRoute.allCases {
                chat.post("\(prefix)/\(route.rawValue)") { request, context in
                    let contentType = request.headers[.contentType]
                    let body: ByteBuffer
                    if route.isMultipart {
                        do {
                            body = try await request.body.collect(upTo: Gateway.maxFormSize)
                        } catch {
                            throw LISAError.payloadTooLarge(limit: Gateway.maxFormSize)
                        }
                    } else {
                        body = try await collectJSON(request)
                    }
                    return try await inference(request, context: context, body: body) { runtime, body, inference in
                        try await runtime.media(route, body: body, contentType: contentType, context: inference)
                    }
                }
            }
            responses.get("\(prefix)/responses/{id}") { _, context in
                Self.json(try await runtime.responseBody(id: try context.parameters.require("id"), for: try context.requirePrincipal()))
            }
            responses.delete("\(prefix)/responses/{id}") { _, context in
                try Self.encode(try await runtime.deleteResponse(id: try context.parameters.require("id"), for: try context.requirePrincipal()))
            }
            responses.get("\(prefix)/responses/{id}/input_items") { request, context in
                let query = request.uri.queryParameters
                let limit =
                    try query["limit"].map { value throws(LISAError) in
                        guard let limit = Int(String(value)) else { throw .invalidRequest("limit must be an integer.", param: "limit") }
                        return limit
                    } ?? 20
                let order = query["order"].map(String.init) ?? "desc"
                guard order == "asc" || order == "desc" else { throw LISAError.invalidRequest("order must be asc or desc.", param: "order") }
                return Self.json(
                    try await runtime.responseInputItemsBody(
                        id: try context.parameters.require("id"), for: try context.requirePrincipal(), limit: limit, ascending: order == "asc",
                        after: query["after"].map(String.init)
                    )
                )
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
            let create = try RequestJSON.decode(APITokenService.CreateRequest.self, from: body)
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

        // Usage and budgets: administrators see everyone's; anyone else their own.
        api.get("/usage") { request, context in
            var parameters: [String: String] = [:]
            for (name, value) in request.uri.queryParameters { parameters[String(name)] = String(value) }
            let query = try UsageQuery(parameters: parameters)
            return try Self.encode(try await runtime.usageReport(query, for: try context.requirePrincipal()))
        }
        api.get("/budgets") { request, context in
            let parameters = request.uri.queryParameters
            return try Self.encode(
                try await runtime.budgets(
                    ofUser: parameters["user"].map(String.init), groups: parameters["groups"].map { $0.split(separator: ",").map(String.init) } ?? [],
                    tokenID: parameters["tokenId"].map(String.init), by: try context.requirePrincipal()
                )
            )
        }

        RAGRoutes<Context>(rag: runtime.rag, maxRequestBodySize: maxRequestBodySize).add(to: api)
        SessionRoutes<Context>(sessions: runtime.sessions, maxRequestBodySize: maxRequestBodySize).add(to: api)

        // Administrators see every model as stored; anyone else who may call inference sees
        // the models they may use, without where they run (endpoints, launch, replicas).
        api.get("/models") { _, context in
            try Self.encode(ModelsEnvelope(models: try runtime.modelRecords(visibleTo: try context.requirePrincipal())))
        }

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
        _ operation: UpstreamOperation, _ request: Request, context: Context
    ) async throws -> Response {
        try await inference(request, context: context) { runtime, body, inference in
            try await runtime.forward(operation, body: body, context: inference)
        }
    }

    /// What the gateway knows of a request besides its body: id, `x-` headers, caller.
    private func inferenceContext<Context: LISARoutesContext>(_ request: Request, context: Context) throws -> InferenceContext {
        var headers: [String: String] = [:]
        for field in request.headers
        where (field.name.canonicalName.hasPrefix("x-") && field.name.canonicalName != "x-api-key")
            || ["anthropic-beta", "traceparent", "tracestate"].contains(field.name.canonicalName)
        {
            headers[field.name.canonicalName] = field.value
        }
        return InferenceContext(
            requestID: context.requestID ?? "", headers: headers, principal: try context.requirePrincipal(), logger: context.logger
        )
    }

    /// Runs one inference call of any dialect and writes its answer (a body, or events as
    /// they arrive).
    private func inference<Context: LISARoutesContext>(
        _ request: Request, context: Context, body collected: ByteBuffer? = nil,
        _ call: @escaping @Sendable (LISARuntime, ByteBuffer, InferenceContext) async throws -> GatewayResponse
    ) async throws -> Response {
        let body: ByteBuffer
        if let collected { body = collected } else { body = try await collectJSON(request) }
        let inference = try inferenceContext(request, context: context)
        let runtime = self.runtime
        let answer = try await context.cancellingWhenClientLeaves {
            // A call of more than 256 KiB runs off the event loops until its answer is ready:
            // checking, decoding and translating it would hold up the loop's other connections.
            guard body.readableBytes > 256 * 1024 else { return try await call(runtime, body, inference) }
            return try await withTaskExecutorPreference(globalConcurrentExecutor) { try await call(runtime, body, inference) }
        }
        let responseHeaders: HTTPFields = [.contentType: answer.contentType]
        switch answer.body {
        case .buffer(let buffer):
            return Response(status: .ok, headers: responseHeaders, body: .init(byteBuffer: buffer))
        case .bytes(let relayed):
            return Self.streaming(headers: responseHeaders, context: context) { send in try await relayed.pump(into: send) }
        case .eventStream(let relay):
            return Self.streaming(headers: responseHeaders, context: context) { send in try await relay.pump(into: send) }
        }
    }

    /// A response whose body is written as `pump` produces it: each piece is written to the
    /// client as it comes (the write's backpressure paces the upstream read), and the pump is
    /// cancelled when the client leaves, which cancels the upstream request.
    private static func streaming<Context: LISARoutesContext>(
        headers: HTTPFields, context: Context,
        _ pump: @escaping @Sendable (_ send: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws -> Void
    ) -> Response {
        var headers = headers
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { [context] writer in
                // The pump writes directly, from the task that watches the connection: no
                // hand-over between tasks per piece. Only one task uses the writer at a time
                // (this one waits), and it is handed back before this closure returns.
                let box = WriterBox(writer)
                defer { writer = box.writer }
                try await context.cancellingWhenClientLeaves {
                    try await pump { piece in try await box.writer.write(piece) }
                }
                try await box.writer.finish(nil)
            }
        )
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
        // What nearly every client sends, checked before the general parse.
        let mediaType =
            contentType == "application/json"
            ? contentType
            : contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
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

    /// A JSON body as it is.
    private static func json(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
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

/// A response body writer lent to the task that relays a stream while the body's own task
/// waits for it: never used by two tasks at once.
private final class WriterBox: @unchecked Sendable {
    var writer: any ResponseBodyWriter

    init(_ writer: any ResponseBodyWriter) { self.writer = writer }
}
