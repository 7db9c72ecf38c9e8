import Testing

@testable import LISAKit

/// The upstream connection's decisions, without I/O: each row is a sequence of events and the
/// actions and state they must produce.
@Suite("UpstreamConnectionStateMachine")
struct UpstreamConnectionStateMachineTests {
    typealias Machine = UpstreamConnectionStateMachine

    @Test("a whole answer in one read burst: head held, handed over with the end, connection reused")
    func wholeAnswer() {
        var machine = Machine()
        #expect(machine.startExchange() == .writeRequest(read: false))
        #expect(machine.headReceived(status: 200, keepAlive: true) == .makeBody)
        #expect(machine.bodyReceived() == .yieldBody)
        #expect(machine.endReceived() == .finishExchange(deliverHead: true, reuse: true))
        #expect(machine.readComplete() == .none)
        #expect(machine.state == .idle)
        #expect(machine.startExchange() == .writeRequest(read: false))
    }

    @Test("a streamed answer: the head goes at the end of the burst, the body after, Connection: close closes")
    func streamedAnswer() {
        var machine = Machine()
        _ = machine.startExchange()
        #expect(machine.headReceived(status: 200, keepAlive: false) == .makeBody)
        #expect(machine.readComplete() == .deliverHead)
        #expect(machine.bodyReceived() == .yieldBody)
        #expect(machine.readComplete() == .none)
        #expect(machine.endReceived() == .finishExchange(deliverHead: false, reuse: false))
        #expect(machine.state == .closed)
        #expect(machine.startExchange() == .refuseCall)
    }

    @Test("informational answers are skipped; 101 fails the call")
    func informational() {
        var machine = Machine()
        _ = machine.startExchange()
        #expect(machine.headReceived(status: 100, keepAlive: true) == .none)
        #expect(machine.headReceived(status: 103, keepAlive: true) == .none)
        #expect(machine.headReceived(status: 200, keepAlive: true) == .makeBody)

        var switching = Machine()
        _ = switching.startExchange()
        #expect(switching.headReceived(status: 101, keepAlive: true) == .failExchange(.switchedProtocols, close: true))
        #expect(switching.state == .closed)
    }

    @Test("anything while idle (a head, body bytes, an end, a parse error) closes without an exchange to fail")
    func strayInputWhileIdle() {
        let inputs: [(String, (inout Machine) -> Machine.Action)] = [
            ("head", { $0.headReceived(status: 200, keepAlive: true) }),
            ("body", { $0.bodyReceived() }),
            ("end", { $0.endReceived() }),
            ("error", { $0.errorCaught() }),
        ]
        for (name, input) in inputs {
            var machine = Machine()
            #expect(input(&machine) == .close, "\(name)")
            #expect(machine.state == .closed, "\(name)")
            // Closed is final: nothing else happens.
            #expect(machine.headReceived(status: 200, keepAlive: true) == .none, "\(name)")
            #expect(machine.bodyReceived() == .none, "\(name)")
            #expect(machine.endReceived() == .none, "\(name)")
            #expect(machine.errorCaught() == .none, "\(name)")
            #expect(machine.channelInactive() == .none, "\(name)")
            #expect(machine.callEnded() == .none, "\(name)")
            #expect(machine.consumerLeft() == .none, "\(name)")
        }
    }

    @Test("a parse error fails the exchange once and closes, before or after the head")
    func parseError() {
        for headFirst in [false, true] {
            var machine = Machine()
            _ = machine.startExchange()
            if headFirst { _ = machine.headReceived(status: 200, keepAlive: true) }
            #expect(machine.errorCaught() == .failExchange(.channelError, close: true))
            #expect(machine.channelInactive() == .none)
            #expect(machine.readComplete() == .none)
        }
    }

    @Test("body bytes or an end before any head break the framing")
    func framingBeforeHead() {
        var body = Machine()
        _ = body.startExchange()
        #expect(body.bodyReceived() == .failExchange(.malformedAnswer, close: true))
        var end = Machine()
        _ = end.startExchange()
        #expect(end.endReceived() == .failExchange(.malformedAnswer, close: true))
        var twice = Machine()
        _ = twice.startExchange()
        _ = twice.headReceived(status: 200, keepAlive: true)
        #expect(twice.headReceived(status: 200, keepAlive: true) == .failExchange(.malformedAnswer, close: true))
    }

    @Test("the channel closing mid-exchange fails it without closing again; idle, it fails nothing")
    func channelInactive() {
        var midBody = Machine()
        _ = midBody.startExchange()
        _ = midBody.headReceived(status: 200, keepAlive: true)
        _ = midBody.readComplete()
        #expect(midBody.channelInactive() == .failExchange(.connectionClosed, close: false))
        var idle = Machine()
        #expect(idle.channelInactive() == .none)
        #expect(idle.state == .closed)
    }

    @Test("reads follow the consumer: held while it is full, released once when it wants more")
    func backpressure() {
        var machine = Machine()
        _ = machine.startExchange()
        _ = machine.headReceived(status: 200, keepAlive: true)
        _ = machine.readComplete()
        #expect(machine.readRequested() == .read)
        machine.consumerIsFull()
        #expect(machine.readRequested() == .none)
        #expect(machine.consumerWantsMoreBody() == .read)
        #expect(machine.consumerWantsMoreBody() == .none)
        // After the exchange, reads go on (to see a close) and the next call starts fresh.
        machine.consumerIsFull()
        #expect(machine.readRequested() == .none)
        _ = machine.endReceived()
        #expect(machine.readRequested() == .read)
        #expect(machine.startExchange() == .writeRequest(read: false))
        // A read held when the answer ended goes out with the next request.
        machine.consumerIsFull()
        _ = machine.headReceived(status: 200, keepAlive: true)
        machine.consumerIsFull()
        #expect(machine.readRequested() == .none)
        _ = machine.endReceived()
        #expect(machine.startExchange() == .writeRequest(read: true))
    }

    @Test("a consumer leaving mid-answer abandons the exchange and the connection; after the end it changes nothing")
    func consumerLeft() {
        var machine = Machine()
        _ = machine.startExchange()
        _ = machine.headReceived(status: 200, keepAlive: true)
        _ = machine.readComplete()
        #expect(machine.consumerLeft() == .abandonExchange)
        #expect(machine.state == .closed)

        var done = Machine()
        _ = done.startExchange()
        _ = done.headReceived(status: 200, keepAlive: true)
        _ = done.endReceived()
        #expect(done.consumerLeft() == .none)
        #expect(done.state == .idle)
    }

    @Test("the call ending (deadline, cancellation) fails the exchange; a busy connection refuses a second call")
    func callEnded() {
        var machine = Machine()
        #expect(machine.callEnded() == .none)
        _ = machine.startExchange()
        #expect(machine.startExchange() == .refuseCall)
        #expect(machine.callEnded() == .failExchange(.callEnded, close: true))
        #expect(machine.callEnded() == .none)
    }

    @Test("idle timeout and close requests close an idle connection; a close request fails an exchange in flight")
    func closing() {
        var idle = Machine()
        #expect(idle.idleTimeout() == .close)
        var busy = Machine()
        _ = busy.startExchange()
        #expect(busy.idleTimeout() == .none)
        #expect(busy.closeRequested() == .failExchange(.connectionClosed, close: true))
        #expect(busy.closeRequested() == .none)
    }
}
