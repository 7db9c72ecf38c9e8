import Foundation
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

/// Enforces ``RateLimitConfiguration`` in this process.
///
/// Several LISAServe replicas each enforce the limit on the requests they receive; with N
/// replicas behind a load balancer a principal gets up to N × the limit until limits move to
/// the shared PostgreSQL state.
public final class RateLimiter: Sendable {
    public let configuration: RateLimitConfiguration
    private let buckets = Mutex<[String: TokenBucket]>([:])

    public init(configuration: RateLimitConfiguration) {
        self.configuration = configuration
    }

    /// Counts a request of `principal`; throws a 429 with `Retry-After` when over its limit.
    public func admit(_ principal: Principal, at now: Double = Double(DispatchTime.now().uptimeNanoseconds) / 1e9) throws(LISAError) {
        guard let limit = configuration.limit(for: principal) else { return }
        // One bucket per user, however many tokens or sign-ins they use; a token with a limit
        // of its own (set by an administrator) has its own bucket.
        let key = principal.rateLimit != nil ? "token:\(principal.tokenID ?? principal.username)" : "user:\(principal.username)"
        let wait = buckets.withLock { buckets in
            if buckets.count > 50_000 { buckets = buckets.filter { !$0.value.isFull(at: now) } }
            var bucket = buckets[key] ?? TokenBucket(perMinute: limit.requestsPerMinute, burst: limit.burst, now: now)
            let wait = bucket.take(at: now)
            buckets[key] = bucket
            return wait
        }
        if wait > 0 {
            throw .rateLimited(
                "Rate limit exceeded: \(Int(limit.requestsPerMinute)) requests a minute with bursts of \(limit.burst). Retry later.",
                retryAfter: wait.isFinite ? max(1, Int(wait.rounded(.up))) : 60
            )
        }
    }
}
