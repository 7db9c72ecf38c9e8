import LISAKit
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client is too slow: no complete request head within
/// ``ConnectionLimits/headerReadTimeout`` of connecting, no next request within
/// ``ConnectionLimits/idleTimeout`` of the last response, or a gap longer than
/// ``ConnectionLimits/bodyReadTimeout`` while sending a body. Nothing is timed while LISA
/// itself is answering (upstream timeouts govern that).
///
/// Hummingbird decodes the head before this handler sees it, so a client that trickles
/// header bytes is cut off by the same deadline as one that sends nothing.
public final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    let limits: ConnectionLimits
    private var timer: Scheduled<Void>?
    /// Requests whose response has not ended.
    private var inFlight = 0

    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(limits.headerReadTimeout, context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    public func channelActive(context: ChannelHandlerContext) {
        arm(limits.headerReadTimeout, context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            inFlight += 1
            arm(limits.bodyReadTimeout, context: context)
        case .body:
            arm(limits.bodyReadTimeout, context: context)
        case .end:
            disarm()
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(inFlight - 1, 0)
            if inFlight == 0 { arm(limits.idleTimeout, context: context) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ timeout: Duration, context: ChannelHandlerContext) {
        disarm()
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { [weak self] in
            self?.timer = nil
            context.close(promise: nil)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }
}
