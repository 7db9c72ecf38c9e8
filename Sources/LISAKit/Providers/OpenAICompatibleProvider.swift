public import Logging
public import NIOCore

/// An adapter for any OpenAI-compatible server (vLLM, TGI `/v1`, TEI, Ollama, OpenAI…), and for
/// Anthropic and Responses upstreams, over LISA's lean HTTP/1.1 client.
///
/// It sends the body it is given to `<endpoint base URL>/<operation>` with the endpoint's
/// API key, and returns as soon as the response head arrives, so bodies stream through. The
/// deadline bounds the whole answer, and the first-byte limit is the client's own read
/// timeout. Cancelling the calling task cancels the upstream request. ``LISARuntime`` uses it
/// unless `upstream.client: asyncHTTPClient` (``AsyncHTTPClientProvider``) is configured.
public struct OpenAICompatibleProvider: InferenceProvider {
    public let client: UpstreamHTTPClient
    public var timeouts: UpstreamTimeouts
    /// TLS settings for `https` endpoints that do not set their own (`upstream.tls`).
    public var defaultTLS: UpstreamTLS?

    public init(client: UpstreamHTTPClient, timeouts: UpstreamTimeouts = UpstreamTimeouts(), defaultTLS: UpstreamTLS? = nil) {
        self.client = client
        self.timeouts = timeouts
        self.defaultTLS = defaultTLS
    }

    public var deadlineCoversBody: Bool { true }

    public func send(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse {
        let call = UpstreamHTTPClient.Request(
            url: request.url, headers: request.httpHeaders, body: request.body, tls: (request.endpoint.tls ?? UpstreamTLS()).over(defaultTLS)
        )
        return try await client.execute(call, deadline: request.deadline, firstByteTimeout: request.firstByteTimeout)
    }
}
