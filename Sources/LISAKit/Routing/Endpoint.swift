import Foundation
import Synchronization

/// One replica of a model at run time: its definition plus what routing has learned of it
/// (requests in flight, latency, circuit, probe health).
public final class Endpoint: Sendable {
    public let definition: EndpointDefinition
    /// Position in its pool.
    public let index: Int
    /// `host:port` of the URL (never credentials), for logs and metrics.
    public let label: String

    /// Shared with the endpoint's successors in later registry snapshots (same model and
    /// URL), so requests in flight stay counted when the model's endpoints change.
    let counter: InFlightCounter
    private let state: Mutex<State>

    /// The pool's pick count when this endpoint was last chosen (see ``EndpointPool``).
    let lastPicked: Atomic<Int>
    /// The clock its circuit, latency estimate and probes run on (its registry's).
    let clock: AnyClock

    private struct State {
        var latency = PeakEWMA()
        /// Chosen because its latency estimate was stale: its next sample replaces it.
        var probing = false
        var circuit: CircuitBreaker
        var probe: ProbeHealth
        var nextProbe: Double = 0
    }

    init(
        definition: EndpointDefinition, index: Int, circuit: CircuitBreaker.Configuration, health: HealthCheckConfiguration?,
        counter: InFlightCounter = InFlightCounter(), pickedAt tick: Int = 0, clock: AnyClock = .continuous
    ) {
        self.lastPicked = Atomic(tick)
        self.clock = clock
        self.definition = definition
        self.index = index
        self.counter = counter
        self.label = Self.label(for: definition.url)
        self.state = Mutex(
            State(
                circuit: CircuitBreaker(configuration: circuit),
                probe: ProbeHealth(healthyThreshold: health?.healthyThreshold ?? 2, unhealthyThreshold: health?.unhealthyThreshold ?? 3)
            )
        )
    }

    public static func label(for url: String) -> String {
        guard let components = URLComponents(string: url), let host = components.host else { return "endpoint" }
        if let port = components.port { return "\(host):\(port)" }
        return host
    }

    /// Requests in flight now.
    public var inFlight: Int { counter.value }

    /// The load the balancer sees, or `nil` when the endpoint may not take a request now
    /// (probe-unhealthy, circuit open, or at its `maxInFlight`).
    func load(at now: Double) -> EndpointLoad? {
        let inFlight = counter.value
        if let cap = definition.maxInFlight, inFlight >= cap { return nil }
        return state.withLock { state in
            guard state.probe.isHealthy, state.circuit.isAvailable(at: now) else { return nil }
            return EndpointLoad(index: index, weight: definition.weight, inFlight: inFlight, latency: state.latency.cost(at: now))
        }
    }

    /// Claims the circuit for one request (takes the half-open trial when there is one).
    /// `probing`: chosen because its latency estimate is stale.
    func acquire(at now: Double, probing: Bool = false) -> Bool {
        state.withLock { state in
            guard state.circuit.acquire(at: now) else { return false }
            if probing { state.probing = true }
            return true
        }
    }

    func begin() { counter.add(1) }
    func end() { counter.add(-1) }

    /// An outcome of a request, for the circuit breaker and the latency estimate.
    enum Outcome {
        case success(firstByte: Double)
        /// A failed attempt that took `elapsed` seconds: it counts against the circuit and
        /// costs the latency estimate at least ``Endpoint/failurePenalty``, so the balancer
        /// moves away from an endpoint that fails fast as much as from one that stalls.
        case failure(elapsed: Double)
        /// The client went away after `elapsed` seconds without an answer: not the
        /// endpoint's fault, but the wait is what it costs, so a stalled endpoint looks slow.
        case abandoned(elapsed: Double)
    }

    /// The least a failed attempt adds to the latency estimate. 1 s.
    static let failurePenalty = 1.0

    /// Records `outcome` now, on the endpoint's clock.
    func record(_ outcome: Outcome) {
        record(outcome, at: clock.seconds)
    }

    func record(_ outcome: Outcome, at now: Double) {
        state.withLock { state in
            switch outcome {
            case .success(let firstByte):
                state.circuit.recordSuccess()
                state.probe.recordAnswer()
                if state.probing {
                    state.probing = false
                    state.latency.reset(firstByte, at: now)
                } else {
                    state.latency.observe(firstByte, at: now)
                }
            case .failure(let elapsed):
                state.circuit.recordFailure(at: now)
                state.probing = false
                state.latency.observe(max(elapsed, Self.failurePenalty), at: now)
            case .abandoned(let elapsed):
                state.circuit.recordAbandoned()
                state.latency.observe(elapsed, at: now)
            }
        }
    }

