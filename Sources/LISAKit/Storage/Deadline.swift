import NIOCore
import NIOPosix
import Synchronization

/// Runs `operation` and answers within `timeout`: its result, or `timedOut()` when the
/// deadline passes first (the operation is then cancelled and left to finish on its own).
///
/// Unlike a task group, the caller does not wait for an operation that ignores
/// cancellation: a query on a connection the server dropped without a FIN never returns,
/// and that must not hold a request (or a leader's lock check) with it. The timer is an
/// event-loop scheduled task (see ``EventLoopTimer``), removed when the answer comes first.
package func withDeadline<T: Sendable>(
    _ timeout: Duration, timedOut: @escaping @Sendable () -> any Error, operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = DeadlineOutcome<T>()
    let task = Task {
        do {
            outcome.finish(.success(try await operation()))
        } catch {
            outcome.finish(.failure(error))
        }
    }
    let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(timeout)) {
        // The answer first: cancelling may make the operation fail at once with an error
        // of its own (a pool's "request cancelled"), which must not win.
        outcome.finish(.failure(timedOut()))
        task.cancel()
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { outcome.wait($0) }
    } onCancel: {
        outcome.finish(.failure(CancellationError()))
        task.cancel()
    }
}

/// The first of an answer, a timeout or a cancellation, handed to one waiter.
private final class DeadlineOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
        case delivered
    }

    private let state = Mutex(State.pending)

    func finish(_ result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .pending:
                state = .finished(result)
                return nil
            case .waiting(let continuation):
                state = .delivered
                return continuation
            case .finished, .delivered:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let ready = state.withLock { state -> Result<T, any Error>? in
            switch state {
            case .pending:
                state = .waiting(continuation)
                return nil
            case .finished(let result):
                state = .delivered
                return result
            case .waiting, .delivered:
                return nil
            }
        }
        if let ready { continuation.resume(with: ready) }
    }
}
