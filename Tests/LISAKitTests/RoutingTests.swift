import Foundation
import Testing

@testable import LISAKit

/// A deterministic generator (SplitMix64) so distribution tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Balancers")
struct BalancerTests {
    @Test("smooth weighted round-robin gives exact shares, evenly interleaved")
    func smoothWeighted() {
        var balancer = SmoothWeightedRoundRobin()
        let candidates = [EndpointLoad(index: 0, weight: 5), EndpointLoad(index: 1, weight: 1), EndpointLoad(index: 2, weight: 1)]
        let picks = (0..<7).map { _ in candidates[balancer.next(candidates)].index }
        // nginx's documented sequence for weights 5, 1, 1.
        #expect(picks == [0, 0, 1, 0, 2, 0, 0])
        var counts = [0, 0, 0]
        for _ in 0..<700 { counts[candidates[balancer.next(candidates)].index] += 1 }
        #expect(counts == [500, 100, 100])
    }

    @Test("least outstanding always takes the least loaded, spreading ties")
    func leastOutstanding() {
        var random = SeededGenerator(state: 1)
        let loads = [EndpointLoad(index: 0, inFlight: 4), EndpointLoad(index: 1, inFlight: 1), EndpointLoad(index: 2, inFlight: 1)]
        var counts = [0, 0, 0]
        for _ in 0..<1000 { counts[LoadBalancer.leastOutstanding(loads, using: &random)] += 1 }
        #expect(counts[0] == 0)
        #expect(counts[1] > 400 && counts[2] > 400)
    }

    @Test("power of two choices avoids the slow and the busy replica")
    func powerOfTwo() {
        var random = SeededGenerator(state: 7)
        let loads = [
            EndpointLoad(index: 0, inFlight: 0, latency: 0.050),
            EndpointLoad(index: 1, inFlight: 0, latency: 0.050),
            EndpointLoad(index: 2, inFlight: 0, latency: 0.500),  // ten times slower
            EndpointLoad(index: 3, inFlight: 20, latency: 0.050),  // overloaded
        ]
        var counts = [0, 0, 0, 0]
        for _ in 0..<4000 { counts[LoadBalancer.powerOfTwoChoices(loads, using: &random)] += 1 }
        // A bad replica is only chosen when both random picks are bad: 1/6 of pairs are {2,3}.
        #expect(counts[0] > 1500 && counts[1] > 1500)
        #expect(counts[2] + counts[3] < 800)
        #expect(counts[2] > counts[3] || counts[3] == 0, "with both bad, the lower score wins")
        #expect(LoadBalancer.powerOfTwoChoices([EndpointLoad(index: 9)], using: &random) == 0)
    }

    @Test("peak EWMA jumps to a slow sample and decays back over time")
    func peakEWMA() {
        var ewma = PeakEWMA(decay: 10)
        ewma.observe(0.1, at: 0)
        ewma.observe(1.0, at: 1)
        #expect(ewma.value == 1.0)
        ewma.observe(0.1, at: 11)
        #expect(ewma.value < 0.5 && ewma.value > 0.1)
        for second in 12...100 { ewma.observe(0.1, at: Double(second)) }
        #expect(abs(ewma.value - 0.1) < 0.001)
    }

    /// Sequential requests, 10 ms apart, through a P2C pool of three replicas; `latency`
    /// gives each answer's time to first byte. Returns how many requests each replica got.
    static func sequential(_ count: Int, latency: (Int, Int) -> Double, pool: EndpointPool, from start: Double = 0) -> [Int] {
        var counts = Array(repeating: 0, count: pool.endpoints.count)
        for request in 0..<count {
            let now = start + Double(request) * 0.01
            guard let endpoint = pool.choose(affinityKey: nil, at: now) else { continue }
            counts[endpoint.index] += 1
            endpoint.record(.success(firstByte: latency(endpoint.index, counts[endpoint.index])), at: now)
        }
        return counts
    }

    static func threeReplicas() -> EndpointPool {
        let definition = ModelDefinition(
            modelId: "m", modelName: "m",
            endpoints: ["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"].map { EndpointDefinition(url: $0) }
        )
        return EndpointPool(definition: definition, defaultPolicy: .powerOfTwoChoices)
    }

