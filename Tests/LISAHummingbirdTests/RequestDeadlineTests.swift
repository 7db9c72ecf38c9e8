import HTTPTypes
import LISAKit
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import LISAHummingbird

/// The connection deadlines on a virtual clock: each limit closes the connection when it
/// passes and not before, however often the timer was pushed out.
@Suite("Request deadlines")
struct RequestDeadlineTests {
    private static let limits: ConnectionLimits = {
        var limits = ConnectionLimits()
        limits.headerReadTimeout = .seconds(1)
        limits.bodyReadTimeout = .seconds(2)
        limits.idleTimeout = .seconds(3)
        return limits
    }()

    private func connected(_ limits: ConnectionLimits = Self.limits) throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: RequestDeadlineHandler(limits: limits), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, loop)
    }

    private func request(_ channel: EmbeddedChannel, body: Bool = false) throws {
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/x")))
        if body { try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{}"))) }
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    private func respond(_ channel: EmbeddedChannel) throws {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    @Test("no request head within the header timeout closes the connection, at the limit")
    func headerTimeout() throws {
        let (channel, loop) = try connected()
        loop.advanceTime(by: .milliseconds(990))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(20))
        #expect(!channel.isActive)
    }

    @Test("a keep-alive connection used every 1.5 s stays open for a minute, then closes after the idle timeout")
    func idleTimeout() throws {
        let (channel, loop) = try connected()
        for _ in 0..<40 {
            try request(channel, body: true)
            try respond(channel)
            loop.advanceTime(by: .milliseconds(1500))
            #expect(channel.isActive)
        }
        // 1.5 s of the 3 s idle limit have passed since the last response.
        loop.advanceTime(by: .milliseconds(1490))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(20))
        #expect(!channel.isActive)
    }

    @Test("nothing is timed while LISA answers; the idle limit starts at the response's end")
    func answering() throws {
        let (channel, loop) = try connected()
        try request(channel)
        loop.advanceTime(by: .seconds(600))
        #expect(channel.isActive)
        try respond(channel)
        loop.advanceTime(by: .milliseconds(2990))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(20))
        #expect(!channel.isActive)
    }

    @Test("a body that stalls longer than the body timeout closes the connection; shorter gaps do not")
    func bodyGap() throws {
        let (channel, loop) = try connected()
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/x")))
        for _ in 0..<5 {
            loop.advanceTime(by: .milliseconds(1900))
            #expect(channel.isActive)
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x")))
        }
        loop.advanceTime(by: .milliseconds(1990))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(20))
        #expect(!channel.isActive)
    }

    @Test("an idle connection's next request gets the body limit, not what was left of the idle one")
    func earlierDeadlineMovesTheTimer() throws {
        var limits = Self.limits
        limits.idleTimeout = .seconds(10)
        let (channel, loop) = try connected(limits)
        try request(channel)
        try respond(channel)
        // The timer now stands at the 10 s idle limit. A head arrives 1.5 s later and its
        // body stalls: the 2 s body limit is earlier and must win.
        loop.advanceTime(by: .milliseconds(1500))
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/v1/x")))
        loop.advanceTime(by: .milliseconds(1990))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(20))
        #expect(!channel.isActive)
    }
}