    /// Records an active probe result; returns whether health changed.
    @discardableResult
    func recordProbe(success: Bool) -> Bool {
        state.withLock { $0.probe.record(success: success) }
    }

    /// Whether a probe is due at `now`; if so, schedules the next one.
    func claimProbe(at now: Double, interval: Double) -> Bool {
        state.withLock { state in
            guard now >= state.nextProbe else { return false }
            state.nextProbe = now + interval
            return true
        }
    }

    /// What the admin view and metrics show of the endpoint.
    public var status: EndpointStatus {
        let inFlight = counter.value
        return state.withLock { state in
            EndpointStatus(
                url: definition.url, weight: definition.weight, healthy: state.probe.isHealthy,
                circuit: state.circuit.state.name, inFlight: inFlight, ewmaLatencyMilliseconds: state.latency.value * 1000,
                health: state.probe.name
            )
        }
    }
}

/// A model's endpoints and the balancer that chooses among them.
public final class EndpointPool: Sendable {
    public let endpoints: [Endpoint]
    public let policy: LoadBalancingPolicy
    private let cursor = Atomic<Int>(0)
    /// Picks made by this pool (and its predecessors): an endpoint not chosen in
    /// ``stalePicksPerEndpoint`` × the pool's size picks is chosen next, so its latency is
    /// learned again from real traffic.
    let picks: Atomic<Int>
    static let stalePicksPerEndpoint = 8
    private let smooth = Mutex(SmoothWeightedRoundRobin())
    private let ring: HashRing?
    private let circuit: CircuitBreaker.Configuration
    private let health: HealthCheckConfiguration?
    /// The clock of its circuits and latency estimates.
    let clock: AnyClock

    /// - Parameters:
    ///   - previous: the model's pool in the last snapshot; endpoints unchanged at the same
    ///     position are kept with their circuit, latency and probe state.
    ///   - tracker: where in-flight counters live across snapshots.
    ///   - clock: what circuits and latency estimates run on.
    init(
        definition: ModelDefinition, defaultPolicy: LoadBalancingPolicy, previous: EndpointPool? = nil, tracker: InFlightTracker? = nil,
        clock: AnyClock = .continuous
    ) {
        self.clock = clock
        let circuit = definition.circuitBreaker ?? CircuitBreaker.Configuration()
        let unchangedSettings = previous.map { $0.circuit == circuit && $0.health == definition.healthCheck } ?? false
        self.circuit = circuit
        self.health = definition.healthCheck
        let picks = previous?.picks.load(ordering: .relaxed) ?? 0
        self.picks = Atomic(picks)
        self.endpoints = definition.resolvedEndpoints.enumerated().map { index, endpoint in
            if unchangedSettings, let previous, index < previous.endpoints.count, previous.endpoints[index].definition == endpoint {
                return previous.endpoints[index]
            }
            let counter = tracker?.counter(model: definition.modelId, url: endpoint.url) ?? InFlightCounter()
            return Endpoint(
                definition: endpoint, index: index, circuit: circuit, health: definition.healthCheck, counter: counter, pickedAt: picks,
                clock: clock
            )
        }
        self.policy = definition.loadBalancing ?? defaultPolicy
        self.ring = policy == .sessionAffinity ? HashRing(weights: endpoints.map(\.definition.weight)) : nil
    }

    /// Chooses an endpoint for one attempt now, on the pool's clock (see
    /// ``choose(affinityKey:excluding:at:)``).
    public func choose(affinityKey: String?, excluding excluded: [Int] = []) -> Endpoint? {
        choose(affinityKey: affinityKey, excluding: excluded, at: clock.seconds)
    }

