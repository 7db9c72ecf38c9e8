import Foundation
import LISAOpenAI

/// Per-model timeouts. The connect timeout is global (`upstream.connectTimeoutSeconds`).
public struct ModelTimeouts: Sendable, Hashable, Codable {
    /// Longest wait for the upstream's response head. `nil`: for streamed requests the global
    /// `upstream.streamFirstByteTimeoutSeconds` (model servers send a stream's head at once),
    /// for others no limit but the total (their head comes with the whole answer).
    public var firstByteSeconds: Double?
    /// Longest a whole request may take, streaming included. `nil`: the global `upstream.requestTimeoutSeconds`.
    public var totalSeconds: Double?
    /// Longest a stream may go without a byte from the upstream (the first event included).
    /// `nil`: the global `upstream.streamIdleTimeoutSeconds`.
    public var streamIdleSeconds: Double?

    public init(firstByteSeconds: Double? = nil, totalSeconds: Double? = nil, streamIdleSeconds: Double? = nil) {
        self.firstByteSeconds = firstByteSeconds
        self.totalSeconds = totalSeconds
        self.streamIdleSeconds = streamIdleSeconds
    }
}

/// Active health probes of a model's endpoints.
public struct HealthCheckConfiguration: Sendable, Hashable, Codable {
    /// Path probed on each endpoint's origin (scheme, host and port of its URL). Default `/health`.
    public var path: String = "/health"
    public var intervalSeconds: Double = 10
    public var timeoutSeconds: Double = 2
    public var healthyThreshold: Int = 2
    public var unhealthyThreshold: Int = 3
    /// `false`: no active probes for this model, not even the default reachability probe.
    public var enabled: Bool = true
    /// Any answer but 502, 503 or 504 counts as up: a probe of whether the endpoint can be
    /// reached at all, for upstreams without a health route (hosted APIs).
    public var reachabilityOnly: Bool = false

    public init(path: String = "/health", intervalSeconds: Double = 10, timeoutSeconds: Double = 2) {
        self.path = path
        self.intervalSeconds = intervalSeconds
        self.timeoutSeconds = timeoutSeconds
    }

    /// What probes a model that sets no `healthCheck`: can its endpoints' origins be reached
    /// (`GET /` every 15 s, 5 s to answer, any answer but 502/503/504), so a dead upstream is
    /// reported down and gets no traffic without a request failing first.
    public static let reachability: HealthCheckConfiguration = {
        var check = HealthCheckConfiguration(path: "/", intervalSeconds: 15, timeoutSeconds: 5)
        check.reachabilityOnly = true
        return check
    }()

    enum CodingKeys: String, CodingKey {
        case path, intervalSeconds, timeoutSeconds, healthyThreshold, unhealthyThreshold, enabled, reachabilityOnly
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encode(intervalSeconds, forKey: .intervalSeconds)
        try c.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try c.encode(healthyThreshold, forKey: .healthyThreshold)
        try c.encode(unhealthyThreshold, forKey: .unhealthyThreshold)
        if !enabled { try c.encode(enabled, forKey: .enabled) }
        if reachabilityOnly { try c.encode(reachabilityOnly, forKey: .reachabilityOnly) }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        reachabilityOnly = try c.decodeIfPresent(Bool.self, forKey: .reachabilityOnly) ?? false
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? "/health"
        intervalSeconds = try c.decodeIfPresent(Double.self, forKey: .intervalSeconds) ?? 10
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 2
        healthyThreshold = try c.decodeIfPresent(Int.self, forKey: .healthyThreshold) ?? 2
        unhealthyThreshold = try c.decodeIfPresent(Int.self, forKey: .unhealthyThreshold) ?? 3
    }
}

/// Retries before the first byte reached the client.
public struct RetryConfiguration: Sendable, Hashable, Codable {
    /// Attempts in all, the first included. Default 3.
    public var maxAttempts: Int = 3
    /// Share of requests that may be retried over 10 s (default 0.2), on top of 1 retry a second.
    public var budgetRatio: Double = 0.2
    /// Backoff before retry n is random in 0…min(max, base × 2ⁿ). Defaults 25 ms and 1000 ms.
    public var backoffBaseMilliseconds: Double = 25
    public var backoffMaxMilliseconds: Double = 1000

    public init(maxAttempts: Int = 3, budgetRatio: Double = 0.2) {
        self.maxAttempts = maxAttempts
        self.budgetRatio = budgetRatio
    }

    enum CodingKeys: String, CodingKey { case maxAttempts, budgetRatio, backoffBaseMilliseconds, backoffMaxMilliseconds }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? 3
        budgetRatio = try c.decodeIfPresent(Double.self, forKey: .budgetRatio) ?? 0.2
        backoffBaseMilliseconds = try c.decodeIfPresent(Double.self, forKey: .backoffBaseMilliseconds) ?? 25
        backoffMaxMilliseconds = try c.decodeIfPresent(Double.self, forKey: .backoffMaxMilliseconds) ?? 1000
    }

    /// The pause before retry number `retry` (1 for the first retry), with full jitter.
    public func backoff(beforeRetry retry: Int, using random: inout some RandomNumberGenerator) -> Duration {
        let cap = min(backoffMaxMilliseconds, backoffBaseMilliseconds * pow(2, Double(max(retry - 1, 0))))
        guard cap > 0 else { return .zero }
        return .microseconds(Int64(Double.random(in: 0...cap, using: &random) * 1000))
    }
}
