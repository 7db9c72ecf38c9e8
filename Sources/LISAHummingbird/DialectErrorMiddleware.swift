import Foundation
public import HTTPTypes
public import Hummingbird
public import LISAKit
import Logging
import NIOCore

/// Turns every error a route throws into its dialect's error answer: the envelope and status
/// of ``Dialect/errorAnswer(for:requestID:)``.
///
/// Each dialect's route group has one of its own, outside authentication, so a refused
/// sign-in on `/v1/messages` is answered in Anthropic's shape; the one at the root answers in
/// OpenAI's. ``LISAError``s keep their message; Hummingbird's own errors (unknown path, wrong
/// method, body too large) are translated; anything else becomes a 500 whose message reveals
/// nothing internal (the details go to the log).
public struct DialectErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let dialect: any Dialect

    /// - Parameter dialect: whose error answers to give (OpenAI's chat completions by default).
    public init(_ dialect: any Dialect = ChatCompletionsDialect()) {
        self.dialect = dialect
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as LISAError {
            return Self.response(for: error, in: dialect)
        } catch let error as HTTPError {
            return Self.response(for: Self.translate(error, request: request), in: dialect)
        } catch is NIOTooManyBytesError {
            return Self.response(for: .payloadTooLarge("The request body is too large."), in: dialect)
        } catch {
            context.logger.error("unhandled error", metadata: ["lisa.error": "\(String(reflecting: error))"])
            return Self.response(for: .internalError(), in: dialect)
        }
    }

    static func translate(_ error: HTTPError, request: Request) -> LISAError {
        switch error.status {
        case .notFound:
            return .notFound("Unknown path \(request.method) \(request.uri.path).", reason: "unknown_url")
        case .methodNotAllowed:
            return .methodNotAllowed("\(request.method) is not allowed on \(request.uri.path).")
        case .contentTooLarge:
            return .payloadTooLarge("The request body is too large.")
        case .unauthorized:
            return .unauthorized(error.body ?? "Authentication required.")
        default:
            if error.status.code >= 500 { return .internalError() }
            return .invalidRequest(error.body ?? error.status.reasonPhrase)
        }
    }

    /// The HTTP response for an error in `dialect`'s shape (OpenAI's by default).
    public static func response(for error: LISAError, in dialect: any Dialect = ChatCompletionsDialect(), requestID: String? = nil) -> Response {
        let answer = dialect.errorAnswer(for: error, requestID: requestID)
        var headers: HTTPFields = [.contentType: "application/json", .xContentTypeOptions: "nosniff"]
        if let retryAfter = answer.retryAfter { headers[.retryAfter] = String(retryAfter) }
        if answer.asksForCredentials { headers[.wwwAuthenticate] = #"Bearer realm="lisa""# }
        return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: answer.body))
    }
}

/// The error middleware of earlier releases, which answered in OpenAI's shape.
@available(*, deprecated, renamed: "DialectErrorMiddleware")
public typealias OpenAIErrorMiddleware<Context: RequestContext> = DialectErrorMiddleware<Context>

extension LISAError {
    /// The status this binding answers the error with on OpenAI's routes (and LISA's own).
    public var httpStatus: HTTPResponse.Status {
        .init(code: ChatCompletionsDialect.status(for: self))
    }
}
