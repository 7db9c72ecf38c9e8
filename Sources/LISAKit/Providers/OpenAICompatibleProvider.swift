public import AsyncHTTPClient
import Foundation
public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The operations LISA forwards: OpenAI's, Anthropic Messages', and the model servers' own
/// tokenizer.
public enum UpstreamOperation: String, Sendable {
    case chatCompletions = "chat/completions"
    case completions = "completions"
    case embeddings = "embeddings"
    /// Anthropic Messages, sent with `x-api-key` and `anthropic-version`.
    case messages = "messages"
    /// Anthropic's token counting.
    case countTokens = "messages/count_tokens"
    /// OpenAI's Responses API.
    case responses = "responses"
    /// vLLM's and llama.cpp's `/tokenize`, at the server's root rather than under `/v1`.
    case tokenize = "tokenize"
    /// llama.cpp's `/apply-template` (the chat template applied to messages), at the root.
    case applyTemplate = "apply-template"
    case imagesGenerations = "images/generations"
    /// A multipart form.
    case imagesEdits = "images/edits"
    /// A multipart form.
    case audioTranscriptions = "audio/transcriptions"
    /// A multipart form.
    case audioTranslations = "audio/translations"
    /// The answer is audio, relayed as it arrives.
    case audioSpeech = "audio/speech"
    case moderations = "moderations"
    /// vLLM's and Cohere's `/v1/rerank`.
    case rerank = "rerank"
    /// Text Embeddings Inference's `/rerank`, at the server's root, in TEI's own shape.
    case teiRerank = "tei/rerank"

    /// Whether the upstream is Anthropic-shaped (its credentials go in `x-api-key`).
    public var isAnthropic: Bool { self == .messages || self == .countTokens }

    /// The URL of the operation at an endpoint's base URL (`http://host:8000/v1`).
    public func url(base: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        if self == .tokenize || self == .applyTemplate || self == .teiRerank, base.hasSuffix("/v1") { base.removeLast(3) }
        return "\(base)/\(self == .teiRerank ? "rerank" : rawValue)"
    }
}

/// Timeouts for upstream calls, with defaults that suit LLMs: a short connect, a long total.
public struct UpstreamTimeouts: Sendable, Hashable {
    /// How long to wait for a TCP (and TLS) connection. Default 10 s.
    public var connect: Duration = .seconds(10)
    /// How long a whole request may take, streaming included. Default 600 s.
    public var request: Duration = .seconds(600)
    /// How long a streamed request waits for the response head. Default 15 s: vLLM, TGI,
    /// llama.cpp and Ollama send it as soon as they accept the request.
    public var streamFirstByte: Duration = .seconds(15)
    /// How long a stream may go without a byte (the first event included, so it covers the
    /// prompt's prefill). Default 60 s.
    public var streamIdle: Duration = .seconds(60)

    public init() {}
}

/// An adapter for any OpenAI-compatible server (vLLM, TGI `/v1`, TEI, Ollama, OpenAI…).
///
/// It sends the body it is given to `<endpoint base URL>/<operation>` with the endpoint's
/// API key, and returns as soon as the response head arrives, so bodies stream through.
/// Cancelling the calling task cancels the upstream request.
///
/// Calls go over `upstreamClient` (``UpstreamHTTPClient``: HTTP/1.1, a pool per event loop,
/// the deadline over the whole answer) when one is given, as ``LISARuntime`` does; otherwise
/// over `httpClient` (AsyncHTTPClient, which also speaks HTTP/2).
public struct OpenAICompatibleProvider: InferenceProvider {
    public let httpClient: HTTPClient
    public let upstreamClient: UpstreamHTTPClient?
    public var timeouts: UpstreamTimeouts
    /// TLS settings for `https` endpoints that do not set their own (`upstream.tls`).
    public var defaultTLS: UpstreamTLS?

