import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
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
    public func execute(_ request: Request, deadline: NIODeadline, firstByteTimeout: Duration? = nil) async throws(UpstreamFailure) -> UpstreamResponse {
        let target: Target
        do { target = try Target(url: request.url) } catch { throw error }
        let loop = MultiThreadedEventLoopGroup.currentEventLoop.flatMap { pools[ObjectIdentifier($0)] != nil ? $0 : nil } ?? group.next()
        guard let pool = pools[ObjectIdentifier(loop)] else { throw UpstreamFailure(reason: .other("no connection pool for this event loop")) }
        var sslContext: NIOSSLContext?
        if target.isTLS { sslContext = try self.sslContext(for: request.tls) }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.path, headers: request.headers)
        head.headers.replaceOrAdd(name: "Host", value: target.hostHeader)
        head.headers.replaceOrAdd(name: "Content-Length", value: String(request.body.readableBytes))
        let call = UpstreamCall(head: head, body: request.body, deadline: deadline, firstByteTimeout: firstByteTimeout.map { TimeAmount($0) }, loop: loop)
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

/// One call, from its start to the end of its body. Confined to its event loop.
final class UpstreamCall: @unchecked Sendable {
    let head: HTTPRequestHead
    let body: ByteBuffer
    let deadline: NIODeadline
    let firstByteTimeout: TimeAmount?
    let loop: any EventLoop
    private var continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamFailure>, Never>?
    /// Why it failed before it began (cancelled at once).
    private var earlyFailure: UpstreamFailure?
    /// The connection carrying it, once it has one.
    var connection: UpstreamConnectionHandler?
    /// Set while it waits for a connection.
    var waiting: (pool: LoopPool, key: ConnectionKey)?
    private var deadlineTimer: Scheduled<Void>?
    var finished = false

    init(head: HTTPRequestHead, body: ByteBuffer, deadline: NIODeadline, firstByteTimeout: TimeAmount?, loop: any EventLoop) {
        self.head = head
        self.body = body
        self.deadline = deadline
        self.firstByteTimeout = firstByteTimeout
        self.loop = loop
    }

    /// Takes the caller's continuation and runs `start`, unless the call already failed.
    func begin(_ continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamFailure>, Never>, start: () -> Void) {
        if let earlyFailure {
            continuation.resume(returning: .failure(earlyFailure))
            return
        }
        self.continuation = continuation
        start()
    }

    func armDeadline() {
        deadlineTimer = loop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            fail(UpstreamFailure(reason: .timedOut))
        }
    }

    /// Hands the answer's head over (once).
    func respond(_ response: UpstreamResponse) {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(returning: .success(response))
    }

    /// Ends the call with `failure`: before the head the caller gets it; after, the body does.
    func fail(_ failure: UpstreamFailure) {
        guard !finished else { return }
        if let waiting {
            self.waiting = nil
            waiting.pool.removeWaiter(self, key: waiting.key)
        }
        if let continuation {
            self.continuation = nil
            continuation.resume(returning: .failure(failure))
        } else if connection == nil {
            earlyFailure = failure
        }
        connection?.abort(failure)
        complete()
    }

    func cancel() { fail(UpstreamFailure(reason: .cancelled)) }

    /// The exchange is over, well or not: timers go.
    func complete() {
        finished = true
        deadlineTimer?.cancel()
        deadlineTimer = nil
        connection = nil
    }
}

/// The idle connections and waiting calls of one event loop. Confined to that loop.
final class LoopPool: @unchecked Sendable {
    let eventLoop: any EventLoop
    let configuration: UpstreamHTTPClient.Configuration
    private var idle: [ConnectionKey: [UpstreamConnectionHandler]] = [:]
    private var open: [ConnectionKey: Int] = [:]
    private var waiters: [ConnectionKey: [(call: UpstreamCall, sslContext: NIOSSLContext?)]] = [:]

    init(eventLoop: any EventLoop, configuration: UpstreamHTTPClient.Configuration) {
        self.eventLoop = eventLoop
        self.configuration = configuration
    }

    func start(_ call: UpstreamCall, key: ConnectionKey, sslContext: NIOSSLContext?) {
        guard !call.finished else { return }
        if call.deadline <= .now() {
            call.fail(UpstreamFailure(reason: .timedOut))
            return
        }
        call.armDeadline()
        while var connections = idle[key], let connection = connections.popLast() {
            idle[key] = connections.isEmpty ? nil : connections
            if connection.isUsable {
                connection.run(call)
                return
            }
        }
        if open[key, default: 0] >= configuration.maxConnectionsPerHost {
            call.waiting = (self, key)
            waiters[key, default: []].append((call, sslContext))
            return
        }
        connect(call, key: key, sslContext: sslContext)
    }

