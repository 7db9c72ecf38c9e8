import NIOCore
import NIOHTTP1

/// Thrown by an answer's body when the exchange failed after the head.
extension UpstreamFailure {
    static let closedMidBody = UpstreamFailure(reason: .other("the upstream closed the connection before the answer ended"))

    static func malformedAnswer(_ detail: String?) -> UpstreamFailure {
        UpstreamFailure(reason: .other("the upstream's answer is not valid HTTP/1.1" + (detail.map { " (\($0))" } ?? "")))
    }
}

/// One upstream connection: writes a call's request and relays its answer. Confined to its loop.
///
/// Its decisions are ``UpstreamConnectionStateMachine``'s: every event goes through the state
/// machine first and the action that comes out is applied afterwards, so callbacks that
/// re-enter the handler (a body terminating, the pool handing over the next call, a call
/// failing) always see a settled state. The body's demand signals arrive as separate event
/// loop tasks, never from inside the handler's own calls.
final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    // @unchecked: every member is touched on the channel's event loop only (the pool, the
    // call and the body delegate hop to it before calling in).
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDelegate
    >

    let pool: LoopPool
    let key: ConnectionKey
    private var context: ChannelHandlerContext?
    private var machine = UpstreamConnectionStateMachine()
    private var call: UpstreamCall?
    /// The body of the exchange in flight, from its head to its end.
    private var source: Producer.Source?
    /// The answer whose head is in but not yet handed over.
    private var heldResponse: UpstreamResponse?
    /// What was caught from below (the parser, TLS), for the caller's error.
    private var caught: UpstreamFailure?
    private var firstByteTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    /// Whether the channel is closed (or was never opened).
    private var gone = false
    /// Counts the exchanges on this connection, so a body's late word is not taken for the next's.
    private var exchange = 0

    init(pool: LoopPool, key: ConnectionKey) {
        self.pool = pool
        self.key = key
    }

    var isUsable: Bool { !gone && machine.isIdle && context?.channel.isActive == true }

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
        let action = machine.startExchange()
        guard case .writeRequest(let read) = action else {
            call.fail(.init(reason: .connectionClosed))
            return
        }
        idleTimer?.cancel()
        idleTimer = nil
        self.call = call
        call.connection = self
        exchange &+= 1
        caught = nil
        if let timeout = call.firstByteTimeout {
            firstByteTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
                self.firstByteTimer = nil
                self.call?.fail(UpstreamFailure(reason: .timedOut))
            }
        }
        context.write(wrapOutboundOut(.head(call.head)), promise: nil)
        if call.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(call.body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if read { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let action = machine.headReceived(status: Int(head.status.code), keepAlive: head.isKeepAlive)
            if case .makeBody = action {
                makeBody(head: head, context: context)
            } else {
                apply(action)
            }
        case .body(let buffer):
            let action = machine.bodyReceived()
            if case .yieldBody = action {
                // A copy: nothing may hold an access to the handler's fields while calling out.
                let source = self.source
                if source?.yield(buffer) == .stopProducing { machine.consumerIsFull() }
            } else {
                apply(action)
            }
        case .end:
            apply(machine.endReceived())
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The head goes over once this burst of reads is in, with what body came along: a
        // small answer is often whole by then and is collected without a wait.
        apply(machine.readComplete())
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if case .read = machine.readRequested() { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Errors from below are the parser's (or TLS's): the answer cannot be read on.
        if caught == nil {
            caught = error is HTTPParserError ? .malformedAnswer(String(describing: error)) : UpstreamFailure(classifying: error)
        }
        apply(machine.errorCaught())
    }

    func channelInactive(context: ChannelHandlerContext) {
        let action = machine.channelInactive()
        gone = true
        cancelTimers()
        apply(action)
        pool.closed(self)
        context.fireChannelInactive()
    }

    // MARK: Inputs from the call, the pool and the body

    /// The call ended on its side (deadline, first-byte limit, cancellation): the exchange
    /// stops here, and the connection with it, since an answer may still be coming.
    func callEnded() {
        apply(machine.callEnded())
    }

    /// Parks a connection whose call went away before it connected.
    func park() {
        if machine.isIdle { pool.park(self) } else { close() }
    }

    func idleSince(timeout: TimeAmount) {
        guard let context else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
            self.idleTimer = nil
            apply(machine.idleTimeout())
        }
    }

    func close() {
        apply(machine.closeRequested())
    }

    fileprivate func consumerWantsMore(exchange: Int) {
        guard exchange == self.exchange else { return }
        if case .read = machine.consumerWantsMoreBody(), let context { context.read() }
    }

    fileprivate func consumerLeft(exchange: Int) {
        guard exchange == self.exchange else { return }
        apply(machine.consumerLeft())
    }

    // MARK: Applying actions

    private func makeBody(head: HTTPResponseHead, context: ChannelHandlerContext) {
        firstByteTimer?.cancel()
        firstByteTimer = nil
        let delegate = BodyDelegate(handler: self, exchange: exchange, loop: context.eventLoop)
        let sequence = Producer.makeSequence(
            elementType: ByteBuffer.self, failureType: (any Error).self,
            backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16), finishOnDeinit: true, delegate: delegate
        )
        source = sequence.source
        heldResponse = UpstreamResponse(status: Int(head.status.code), headers: head.headers, body: UpstreamBody(sequence.sequence))
    }

    /// Applies `action`. Everything it calls out to may call back in; by then the state
    /// machine has settled, and the handler's own fields are taken before they are used.
    private func apply(_ action: UpstreamConnectionStateMachine.Action) {
        switch action {
        case .none, .writeRequest, .makeBody, .yieldBody:
            // Handled where they are returned.
            break
        case .refuseCall:
            takeCall()?.fail(.init(reason: .connectionClosed))
        case .deliverHead:
            if let response = takeHeldResponse() { call?.respond(response) }
        case .finishExchange(let deliverHead, let reuse):
            firstByteTimer?.cancel()
            firstByteTimer = nil
            let source = takeSource()
            let response = takeHeldResponse()
            let call = takeCall()
            source?.finish()
            if deliverHead, let response { call?.respond(response) }
            call?.complete()
            if reuse, !gone, context?.channel.isActive == true {
                pool.park(self)
            } else {
                closeChannel()
            }
        case .read:
            context?.read()
        case .failExchange(let reason, let close):
            firstByteTimer?.cancel()
            firstByteTimer = nil
            let source = takeSource()
            let response = takeHeldResponse()
            let call = takeCall()
            let failure = self.failure(for: reason, call: call)
            source?.finish(failure.reason == .connectionClosed ? .closedMidBody : failure)
            // Before the head was handed over the caller learns why (a closed connection then
            // means nothing came); after, the body has the error and the call just completes.
            call?.fail(failure)
            _ = response
            if close { closeChannel() }
        case .abandonExchange:
            let call = takeCall()
            call?.complete()
            closeChannel()
        case .close:
            closeChannel()
        }
    }

    private func failure(for reason: UpstreamConnectionStateMachine.ExchangeFailure, call: UpstreamCall?) -> UpstreamFailure {
        switch reason {
        case .malformedAnswer: return .malformedAnswer(nil)
        case .channelError: return caught ?? .malformedAnswer(nil)
        case .switchedProtocols: return .malformedAnswer("101 Switching Protocols to a plain request")
        case .connectionClosed: return UpstreamFailure(reason: .connectionClosed)
        case .callEnded: return call?.endedWith ?? UpstreamFailure(reason: .cancelled)
        }
    }

    private func takeCall() -> UpstreamCall? {
        let call = self.call
        self.call = nil
        call?.connection = nil
        return call
    }

    private func takeSource() -> Producer.Source? {
        let source = self.source
        self.source = nil
        return source
    }

    private func takeHeldResponse() -> UpstreamResponse? {
        let response = heldResponse
        heldResponse = nil
        return response
    }

    private func cancelTimers() {
        firstByteTimer?.cancel()
        firstByteTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
    }

    private func closeChannel() {
        cancelTimers()
        guard !gone else { return }
        gone = true
        context?.close(promise: nil)
    }

    /// The body's demand, relayed to the connection as its own event loop task: the
    /// sequence may call these from inside `finish` or a deinit, which must not re-enter
    /// the handler mid-change.
    struct BodyDelegate: NIOAsyncSequenceProducerDelegate, @unchecked Sendable {
        // @unchecked: `handler` is only touched on `loop`, where both methods hop first.
        let handler: UpstreamConnectionHandler
        let exchange: Int
        let loop: any EventLoop

        func produceMore() {
            loop.execute { handler.consumerWantsMore(exchange: exchange) }
        }

        func didTerminate() {
            loop.execute { handler.consumerLeft(exchange: exchange) }
        }
    }
}
