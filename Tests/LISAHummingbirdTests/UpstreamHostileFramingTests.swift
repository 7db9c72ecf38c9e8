import Foundation
import LISAKit
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The lean upstream client against an upstream that writes raw bytes: hostile and unusual
/// HTTP/1.1 framings. None may take the process down; each ends as a clean answer or as a
/// failure of that one call, and a connection whose framing went wrong is never reused.
@Suite("UpstreamHTTPClient hostile framings")
struct UpstreamHostileFramingTests {
    enum Outcome: Equatable, CustomStringConvertible {
        /// The whole answer came: status and body.
        case answered(Int, String)
        /// The call failed before the head.
        case failedBeforeHead
        /// The head came, then the body failed after `received`.
        case failedInBody(Int, received: String)

        var description: String {
            switch self {
            case .answered(let status, let body): "answered \(status) \(body.debugDescription)"
            case .failedBeforeHead: "failed before the head"
            case .failedInBody(let status, let received): "\(status), then the body failed after \(received.debugDescription)"
            }
        }

        var failed: Bool {
            if case .answered = self { return false }
            return true
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        /// What the upstream writes after reading the request.
        var bytes: [UInt8]
        /// Whether it then closes the connection.
        var close: Bool = false
        /// What the caller must see; `nil`: any failure (before the head or in the body).
        var expected: Outcome?
        /// Whether the connection may be reused for the next call.
        var reusable: Bool = false

        var testDescription: String { name }
    }

    static let head200 = "HTTP/1.1 200 OK\r\n"