    private func connect(_ call: UpstreamCall, key: ConnectionKey, sslContext: NIOSSLContext?) {
        open[key, default: 0] += 1
        let (seconds, attoseconds) = configuration.connectTimeout.components
        let handler = UpstreamConnectionHandler(pool: self, key: key)
        let serverName = key.host.contains(":") || key.host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : key.host
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let operations = channel.pipeline.syncOperations
                    if let sslContext {
                        try operations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try operations.addHTTPClientHandlers()
                    try operations.addHandler(handler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: key.host, port: key.port)
            .assumeIsolatedUnsafeUnchecked()
            .whenComplete { result in
                switch result {
                case .success:
                    guard !call.finished else {
                        handler.park()
                        return
                    }
                    handler.run(call)
                case .failure(let error):
                    self.closed(handler)
                    call.fail(UpstreamFailure(classifying: error))
                }
            }
    }

    /// A connection finished its exchange and may carry another.
    func park(_ connection: UpstreamConnectionHandler) {
        let key = connection.key
        while var queue = waiters[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[key] = queue.isEmpty ? nil : queue
            next.call.waiting = nil
            if next.call.finished { continue }
            connection.run(next.call)
            return
        }
        var connections = idle[key, default: []]
        guard connections.count < configuration.maxIdleConnectionsPerHost else {
            connection.close()
            return
        }
        connections.append(connection)
        idle[key] = connections
        connection.idleSince(timeout: TimeAmount(configuration.idleTimeout))
    }

    /// A connection is gone (closed, or it never connected).
    func closed(_ connection: UpstreamConnectionHandler) {
        let key = connection.key
        if let connections = idle[key], let index = connections.firstIndex(where: { $0 === connection }) {
            var rest = connections
            rest.remove(at: index)
            idle[key] = rest.isEmpty ? nil : rest
        }
        if let count = open[key] { open[key] = count > 1 ? count - 1 : nil }
        // A slot is free: the first waiter gets a new connection.
        while var queue = waiters[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiters[key] = queue.isEmpty ? nil : queue
            next.call.waiting = nil
            if next.call.finished { continue }
            connect(next.call, key: key, sslContext: next.sslContext)
            return
        }
    }

    func removeWaiter(_ call: UpstreamCall, key: ConnectionKey) {
        guard var queue = waiters[key] else { return }
        queue.removeAll { $0.call === call }
        waiters[key] = queue.isEmpty ? nil : queue
    }

    func closeIdle() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for connection in all { connection.close() }
    }
}

/// Thrown by an answer's body when the exchange failed after the head.
extension UpstreamFailure {
    static let closedMidBody = UpstreamFailure(reason: .other("the upstream closed the connection before the answer ended"))
}

