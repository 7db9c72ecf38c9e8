// The "upstream" target: arbitrary bytes from an upstream through NIO's real HTTP/1.1 response
// parser (with LISA's head limits) into the upstream connection's state machine, interleaved
// with the events of the other side (a new call, the consumer filling up, draining or leaving,
// the call's deadline, the pool closing the connection). Nothing may crash, and the actions
// must keep the connection's promises: one head per exchange, body only inside an exchange,
// one end per exchange, nothing after close.
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Stands in for the channel handler: feeds the state machine and checks its actions
/// against a model of what the connection holds.
private final class FuzzConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    var machine = UpstreamConnectionStateMachine()
    var context: ChannelHandlerContext?
    /// What the model says is in flight.
    var exchangeOpen = false
    var hasBody = false
    var headHeld = false
    var headDelivered = false
    var closed = false
    var exchangesStarted = 0
    var exchangesEnded = 0

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func startCall() {
        let action = machine.startExchange()
        if closed || exchangeOpen {
            invariant(action == .refuseCall, "a busy or closed connection took a call")
            return
        }
        guard case .writeRequest = action else {
            invariant(false, "an idle connection refused a call: \(action)")
            return
        }
        exchangeOpen = true
        hasBody = false
        headHeld = false
        headDelivered = false
        exchangesStarted += 1
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: ["content-length": "2"])
        context?.write(wrapOutboundOut(.head(head)), promise: nil)
        context?.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "{}")))), promise: nil)
        context?.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let action = machine.headReceived(status: Int(head.status.code), keepAlive: head.isKeepAlive)
            if action == .makeBody {
                invariant(exchangeOpen && !hasBody, "a body made outside an exchange, or twice")
                hasBody = true
                headHeld = true
            } else {
                apply(action)
            }
        case .body:
            let action = machine.bodyReceived()
            if action == .yieldBody {
                invariant(exchangeOpen && hasBody, "body bytes yielded with no body open")
            } else {
                apply(action)
            }
        case .end:
            apply(machine.endReceived())
        }
    }

    func read(context: ChannelHandlerContext) {
        if machine.readRequested() == .read { context.read() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        apply(machine.readComplete())
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        apply(machine.errorCaught())
    }

    func channelInactive(context: ChannelHandlerContext) {
        apply(machine.channelInactive())
        closed = true
    }

    func apply(_ action: UpstreamConnectionStateMachine.Action) {
        if closed {
            invariant(action == .none || action == .read, "an action after close: \(action)")
        }
        switch action {
        case .none, .read:
            break
        case .writeRequest, .makeBody, .yieldBody, .refuseCall:
            invariant(false, "\(action) returned where it cannot be")
        case .deliverHead:
            invariant(exchangeOpen && headHeld && !headDelivered, "a head delivered twice or with none held")
            headHeld = false
            headDelivered = true
        case .finishExchange(let deliverHead, let reuse):
            invariant(exchangeOpen && hasBody, "an end with no exchange")
            invariant(deliverHead == headHeld, "an end that loses or invents a head")
            endExchange()
            if !reuse { close() }
        case .failExchange(_, let close):
            invariant(exchangeOpen, "a failure with no exchange")
            endExchange()
            if close { self.close() } else { closed = true }
        case .abandonExchange:
            invariant(exchangeOpen && hasBody, "an abandoned exchange with no body")
            endExchange()
            close()
        case .close:
            invariant(!exchangeOpen, "a close that drops an exchange without failing it")
            close()
        }
        invariant(!closed || machine.isClosed, "the connection closed but its state machine did not")
    }

    func endExchange() {
        exchangeOpen = false
        hasBody = false
        headHeld = false
        exchangesEnded += 1
        invariant(exchangesEnded == exchangesStarted, "an exchange ended twice")
    }

    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}

/// The script: each control byte picks an event; wire bytes follow their control byte.
func fuzzUpstream(_ bytes: [UInt8]) {
    let channel = EmbeddedChannel()
    let connection = FuzzConnection()
    do {
        try channel.pipeline.syncOperations.addHTTPClientHandlers(decoderLimitConfiguration: UpstreamHeadLimits.decoder)
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 80)).wait()
    } catch {
        invariant(false, "pipeline setup failed: \(error)")
    }
    connection.startCall()
    var index = 0
    while index < bytes.count {
        let control = bytes[index]
        index += 1
        switch control % 8 {
        case 0, 1, 2, 3:
            // Wire bytes: a run of 1 to 64.
            let count = min(Int(control >> 2) + 1, bytes.count - index)
            if count > 0, !connection.closed {
                try? channel.writeInbound(ByteBuffer(bytes: bytes[index..<(index + count)]))
            }
            index += count
        case 4:
            connection.startCall()
        case 5:
            if control & 0x80 == 0 {
                connection.machine.consumerIsFull()
            } else {
                connection.apply(connection.machine.consumerWantsMoreBody())
            }
        case 6:
            connection.apply(connection.machine.consumerLeft())
        default:
            if control & 0x80 == 0 {
                connection.apply(connection.machine.callEnded())
            } else {
                connection.apply(connection.machine.closeRequested())
            }
        }
        _ = try? channel.readOutbound(as: ByteBuffer.self)
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    invariant(connection.machine.isClosed, "the connection is not closed after the channel went")
    invariant(!connection.exchangeOpen, "an exchange outlived its connection")
}
