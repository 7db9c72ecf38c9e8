import Foundation

/// An error LISA reports to clients in OpenAI's error shape with an HTTP status.
///
/// Create one with the static factories (``invalidRequest(_:param:code:)``,
/// ``modelNotFound(_:)``, …). Messages are written for the caller and never contain
/// secrets (API keys, admin keys, upstream credentials).
public struct LISAError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Kind: Sendable, Hashable {
        case invalidRequest, authentication, permission, notFound, conflict, payloadTooLarge,
            unsupportedMediaType, rateLimited, upstream, unavailable, timeout, server
    }

    private let kind: Kind
    /// The HTTP status to answer with.
    public let status: Int
    /// A message for the caller that names the problem.
    public let message: String
    /// The request member the error is about, when there is one.
    public let param: String?
    /// A machine-readable code, such as `model_not_found`.
    public let code: String?
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    public let retryAfter: Int?
    /// Whether the gateway may retry on another endpoint (nothing reached the client and
    /// another replica may do better).
    var isRetriable = false
    /// The endpoint (`host:port`) whose answer this error reports, for metrics.
    var endpointLabel: String?

    private init(_ kind: Kind, status: Int, message: String, param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.kind = kind
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    /// OpenAI's `type` for this error.
    public var type: String {
        switch kind {
        case .invalidRequest, .notFound, .conflict, .payloadTooLarge, .unsupportedMediaType: "invalid_request_error"
        case .authentication: "authentication_error"
        case .permission: "permission_error"
        case .rateLimited: "rate_limit_error"
        case .upstream, .unavailable, .timeout: "upstream_error"
        case .server: "server_error"
        }
    }

    /// The error envelope clients receive.
    public var body: ErrorResponse.Body {
        ErrorResponse.Body(message: message, type: type, param: param, code: code)
    }

    public var description: String { "LISAError(\(status) \(type): \(message))" }

    /// A copy the gateway may retry on another endpoint.
    /// This error with `message` in place of its own (same status, type, code, retry hint):
    /// how upstream details are kept from callers who may not see them.
    public func replacingMessage(_ message: String) -> LISAError {
        var copy = LISAError(kind, status: status, message: message, param: param, code: code, retryAfter: retryAfter)
        copy.isRetriable = isRetriable
        copy.endpointLabel = endpointLabel
        return copy
    }

    /// Whether this error reports an upstream failure (502, 503, 504 from the gateway).
    public var isUpstreamFailure: Bool {
        kind == .upstream || kind == .unavailable || kind == .timeout
    }

    var markedRetriable: LISAError {
        var copy = self
        copy.isRetriable = true
        return copy
    }

    /// Whether a fallback model may be tried after this error: upstream failures and rate
    /// limits, not the caller's own mistakes or a cancelled request.
    var allowsFallback: Bool {
        (status >= 500 || status == 429) && code != "cancelled"
    }

    /// 400: the request is malformed or names something invalid.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> LISAError {
        LISAError(.invalidRequest, status: 400, message: message, param: param, code: code)
    }

    /// 401: no credentials, or credentials LISA does not accept.
    public static func unauthorized(_ message: String) -> LISAError {
        LISAError(.authentication, status: 401, message: message, code: "invalid_api_key")
    }

    /// 403: authenticated, but not allowed to do this.
    public static func forbidden(_ message: String) -> LISAError {
        LISAError(.permission, status: 403, message: message, code: "forbidden")
    }

    /// 404 for a model the caller named that does not exist (or that they may not see).
    public static func modelNotFound(_ modelID: String) -> LISAError {
        LISAError(
            .notFound, status: 404, message: "The model '\(modelID)' does not exist or you do not have access to it.",
            param: "model", code: "model_not_found"
        )
    }

    /// 404 for anything else that does not exist.
    public static func notFound(_ message: String, code: String = "not_found") -> LISAError {
        LISAError(.notFound, status: 404, message: message, code: code)
    }

    /// 405: the path exists but not with this method.
    public static func methodNotAllowed(_ message: String) -> LISAError {
        LISAError(.invalidRequest, status: 405, message: message, code: "method_not_allowed")
    }

    /// 409: the request conflicts with the current state.
    public static func conflict(_ message: String, code: String = "conflict") -> LISAError {
        LISAError(.conflict, status: 409, message: message, code: code)
    }

    /// 413: the body is larger than the configured limit.
    public static func payloadTooLarge(limit: Int) -> LISAError {
        LISAError(
            .payloadTooLarge, status: 413, message: "The request body is larger than the limit of \(limit) bytes.",
            code: "request_too_large"
        )
    }

    /// 415: the body is not JSON.
    /// 415: an uploaded file of a type LISA cannot read.
    /// A 413 with its own message (a stored-data quota, a document over its text budget).
    public static func payloadTooLarge(_ message: String, code: String = "request_too_large") -> LISAError {
        LISAError(.payloadTooLarge, status: 413, message: message, code: code)
    }

    public static func unsupportedFileType(_ message: String) -> LISAError {
        LISAError(.unsupportedMediaType, status: 415, message: message, code: "unsupported_file_type")
    }

    public static func unsupportedMediaType(_ contentType: String) -> LISAError {
        LISAError(
            .unsupportedMediaType, status: 415,
            message: "Unsupported Content-Type '\(contentType)': send the body as application/json.",
            code: "unsupported_media_type"
        )
    }

    /// 429: too many requests; retry after the given seconds.
    /// A 429 for a stored-data quota (counts: sessions, templates, documents, jobs).
    public static func quotaExceeded(_ message: String) -> LISAError {
        LISAError(.rateLimited, status: 429, message: message, code: "quota_exceeded")
    }

    public static func rateLimited(_ message: String, retryAfter: Int? = nil) -> LISAError {
        LISAError(.rateLimited, status: 429, message: message, code: "rate_limit_exceeded", retryAfter: retryAfter)
    }

    /// 502: the upstream failed or answered something unusable.
    public static func badGateway(_ message: String, code: String = "upstream_error") -> LISAError {
        LISAError(.upstream, status: 502, message: message, code: code)
    }

    /// 503: no upstream can take the request now.
    public static func serviceUnavailable(_ message: String, retryAfter: Int? = nil) -> LISAError {
        LISAError(.unavailable, status: 503, message: message, code: "upstream_unavailable", retryAfter: retryAfter)
    }

    /// 503: the model exists but is not serving (stopped, starting, failed, …).
    public static func modelNotReady(_ modelID: String, status: String) -> LISAError {
        LISAError(.unavailable, status: 503, message: "The model '\(modelID)' is \(status) and not serving requests.", code: "model_not_ready")
    }

    /// 504: the upstream did not answer in time.
    public static func gatewayTimeout(_ message: String) -> LISAError {
        LISAError(.timeout, status: 504, message: message, code: "upstream_timeout")
    }

    /// 500: a fault in LISA itself. The message must not carry internal details.
    public static func internalError(_ message: String = "The server had an error while processing your request.") -> LISAError {
        LISAError(.server, status: 500, message: message, code: "internal_error")
    }

    /// An error with an upstream's own status and message, for 4xx answers that are the caller's fault.
    public static func upstreamClientError(status: Int, body: ErrorResponse.Body) -> LISAError {
        LISAError(.invalidRequest, status: status, message: body.message, param: body.param, code: body.code)
    }
}