    public init(
        httpClient: HTTPClient, upstreamClient: UpstreamHTTPClient? = nil, timeouts: UpstreamTimeouts = UpstreamTimeouts(),
        defaultTLS: UpstreamTLS? = nil
    ) {
        self.httpClient = httpClient
        self.upstreamClient = upstreamClient
        self.timeouts = timeouts
        self.defaultTLS = defaultTLS
    }

    public var deadlineCoversBody: Bool { upstreamClient != nil }

    /// An `HTTPClient` configured for upstream calls: pooled connections, the connect
    /// timeout, no redirects followed (every client built on it — upstreams, OIDC discovery
    /// and JWKS, OpenSearch, health probes), no transparent decompression (bodies pass
    /// through as sent), and no retrying
    /// of failed connection attempts inside the pool, so a dead endpoint fails at once and
    /// the gateway can fail over to another. Shut it down when done.
    public static func makeHTTPClient(timeouts: UpstreamTimeouts = UpstreamTimeouts()) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .init(timeouts.connect)
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        // LISA connects only where it was configured to: a 3xx is an answer, never a hop.
        configuration.redirectConfiguration = .disallow
        configuration.tracing.tracer = nil  // the gateway makes its own attempt spans (Gateway+Tracing)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    private static let silentLogger = Logger(label: "lisa.upstream", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Sends one request to one endpoint.
    ///
    /// - Throws: ``UpstreamFailure`` when no response head arrived (connect failure, timeout);
    ///   it says whether nothing was sent, so the caller knows a retry elsewhere is safe.
    public func send(
        _ operation: UpstreamOperation,
        body: ByteBuffer,
        to endpoint: EndpointDefinition,
        stream: Bool,
        deadline: NIODeadline? = nil,
        logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        try await send(
            operation, body: body, contentType: "application/json", headers: [], to: endpoint, stream: stream, deadline: deadline, logger: logger
        )
    }

    public func send(
        _ operation: UpstreamOperation,
        body: ByteBuffer,
        contentType: String,
        headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition,
        stream: Bool,
        deadline: NIODeadline? = nil,
        logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        try await send(
            operation, body: body, contentType: contentType, headers: headers, to: endpoint, stream: stream, deadline: deadline,
            firstByteTimeout: nil, logger: logger
        )
    }

    /// The request's headers: media types, the client's passed-on headers, the credentials.
    private func requestHeaders(
        _ operation: UpstreamOperation, contentType: String, headers: [(name: String, value: String)], endpoint: EndpointDefinition, stream: Bool
    ) -> HTTPHeaders {
        var requestHeaders = HTTPHeaders()
        requestHeaders.reserveCapacity(4 + headers.count)
        requestHeaders.add(name: "Content-Type", value: contentType)
        requestHeaders.add(name: "Accept", value: stream ? "text/event-stream" : operation == .audioSpeech ? "*/*" : "application/json")
        for header in headers { requestHeaders.add(name: header.name, value: header.value) }
        if operation.isAnthropic {
            requestHeaders.add(name: "anthropic-version", value: AnthropicUpstream.apiVersion)
            if let apiKey = endpoint.apiKey, !apiKey.isEmpty { requestHeaders.add(name: "x-api-key", value: apiKey) }
        } else if let apiKey = endpoint.apiKey, !apiKey.isEmpty {
            requestHeaders.add(name: "Authorization", value: "Bearer \(apiKey)")
        }
        return requestHeaders
    }

    public func send(
        _ operation: UpstreamOperation, body: ByteBuffer, contentType: String, headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?, firstByteTimeout: Duration?, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        let requestHeaders = requestHeaders(operation, contentType: contentType, headers: headers, endpoint: endpoint, stream: stream)
        let deadline = deadline ?? .now() + .init(timeouts.request)
        if let upstreamClient {
            let request = UpstreamHTTPClient.Request(
                url: operation.url(base: endpoint.url), headers: requestHeaders, body: body, tls: (endpoint.tls ?? UpstreamTLS()).over(defaultTLS)
            )
            return try await upstreamClient.execute(request, deadline: deadline, firstByteTimeout: firstByteTimeout)
        }
        return try await Gateway.withFirstByteTimeout(firstByteTimeout?.seconds) { () async throws(UpstreamFailure) in
            try await self.sendOverAsyncHTTPClient(operation, body: body, headers: requestHeaders, to: endpoint, deadline: deadline, logger: logger)
        }
    }