    @Test("a replica slow for its first answers (a cold connection) gets its share back: P2C never starves it")
    func slowStartRecovers() {
        let pool = Self.threeReplicas()
        // Replica 0 answers its first five requests in 200 ms (cold), then in 5 ms like the others.
        let warmup = Self.sequential(60, latency: { index, nth in index == 0 && nth <= 5 ? 0.2 : 0.005 }, pool: pool)
        #expect(warmup.reduce(0, +) == 60)
        // Stated bound: within 60 requests it is probed again (every 8 × 3 picks at most),
        // its estimate is replaced by the fast sample, and over the next 300 requests it
        // gets at least a fifth of the traffic (a fair share is a third).
        let after = Self.sequential(300, latency: { _, _ in 0.005 }, pool: pool, from: 0.6)
        #expect(after[0] >= 60, "replica 0 got \(after[0]) of 300 after its slow start (\(after))")
    }

    @Test("identical replicas share sequential traffic within a stated bound")
    func identicalReplicasShare() {
        let pool = Self.threeReplicas()
        let counts = Self.sequential(3000, latency: { _, _ in 0.005 }, pool: pool)
        // A third is 1000; P2C on equal costs picks at random, and the stale probe caps how
        // long any one replica can go unpicked.
        #expect(counts.allSatisfy { (800...1200).contains($0) }, "\(counts)")
    }

    @Test("an estimate nobody refreshes decays when read")
    func costDecaysWhenRead() {
        var ewma = PeakEWMA(decay: 10)
        ewma.observe(1.0, at: 0)
        #expect(ewma.cost(at: 0) == 1.0)
        #expect(abs(ewma.cost(at: 10) - exp(-1)) < 1e-9)
        #expect(ewma.cost(at: 100) < 0.001)
        #expect(ewma.value == 1.0, "reading does not change the estimate")
    }

    @Test("session affinity keeps a key on one replica and spreads keys by weight")
    func sessionAffinity() {
        let ring = HashRing(weights: [1, 1, 2])
        let idle = [EndpointLoad(index: 0, weight: 1), EndpointLoad(index: 1, weight: 1), EndpointLoad(index: 2, weight: 2)]
        var counts = [0, 0, 0]
        for session in 0..<4000 {
            let key = "session-\(session)"
            let first = LoadBalancer.boundedLoadHash(key: key, ring: ring, candidates: idle)
            #expect(LoadBalancer.boundedLoadHash(key: key, ring: ring, candidates: idle) == first, "sticky")
            counts[idle[first].index] += 1
        }
        #expect(counts[2] > 1600 && counts[2] < 2400, "weight 2 gets about half: \(counts)")
        #expect(counts[0] > 700 && counts[1] > 700)

        // Removing a replica moves only its own sessions.
        let without1 = [idle[0], idle[2]]
        var moved = 0
        for session in 0..<1000 {
            let key = "session-\(session)"
            let before = idle[LoadBalancer.boundedLoadHash(key: key, ring: ring, candidates: idle)].index
            let after = without1[LoadBalancer.boundedLoadHash(key: key, ring: ring, candidates: without1)].index
            if before != 1 && before != after { moved += 1 }
        }
        #expect(moved == 0)
    }

    @Test("bounded load: a hot session's replica over its share sends the key elsewhere")
    func boundedLoad() {
        let ring = HashRing(weights: [1, 1, 1])
        let idle = (0..<3).map { EndpointLoad(index: $0) }
        let home = LoadBalancer.boundedLoadHash(key: "hot", ring: ring, candidates: idle)
        var loaded = idle
        loaded[home].inFlight = 10  // far above 1.25 × its share of 11
        let elsewhere = LoadBalancer.boundedLoadHash(key: "hot", ring: ring, candidates: loaded)
        #expect(elsewhere != home)
    }

    @Test("pools route only to eligible endpoints: circuit open, at maxInFlight, or excluded")
    func poolEligibility() {
        var definition = ModelDefinition(modelId: "m", modelName: "m")
        definition.endpoints = [.init(url: "http://a:1/v1", maxInFlight: 1), .init(url: "http://b:1/v1"), .init(url: "http://c:1/v1")]
        definition.circuitBreaker = .init(failureThreshold: 2, cooldownSeconds: 30)
        definition.loadBalancing = .roundRobin
        let pool = EndpointPool(definition: definition, defaultPolicy: .powerOfTwoChoices)
        let (a, b, c) = (pool.endpoints[0], pool.endpoints[1], pool.endpoints[2])
        a.begin()  // a is at its cap
        b.record(.failure(elapsed: 0), at: 100)
        b.record(.failure(elapsed: 0), at: 100)  // b's circuit opens until 130
        for _ in 0..<10 {
            #expect(pool.choose(affinityKey: nil, at: 101) === c)
        }
        #expect(pool.choose(affinityKey: nil, excluding: [2], at: 101) == nil, "nothing left: fail fast")
        a.end()
        #expect(pool.choose(affinityKey: nil, excluding: [2], at: 101) === a)
        // After the cooldown one trial goes to b; a second caller does not get b.
        #expect(pool.choose(affinityKey: nil, excluding: [0, 2], at: 131) === b)
        #expect(pool.choose(affinityKey: nil, excluding: [0, 2], at: 131) == nil)
        b.record(.success(firstByte: 0.01), at: 131)
        #expect(pool.choose(affinityKey: nil, excluding: [0, 2], at: 132) === b)
    }

