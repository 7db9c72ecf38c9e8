/// How long the HTTP server waits on a client, and how many it serves at once
/// (`server.headerReadTimeoutSeconds`, `server.idleTimeoutSeconds`,
/// `server.bodyReadTimeoutSeconds`, `server.maxConnections`).
///
/// A connection that sends no complete request head in time, sits idle between requests,
/// or stalls while sending a body is closed; connections past the cap are closed as they
/// are accepted, so half-open sockets cannot exhaust the server.
public struct ConnectionLimits: Sendable, Hashable {
    /// From accepting a connection (or the end of its last response) to a complete request
    /// head. Default 10 s.
    public var headerReadTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in flight. Default 60 s.
    public var idleTimeout: Duration = .seconds(60)
    /// The longest gap between two reads of a request body. Default 30 s.
    public var bodyReadTimeout: Duration = .seconds(30)
    /// Connections served at once. Default 4096.
    public var maxConnections: Int = 4096

    public init() {}

    public func validate() throws(ConfigurationError) {
        guard headerReadTimeout > .zero, idleTimeout > .zero, bodyReadTimeout > .zero else {
            throw ConfigurationError("server.headerReadTimeoutSeconds, idleTimeoutSeconds and bodyReadTimeoutSeconds must be positive")
        }
        guard maxConnections >= 1 else { throw ConfigurationError("server.maxConnections must be at least 1") }
    }
}
