import Foundation
public import NIOCore
import NIOFoundationCompat

/// One API dialect LISA answers in: how a call in it reaches the gateway, how its answer and
/// stream come back, and how its errors look on the wire.
///
/// Chat completions is the gateway's own form (``ChatCompletionsDialect``); Anthropic
/// Messages (``AnthropicDialect``) and OpenAI Responses (``ResponsesDialect``) translate onto
/// it, or pass through to an upstream that speaks them. A binding mounts each dialect as a
/// route group of its own whose errors, authentication failures included, come back in
/// ``errorAnswer(for:requestID:)``: no binding decides a dialect by looking at the path, and
/// none keeps a table of statuses of its own.
///
/// A new dialect is a new conformer, a ``DialectName`` case, and a route group in each binding.
public protocol Dialect: Sendable {
    /// The dialect's one name (usage records, spans, stream framing, lisactl).
    var name: DialectName { get }

    /// Serves one call posted to the dialect's route (``DialectName/route``): `body` in this
    /// dialect, the answer in it too, buffered or as events.
    ///
    /// - Throws: ``LISAError`` (answered with ``errorAnswer(for:requestID:)``).
    func serve(_ body: ByteBuffer, context: InferenceContext, runtime: LISARuntime) async throws -> GatewayResponse

    /// The status and body this dialect's own API answers `error` with.
    func errorAnswer(for error: LISAError, requestID: String?) -> DialectErrorAnswer

    /// The status of ``errorAnswer(for:requestID:)``, without its body (spans, metrics).
    func errorStatus(for error: LISAError) -> Int

    /// The event that ends a stream of this dialect with `error` (a relay never invents a
    /// successful end).
    func errorEvent(for error: LISAError) -> ServerSentEvent
}

/// An error as a dialect answers it: the status and a JSON body (`application/json`).
public struct DialectErrorAnswer: Sendable {
    /// The HTTP status, as a number: the binding turns it into its own status type.
    public var status: Int
    public var body: ByteBuffer
    /// Seconds after which a retry may succeed (`Retry-After`), when the error says.
    public var retryAfter: Int?
    /// Whether the answer asks for bearer credentials (`WWW-Authenticate: Bearer`).
    public var asksForCredentials: Bool

    public init(status: Int, body: ByteBuffer, retryAfter: Int? = nil, asksForCredentials: Bool = false) {
        self.status = status
        self.body = body
        self.retryAfter = retryAfter
        self.asksForCredentials = asksForCredentials
    }
}

extension DialectName {
    /// The dialect of this name.
    public var dialect: any Dialect {
        switch self {
        case .chatCompletions: ChatCompletionsDialect()
        case .messages: AnthropicDialect()
        case .responses: ResponsesDialect()
        }
    }

    /// The name of a call translated from this dialect in usage records and spans
    /// (`messages`, `responses`); `nil` for the gateway's own, named by its operation.
    var usageLabel: String? {
        self == .chatCompletions ? nil : rawValue
    }
}

/// OpenAI chat completions, LISA's own form: completions, embeddings, the media routes and
/// everything that is not another dialect's answer errors in OpenAI's envelope.
public struct ChatCompletionsDialect: Dialect {
    public init() {}

    public var name: DialectName { .chatCompletions }

    public func serve(_ body: ByteBuffer, context: InferenceContext, runtime: LISARuntime) async throws -> GatewayResponse {
        try await runtime.forward(.chatCompletions, body: body, context: context)
    }

    /// `{"error": {"message", "type", "param", "code"}}` with the status LISA gives the
    /// error's code.
    public func errorAnswer(for error: LISAError, requestID: String?) -> DialectErrorAnswer {
        let body =
            (try? JSONEncoder.sortedKeys.encodeAsByteBuffer(ErrorResponse(error: error.body), allocator: ByteBufferAllocator()))
            ?? ByteBuffer(string: #"{"error":{"message":"error","type":"server_error","param":null,"code":null}}"#)
        return DialectErrorAnswer(
            status: errorStatus(for: error), body: body, retryAfter: error.retryAfter, asksForCredentials: error.code == .unauthenticated
        )
    }

    public func errorStatus(for error: LISAError) -> Int {
        Self.status(for: error)
    }

    public func errorEvent(for error: LISAError) -> ServerSentEvent {
        .error(error.body)
    }

    /// The status LISA answers an error with: one table for every binding and dialect (a
    /// dialect differs where its own API does, as Anthropic's 529).
    public static func status(for error: LISAError) -> Int {
        switch error.code {
        case .invalidRequest: 400
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .notFound: 404
        case .operationNotAllowed: 405
        case .conflict: 409
        case .tooLarge: 413
        case .unsupportedContent: 415
        case .rateLimited, .quotaExceeded: 429
        case .upstreamRejected:
            // The upstream's own 4xx; anything else it claims is not the caller's fault.
            if let status = error.upstreamStatus, (400..<500).contains(status) { status } else { 502 }
        case .upstreamFailed, .cancelled: 502
        case .upstreamUnavailable, .notReady: 503
        case .upstreamTimeout: 504
        default: 500
        }
    }
}

extension JSONEncoder {
    /// Sorted keys, slashes as they are: LISA's own JSON answers.
    static var sortedKeys: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