    @Test("an endpoint with no measurement costs its measured peers' mean, so it does not take every request")
    func unmeasuredEndpoint() {
        var definition = ModelDefinition(modelId: "m", modelName: "m")
        definition.endpoints = [.init(url: "http://a:1/v1"), .init(url: "http://b:1/v1"), .init(url: "http://c:1/v1")]
        let pool = EndpointPool(definition: definition, defaultPolicy: .powerOfTwoChoices)
        pool.endpoints[0].record(.success(firstByte: 0.05), at: 1)
        pool.endpoints[1].record(.success(firstByte: 0.05), at: 1)
        var counts = [0, 0, 0]
        for _ in 0..<300 {
            let endpoint = pool.choose(affinityKey: nil, at: 1)!
            counts[endpoint.index] += 1
        }
        // With the old 1 ms floor c won every comparison it was in: about 2/3 of all picks.
        #expect(counts[2] < 150, "\(counts)")
        #expect(counts.allSatisfy { $0 > 50 }, "\(counts)")
    }

    @Test("failures and abandoned waits raise the latency estimate; a failing endpoint loses P2C comparisons")
    func failuresCostLatency() {
        var definition = ModelDefinition(modelId: "m", modelName: "m")
        definition.endpoints = [.init(url: "http://a:1/v1"), .init(url: "http://b:1/v1")]
        definition.circuitBreaker = .init(failureThreshold: 100, cooldownSeconds: 30)
        let pool = EndpointPool(definition: definition, defaultPolicy: .powerOfTwoChoices)
        let (a, b) = (pool.endpoints[0], pool.endpoints[1])
        a.record(.success(firstByte: 0.05), at: 1)
        b.record(.success(firstByte: 0.05), at: 1)
        b.record(.failure(elapsed: 0.001), at: 1)  // refused at once: still costs the penalty
        #expect(b.status.ewmaLatencyMilliseconds >= Endpoint.failurePenalty * 1000)
        var picks = [0, 0]
        for _ in 0..<10 { picks[pool.choose(affinityKey: nil, at: 1.1)!.index] += 1 }
        #expect(picks == [10, 0])
        a.record(.abandoned(elapsed: 30), at: 2)  // a client gave up after 30 s of silence
        #expect(a.status.ewmaLatencyMilliseconds >= 30_000)
    }

    @Test("round-robin and weighted round-robin pools spread requests by weight")
    func poolDistribution() {
        for policy in [LoadBalancingPolicy.roundRobin, .weightedRoundRobin, .leastOutstanding, .powerOfTwoChoices] {
            var definition = ModelDefinition(modelId: "m", modelName: "m")
            definition.endpoints = [.init(url: "http://a:1/v1", weight: 3), .init(url: "http://b:1/v1", weight: 1)]
            definition.loadBalancing = policy
            let pool = EndpointPool(definition: definition, defaultPolicy: .roundRobin)
            var counts = [0, 0]
            for _ in 0..<400 { counts[pool.choose(affinityKey: nil, at: 1)!.index] += 1 }
            switch policy {
            case .roundRobin, .leastOutstanding: #expect(counts[0] > 150 && counts[1] > 150, "\(policy): \(counts)")
            case .weightedRoundRobin: #expect(counts == [300, 100])
            case .powerOfTwoChoices: #expect(counts[0] > counts[1], "weight counts in the score: \(counts)")
            case .sessionAffinity: break
            }
        }
    }
}

