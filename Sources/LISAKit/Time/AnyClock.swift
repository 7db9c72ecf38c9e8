/// The clock that code which waits reads and sleeps on, as a value: production code runs on
/// ``continuous``; tests hand over a manual clock (LISAKitTesting's `ManualClock`) and
/// advance it instead of sleeping.
///
/// Any `Clock` measured in `Duration` can be wrapped. Its instants count from the wrapped
/// clock's reading when the value was made, so two values made from one clock at different
/// moments do not share instants; pass one value around.
///
/// ```swift
/// let limiter = RateLimiter(configuration: limits, clock: .continuous)
/// ```
public struct AnyClock: Clock {
    /// A moment on an ``AnyClock``: the time since the clock's origin.
    public struct Instant: InstantProtocol {
        /// Time since the clock's origin.
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

    private let read: @Sendable () -> Duration
    private let sleeper: @Sendable (_ offset: Duration, _ tolerance: Duration?) async throws -> Void
    public let minimumResolution: Duration

    /// Wraps `clock`; instants count from its reading now.
    public init<Wrapped: Clock>(_ clock: Wrapped) where Wrapped.Duration == Duration {
        let origin = clock.now
        self.read = { origin.duration(to: clock.now) }
        self.sleeper = { offset, tolerance in try await clock.sleep(until: origin.advanced(by: offset), tolerance: tolerance) }
        self.minimumResolution = clock.minimumResolution
    }

    /// `ContinuousClock` (it keeps counting while the machine sleeps): the clock of
    /// everything LISA runs in production. One value, so its instants are shared.
    public static let continuous = AnyClock(ContinuousClock())

    public var now: Instant { Instant(offset: read()) }

    /// Seconds since the clock's origin, for the state machines that take time as a number
    /// (circuit breakers, retry budgets, rate buckets).
    public var seconds: Double {
        let (seconds, attoseconds) = read().components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try await sleeper(deadline.offset, tolerance)
    }
}
