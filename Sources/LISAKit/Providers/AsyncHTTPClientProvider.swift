public import AsyncHTTPClient
public import Logging
import NIOCore
import NIOHTTP1

/// The same adapter as ``OpenAICompatibleProvider`` over AsyncHTTPClient, which also speaks
/// HTTP/2 (`upstream.client: asyncHTTPClient`). The deadline bounds the answer's head; the
/// gateway bounds a buffered body's rest.
public struct AsyncHTTPClientProvider: InferenceProvider {
    public let httpClient: HTTPClient
    public var timeouts: UpstreamTimeouts
    /// TLS settings for `https` endpoints that do not set their own (`upstream.tls`).
    public var defaultTLS: UpstreamTLS?

    public init(httpClient: HTTPClient, timeouts: UpstreamTimeouts = UpstreamTimeouts(), defaultTLS: UpstreamTLS? = nil) {
        self.httpClient = httpClient
        self.timeouts = timeouts
        self.defaultTLS = defaultTLS
    }

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

    public func send(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse {
        try await FirstByteTimer.run(within: request.firstByteTimeout) { () async throws(UpstreamFailure) in
            try await self.execute(request, logger: logger)
        }
    }

    private func execute(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse {
        var call = HTTPClientRequest(url: request.url)
        call.method = .POST
        call.headers = request.httpHeaders
        call.body = .bytes(request.body)
        if request.endpoint.url.hasPrefix("https:") {
            call.tlsConfiguration = (request.endpoint.tls ?? UpstreamTLS()).over(defaultTLS).configuration()
        }
        do {
            // AsyncHTTPClient logs only at debug and trace, but sets metadata per request.
            let clientLogger = logger.logLevel <= .debug ? logger : Self.silentLogger
            let response = try await httpClient.execute(call, deadline: request.deadline, logger: clientLogger)
            return UpstreamResponse(status: Int(response.status.code), headers: response.headers, body: UpstreamBody(response.body))
        } catch {
            throw UpstreamFailure(classifying: error)
        }
    }
}
