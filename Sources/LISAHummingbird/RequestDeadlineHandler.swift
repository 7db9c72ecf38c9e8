public import LISAKit
public import NIOCore
public import NIOHTTPTypes

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
    /// When the connection is closed unless the client does something first; `nil` while
    /// nothing is timed (LISA is answering).
    private var deadline: NIODeadline?
    /// The one timer of the connection, and when it fires. It is not moved when the
    /// deadline moves later (the usual case: every request pushes it out); when it fires
    /// early it re-arms itself for what is left. So a keep-alive connection schedules about
    /// one timer per timeout period, not three per request.
    private var timer: Scheduled<Void>?
    private var timerFiresAt: NIODeadline?
    /// Requests whose response has not ended.
    private var inFlight = 0

    public init(limits: ConnectionLimits) {
        self.limits = limits
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(limits.headerReadTimeout, context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    public func channelActive(context: ChannelHandlerContext) {
        arm(limits.headerReadTimeout, context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
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
        // TimeAmount(_:) saturates where nanoseconds would overflow.
        let deadline = context.eventLoop.now + TimeAmount(timeout)
        self.deadline = deadline
        if let timerFiresAt, timerFiresAt <= deadline { return }
        schedule(at: deadline, context: context)
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        timer?.cancel()
        timerFiresAt = when
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.timerFiresAt = nil
            guard let deadline = self.deadline else { return }
            if deadline <= context.eventLoop.now {
                context.close(promise: nil)
            } else {
                self.schedule(at: deadline, context: context)
            }
        }
    }

    /// Stops timing; the timer, if any, finds nothing to do when it fires.
    private func disarm() {
        deadline = nil
    }

    /// Cancels the timer itself (the connection is gone).
    private func stop() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerFiresAt = nil
    }
}
