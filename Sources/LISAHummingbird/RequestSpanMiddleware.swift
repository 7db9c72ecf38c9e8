import HTTPTypes
public import Hummingbird
import Instrumentation
public import LISAKit
public import Tracing

/// A server span per API request (`POST /v1/chat/completions`), the parent of LISA's own
/// spans (authentication, the GenAI call, retrieval, each upstream attempt). A client's W3C
/// `traceparent` makes it part of the client's trace. A streamed answer's span ends when
/// the last byte is written.
///
/// ``LISARoutes`` adds it to the API routes when the runtime has a tracer, inside each
/// dialect's ``DialectErrorMiddleware``, so it sees the error and records the status the
/// dialect answers it with.
public struct RequestSpanMiddleware<Context: LISARoutesContext>: RouterMiddleware {
    let tracer: any Tracer
    let dialect: any Dialect

    /// - Parameter dialect: whose statuses errors are recorded with (OpenAI's by default).
    public init(tracer: any Tracer, dialect: any Dialect = ChatCompletionsDialect()) {
        self.tracer = tracer
        self.dialect = dialect
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var parent = InstrumentationContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        // A caller's "sampled" flag counts once the caller has signed in (AuthenticationMiddleware
        // confirms); a request that fails sign-in follows the local sampler only.
        let gate = parent.traceIdentity?.sampled == true ? RemoteSamplingGate() : nil
        if let gate { parent.remoteSamplingGate = gate }
        let method = request.method.rawValue
        let span = tracer.startSpan(method, context: parent, ofKind: .server)
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes["http.request.method"] = method
                attributes["url.path"] = request.uri.path
                attributes["url.scheme"] = request.head.scheme ?? "http"
                if let agent = request.headers[.userAgent] { attributes["user_agent.original"] = String(agent.prefix(256)) }
                if let id = context.requestID { attributes["lisa.request_id"] = id }
            }
        }
        do {
            var response = try await InstrumentationContext.$current.withValue(span.context) {
                try await next(request, context)
            }
            gate?.refuse()
            Self.finish(span, route: context.endpointPath, method: method, status: Int(response.status.code))
            let body = response.body
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                do {
                    try await body.write(writer)
                    span.end()
                } catch {
                    span.attributes["error.type"] = "response_write_failed"
                    span.setStatus(SpanStatus(code: .error, message: "response_write_failed"))
                    span.end()
                    throw error
                }
            }
            return response
        } catch {
            let status: Int
            if let error = error as? LISAError {
                status = dialect.errorStatus(for: error)
                span.attributes["error.type"] = error.reason ?? "\(error.code)"
            } else {
                status = (error as? any HTTPResponseError).map { Int($0.status.code) } ?? 500
            }
            gate?.refuse()
            Self.finish(span, route: context.endpointPath, method: method, status: status)
            span.end()
            throw error
        }
    }

    /// Names the span by its route and records the status; 5xx is an error of this server.
    static func finish(_ span: any Span, route: String?, method: String, status: Int) {
        if let route {
            span.operationName = "\(method) \(route)"
            span.attributes["http.route"] = route
        }
        span.attributes["http.response.status_code"] = status
        if status >= 500 {
            if span.attributes["error.type"] == nil { span.attributes["error.type"] = String(status) }
            span.setStatus(SpanStatus(code: .error))
        }
    }
}

/// Reads request headers by name.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from fields: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { fields[$0] }
    }
}
