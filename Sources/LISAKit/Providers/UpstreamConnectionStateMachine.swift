/// The decisions of one upstream HTTP/1.1 connection, without I/O.
///
/// Every event the connection sees — what the response parser read, the consumer's demand,
/// timers, the call giving up, the channel closing — goes in as a method call, and what the
/// connection must do comes out as an ``Action``. The channel handler applies an action only
/// after the method has returned, so whatever the action calls back into (a body's
/// termination, a pool handing the connection its next call) always finds a settled state:
/// nothing here runs while the state is being changed.
///
/// The rules it keeps, whatever bytes an upstream sends:
/// - one head is handed over per exchange, and only in answer to a request;
/// - body bytes go to the body of the exchange they belong to, never to a later one;
/// - an exchange ends once: with the answer's end, or with one failure;
/// - a connection is reused only after a whole answer that allowed keep-alive; anything
///   unexpected (a head nobody asked for, bytes while idle, a parse error, a consumer that
///   left mid-answer) closes it.
struct UpstreamConnectionStateMachine: Sendable {
    enum State: Sendable, Hashable {
        /// Open, no exchange: parked in the pool, or about to carry a call.
        case idle
        /// A request is out, no head yet.
        case awaitingHead
        /// The head is in; it goes to the caller at the end of this read burst, with the body
        /// that came along.
        case headReceived(keepAlive: Bool)
        /// The caller has the head; body parts go to its body.
        case streaming(keepAlive: Bool)
        /// Closed or closing: nothing more happens on this connection.
        case closed
    }

    /// What the connection does next.
    enum Action: Sendable, Hashable {
        case none
        /// Write the call's request (and read, if a read was held back while idle).
        case writeRequest(read: Bool)
        /// The call cannot run here: fail it with a closed connection (nothing was sent).
        case refuseCall
        /// Stop the first-byte timer and make the answer's body.
        case makeBody
        /// Hand the body part to the consumer.
        case yieldBody
        /// Hand the head to the caller.
        case deliverHead
        /// The answer ended: finish the body (handing the head over first if it is still
        /// held), complete the call, and park the connection or close it.
        case finishExchange(deliverHead: Bool, reuse: Bool)
        /// Ask the channel for more bytes.
        case read
        /// The exchange failed: fail the body (if there is one) or the waiting caller with
        /// `failure`, complete the call, and close the connection unless it is gone already.
        case failExchange(ExchangeFailure, close: Bool)
        /// The consumer left mid-answer: complete the call and close the connection.
        case abandonExchange
        /// Close the connection; no exchange is in flight.
        case close
    }

    /// Why an exchange failed, as the state machine sees it; the handler maps it to the
    /// caller's error.
    enum ExchangeFailure: Sendable, Hashable {
        /// The upstream's answer broke HTTP/1.1's framing (a head where none belongs).
        case malformedAnswer
        /// Something below failed: the parser refused the bytes, or TLS failed.
        case channelError
        /// The upstream answered 101 Switching Protocols to a plain request.
        case switchedProtocols
        /// The connection closed.
        case connectionClosed
        /// A timer fired or the call was cancelled: the call's own failure.
        case callEnded
    }

    private(set) var state = State.idle
    /// Whether the consumer wants more of the body; reads wait while it does not.
    private(set) var consumerWantsMore = true
    /// A read the channel asked for while the consumer did not want more.
    private var readHeld = false

    var isIdle: Bool { state == .idle }
    var isClosed: Bool { state == .closed }
    var hasExchange: Bool {
        switch state {
        case .awaitingHead, .headReceived, .streaming: true
        case .idle, .closed: false
        }
    }

    // MARK: The caller's side

    /// A call wants this connection for its request.
    mutating func startExchange() -> Action {
        guard state == .idle else { return .refuseCall }
        state = .awaitingHead
        consumerWantsMore = true
        let read = readHeld
        readHeld = false
        return .writeRequest(read: read)
    }

    /// The call ended on its side (deadline, first-byte limit, cancellation).
    mutating func callEnded() -> Action {
        guard hasExchange else { return .none }
        state = .closed
        return .failExchange(.callEnded, close: true)
    }

    // MARK: The parser's side