@Suite("Circuit breaker, retry budget, probes")
struct ResilienceStateTests {
    @Test("the circuit opens after consecutive failures, half-opens after the cooldown, and closes on success")
    func circuit() {
        var breaker = CircuitBreaker(configuration: .init(failureThreshold: 3, cooldownSeconds: 10))
        breaker.recordFailure(at: 0)
        breaker.recordFailure(at: 0)
        breaker.recordSuccess()  // a success resets the count
        breaker.recordFailure(at: 1)
        breaker.recordFailure(at: 1)
        #expect(breaker.isAvailable(at: 1))
        breaker.recordFailure(at: 1)
        #expect(breaker.state == .open(until: 11))
        #expect(!breaker.isAvailable(at: 5))
        var acquired = breaker.acquire(at: 5)
        #expect(!acquired)
        acquired = breaker.acquire(at: 11)
        #expect(acquired, "one trial after the cooldown")
        acquired = breaker.acquire(at: 11)
        #expect(!acquired, "only one")
        breaker.recordFailure(at: 12)
        #expect(breaker.state == .open(until: 22), "a failed trial re-opens")
        acquired = breaker.acquire(at: 22)
        #expect(acquired)
        breaker.recordAbandoned()
        acquired = breaker.acquire(at: 22)
        #expect(acquired, "an abandoned trial frees the slot")
        breaker.recordSuccess()
        #expect(breaker.state == .closed(consecutiveFailures: 0))
    }

    @Test("the retry budget allows a share of requests plus a small floor, and refills with time")
    func retryBudget() {
        var budget = RetryBudget(ratio: 0.2, minPerSecond: 1)
        for _ in 0..<100 { budget.recordRequest(at: 0) }
        var allowed = 0
        while budget.tryRetry(at: 0.5) { allowed += 1 }
        #expect(allowed == 30, "10 s × 1/s floor + 20 % of 100")
        var retried = budget.tryRetry(at: 5)
        #expect(!retried)
        retried = budget.tryRetry(at: 10.5)
        #expect(retried, "the window has moved on")
    }

    @Test("probe health needs consecutive results to change")
    func probeHealth() {
        var health = ProbeHealth(healthyThreshold: 2, unhealthyThreshold: 3)
        health.record(success: false)
        health.record(success: false)
        health.record(success: true)
        health.record(success: false)
        #expect(health.isHealthy)
        health.record(success: false)
        var changed = health.record(success: false)
        #expect(changed)
        #expect(!health.isHealthy)
        health.record(success: true)
        #expect(!health.isHealthy)
        changed = health.record(success: true)
        #expect(changed)
        #expect(health.isHealthy)
    }

    @Test("probe health is unknown until the endpoint answers (a probe or a request) or probes find it unhealthy")
    func probeHealthStartsUnknown() {
        var dead = ProbeHealth(healthyThreshold: 2, unhealthyThreshold: 3)
        #expect(dead.isHealthy && dead.name == "unknown", "routable, but not reported healthy")
        dead.record(success: false)
        dead.record(success: false)
        #expect(dead.isHealthy && dead.name == "unknown", "failed probes are not answers: still routable, never reported healthy")
        let changed = dead.record(success: false)
        #expect(changed)
        #expect(!dead.isHealthy && dead.name == "unhealthy")
        var live = ProbeHealth()
        live.record(success: true)
        #expect(live.name == "healthy", "one answer is enough to know")
        var answered = ProbeHealth()
        answered.recordAnswer()
        #expect(answered.name == "healthy")
        let definition = ModelDefinition(modelId: "m", modelName: "m", modelUrl: "http://127.0.0.1:9/v1")
        let status = EndpointPool(definition: definition, defaultPolicy: .roundRobin).endpoints[0].status
        #expect(status.health == "unknown")
        #expect(ModelManager.ModelRecord.health(of: [status]) == "unknown")
    }

    @Test("a token bucket allows its burst, then refills at its rate")
    func tokenBucket() {
        var bucket = TokenBucket(perMinute: 60, burst: 3, now: 0)
        #expect((0..<3).map { _ in bucket.take(at: 0) } == [0, 0, 0])
        #expect(bucket.take(at: 0) == 1, "one token a second")
        #expect(bucket.take(at: 0.5) == 0.5)
        #expect(bucket.take(at: 1.0) == 0)
        #expect(bucket.take(at: 100) == 0, "refills up to the burst only")
        #expect(bucket.take(at: 100) == 0 && bucket.take(at: 100) == 0 && bucket.take(at: 100) > 0)
    }

    @Test("full-jitter backoff stays under its cap")
    func backoff() {
        var random = SeededGenerator(state: 3)
        let retry = RetryConfiguration()
        for attempt in 1...8 {
            let cap = min(1000.0, 25 * pow(2, Double(attempt - 1)))
            for _ in 0..<50 {
                #expect(retry.backoff(beforeRetry: attempt, using: &random) <= .milliseconds(Int64(cap)))
            }
        }
    }
}
