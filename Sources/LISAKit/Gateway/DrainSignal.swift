import Foundation
import Synchronization

/// Tells relayed streams that the process is shutting down and by when they must be done.
///
/// A server calls ``begin(deadline:)`` when its graceful shutdown starts (LISAServe does,
/// with its grace period less a margin). Every stream still open at the deadline ends with
/// its dialect's error event saying so, instead of a bare close when the grace runs out; a
/// stream that ends before the deadline is not touched.
public final class DrainSignal: Sendable {
    private struct State {
        var deadline: ContinuousClock.Instant?
        var waiters: [UInt64: CheckedContinuation<ContinuousClock.Instant?, Never>] = [:]
        var next: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// The deadline, once shutdown has begun.
    public var deadline: ContinuousClock.Instant? { state.withLock { $0.deadline } }

    /// Starts the drain: streams open at `deadline` end with an error event. Later calls
    /// can only move the deadline earlier.
    public func begin(deadline: ContinuousClock.Instant) {
        let waiters: [CheckedContinuation<ContinuousClock.Instant?, Never>] = state.withLock { state in
            state.deadline = min(state.deadline ?? deadline, deadline)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        let chosen = self.deadline
        for waiter in waiters { waiter.resume(returning: chosen) }
    }

    /// Waits until the drain begins and returns its deadline; `nil` when the calling task is
    /// cancelled first.
    func waitForDeadline() async -> ContinuousClock.Instant? {
        let id: UInt64 = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let early: ContinuousClock.Instant?? = state.withLock { state in
                    if let deadline = state.deadline { return .some(deadline) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let early { continuation.resume(returning: early) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
