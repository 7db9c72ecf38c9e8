import Foundation

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
