// An existing Vapor service that adds LISA's gateway to its own routes, with LISAKit only:
// authentication, limits, routing, retries, fallbacks and grounding come from the runtime;
// this file is the Vapor binding (the dialect decides statuses and the error envelope).
//
//   UPSTREAM_URL=http://127.0.0.1:8000/v1 LISA_ADMIN_KEY=change-me-please-0123 swift run EmbedInVapor
//   curl -H "Authorization: Bearer change-me-please-0123" http://127.0.0.1:8091/v1/models
import Foundation
import LISAKit
import ServiceLifecycle
import Vapor

let environment = ProcessInfo.processInfo.environment
var configuration = try LISAConfiguration.load(file: nil)  // defaults + LISA_* variables
configuration.dataDirectory = environment["LISA_DATA_DIR"] ?? ".my-vapor-lisa"
configuration.hostingBackend = "none"
configuration.models = [
    ModelDefinition(
        modelId: "assistant", modelName: environment["UPSTREAM_MODEL"] ?? "Qwen/Qwen2.5-0.5B-Instruct",
        modelUrl: environment["UPSTREAM_URL"] ?? "http://127.0.0.1:8000/v1")
]
let app = try await Application.make(Environment(name: "production", arguments: ["serve"]))
let runtime = try await LISARuntime(configuration: configuration, logger: app.logger)
app.http.server.configuration.port = Int(environment["PORT"] ?? "") ?? 8091

// The app's own route, untouched by LISA.
app.get("hello") { _ in "hello from my vapor service" }

// LISA's OpenAI routes, under /v1, behind LISA's authentication and rate limits.
let lisa = app.grouped("v1").grouped(LISAMiddleware(runtime: runtime))
lisa.get("models") { request async throws -> Response in
    try json(runtime.gateway.modelList(for: request.principal))
}
for (path, operation) in [("chat/completions", UpstreamOperation.chatCompletions), ("completions", .completions), ("embeddings", .embeddings)] {
    lisa.on(.POST, path.pathComponents, body: .collect(maxSize: "10mb")) { request async throws -> Response in
        let context = InferenceContext(requestID: UUID().uuidString, principal: request.principal, logger: request.logger)
        let answer = try await runtime.forward(operation, body: request.body.data ?? ByteBuffer(), context: context)
        switch answer.body {
        case .buffer(let buffer):
            return Response(status: .ok, headers: ["Content-Type": answer.contentType], body: .init(buffer: buffer))
        case .eventStream(let relay):
            return Response(
                status: .ok, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-cache"],
                body: .init(asyncStream: { writer in
                    try await relay.pump { try await writer.writeBuffer($0) }
                    try await writer.write(.end)
                }))
        case .bytes(let relayed):
            return Response(
                status: .ok, headers: ["Content-Type": answer.contentType],
                body: .init(asyncStream: { writer in
                    try await relayed.pump { try await writer.writeBuffer($0) }
                    try await writer.write(.end)
                }))
        }
    }
}

// LISA's runtime (models, health probes, ingestion) runs beside the app until it stops.
let running = Task { try await runtime.run() }
try await app.execute()
running.cancel()
_ = await running.result
try await app.asyncShutdown()
try await runtime.shutdown()

/// Signs requests in with LISA's authenticator and rate limiter; answers LISA's errors in
/// OpenAI's shape.
struct LISAMiddleware: AsyncMiddleware {
    let runtime: LISARuntime

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            let bearer = request.headers.bearerAuthorization?.token ?? request.headers.first(name: "Api-Key")
            let principal = try await runtime.authenticator.authenticate(bearer)
            try await runtime.rateLimiter.admit(principal)
            request.storage[PrincipalKey.self] = principal
            return try await next.respond(to: request)
        } catch let error as LISAError {
            // The dialect decides the status and the envelope; the binding only writes them.
            let answer = ChatCompletionsDialect().errorAnswer(for: error, requestID: nil)
            var headers: HTTPHeaders = ["Content-Type": "application/json"]
            if let retryAfter = answer.retryAfter { headers.add(name: "Retry-After", value: String(retryAfter)) }
            return Response(status: HTTPResponseStatus(statusCode: answer.status), headers: headers, body: .init(buffer: answer.body))
        }
    }
}

struct PrincipalKey: StorageKey { typealias Value = Principal }

extension Request {
    var principal: Principal { storage[PrincipalKey.self] ?? Principal(username: "anonymous", groups: [], method: .apiToken) }
}

func json(_ value: some Encodable) throws -> Response {
    Response(status: .ok, headers: ["Content-Type": "application/json"], body: .init(data: try JSONEncoder().encode(value)))
}
