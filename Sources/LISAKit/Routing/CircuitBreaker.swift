import Foundation

/// Passive outlier detection for one endpoint: consecutive failures open the circuit; after
/// a cooldown one trial request is let through (half-open); its outcome closes or re-opens it.
///
/// A pure state machine: time comes in as an argument, so it is tested without waiting.
public struct CircuitBreaker: Sendable, Hashable {
    /// Thresholds (``CircuitBreakerConfiguration``).
    public typealias Configuration = CircuitBreakerConfiguration

    /// Where the circuit stands.
    public enum State: Sendable, Hashable {
        case closed(consecutiveFailures: Int)
        case open(until: Double)
        case halfOpen(trialInFlight: Bool)

        /// `closed`, `open` or `half_open`, for metrics and the admin view.
        public var name: String {
            switch self {
            case .closed: "closed"
            case .open: "open"
            case .halfOpen: "half_open"
            }
        }
    }

    public let configuration: Configuration
    public private(set) var state: State = .closed(consecutiveFailures: 0)

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether a request could be sent now (does not take the half-open trial).
    public func isAvailable(at now: Double) -> Bool {
        switch state {
        case .closed: true
        case .open(let until): now >= until
        case .halfOpen(let trialInFlight): !trialInFlight
        }
    }

    /// Claims the right to send a request now; in half-open state only one caller gets it.
    public mutating func acquire(at now: Double) -> Bool {
        switch state {
        case .closed:
            return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen(trialInFlight: true)
            return true
        case .halfOpen(let trialInFlight):
            guard !trialInFlight else { return false }
            state = .halfOpen(trialInFlight: true)
            return true
        }
    }

    /// The request succeeded: the circuit closes.
    public mutating func recordSuccess() {
        state = .closed(consecutiveFailures: 0)
    }

    /// The request failed: count it, opening the circuit at the threshold (or at once when half-open).
    public mutating func recordFailure(at now: Double) {
        switch state {
        case .closed(let failures):
            let failures = failures + 1
            state =
                failures >= configuration.failureThreshold
                ? .open(until: now + configuration.cooldownSeconds) : .closed(consecutiveFailures: failures)
        case .halfOpen, .open:
            state = .open(until: now + configuration.cooldownSeconds)
        }
    }

    /// A request that ended neither way (cancelled by the client): release a half-open trial.
    public mutating func recordAbandoned() {
        if case .halfOpen = state { state = .halfOpen(trialInFlight: false) }
    }
}

/// Limits retries to a share of requests, so retries cannot multiply load during an outage.
///
/// Over a sliding window (10 s), retries are allowed while
/// `retries < minPerSecond × window + ratio × requests`. A pure value: time is an argument.
public struct RetryBudget: Sendable, Hashable {
    public let ratio: Double
    public let minPerSecond: Double
    private let window = 10
    private var requests: [Int]
    private var retries: [Int]
    private var second: Int?

    /// - Parameters:
    ///   - ratio: retries allowed per request (default 0.2: 20 %).
    ///   - minPerSecond: retries always allowed per second regardless of traffic (default 1).
    public init(ratio: Double = 0.2, minPerSecond: Double = 1) {
        self.ratio = ratio
        self.minPerSecond = minPerSecond
        self.requests = Array(repeating: 0, count: 10)
        self.retries = Array(repeating: 0, count: 10)
    }

    private mutating func advance(to now: Double) {
        let current = Int(now.rounded(.down))
        if let second {
            if current - second >= window {
                requests = Array(repeating: 0, count: window)
                retries = Array(repeating: 0, count: window)
            } else if current > second {
                for s in (second + 1)...current {
                    requests[s % window] = 0
                    retries[s % window] = 0
                }
            }
        }
        second = max(current, second ?? current)
    }

    /// Counts a first attempt.
    public mutating func recordRequest(at now: Double) {
        advance(to: now)
        requests[(second ?? 0) % window] += 1
    }

    /// Takes one retry from the budget if there is one.
    public mutating func tryRetry(at now: Double) -> Bool {
        advance(to: now)
        let allowed = minPerSecond * Double(window) + ratio * Double(requests.reduce(0, +))
        guard Double(retries.reduce(0, +)) < allowed.rounded(.down) else { return false }
        retries[(second ?? 0) % window] += 1
        return true
    }
}

/// Active health from probes: an endpoint turns unhealthy after `unhealthyThreshold`
/// consecutive failed probes and healthy again after `healthyThreshold` good ones.
public struct ProbeHealth: Sendable, Hashable {
    /// Routable: `true` until probes find otherwise (an endpoint not yet probed gets traffic).
    public private(set) var isHealthy = true
    /// Whether a probe or a request has answered yet (or probes have found it unhealthy);
    /// until then its health is unknown, not healthy.
    public private(set) var isKnown = false
    private var successes = 0
    private var failures = 0
    public let healthyThreshold: Int
    public let unhealthyThreshold: Int

    public init(healthyThreshold: Int = 2, unhealthyThreshold: Int = 3) {
        self.healthyThreshold = healthyThreshold
        self.unhealthyThreshold = unhealthyThreshold
    }

    /// Records a probe result; returns whether health changed.
    @discardableResult
    public mutating func record(success: Bool) -> Bool {
        let before = isHealthy
        // Known once it has answered, or once probes have found it unhealthy: an endpoint
        // nothing listens on goes from unknown to unhealthy, never through "healthy".
        defer { if success || !isHealthy { isKnown = true } }
        if success {
            successes += 1
            failures = 0
            if !isHealthy && successes >= healthyThreshold { isHealthy = true }
        } else {
            failures += 1
            successes = 0
            if isHealthy && failures >= unhealthyThreshold { isHealthy = false }
        }
        return before != isHealthy
    }

    /// A request got an answer from the endpoint: it is known to be up (if probes have not
    /// said otherwise already).
    public mutating func recordAnswer() {
        guard !isKnown else { return }
        isKnown = true
        isHealthy = true
    }

    /// `unknown`, `healthy` or `unhealthy`, as the management API shows it.
    public var name: String { isKnown ? (isHealthy ? "healthy" : "unhealthy") : "unknown" }
}
