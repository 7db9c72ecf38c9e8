import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

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
    /// Whether the exchange is over (answered to its end, or failed).
    private(set) var finished = false
    /// The failure that ended the call, if one did.
    private(set) var endedWith: UpstreamFailure?

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

    /// Ends the call with `failure`: before the head the caller gets it; after, the body does
    /// (the connection fails it with ``endedWith``). A second failure, or one after the end,
    /// changes nothing.
    func fail(_ failure: UpstreamFailure) {
        guard !finished else { return }
        finished = true
        endedWith = failure
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
        let connection = self.connection
        complete()
        connection?.callEnded()
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
        let handler = UpstreamConnectionHandler(pool: self, key: key)
        let serverName = key.host.contains(":") || key.host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : key.host
        ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            // At the TCP level: .socketOption(.tcp_nodelay) is SOL_SOCKET option 1, SO_DEBUG, which
            // needs CAP_NET_ADMIN, so every upstream connect failed for a LISAServe not run as root.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let operations = channel.pipeline.syncOperations
                    if let sslContext {
                        try operations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try operations.addHTTPClientHandlers(decoderLimitConfiguration: UpstreamHeadLimits.decoder)
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
