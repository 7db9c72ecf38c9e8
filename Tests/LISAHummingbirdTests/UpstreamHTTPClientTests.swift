import Foundation
import LISAKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The lean upstream client against a scripted HTTP/1.1 server whose every answer (and every
/// failure to answer) the test decides: what path a request asks for says how it is answered.
@Suite("UpstreamHTTPClient")
struct UpstreamHTTPClientTests {
    @Test("keep-alive: 20 calls in a row go over one connection; Host, path, query and Content-Length are sent")
    func keepAliveReuse() async throws {
        try await withClient { client, server in
            for index in 0..<20 {
                let answer = try await client.execute(server.request("/echo?n=\(index)", body: "hi \(index)"), deadline: .now() + .seconds(30))
                #expect(answer.status == 200)
                #expect(try await text(answer) == "127.0.0.1:\(server.port) POST /echo?n=\(index) \(3 + String(index).count) hi \(index)")
            }
            #expect(server.counts.accepted == 1)
            #expect(server.counts.requests == 20)
        }
    }

    @Test("an answer with Connection: close is not reused: the next call opens a new connection")
    func connectionClose() async throws {
        try await withClient { client, server in
            for _ in 0..<3 {
                let answer = try await client.execute(server.request("/close"), deadline: .now() + .seconds(30))
                #expect(try await text(answer) == "bye")
            }
            #expect(server.counts.accepted == 3)
        }
    }

    @Test("a redirect is an answer: nothing is followed")
    func redirectNotFollowed() async throws {
        try await withClient { client, server in
            let answer = try await client.execute(server.request("/redirect"), deadline: .now() + .seconds(30))
            #expect(answer.status == 302)
            #expect(answer.headers.first(name: "location") == "http://169.254.169.254/latest/meta-data/")
            #expect(server.counts.requests == 1)
        }
    }

    @Test("chunks reach the caller as they come, before the answer ends")
    func chunksBeforeEnd() async throws {
        try await withClient { client, server in
            let answer = try await client.execute(server.request("/chunks"), deadline: .now() + .seconds(30))
            var body = answer.body.makeAsyncIterator()
            // The server holds the rest of the answer until released: this chunk came alone.
            let first = try await body.next()
            #expect(first.map { String(buffer: $0) } == "a")
            server.release()
            var rest = ""
            while let chunk = try await body.next() { rest += String(buffer: chunk) }
            #expect(rest == "b")
        }
    }

    @Test("no head within the first-byte limit: timed out, and the connection is closed")
    func firstByteTimeout() async throws {
        try await withClient { client, server in
            let failure = await failure {
                try await client.execute(server.request("/stall"), deadline: .now() + .seconds(60), firstByteTimeout: .milliseconds(200))
            }
            #expect(failure?.reason == .timedOut)
            #expect(await eventually(timeout: .seconds(30)) { server.counts.closed == 1 })
        }
    }

    @Test("the deadline covers the body: a body that stalls ends with timed out")
    func deadlineMidBody() async throws {
        try await withClient { client, server in
            let answer = try await client.execute(server.request("/stall-body"), deadline: .now() + .seconds(2))
            #expect(answer.status == 200)
            let (received, thrown) = await readAll(answer)
            #expect(received == "a")
            #expect((thrown as? UpstreamFailure)?.reason == .timedOut)
            #expect(await eventually(timeout: .seconds(30)) { server.counts.closed == 1 })
        }
    }

    @Test("closed before the head: connection closed (safe to retry elsewhere); closed mid-body: the body fails, the next call gets a new connection")
    func closedByUpstream() async throws {
        try await withClient { client, server in
            let early = await failure { try await client.execute(server.request("/drop"), deadline: .now() + .seconds(30)) }
            #expect(early?.reason == .connectionClosed)
            #expect(early?.isSafeToRetry == true)

            let answer = try await client.execute(server.request("/drop-body"), deadline: .now() + .seconds(30))
            let (received, thrown) = await readAll(answer)
            #expect(received == "abc")
            #expect(thrown is UpstreamFailure)

            let next = try await client.execute(server.request("/echo", body: "x"), deadline: .now() + .seconds(30))
            #expect(try await text(next).hasSuffix("/echo 1 x"))
            #expect(server.counts.accepted == 3)
        }
    }

    @Test("cancelling the calling task ends the call at once and closes its connection")
    func cancellation() async throws {
        try await withClient { client, server in
            let call = Task { () async -> UpstreamFailure? in
                await failure { try await client.execute(server.request("/stall"), deadline: .now() + .seconds(60)) }
            }
            #expect(await eventually(timeout: .seconds(30)) { server.counts.requests == 1 })
            call.cancel()
            #expect(await call.value?.reason == .cancelled)
            #expect(await eventually(timeout: .seconds(30)) { server.counts.closed == 1 })
        }
    }

    @Test("a body dropped before its end closes the connection instead of reusing it mid-answer")
    func droppedBody() async throws {
        try await withClient { client, server in
            do {
                let answer = try await client.execute(server.request("/chunks"), deadline: .now() + .seconds(30))
                var body = answer.body.makeAsyncIterator()
                #expect(try await body.next().map { String(buffer: $0) } == "a")
            }
            #expect(await eventually(timeout: .seconds(30)) { server.counts.closed == 1 })
            let next = try await client.execute(server.request("/echo"), deadline: .now() + .seconds(30))
            #expect(next.status == 200)
            #expect(server.counts.accepted == 2)
        }
    }

    @Test("reading follows the consumer: an unread body is not drained from the socket, and arrives whole once read")
    func backpressure() async throws {
        try await withClient { client, server in
            let answer = try await client.execute(server.request("/big"), deadline: .now() + .seconds(60))
            // While nobody reads, what the server gets out to its socket stops growing well short
            // of the whole (a client that drained it would hold all 64 MiB in memory): wait until
            // it has not grown over six checks 50 ms apart.
            var flushed = -1
            var unchanged = 0
            var checks = 0
            while unchanged < 6, checks < 600 {
                let now = server.counts.flushedBytes
                unchanged = now == flushed ? unchanged + 1 : 0
                flushed = now
                checks += 1
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(flushed < ScriptedUpstream.bigSize / 2)
            var total = 0
            for try await chunk in answer.body { total += chunk.readableBytes }
            #expect(total == ScriptedUpstream.bigSize)
        }
    }

    @Test("past the per-host limit calls wait for a connection within their deadline, then share it")
    func perHostLimit() async throws {
        var configuration = UpstreamHTTPClient.Configuration()
        configuration.maxConnectionsPerHost = 1
        try await withClient(configuration) { client, server in
            // One call holds the only connection; another waiting for it runs out of time.
            let holder = Task { try await text(client.execute(server.request("/hold"), deadline: .now() + .seconds(30))) }
            #expect(await eventually(timeout: .seconds(30)) { server.counts.requests == 1 })
            let waiter = await failure { try await client.execute(server.request("/echo"), deadline: .now() + .milliseconds(300)) }
            #expect(waiter?.reason == .timedOut)
            #expect(server.counts.requests == 1)

            // Three more wait their turn on the same connection.
            let waiting = (0..<3).map { _ in
                Task { try await text(client.execute(server.request("/hold"), deadline: .now() + .seconds(30))) }
            }
            server.releaseAll()
            let held = try await holder.value
            #expect(held == "held")
            for task in waiting {
                let answer = try await task.value
                #expect(answer == "held")
            }
            #expect(server.counts.accepted == 1)
            #expect(server.counts.requests == 4)
        }
    }

    @Test("each event loop has its own pool, and a call pinned to a loop stays on it")
    func perLoopPools() async throws {
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(clientGroup.makeIterator())
        let server = try await ScriptedUpstream.start()
        let client = UpstreamHTTPClient(eventLoopGroup: clientGroup)
        do {
            for loop in loops + loops {
                try await withTaskExecutorPreference(EventLoopExecutor(loop)) {
                    for _ in 0..<5 {
                        #expect(loop.inEventLoop)
                        let answer = try await client.execute(server.request("/echo"), deadline: .now() + .seconds(30))
                        #expect(loop.inEventLoop)
                        #expect(answer.status == 200)
                        _ = try await text(answer)
                    }
                }
            }
            #expect(server.counts.accepted == 2)
            #expect(server.counts.requests == 20)
        } catch {
            Issue.record(error)
        }
        await client.shutdown()
        try await clientGroup.shutdownGracefully()
        try await server.shutdown()
    }

    @Test("bad URLs and refused connections fail before anything is sent")
    func badTargets() async throws {
        try await withClient { client, server in
            for url in ["ftp://example.com/", "http:///path", "http://host:99999/", "http://[::1/"] {
                let failure = await failure {
                    try await client.execute(.init(url: url, headers: [:], body: ByteBuffer()), deadline: .now() + .seconds(5))
                }
                #expect(failure != nil, "\(url)")
            }
            let port = try deadPort()
            let refused = await failure {
                try await client.execute(.init(url: "http://127.0.0.1:\(port)/", headers: [:], body: ByteBuffer()), deadline: .now() + .seconds(5))
            }
            guard case .connectFailed = refused?.reason else {
                Issue.record("expected connectFailed, got \(String(describing: refused))")
                return
            }
            #expect(server.counts.accepted == 0)
        }
    }
}

// MARK: - Helpers

private func withClient(
    _ configuration: UpstreamHTTPClient.Configuration = .init(),
    _ body: (UpstreamHTTPClient, ScriptedUpstream) async throws -> Void
) async throws {
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = try await ScriptedUpstream.start()
    let client = UpstreamHTTPClient(configuration: configuration, eventLoopGroup: clientGroup)
    do {
        try await body(client, server)
    } catch {
        Issue.record(error)
    }
    server.releaseAll()
    await client.shutdown()
    try await clientGroup.shutdownGracefully()
    try await server.shutdown()
}

/// The body as far as it came, and the error that ended it, if any.
private func readAll(_ response: UpstreamResponse) async -> (String, (any Error)?) {
    var received = ""
    do {
        for try await chunk in response.body { received += String(buffer: chunk) }
        return (received, nil)
    } catch {
        return (received, error)
    }
}

private func text(_ response: UpstreamResponse) async throws -> String {
    var text = ""
    for try await chunk in response.body { text += String(buffer: chunk) }
    return text
}

private func failure(_ call: () async throws -> UpstreamResponse) async -> UpstreamFailure? {
    do {
        _ = try await call()
        return nil
    } catch let failure as UpstreamFailure {
        return failure
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// An HTTP/1.1 server whose answers are scripted by path.
final class ScriptedUpstream: Sendable {
    static let bigSize = 64 << 20

    struct Counts: Sendable {
        var accepted = 0
        var closed = 0
        var requests = 0
        /// Bytes of `/big` the server got out to its socket.
        var flushedBytes = 0
    }

    let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var counts = Counts()
        /// Answers held back until the test releases them.
        var held: [@Sendable () -> Void] = []
        var releaseAll = false
    }

    private init(port: Int, group: MultiThreadedEventLoopGroup, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.group = group
        self.channel = channel
        self.state = state
    }

    static func start() async throws -> ScriptedUpstream {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.counts.accepted += 1 }
                channel.closeFuture.whenComplete { _ in state.withLockedValue { $0.counts.closed += 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ScriptHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedUpstream(port: channel.localAddress!.port!, group: group, channel: channel, state: state)
    }

    var counts: Counts { state.withLockedValue { $0.counts } }

    func request(_ path: String, body: String = "") -> UpstreamHTTPClient.Request {
        .init(url: "http://127.0.0.1:\(port)\(path)", headers: ["content-type": "text/plain"], body: ByteBuffer(string: body))
    }

    /// Sends the answers held back so far.
    func release() {
        let held = state.withLockedValue { state in
            defer { state.held = [] }
            return state.held
        }
        for answer in held { answer() }
    }

    /// Sends the held answers, and every later one at once.
    func releaseAll() {
        state.withLockedValue { $0.releaseAll = true }
        release()
    }

    func shutdown() async throws {
        try? await channel.close()
        try await group.shutdownGracefully()
    }

    final class ScriptHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let state: NIOLockedValueBox<State>
        private var head: HTTPRequestHead?
        private var body = ""

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
                state.withLockedValue { $0.counts.requests += 1 }
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                guard let head else { return }
                answer(head, context: context)
            }
        }

        private func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
            let path = String(request.uri.prefix { $0 != "?" })
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            switch path {
            case "/echo":
                let text =
                    "\(request.headers.first(name: "host") ?? "-") \(request.method.rawValue) \(request.uri) \(request.headers.first(name: "content-length") ?? "-") \(body)"
                write(context, status: .ok, body: text)
            case "/close":
                write(context, status: .ok, body: "bye", headers: ["connection": "close"], closing: true)
            case "/redirect":
                write(context, status: .found, body: "", headers: ["location": "http://169.254.169.254/latest/meta-data/"])
            case "/chunks":
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "a")))), promise: nil)
                // Held before the first chunk leaves, so a release that follows its arrival finds it.
                hold(loop) {
                    bound.value.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "b")))), promise: nil)
                    bound.value.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                }
                context.flush()
            case "/hold":
                hold(loop) { self.write(bound.value, status: .ok, body: "held") }
            case "/stall":
                break
            case "/stall-body":
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "a")))), promise: nil)
            case "/drop":
                context.close(promise: nil)
            case "/drop-body":
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["content-length": "10"]))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "abc")))))
                    .whenComplete { _ in bound.value.close(promise: nil) }
            case "/big":
                let chunk = ByteBuffer(repeating: 0x61, count: 64 << 10)
                context.write(
                    wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["content-length": String(ScriptedUpstream.bigSize)]))),
                    promise: nil)
                let state = self.state
                for _ in 0..<(ScriptedUpstream.bigSize / chunk.readableBytes) {
                    context.write(wrapOutboundOut(.body(.byteBuffer(chunk)))).whenSuccess { _ in
                        state.withLockedValue { $0.counts.flushedBytes += chunk.readableBytes }
                    }
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            default:
                write(context, status: .notFound, body: "no script for \(path)")
            }
        }

        private func hold(_ loop: any EventLoop, _ answer: @escaping () -> Void) {
            let send = NIOLoopBound(answer, eventLoop: loop)
            let now = state.withLockedValue { state -> Bool in
                if state.releaseAll { return true }
                state.held.append { loop.execute { send.value() } }
                return false
            }
            if now { answer() }
        }

        private func write(
            _ context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, headers: HTTPHeaders = [:],
            closing: Bool = false
        ) {
            var headers = headers
            headers.add(name: "content-length", value: String(body.utf8.count))
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: status, headers: headers))), promise: nil)
            if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil) }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if closing { bound.value.close(promise: nil) }
            }
        }
    }
}