    /// Chooses an endpoint for one attempt and claims its circuit, or `nil` when none may
    /// take a request at `now` (seconds on the pool's clock).
    ///
    /// - Parameters:
    ///   - affinityKey: the session key, for `sessionAffinity`.
    ///   - excluded: indices already tried by this request.
    public func choose(affinityKey: String?, excluding excluded: [Int] = [], at now: Double) -> Endpoint? {
        var candidates = endpoints.compactMap { endpoint in
            excluded.contains(endpoint.index) ? nil : endpoint.load(at: now)
        }
        // An endpoint with no measurement yet costs what its measured peers cost on average,
        // not nothing: otherwise a new (or stalled, never-answering) endpoint beats every
        // endpoint that has answered.
        let measured = candidates.lazy.map(\.latency).filter { $0 > 0 }
        if measured.first != nil, candidates.contains(where: { $0.latency == 0 }) {
            let mean = measured.reduce(0, +) / Double(measured.count)
            for position in candidates.indices where candidates[position].latency == 0 { candidates[position].latency = mean }
        }
        var generator = SystemRandomNumberGenerator()
        let pick = picks.add(1, ordering: .relaxed).newValue
        while !candidates.isEmpty {
            var position: Int
            var probing = false
            switch policy {
            case .roundRobin:
                position = Int(UInt(bitPattern: cursor.add(1, ordering: .relaxed).oldValue) % UInt(candidates.count))
            case .weightedRoundRobin:
                position = smooth.withLock { $0.next(candidates) }
            case .leastOutstanding:
                position = LoadBalancer.leastOutstanding(candidates, using: &generator)
            case .powerOfTwoChoices:
                position = LoadBalancer.powerOfTwoChoices(candidates, using: &generator)
            case .sessionAffinity:
                if let affinityKey, let ring {
                    position = LoadBalancer.boundedLoadHash(key: affinityKey, ring: ring, candidates: candidates)
                } else {
                    position = LoadBalancer.powerOfTwoChoices(candidates, using: &generator)
                }
            }
            if policy == .powerOfTwoChoices || (policy == .sessionAffinity && affinityKey == nil), candidates.count > 1,
                let stale = stalest(candidates, at: pick)
            {
                position = stale
                probing = true
            }
            let endpoint = endpoints[candidates[position].index]
            if endpoint.acquire(at: now, probing: probing) {
                endpoint.lastPicked.store(pick, ordering: .relaxed)
                return endpoint
            }
            candidates.remove(at: position)
        }
        return nil
    }
}

extension EndpointPool {
    /// The candidate chosen longest ago, when that is more than the stale threshold.
    fileprivate func stalest(_ candidates: [EndpointLoad], at pick: Int) -> Int? {
        let threshold = Self.stalePicksPerEndpoint * endpoints.count
        var oldest: (position: Int, picked: Int)?
        for (position, candidate) in candidates.enumerated() {
            let picked = endpoints[candidate.index].lastPicked.load(ordering: .relaxed)
            if pick - picked > threshold, picked < (oldest?.picked ?? .max) { oldest = (position, picked) }
        }
        return oldest?.position
    }
}

/// Requests in flight on one endpoint of one model.
public final class InFlightCounter: Sendable {
    private let count = Atomic<Int>(0)

    public init() {}

    public var value: Int { count.load(ordering: .relaxed) }

    func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }
}

/// The in-flight counters of every (model, endpoint URL) this process routes to. They
/// outlive registry snapshots, so a drain or the autoscaler sees requests that started
/// on an endpoint list that has since changed.
public final class InFlightTracker: Sendable {
    private struct Key: Hashable {
        var model: String
        var url: String
    }

    private let counters = Mutex<[Key: InFlightCounter]>([:])

    public init() {}

    func counter(model: String, url: String) -> InFlightCounter {
        counters.withLock { counters in
            if let counter = counters[Key(model: model, url: url)] { return counter }
            let counter = InFlightCounter()
            counters[Key(model: model, url: url)] = counter
            return counter
        }
    }

    /// modelId → URL → requests in flight, for the endpoints with any.
    public func snapshot() -> [String: [String: Int]] {
        counters.withLock { counters in
            var result: [String: [String: Int]] = [:]
            for (key, counter) in counters where counter.value > 0 {
                result[key.model, default: [:]][key.url] = counter.value
            }
            return result
        }
    }

    /// Requests in flight on `model` (every endpoint, current or past).
    public func inFlight(model: String) -> Int {
        counters.withLock { counters in
            counters.reduce(0) { $0 + ($1.key.model == model ? $1.value.value : 0) }
        }
    }

    /// Forgets idle counters of endpoints no longer routed to.
    func prune(keeping models: [String: [String]]) {
        counters.withLock { counters in
            counters = counters.filter { key, counter in
                counter.value > 0 || models[key.model]?.contains(key.url) == true
            }
        }
    }
}
