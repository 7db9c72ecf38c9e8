public import Foundation
import Synchronization

/// A token bucket: `burst` requests at once, refilled at `perMinute` a minute. Pure: time is
/// an argument.
public struct TokenBucket: Sendable, Hashable {
    public let capacity: Double
    public let refillPerSecond: Double
    private var tokens: Double
    private var updated: Double

    public init(perMinute: Double, burst: Int, now: Double) {
        self.capacity = Double(max(burst, 1))
        self.refillPerSecond = perMinute / 60
        self.tokens = capacity
        self.updated = now
    }

    /// Takes one token; returns 0 when allowed, otherwise the seconds until one is available.
    public mutating func take(at now: Double) -> Double {
        tokens = min(capacity, tokens + max(now - updated, 0) * refillPerSecond)
        updated = now
        if tokens >= 1 {
            tokens -= 1
            return 0
        }
        return refillPerSecond > 0 ? (1 - tokens) / refillPerSecond : .infinity
    }

    /// Whether the bucket is full at `now` (an idle principal, safe to forget).
    func isFull(at now: Double) -> Bool {
        min(capacity, tokens + max(now - updated, 0) * refillPerSecond) >= capacity
    }
}

/// Enforces ``RateLimitConfiguration``.
///
/// With a store that several LISAServe replicas share (PostgreSQL), every replica draws on
/// one bucket per principal in the store (``StateCoordination/takeRateToken(key:perSecond:capacity:)``,
/// one atomic statement per request), so the limit holds across replicas with no
/// overshoot. When the store does not answer within 500 ms, each replica falls back to
/// buckets of its own, and keeps to them for 5 s before it asks the store again (a
/// principal then gets up to N × the limit while the store is down, rather than no service
/// or a slow one). With one process, the buckets are in memory.
public final class RateLimiter: Sendable {
    public let configuration: RateLimitConfiguration
    private let buckets = Mutex<[String: TokenBucket]>([:])
    private let coordination: StateCoordination?
    /// Until when (seconds on ``clock``) the shared buckets are not asked: the store failed.
    private let sharedDownUntil = Mutex<Double>(0)
    /// What this process's buckets refill by.
    public let clock: AnyClock

    /// - Parameters:
    ///   - coordination: the shared store's, whose buckets replicas draw on; `nil` (or a
    ///     store no other process shares) keeps the buckets in this process.
    ///   - clock: what this process's buckets refill by (the shared ones go by the
    ///     database's clock).
    public init(configuration: RateLimitConfiguration, coordination: StateCoordination? = nil, clock: AnyClock = .continuous) {
        self.configuration = configuration
        self.coordination = coordination?.isShared == true ? coordination : nil
        self.clock = clock
    }

    /// Counts a request of `principal`; throws a 429 with `Retry-After` when over its limit.
    public func admit(_ principal: Principal) async throws(LISAError) {
        guard let limit = configuration.limit(for: principal) else { return }
        let key = Self.bucketKey(principal)
        let now = clock.seconds
        if let coordination, sharedDownUntil.withLock({ $0 }) <= now {
            let wait: Double?
            do {
                let (perSecond, capacity) = (limit.requestsPerMinute / 60, Double(max(limit.burst, 1)))
                wait = try await withDeadline(.milliseconds(500), timedOut: { LISAError.stateStoreUnavailable("rate bucket") }) {
                    try await coordination.takeRateToken(key: key, perSecond: perSecond, capacity: capacity)
                }
            } catch {
                // The store did not answer: this replica's own buckets decide for a while.
                sharedDownUntil.withLock { $0 = now + 5 }
                wait = nil
            }
            if let wait { return try Self.check(wait: wait, limit: limit) }
        }
        try admitLocally(principal, limit: limit, at: clock.seconds)
    }

    /// Counts a request against this process's buckets only (the same buckets ``admit(_:)``
    /// falls back to), now on ``clock``.
    public func admitLocally(_ principal: Principal) throws(LISAError) {
        try admitLocally(principal, at: clock.seconds)
    }

    /// Counts a request against this process's buckets only, at `now` (seconds on ``clock``).
    public func admitLocally(_ principal: Principal, at now: Double) throws(LISAError) {
        guard let limit = configuration.limit(for: principal) else { return }
        try admitLocally(principal, limit: limit, at: now)
    }

    private func admitLocally(_ principal: Principal, limit: RateLimitConfiguration.Limit, at now: Double) throws(LISAError) {
        let key = Self.bucketKey(principal)
        let wait = buckets.withLock { buckets in
            if buckets.count > 50_000 { buckets = buckets.filter { !$0.value.isFull(at: now) } }
            var bucket = buckets[key] ?? TokenBucket(perMinute: limit.requestsPerMinute, burst: limit.burst, now: now)
            let wait = bucket.take(at: now)
            buckets[key] = bucket
            return wait
        }
        try Self.check(wait: wait, limit: limit)
    }

    /// One bucket per user, however many tokens or sign-ins they use; a token with a limit
    /// of its own (set by an administrator) has its own bucket.
    static func bucketKey(_ principal: Principal) -> String {
        principal.rateLimit != nil ? "token:\(principal.tokenID ?? principal.username)" : "user:\(principal.username)"
    }

    private static func check(wait: Double, limit: RateLimitConfiguration.Limit) throws(LISAError) {
        if wait > 0 {
            throw .rateLimited(
                "Rate limit exceeded: \(String(format: "%g", limit.requestsPerMinute)) requests a minute with bursts of \(limit.burst). Retry later.",
                // At most a day: a tiny rate makes an absurd wait, and converting it must not trap.
                retryAfter: wait.isFinite && wait < 86_400 ? max(1, Int(wait.rounded(.up))) : 86_400
            )
        }
    }
}