    /// The parser read a response head.
    mutating func headReceived(status: Int, keepAlive: Bool) -> Action {
        switch state {
        case .awaitingHead:
            if status == 101 {
                state = .closed
                return .failExchange(.switchedProtocols, close: true)
            }
            // Informational answers (100 Continue, 103 Early Hints) come before the real one.
            if (100..<200).contains(status) { return .none }
            state = .headReceived(keepAlive: keepAlive)
            return .makeBody
        case .idle, .headReceived, .streaming, .closed:
            // An answer nobody asked for, or a second head inside one answer.
            return outOfPlace()
        }
    }

    /// The parser read a part of the body.
    mutating func bodyReceived() -> Action {
        switch state {
        case .headReceived, .streaming:
            return .yieldBody
        case .idle, .awaitingHead, .closed:
            return outOfPlace()
        }
    }

    /// The consumer's body is full: reads stop until it wants more.
    mutating func consumerIsFull() {
        guard hasExchange else { return }
        consumerWantsMore = false
    }

    /// The parser read the answer's end.
    mutating func endReceived() -> Action {
        switch state {
        case .headReceived(let keepAlive):
            state = keepAlive ? .idle : .closed
            consumerWantsMore = true
            return .finishExchange(deliverHead: true, reuse: keepAlive)
        case .streaming(let keepAlive):
            state = keepAlive ? .idle : .closed
            consumerWantsMore = true
            return .finishExchange(deliverHead: false, reuse: keepAlive)
        case .idle, .awaitingHead, .closed:
            return outOfPlace()
        }
    }

    /// Parser output with no place in the state: idle, the connection cannot be trusted with
    /// another call and closes; inside an exchange, the framing is broken and the exchange
    /// fails; closed, nothing happens.
    private mutating func outOfPlace() -> Action {
        switch state {
        case .closed:
            return .none
        case .idle:
            state = .closed
            return .close
        case .awaitingHead, .headReceived, .streaming:
            state = .closed
            return .failExchange(.malformedAnswer, close: true)
        }
    }

    /// A burst of reads is over.
    mutating func readComplete() -> Action {
        guard case .headReceived(let keepAlive) = state else { return .none }
        state = .streaming(keepAlive: keepAlive)
        return .deliverHead
    }

    /// The parser (or anything below it) failed: the bytes were not an HTTP answer.
    mutating func errorCaught() -> Action {
        switch state {
        case .awaitingHead, .headReceived, .streaming:
            state = .closed
            return .failExchange(.channelError, close: true)
        case .idle:
            state = .closed
            return .close
        case .closed:
            return .none
        }
    }

    /// The channel closed.
    mutating func channelInactive() -> Action {
        let had = hasExchange
        state = .closed
        return had ? .failExchange(.connectionClosed, close: false) : .none
    }

    // MARK: The channel's and the consumer's side

    /// The channel asks whether to read.
    mutating func readRequested() -> Action {
        switch state {
        case .headReceived, .streaming:
            guard consumerWantsMore else {
                readHeld = true
                return .none
            }
            return .read
        case .idle, .awaitingHead, .closed:
            // Idle connections keep reading so that a close (or stray bytes) is seen.
            readHeld = false
            return .read
        }
    }

    /// The consumer wants more of the body.
    mutating func consumerWantsMoreBody() -> Action {
        guard hasExchange else { return .none }
        consumerWantsMore = true
        guard readHeld else { return .none }
        readHeld = false
        return .read
    }

    /// The consumer dropped the body.
    mutating func consumerLeft() -> Action {
        switch state {
        case .headReceived, .streaming:
            // The rest of the answer is still coming: the connection cannot be reused.
            state = .closed
            return .abandonExchange
        case .idle, .awaitingHead, .closed:
            return .none
        }
    }

    /// The idle timer fired.
    mutating func idleTimeout() -> Action {
        guard state == .idle else { return .none }
        state = .closed
        return .close
    }

    /// The pool or the client closes the connection.
    mutating func closeRequested() -> Action {
        switch state {
        case .closed:
            return .none
        case .idle:
            state = .closed
            return .close
        case .awaitingHead, .headReceived, .streaming:
            state = .closed
            return .failExchange(.connectionClosed, close: true)
        }
    }
}