    static let cases: [Case] = [
        Case(name: "a chunk size that is not hex", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")),
        Case(name: "a chunk size past 64 bits", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nhello\r\n")),
        Case(name: "a negative chunk size", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")),
        Case(name: "a bad chunk size after good chunks", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")),
        Case(
            name: "chunk extensions are read past",
            bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n5;name=value;x\r\nhello\r\n0;end\r\n\r\n"),
            expected: .answered(200, "hello"), reusable: true
        ),
        Case(
            name: "trailers end the answer",
            bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n"),
            expected: .answered(200, "ok"), reusable: true
        ),
        Case(
            name: "Content-Length shorter than the body: the answer ends at the length, the rest closes the connection",
            bytes: bytes(head200 + "Content-Length: 3\r\n\r\nabcdefgh"), expected: .answered(200, "abc")
        ),
        Case(name: "Content-Length longer than the body, then close", bytes: bytes(head200 + "Content-Length: 100\r\n\r\nabc"), close: true),
        Case(name: "a negative Content-Length", bytes: bytes(head200 + "Content-Length: -1\r\n\r\nabc")),
        Case(name: "two different Content-Lengths", bytes: bytes(head200 + "Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde")),
        Case(
            name: "both Content-Length and chunked",
            bytes: bytes(head200 + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        ),
        Case(
            name: "informational answers before the head are skipped",
            bytes: bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + head200 + "Content-Length: 2\r\n\r\nok"),
            expected: .answered(200, "ok"), reusable: true
        ),
        Case(
            name: "101 Switching Protocols to a plain request",
            bytes: bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nraw"), expected: .failedBeforeHead),
        Case(
            name: "bytes after the end close the connection",
            bytes: bytes(head200 + "Content-Length: 2\r\n\r\nokGARBAGE\r\n\r\n"), expected: .answered(200, "ok")
        ),
        Case(
            name: "a second answer nobody asked for closes the connection",
            bytes: bytes(head200 + "Content-Length: 2\r\n\r\nok" + head200 + "Content-Length: 4\r\n\r\nevil"), expected: .answered(200, "ok")
        ),
        Case(name: "closed mid-chunk", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhe"), close: true),
        Case(name: "closed mid-head", bytes: bytes(head200 + "Content-Le"), close: true, expected: .failedBeforeHead),
        Case(
            name: "a 64 KiB header line",
            bytes: bytes(head200 + "X-Big: " + String(repeating: "a", count: 64 << 10) + "\r\nContent-Length: 2\r\n\r\nok"),
            expected: .failedBeforeHead),
        Case(name: "not HTTP at all", bytes: bytes("SSH-2.0-OpenSSH_9.2\r\n\r\n"), expected: .failedBeforeHead),
        Case(name: "a status line without a code", bytes: bytes("HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok"), expected: .failedBeforeHead),
        Case(name: "NUL bytes in a header", bytes: bytes(head200 + "X-A: a\u{0}b\r\nContent-Length: 2\r\n\r\nok")),
        Case(name: "a bare LF inside a chunk size line", bytes: bytes(head200 + "Transfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n")),
    ]

    @Test("each hostile framing ends as one clean answer or one failed call; the process lives and the pool recovers", arguments: cases)
    func hostileFraming(_ framing: Case) async throws {
        let server = try await RawUpstream.start(answer: framing.bytes, close: framing.close)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamHTTPClient(eventLoopGroup: group)
        do {
            let outcome = await Self.call(client, server)
            if let expected = framing.expected {
                #expect(outcome == expected)
            } else {
                #expect(outcome.failed, "expected a failure, got \(outcome)")
            }
            // The next call works, on the same connection only when the framing was whole.
            server.switchToGoodAnswers()
            let next = await Self.call(client, server)
            #expect(next == .answered(200, "fine"))
            #expect(server.accepted == (framing.reusable ? 1 : 2))
        }
        await client.shutdown()
        try await group.shutdownGracefully()
        try await server.shutdown()
    }

    @Test("many calls at once into a malformed chunked answer: every one fails, none crashes, the client serves on")
    func concurrentMalformed() async throws {
        let server = try await RawUpstream.start(answer: Self.bytes(Self.head200 + "Transfer-Encoding: chunked\r\n\r\nzz\r\n"), close: false)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = UpstreamHTTPClient(eventLoopGroup: group)
        let outcomes = await withTaskGroup(of: Outcome.self) { tasks in
            for _ in 0..<64 { tasks.addTask { await Self.call(client, server) } }
            return await tasks.reduce(into: [Outcome]()) { $0.append($1) }
        }
        #expect(outcomes.count == 64)
        #expect(outcomes.allSatisfy { $0.failed })
        server.switchToGoodAnswers()
        #expect(await Self.call(client, server) == .answered(200, "fine"))
        await client.shutdown()
        try await group.shutdownGracefully()
        try await server.shutdown()
    }

    static func call(_ client: UpstreamHTTPClient, _ server: RawUpstream) async -> Outcome {
        let request = UpstreamHTTPClient.Request(
            url: "http://127.0.0.1:\(server.port)/v1/chat/completions", headers: [:], body: ByteBuffer(string: "{}"))
        let response: UpstreamResponse
        do {
            response = try await client.execute(request, deadline: .now() + .seconds(30))
        } catch {
            return .failedBeforeHead
        }
        var received = ""
        do {
            for try await chunk in response.body { received += String(buffer: chunk) }
            return .answered(response.status, received)
        } catch {
            return .failedInBody(response.status, received: received)
        }
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
}

/// A TCP server that reads each HTTP request (head and Content-Length body) and writes a
/// fixed sequence of raw bytes back, then optionally closes.
final class RawUpstream: Sendable {
    let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var answer: [UInt8]
        var close: Bool
        var accepted = 0
    }

    static let goodAnswer = Array("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine".utf8)

    private init(port: Int, group: MultiThreadedEventLoopGroup, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.group = group
        self.channel = channel
        self.state = state
    }

    static func start(answer: [UInt8], close: Bool) async throws -> RawUpstream {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = NIOLockedValueBox(State(answer: answer, close: close))
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.accepted += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RawUpstream(port: channel.localAddress!.port!, group: group, channel: channel, state: state)
    }

    var accepted: Int { state.withLockedValue { $0.accepted } }

    /// Later requests, on new connections or kept ones, get a plain 200 "fine".
    func switchToGoodAnswers() {
        state.withLockedValue {
            $0.answer = Self.goodAnswer
            $0.close = false
        }
    }

    func shutdown() async throws {
        try? await channel.close()
        try await group.shutdownGracefully()
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: used on its channel's event loop only.
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let state: NIOLockedValueBox<State>
        private var pending: [UInt8] = []

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += unwrapInboundIn(data).readableBytesView
            while let request = nextRequestLength() {
                pending.removeFirst(request)
                let (answer, close) = state.withLockedValue { ($0.answer, $0.close) }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: answer)), promise: nil)
                if close {
                    context.close(promise: nil)
                    return
                }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// The length of the first whole request in `pending`, if it is all in.
        private func nextRequestLength() -> Int? {
            let separator = Array("\r\n\r\n".utf8)
            guard pending.count >= 4, let end = (0...(pending.count - 4)).first(where: { Array(pending[$0..<($0 + 4)]) == separator }) else {
                return nil
            }
            let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
            var length = 0
            for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let total = end + 4 + length
            return pending.count >= total ? total : nil
        }
    }
}
