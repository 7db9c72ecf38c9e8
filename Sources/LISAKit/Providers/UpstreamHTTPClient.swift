import Foundation
public import NIOCore
public import NIOHTTP1
public import NIOPosix
import NIOSSL
import Synchronization

/// The HTTP/1.1 client of the inference hot path: one connection pool per event loop, and
/// each call made on the loop the caller runs on.
///
/// Called from a task that runs on an event loop (LISAServe runs each connection's task on
/// its channel's loop, see ``EventLoopExecutor``), the request is written, the answer read and
/// handed over without leaving that thread. Called from anywhere else it picks a loop.
///
/// - Each call has one deadline, for the whole exchange: connecting, the head and the whole
///   body. An optional first-byte limit bounds the wait for the head.
/// - Connections are kept alive and reused per (scheme, host, port, TLS settings) and loop,
///   up to ``Configuration/maxConnectionsPerHost`` open at once per loop; calls past that
///   wait for one in their deadline. Idle connections close after
///   ``Configuration/idleTimeout``.
/// - Nothing is followed: a 3xx is an answer. Bodies pass through as sent (no decompression).
/// - Reading follows the consumer: a body nobody reads stops being read from the socket.
public final class UpstreamHTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// How long to wait for a TCP connection. Default 10 s.
        public var connectTimeout: Duration = .seconds(10)
        /// Connections open at once to one host, per event loop. Default 512.
        public var maxConnectionsPerHost: Int = 512
        /// Idle connections kept per host and loop. Default 64.
        public var maxIdleConnectionsPerHost: Int = 64
        /// How long an idle connection is kept. Default 60 s.
        public var idleTimeout: Duration = .seconds(60)

        public init() {}
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let pools: [ObjectIdentifier: LoopPool]
    private let tlsContexts = Mutex<[UpstreamTLS: (at: ContinuousClock.Instant, context: NIOSSLContext)]>([:])

    public init(configuration: Configuration = Configuration(), eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = eventLoopGroup
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in eventLoopGroup.makeIterator() {
            pools[ObjectIdentifier(loop)] = LoopPool(eventLoop: loop, configuration: configuration)
        }
        self.pools = pools
    }

    /// One request: `POST` of `body` to `url` with `headers` (Host and Content-Length are added).
    public struct Request: Sendable {
        public var url: String
        public var headers: HTTPHeaders
        public var body: ByteBuffer
        /// TLS for `https` URLs.
        public var tls: UpstreamTLS

        public init(url: String, headers: HTTPHeaders, body: ByteBuffer, tls: UpstreamTLS = UpstreamTLS()) {
            self.url = url
            self.headers = headers
            self.body = body
            self.tls = tls
        }
    }

    /// Sends `request` and returns once the answer's head is in; its body streams after,
    /// within the same `deadline`. Cancelling the calling task cancels the call.
    public func execute(_ request: Request, deadline: NIODeadline, firstByteTimeout: Duration? = nil) async throws(UpstreamFailure)
        -> UpstreamResponse
    {
        let target: Target
        do { target = try Target(url: request.url) } catch { throw error }
        let loop = MultiThreadedEventLoopGroup.currentEventLoop.flatMap { pools[ObjectIdentifier($0)] != nil ? $0 : nil } ?? group.next()
        guard let pool = pools[ObjectIdentifier(loop)] else { throw UpstreamFailure(reason: .other("no connection pool for this event loop")) }
        var sslContext: NIOSSLContext?
        if target.isTLS { sslContext = try self.sslContext(for: request.tls) }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: request.headers)
        head.headers.replaceOrAdd(name: "Host", value: target.hostHeader)
        head.headers.replaceOrAdd(name: "Content-Length", value: String(request.body.readableBytes))
        let call = UpstreamCall(
            head: head, body: request.body, deadline: deadline, firstByteTimeout: firstByteTimeout.map { TimeAmount($0) }, loop: loop)
        let key = ConnectionKey(target: target, tls: target.isTLS ? request.tls : nil)
        let tlsContext = sslContext
        let result: Result<UpstreamResponse, UpstreamFailure> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if loop.inEventLoop {
                    call.begin(continuation) { pool.start(call, key: key, sslContext: tlsContext) }
                } else {
                    loop.execute { call.begin(continuation) { pool.start(call, key: key, sslContext: tlsContext) } }
                }
            }
        } onCancel: {
            loop.execute { call.cancel() }
        }
        return try result.get()
    }

    /// Closes every idle connection. Calls in flight finish on their own.
    public func shutdown() async {
        for pool in pools.values {
            try? await pool.eventLoop.submit { pool.closeIdle() }.get()
        }
    }

    private func sslContext(for tls: UpstreamTLS) throws(UpstreamFailure) -> NIOSSLContext {
        let now = ContinuousClock.now
        if let cached = tlsContexts.withLock({ $0[tls] }), now - cached.at < .seconds(60) { return cached.context }
        do {
            let context = try NIOSSLContext(configuration: tls.configuration())
            tlsContexts.withLock { $0[tls] = (now, context) }
            return context
        } catch {
            throw UpstreamFailure(reason: .tls(String(describing: error)))
        }
    }
}

/// Where a URL points: scheme, host, port and the path with its query.
struct Target: Hashable, Sendable {
    var isTLS: Bool
    var host: String
    var port: Int
    var path: String

    var hostHeader: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return port == (isTLS ? 443 : 80) ? host : "\(host):\(port)"
    }

    init(url: String) throws(UpstreamFailure) {
        var rest = Substring(url)
        if rest.hasPrefix("http://") {
            isTLS = false
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("https://") {
            isTLS = true
            rest = rest.dropFirst(8)
        } else {
            throw UpstreamFailure(reason: .other("not an http or https URL"))
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let remainder = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw UpstreamFailure(reason: .other("malformed IPv6 host in URL")) }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        guard !host.isEmpty else { throw UpstreamFailure(reason: .other("URL has no host")) }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw UpstreamFailure(reason: .other("URL has an invalid port")) }
            self.port = port
        } else {
            port = isTLS ? 443 : 80
        }
        var path = remainder.prefix(while: { $0 != "#" })
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        self.path = String(path)
    }
}

struct ConnectionKey: Hashable, Sendable {
    var isTLS: Bool
    var host: String
    var port: Int
    var tls: UpstreamTLS?

    init(target: Target, tls: UpstreamTLS?) {
        isTLS = target.isTLS
        host = target.host
        port = target.port
        self.tls = tls
    }
}