/// One upstream connection: writes a call's request and relays its answer. Confined to its loop.
final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDelegate
    >

    let pool: LoopPool
    let key: ConnectionKey
    private var context: ChannelHandlerContext?
    private var call: UpstreamCall?
    private var state = State.idle
    private var firstByteTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    /// Whether the consumer wants more body; reads wait while it does not.
    private var reading = true
    private var pendingRead = false
    private var gone = false
    /// Counts the exchanges on this connection, so a body's late word is not taken for the next's.
    private var exchange = 0

    enum State {
        case idle
        /// The request is out; no head yet.
        case awaitingHead
        /// The head is in, not yet handed over (it is, at the end of this read burst).
        case head(UpstreamResponse, Producer.Source, keepAlive: Bool)
        case body(Producer.Source, keepAlive: Bool)
    }

    init(pool: LoopPool, key: ConnectionKey) {
        self.pool = pool
        self.key = key
    }

    var isUsable: Bool { !gone && context?.channel.isActive == true }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Writes `call`'s request on this connection.
    func run(_ call: UpstreamCall) {
        guard let context, !gone else {
            call.fail(.init(reason: .connectionClosed))
            return
        }
        idleTimer?.cancel()
        idleTimer = nil
        self.call = call
        call.connection = self
        exchange &+= 1
        state = .awaitingHead
        reading = true
        if let timeout = call.firstByteTimeout {
            firstByteTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
                self.call?.fail(UpstreamFailure(reason: .timedOut))
            }
        }
        context.write(wrapOutboundOut(.head(call.head)), promise: nil)
        if call.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(call.body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if pendingRead {
            pendingRead = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead = state, call != nil else {
                // An answer nobody asked for: the connection is not in a state to reuse.
                close()
                return
            }
            firstByteTimer?.cancel()
            firstByteTimer = nil
            let delegate = BodyDelegate(handler: self, exchange: exchange, loop: context.eventLoop)
            let sequence = Producer.makeSequence(
                elementType: ByteBuffer.self, failureType: (any Error).self,
                backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16), finishOnDeinit: true, delegate: delegate
            )
            let response = UpstreamResponse(status: Int(head.status.code), headers: head.headers, body: UpstreamBody(sequence.sequence))
            state = .head(response, sequence.source, keepAlive: head.isKeepAlive)
        case .body(let buffer):
            switch state {
            case .head(_, let source, _), .body(let source, _):
                if source.yield(buffer) == .stopProducing { reading = false }
            default:
                break
            }
        case .end:
            switch state {
            case .head(let response, let source, let keepAlive):
                source.finish()
                state = .idle
                call?.respond(response)
                finishExchange(keepAlive: keepAlive)
            case .body(let source, let keepAlive):
                source.finish()
                state = .idle
                finishExchange(keepAlive: keepAlive)
            default:
                close()
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The head goes over once this burst of reads is in, with what body came along: a
        // small answer is often whole by then and is collected without a wait.
        if case .head(let response, let source, let keepAlive) = state {
            state = .body(source, keepAlive: keepAlive)
            call?.respond(response)
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if reading || call == nil {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure = UpstreamFailure(classifying: error)
        fail(failure)
        close()
    }

    func channelInactive(context: ChannelHandlerContext) {
        gone = true
        firstByteTimer?.cancel()
        idleTimer?.cancel()
        fail(.init(reason: .connectionClosed))
        pool.closed(self)
        context.fireChannelInactive()
    }

    /// The call ended with `failure` (deadline, cancellation): this exchange stops here, and
    /// the connection with it, since an answer may still be coming.
    func abort(_ failure: UpstreamFailure) {
        failBody(failure)
        call = nil
        close()
    }

    private func fail(_ failure: UpstreamFailure) {
        guard let call else {
            state = .idle
            return
        }
        self.call = nil
        failBody(failure.reason == .connectionClosed ? .closedMidBody : failure)
        // Before the head, the caller learns why; a closed connection then means nothing came.
        call.fail(failure)
    }

    private func failBody(_ failure: UpstreamFailure) {
        switch state {
        case .head(_, let source, _), .body(let source, _):
            source.finish(failure)
        default:
            break
        }
        state = .idle
    }

    private func finishExchange(keepAlive: Bool) {
        firstByteTimer?.cancel()
        firstByteTimer = nil
        let call = self.call
        self.call = nil
        call?.complete()
        reading = true
        if keepAlive, !gone, context?.channel.isActive == true {
            pool.park(self)
        } else {
            close()
        }
    }

    /// Parks a connection whose call went away before it connected.
    func park() {
        pool.park(self)
    }

    func idleSince(timeout: TimeAmount) {
        guard let context else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
            close()
        }
    }

    func close() {
        guard !gone else { return }
        gone = true
        firstByteTimer?.cancel()
        idleTimer?.cancel()
        context?.close(promise: nil)
    }

    // The consumer's side.

    func consumerWantsMore(exchange: Int) {
        guard exchange == self.exchange else { return }
        reading = true
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func consumerLeft(exchange: Int) {
        guard exchange == self.exchange else { return }
        // A body dropped before its end leaves the connection mid-answer: it cannot be reused.
        switch state {
        case .head, .body:
            state = .idle
            let call = self.call
            self.call = nil
            call?.complete()
            close()
        default:
            break
        }
    }

    struct BodyDelegate: NIOAsyncSequenceProducerDelegate, @unchecked Sendable {
        let handler: UpstreamConnectionHandler
        let exchange: Int
        let loop: any EventLoop

        func produceMore() {
            if loop.inEventLoop {
                handler.consumerWantsMore(exchange: exchange)
            } else {
                loop.execute { handler.consumerWantsMore(exchange: exchange) }
            }
        }

        func didTerminate() {
            if loop.inEventLoop { handler.consumerLeft(exchange: exchange) } else { loop.execute { handler.consumerLeft(exchange: exchange) } }
        }
    }
}
