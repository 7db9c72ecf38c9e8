import LISAKit
import Synchronization

/// A clock that moves only when a test advances it, for code that takes an ``AnyClock``:
/// tests advance time instead of sleeping, and can see when the code under test has gone
/// to sleep (``sleepers``) instead of guessing how long it takes to get there.
///
/// ```swift
/// let clock = ManualClock()
/// let limiter = RateLimiter(configuration: limits, clock: AnyClock(clock))
/// clock.advance(by: .seconds(10))   // one token refilled
/// ```
///
/// After PostgresNIO's `MockClock`. Sleepers wake in deadline order, from the thread that
/// advances the clock; a cancelled sleeper throws `CancellationError` at once.
public final class ManualClock: Clock {
    public struct Instant: InstantProtocol {
        /// Time since the clock was made.
        public var offset: Duration

        public init(offset: Duration) {
            self.offset = offset
        }

        public func advanced(by duration: Duration) -> Instant {
            Instant(offset: offset + duration)
        }

        public func duration(to other: Instant) -> Duration {
            other.offset - offset
        }

        public static func < (lhs: Instant, rhs: Instant) -> Bool {
            lhs.offset < rhs.offset
        }
    }

    private struct Sleeper {
        let id: UInt64
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// How many callers are asleep on this clock now.
    public var sleepers: Int { state.withLock { $0.sleepers.count } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Action { case wait, resume, cancel }
                let action = state.withLock { state -> Action in
                    if Task.isCancelled { return .cancel }
                    if deadline <= state.now { return .resume }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return .wait
                }
                switch action {
                case .cancel: continuation.resume(throwing: CancellationError())
                case .resume: continuation.resume()
                case .wait: break
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward by `duration`, waking every sleeper whose deadline it reaches.
    public func advance(by duration: Duration) {
        advance(to: now.advanced(by: duration))
    }

    /// Moves the clock forward to `instant` (never back), waking every sleeper whose
    /// deadline it reaches, earliest first.
    public func advance(to instant: Instant) {
        let woken = state.withLock { state -> [Sleeper] in
            precondition(instant >= state.now, "a clock only moves forward")
            state.now = instant
            let due = state.sleepers.filter { $0.deadline <= instant }.sorted { $0.deadline < $1.deadline }
            state.sleepers.removeAll { $0.deadline <= instant }
            return due
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }
}
