import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import LISAKit
import Logging
import NIOFoundationCompat

/// LISA's HTTP API as Hummingbird routes, to mount on any `Router`.
///
/// ```swift
/// let router = Router()
/// LISARoutes(gateway: gateway, adminKey: verifier).add(to: router)
/// ```
///
/// Adds the OpenAI routes (`/v1/...` and `/v2/serve/...`), the models API and the health
/// routes. Every route but health requires the admin key, and every error is answered in
/// OpenAI's shape (``OpenAIErrorMiddleware``).
public struct LISARoutes: Sendable {
    public let gateway: Gateway
    public let adminKey: AdminKeyVerifier
    /// The largest request body accepted (413 above it).
    public var maxRequestBodySize: Int

    public init(gateway: Gateway, adminKey: AdminKeyVerifier, maxRequestBodySize: Int = 10 * 1024 * 1024) {
        self.gateway = gateway
        self.adminKey = adminKey
        self.maxRequestBodySize = maxRequestBodySize
    }

    /// Adds the routes and their middleware to `router`.
    public func add<Context: ConnectionAwareRequestContext>(to router: Router<Context>) {
        router.middlewares.add(RequestIDMiddleware<Context>())
        router.middlewares.add(OpenAIErrorMiddleware<Context>())

        router.get("/health") { _, _ in try Self.json(["status": "OK"]) }
        router.get("/health/readiness") { _, _ in try Self.json(["status": "OK"]) }
        router.get("/health/liveliness") { _, _ in try Self.json(["status": "OK"]) }

        let api = router.group().add(middleware: AdminKeyMiddleware<Context>(verifier: adminKey))
        api.get("/metrics") { _, _ in
            gateway.metrics.refresh(models: gateway.registry.allModels())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: gateway.metrics.registry.emitToBuffer()))
            )
        }
        for prefix in ["/v1", "/v2/serve"] {
            api.get("\(prefix)/models") { _, _ in try Self.encode(gateway.modelList()) }
            api.post("\(prefix)/chat/completions") { request, context in
                try await inference(request, context: context, operation: gateway.chatCompletions)
            }
            api.post("\(prefix)/completions") { request, context in
                try await inference(request, context: context, operation: gateway.completions)
            }
            api.post("\(prefix)/embeddings") { request, context in
                try await inference(request, context: context, operation: gateway.embeddings)
            }
        }

        api.get("/models") { _, _ in try Self.encode(ModelsEnvelope(models: gateway.modelRecords())) }
        api.post("/models") { request, context in
            let body = try await collectJSON(request)
            let definition = try Gateway.decode(ModelDefinition.self, from: body)
            return try Self.encode(try await gateway.registerModel(definition))
        }
        api.get("/models/{modelId}") { _, context in
            try Self.encode(try gateway.modelRecord(id: try context.parameters.require("modelId")))
        }
        api.delete("/models/{modelId}") { _, context in
            let id = try context.parameters.require("modelId")
            try await gateway.deleteModel(id: id)
            return try Self.encode(DeletedModel(modelId: id))
        }
    }

    /// Runs an inference operation. The upstream call is cancelled if the client goes away
    /// before the answer starts; once streaming, a failed write ends the relay, which
    /// cancels the upstream request.
    private func inference<Context: ConnectionAwareRequestContext>(
        _ request: Request,
        context: Context,
        operation: @escaping @Sendable (ByteBuffer, InferenceContext) async throws(LISAError) -> GatewayResponse
    ) async throws -> Response {
        let body = try await collectJSON(request)
        var headers: [String: String] = [:]
        for field in request.headers where field.name.canonicalName.hasPrefix("x-") {
            headers[field.name.canonicalName] = field.value
        }
        let inference = InferenceContext(
            requestID: context.requestID ?? "", headers: headers, logger: context.logger
        )
        let answer = try await context.cancellingWhenClientLeaves {
            try await operation(body, inference)
        }
        var responseHeaders: HTTPFields = [.contentType: answer.contentType]
        switch answer.body {
        case .buffer(let buffer):
            return Response(status: .init(code: answer.status), headers: responseHeaders, body: .init(byteBuffer: buffer))
        case .eventStream(let relay):
            responseHeaders[.cacheControl] = "no-cache"
            responseHeaders[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(
                status: .init(code: answer.status), headers: responseHeaders,
                body: ResponseBody { [context] writer in
                    // Read the upstream in a task that is cancelled when the client leaves (which
                    // cancels the upstream request); hand each event over with backpressure.
                    let events = AsyncThrowingChannel<ByteBuffer, any Error>()
                    let reader = Task {
                        do {
                            try await context.cancellingWhenClientLeaves {
                                try await relay.pump { chunk in await events.send(chunk) }
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
        if let contentType = request.headers[.contentType] {
            let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard mediaType == "application/json" || mediaType.hasSuffix("+json") else {
                throw LISAError.unsupportedMediaType(contentType)
            }
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxRequestBodySize {
            throw LISAError.payloadTooLarge(limit: maxRequestBodySize)
        }
        do {
            return try await request.body.collect(upTo: maxRequestBodySize)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw LISAError.payloadTooLarge(limit: maxRequestBodySize)
        }
    }

    private static func json(_ value: [String: String]) throws -> Response {
        try encode(value)
    }

    static func encode<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let buffer = try encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }
}

struct ModelsEnvelope: Encodable {
    var models: [Gateway.ModelRecord]
}

struct DeletedModel: Encodable {
    var modelId: String
    var deleted = true
}