    private func sendOverAsyncHTTPClient(
        _ operation: UpstreamOperation, body: ByteBuffer, headers: HTTPHeaders, to endpoint: EndpointDefinition, deadline: NIODeadline, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        var request = HTTPClientRequest(url: operation.url(base: endpoint.url))
        request.method = .POST
        request.headers = headers
        request.body = .bytes(body)
        if endpoint.url.hasPrefix("https:") {
            let tls = (endpoint.tls ?? UpstreamTLS()).over(defaultTLS)
            request.tlsConfiguration = tls.configuration()
        }
        do {
            // AsyncHTTPClient logs only at debug and trace, but sets metadata per request.
            let clientLogger = logger.logLevel <= .debug ? logger : Self.silentLogger
            let response = try await httpClient.execute(
                request, deadline: deadline, logger: clientLogger
            )
            return UpstreamResponse(status: Int(response.status.code), headers: response.headers, body: UpstreamBody(response.body))
        } catch {
            throw UpstreamFailure(classifying: error)
        }
    }
}

/// Why an upstream call produced no response.
public struct UpstreamFailure: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// The connection could not be made: nothing reached the upstream.
        case connectFailed(String)
        /// The upstream closed the connection before answering (a replica going away); it
        /// produced nothing, so another endpoint may take the request.
        case connectionClosed
        /// No answer in time.
        case timedOut
        /// The calling task was cancelled (the client went away).
        case cancelled
        /// The TLS handshake failed (certificate not trusted, expired, for another name…):
        /// nothing reached the upstream.
        case tls(String)
        /// Anything else; the request may have reached the upstream.
        case other(String)
    }

    public let reason: Reason

    public init(reason: Reason) {
        self.reason = reason
    }

    init(classifying error: any Error) {
        if let failure = error as? UpstreamFailure {
            reason = failure.reason
            return
        }
        if error is CancellationError {
            reason = .cancelled
            return
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .tlsHandshakeTimeout: reason = .connectFailed("connect timed out"); return
            case .deadlineExceeded, .readTimeout, .writeTimeout: reason = .timedOut; return
            case .cancelled: reason = .cancelled; return
            case .remoteConnectionClosed: reason = .connectionClosed; return
            default: break
            }
        }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            reason = .tls(String(describing: error))
            return
        }
        if let error = error as? ChannelError {
            switch error {
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .eof, .inputClosed:
                // A pooled connection the upstream closed (a replica going away) just as the
                // request was written: nothing was answered.
                reason = .connectionClosed
                return
            case .connectTimeout:
                reason = .connectFailed("connect timed out")
                return
            default: break
            }
        }
        let text = String(describing: error)
        if text.contains("refused") || text.contains("ECONNREFUSED") || error is NIOConnectionError {
            reason = .connectFailed("connection refused")
        } else if text.contains("reset by peer") || text.contains("ECONNRESET") || text.contains("Broken pipe") || text.contains("EPIPE") {
            reason = .connectionClosed
        } else if text.contains("unreachable") || text.contains("No route") {
            reason = .connectFailed("host unreachable")
        } else if text.lowercased().contains("resolve") || text.contains("getaddrinfo") {
            reason = .connectFailed("host name not resolved")
        } else {
            reason = .other(text)
        }
    }

    /// Whether a retry on another endpoint is safe: the upstream answered nothing.
    public var isSafeToRetry: Bool {
        switch reason {
        case .connectFailed, .connectionClosed, .tls: true
        default: false
        }
    }

    public var description: String {
        switch reason {
        case .connectFailed(let why): "connect failed: \(why)"
        case .connectionClosed: "connection closed by the upstream before it answered"
        case .tls(let why): "TLS handshake failed: \(why)"
        case .timedOut: "timed out"
        case .cancelled: "cancelled"
        case .other(let why): why
        }
    }
}
