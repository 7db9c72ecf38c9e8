import Hummingbird
public import HummingbirdCore
import HummingbirdHTTP2
public import LISAKit
public import NIOCore
public import NIOSSL

/// Closes a connection as soon as the client closes its side of it.
///
/// Hummingbird allows TCP half-closure, so a client that goes away mid-request is otherwise
/// noticed only at the next write. LISA treats end-of-input as "the client left" (as nginx
/// does): the connection closes, ``LISARequestContext``'s channel reports it, and the upstream
/// request is cancelled at once, freeing GPU time. Add it when mounting ``LISARoutes`` in
/// your own app: `server: .http1(configuration: .init(additionalChannelHandlers: [ClientCloseHandler()]))`,
/// or use ``HTTPServerBuilder/lisaHTTP1(idleTimeout:)``.
public final class ClientCloseHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    public typealias InboundIn = NIOAny

    public init() {}

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with ``ClientCloseHandler`` and ``RequestDeadlineHandler``, as LISAServe serves.
    /// With `runOnEventLoops`, each connection's task runs on its channel's event loop (see
    /// ``EventLoopExecutor``).
    public static func lisaHTTP1(limits: ConnectionLimits = ConnectionLimits(), runOnEventLoops: Bool = true) -> HTTPServerBuilder {
        let configuration = HTTP1Channel.Configuration(additionalChannelHandlers: [ClientCloseHandler(), RequestDeadlineHandler(limits: limits)])
        return .init { responder in
            let channel = HTTP1Channel(responder: responder, configuration: configuration)
            return runOnEventLoops ? EventLoopPinnedChannel(base: channel) : channel
        }
    }

    /// HTTPS with HTTP/2 and HTTP/1.1 negotiated by ALPN, and ``ClientCloseHandler`` and
    /// ``RequestDeadlineHandler`` on every HTTP/1.1 connection and HTTP/2 stream, as LISAServe
    /// serves with `server.tls`. An HTTP/2 connection without open streams closes after
    /// the idle timeout; one whose TLS handshake has not completed within the header-read
    /// timeout is closed.
    public static func lisaHTTPS(
        tlsConfiguration: TLSConfiguration, limits: ConnectionLimits = ConnectionLimits(), runOnEventLoops: Bool = true
    ) throws -> HTTPServerBuilder {
        let tls = TLSChannelConfiguration(tlsConfiguration: tlsConfiguration)
        let configuration = HTTP2UpgradeChannel.Configuration(
            idleTimeout: limits.idleTimeout,
            streamConfiguration: .init(additionalChannelHandlers: [ClientCloseHandler(), RequestDeadlineHandler(limits: limits)])
        )
        return .init { responder in
            let channel = TLSHandshakeDeadlineChannel(
                base: try HTTP2UpgradeChannel(tlsChannelConfiguration: tls, configuration: configuration, responder: responder),
                timeout: limits.headerReadTimeout
            )
            return runOnEventLoops ? EventLoopPinnedChannel(base: channel) : channel
        }
    }
}
