import Foundation
public import LISAOpenAI

/// An error LISAKit throws: what went wrong as a ``Code``, a message that is safe to show
/// the caller, and the underlying error when there is one.
///
/// LISAKit knows nothing of HTTP: a binding (LISAHummingbird, or an embedder's own) turns
/// the code into a status and the dialect's error envelope. Create errors with the static
/// factories (``invalidRequest(_:param:reason:)``, ``modelNotFound(_:)``, …). Messages are
/// written for the caller and never contain secrets (API keys, admin keys, upstream
/// credentials).
public struct LISAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added in minor releases, so a
    /// `switch` over codes needs a `default`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidRequest, unauthenticated, permissionDenied, notFound, operationNotAllowed, conflict, tooLarge,
                unsupportedContent, rateLimited, quotaExceeded, upstreamRejected, upstreamFailed, upstreamUnavailable,
                upstreamTimeout, notReady, cancelled, internalError
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The request is malformed or names something invalid.
        public static let invalidRequest = Code(.invalidRequest)
        /// No credentials, or credentials LISA does not accept.
        public static let unauthenticated = Code(.unauthenticated)
        /// Authenticated, but not allowed to do this.
        public static let permissionDenied = Code(.permissionDenied)
        /// What the request names does not exist (or the caller may not see it).
        public static let notFound = Code(.notFound)
        /// The resource exists but does not support this operation.
        public static let operationNotAllowed = Code(.operationNotAllowed)
        /// The request conflicts with what is stored.
        public static let conflict = Code(.conflict)
        /// A body, document or stored total is over its budget.
        public static let tooLarge = Code(.tooLarge)
        /// Content of a type LISA cannot read.
        public static let unsupportedContent = Code(.unsupportedContent)
        /// Too many requests; ``LISAError/retryAfter`` says when to come back.
        public static let rateLimited = Code(.rateLimited)
        /// A stored-data quota (sessions, templates, documents, jobs) is used up.
        public static let quotaExceeded = Code(.quotaExceeded)
        /// The upstream refused the request as the caller's mistake
        /// (``LISAError/upstreamStatus`` carries its status).
        public static let upstreamRejected = Code(.upstreamRejected)
        /// The upstream failed or answered something unusable.
        public static let upstreamFailed = Code(.upstreamFailed)
        /// No upstream (or the state store) can take the request now.
        public static let upstreamUnavailable = Code(.upstreamUnavailable)
        /// The upstream did not answer in time.
        public static let upstreamTimeout = Code(.upstreamTimeout)
        /// The model exists but is not serving (stopped, starting, failed, …).
        public static let notReady = Code(.notReady)
        /// The caller went away or cancelled the call.
        public static let cancelled = Code(.cancelled)
        /// A fault in LISA itself.
        public static let internalError = Code(.internalError)

        public var description: String { base.rawValue }

        /// Whether this code reports an upstream's failure.
        public var isUpstreamFailure: Bool {
            [.upstreamFailed, .upstreamUnavailable, .upstreamTimeout, .notReady, .cancelled].contains(base)
        }
    }

    /// What went wrong.
    public let code: Code
    /// A message for the caller that names the problem.
    public let message: String
    /// The request member the error is about, when there is one.
    public let param: String?
    /// A finer machine-readable reason, such as `model_not_found` (OpenAI's `code`).
    public let reason: String?
    /// Seconds after which a retry may succeed.
    public let retryAfter: Int?
    /// For ``Code/upstreamRejected``: the status the upstream answered with.
    public let upstreamStatus: Int?
    /// The error this one reports, when it wraps one (for logs; never shown to callers).
    public let underlying: (any Error & Sendable)?
    /// Whether the gateway may retry on another endpoint (nothing reached the client and
    /// another replica may do better).
    package var isRetriable = false
    /// The endpoint (`host:port`) whose answer this error reports, for metrics.
    package var endpointLabel: String?

    /// An error with a code and a message of your own (for conformers: stores, providers).
    public init(
        _ code: Code, _ message: String, param: String? = nil, reason: String? = nil, retryAfter: Int? = nil,
        upstreamStatus: Int? = nil, underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.param = param
        self.reason = reason
        self.retryAfter = retryAfter
        self.upstreamStatus = upstreamStatus
        self.underlying = underlying
    }

    public var description: String {
        "LISAError(\(code)\(reason.map { " \($0)" } ?? ""): \(message)\(underlying.map { " [\($0)]" } ?? ""))"
    }

    /// Errors are equal when they say the same to the caller (the underlying error aside).
    public static func == (lhs: LISAError, rhs: LISAError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.param == rhs.param && lhs.reason == rhs.reason
            && lhs.retryAfter == rhs.retryAfter && lhs.upstreamStatus == rhs.upstreamStatus
    }

    /// This error with `message` in place of its own (same code, reason, retry hint): how
    /// upstream details are kept from callers who may not see them.
    public func replacingMessage(_ message: String) -> LISAError {
        var copy = LISAError(
            code, message, param: param, reason: reason, retryAfter: retryAfter, upstreamStatus: upstreamStatus, underlying: underlying
        )
        copy.isRetriable = isRetriable
        copy.endpointLabel = endpointLabel
        return copy
    }

    /// Whether this error reports an upstream failure.
    public var isUpstreamFailure: Bool { code.isUpstreamFailure && code != .cancelled }

    package var markedRetriable: LISAError {
        var copy = self
        copy.isRetriable = true
        return copy
    }

    /// Whether a fallback model may be tried after this error: upstream failures and rate
    /// limits, not the caller's own mistakes or a cancelled request.
    package var allowsFallback: Bool {
        code == .rateLimited || code == .internalError || (code.isUpstreamFailure && code != .cancelled)
    }

    /// The request is malformed or names something invalid.
    public static func invalidRequest(_ message: String, param: String? = nil, reason: String? = nil) -> LISAError {
        LISAError(.invalidRequest, message, param: param, reason: reason)
    }

    /// No credentials, or credentials LISA does not accept.
    public static func unauthorized(_ message: String) -> LISAError {
        LISAError(.unauthenticated, message, reason: "invalid_api_key")
    }

    /// Authenticated, but not allowed to do this.
    public static func forbidden(_ message: String) -> LISAError {
        LISAError(.permissionDenied, message, reason: "forbidden")
    }

    /// A model the caller named that does not exist (or that they may not see).
    public static func modelNotFound(_ modelID: String) -> LISAError {
        LISAError(
            .notFound, "The model '\(modelID)' does not exist or you do not have access to it.", param: "model", reason: "model_not_found"
        )
    }

    /// Anything else that does not exist.
    public static func notFound(_ message: String, reason: String = "not_found") -> LISAError {
        LISAError(.notFound, message, reason: reason)
    }

    /// The resource exists but not with this operation.
    public static func methodNotAllowed(_ message: String) -> LISAError {
        LISAError(.operationNotAllowed, message, reason: "method_not_allowed")
    }

    /// The request conflicts with the current state.
    public static func conflict(_ message: String, reason: String = "conflict") -> LISAError {
        LISAError(.conflict, message, reason: reason)
    }

    /// The body is larger than the configured limit.
    public static func payloadTooLarge(limit: Int) -> LISAError {
        LISAError(.tooLarge, "The request body is larger than the limit of \(limit) bytes.", reason: "request_too_large")
    }

    /// Over a budget, with a message of its own (a stored-data quota, a document over its
    /// text budget).
    public static func payloadTooLarge(_ message: String, reason: String = "request_too_large") -> LISAError {
        LISAError(.tooLarge, message, reason: reason)
    }

    /// An uploaded file of a type LISA cannot read.
    public static func unsupportedFileType(_ message: String) -> LISAError {
        LISAError(.unsupportedContent, message, reason: "unsupported_file_type")
    }

    /// The body is not JSON.
    public static func unsupportedMediaType(_ contentType: String) -> LISAError {
        LISAError(
            .unsupportedContent, "Unsupported Content-Type '\(contentType)': send the body as application/json.",
            reason: "unsupported_media_type"
        )
    }

    /// A stored-data quota (counts: sessions, templates, documents, jobs) is used up.
    public static func quotaExceeded(_ message: String) -> LISAError {
        LISAError(.quotaExceeded, message, reason: "quota_exceeded")
    }

    /// Too many requests; retry after the given seconds.
    public static func rateLimited(_ message: String, retryAfter: Int? = nil) -> LISAError {
        LISAError(.rateLimited, message, reason: "rate_limit_exceeded", retryAfter: retryAfter)
    }

    /// The upstream failed or answered something unusable.
    public static func badGateway(_ message: String, reason: String = "upstream_error") -> LISAError {
        LISAError(.upstreamFailed, message, reason: reason)
    }

    /// The caller went away before the answer was complete.
    public static func cancelled(_ message: String = "The request was cancelled.") -> LISAError {
        LISAError(.cancelled, message, reason: "cancelled")
    }

    /// No upstream can take the request now.
    public static func serviceUnavailable(_ message: String, retryAfter: Int? = nil) -> LISAError {
        LISAError(.upstreamUnavailable, message, reason: "upstream_unavailable", retryAfter: retryAfter)
    }

    /// The state store (PostgreSQL) did not answer in time or cannot be reached.
    public static func stateStoreUnavailable(_ message: String) -> LISAError {
        LISAError(.upstreamUnavailable, message, reason: "state_store_unavailable", retryAfter: 5)
    }

    /// The model exists but is not serving (stopped, starting, failed, …).
    public static func modelNotReady(_ modelID: String, status: String) -> LISAError {
        LISAError(.notReady, "The model '\(modelID)' is \(status) and not serving requests.", reason: "model_not_ready")
    }

    /// The upstream did not answer in time.
    public static func gatewayTimeout(_ message: String) -> LISAError {
        LISAError(.upstreamTimeout, message, reason: "upstream_timeout")
    }

    /// A fault in LISA itself. The message must not carry internal details.
    public static func internalError(
        _ message: String = "The server had an error while processing your request.", underlying: (any Error & Sendable)? = nil
    ) -> LISAError {
        LISAError(.internalError, message, reason: "internal_error", underlying: underlying)
    }

    /// The upstream's own refusal (a 4xx that is the caller's fault), passed on with its
    /// status and message.
    public static func upstreamClientError(status: Int, body: ErrorResponse.Body) -> LISAError {
        LISAError(.upstreamRejected, body.message, param: body.param, reason: body.code, upstreamStatus: status)
    }
}

extension LISAError {
    /// OpenAI's error `type` for this error.
    public var openAIType: String {
        switch code {
        case .unauthenticated: "authentication_error"
        case .permissionDenied: "permission_error"
        case .rateLimited, .quotaExceeded: "rate_limit_error"
        case .upstreamFailed, .upstreamUnavailable, .upstreamTimeout, .notReady, .cancelled: "upstream_error"
        case .internalError: "server_error"
        default: "invalid_request_error"
        }
    }

    /// The error in OpenAI's envelope, as the OpenAI dialect (and its streams) carries it.
    public var body: ErrorResponse.Body {
        ErrorResponse.Body(message: message, type: openAIType, param: param, code: reason)
    }
}

/// A configuration that cannot be used, with a message naming the key and the problem.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
