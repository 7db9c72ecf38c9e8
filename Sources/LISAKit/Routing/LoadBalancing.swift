import Foundation

/// What the balancer knows of one eligible endpoint at the moment of choice.
package struct EndpointLoad: Sendable, Hashable {
    /// The endpoint's position in its pool.
    package var index: Int
    package var weight: Int
    package var inFlight: Int
    /// Peak-EWMA of time to first byte, in seconds (0 before any observation).
    package var latency: Double

    package init(index: Int, weight: Int = 1, inFlight: Int = 0, latency: Double = 0) {
        self.index = index
        self.weight = weight
        self.inFlight = inFlight
        self.latency = latency
    }
}

/// Pure balancing decisions: given the eligible endpoints' loads, which one to use.
/// Each returns a position in `candidates`, which must not be empty.
package enum LoadBalancer {
    /// The candidate with the fewest requests in flight; ties at random.
    package static func leastOutstanding(_ candidates: [EndpointLoad], using random: inout some RandomNumberGenerator) -> Int {
        precondition(!candidates.isEmpty)
        let least = candidates.map(\.inFlight).min()!
        let tied = candidates.indices.filter { candidates[$0].inFlight == least }
        return tied.randomElement(using: &random)!
    }

    /// Power of two choices over peak-EWMA latency × (in-flight + 1), scaled down by weight.
    package static func powerOfTwoChoices(_ candidates: [EndpointLoad], using random: inout some RandomNumberGenerator) -> Int {
        precondition(!candidates.isEmpty)
        guard candidates.count > 1 else { return 0 }
        let first = Int.random(in: 0..<candidates.count, using: &random)
        var second = Int.random(in: 0..<(candidates.count - 1), using: &random)
        if second >= first { second += 1 }
        return score(candidates[first]) <= score(candidates[second]) ? first : second
    }

    /// The cost P2C compares: latency (with a 1 ms floor so unmeasured endpoints still
    /// compare by load) × (in-flight + 1) / weight.
    package static func score(_ load: EndpointLoad) -> Double {
        max(load.latency, 0.001) * Double(load.inFlight + 1) / Double(max(load.weight, 1))
    }

    /// Consistent hashing with bounded load: walk the ring from the key's hash and take the
    /// first candidate whose in-flight count is under `loadFactor` × its fair share.
    package static func boundedLoadHash(
        key: String, ring: HashRing, candidates: [EndpointLoad], loadFactor: Double = 1.25
    ) -> Int {
        precondition(!candidates.isEmpty)
        let position = Dictionary(uniqueKeysWithValues: candidates.enumerated().map { ($1.index, $0) })
        let totalWeight = candidates.reduce(0) { $0 + max($1.weight, 1) }
        let totalLoad = candidates.reduce(0) { $0 + $1.inFlight } + 1
        var fallback: Int?
        for index in ring.walk(from: HashRing.hash(key)) {
            guard let at = position[index] else { continue }
            let share = Double(totalLoad) * Double(max(candidates[at].weight, 1)) / Double(totalWeight)
            let bound = max(1, Int((share * loadFactor).rounded(.up)))
            if candidates[at].inFlight < bound { return at }
            if fallback == nil { fallback = at }
        }
        return fallback ?? 0
    }
}

/// Smooth weighted round-robin state for one pool (the algorithm nginx uses): every pick
/// adds each candidate's weight to its running score, takes the highest, and subtracts the
/// total from it. Shares follow weights exactly over a cycle and are evenly interleaved.
package struct SmoothWeightedRoundRobin: Sendable {
    private var current: [Int: Int] = [:]

    package init() {}

    /// Picks a candidate; returns its position in `candidates`.
    package mutating func next(_ candidates: [EndpointLoad]) -> Int {
        precondition(!candidates.isEmpty)
        var total = 0
        var best = 0
        var bestScore = Int.min
        for (position, candidate) in candidates.enumerated() {
            let weight = max(candidate.weight, 1)
            total += weight
            let score = current[candidate.index, default: 0] + weight
            current[candidate.index] = score
            if score > bestScore {
                bestScore = score
                best = position
            }
        }
        current[candidates[best].index, default: 0] -= total
        return best
    }
}

/// A consistent-hash ring of endpoint indices, with virtual nodes in proportion to weight.
package struct HashRing: Sendable {
    private let points: [(hash: UInt64, index: Int)]

    /// - Parameters:
    ///   - weights: each endpoint's weight, by pool index.
    ///   - virtualNodes: points per unit of weight.
    package init(weights: [Int], virtualNodes: Int = 40) {
        var points: [(hash: UInt64, index: Int)] = []
        for (index, weight) in weights.enumerated() {
            for replica in 0..<(max(weight, 1) * virtualNodes) {
                points.append((Self.hash("\(index)#\(replica)"), index))
            }
        }
        self.points = points.sorted { $0.hash < $1.hash }
    }

    /// The distinct endpoint indices met walking clockwise from `hash`.
    package func walk(from hash: UInt64) -> [Int] {
        guard !points.isEmpty else { return [] }
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].hash < hash { low = middle + 1 } else { high = middle }
        }
        var seen: [Int] = []
        var position = low
        for _ in 0..<points.count {
            let index = points[position % points.count].index
            if !seen.contains(index) { seen.append(index) }
            position += 1
        }
        return seen
    }

    /// FNV-1a 64-bit, then a 64-bit finalizer: stable across runs and platforms.
    package static func hash(_ key: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            value ^= UInt64(byte)
            value &*= 0x100_0000_01b3
        }
        value ^= value >> 33
        value &*= 0xff51_afd7_ed55_8ccd
        value ^= value >> 33
        value &*= 0xc4ce_b9fe_1a85_ec53
        value ^= value >> 33
        return value
    }
}

/// Peak-EWMA of a latency: jumps up at once to a slower observation, decays towards faster
/// ones with time constant `decay`. Cheap to update; robust to a replica that turns slow.
package struct PeakEWMA: Sendable, Hashable {
    package private(set) var value: Double = 0
    private var lastUpdate: Double?
    package let decay: Double

    /// - Parameter decay: the time constant in seconds (default 10).
    package init(decay: Double = 10) {
        self.decay = decay
    }

    /// The cost as the balancer reads it at `now`: the estimate decays toward zero with the
    /// time since the last observation, so an endpoint that one slow answer pushed away is
    /// tried again once the estimate is old, instead of being starved by its own history.
    package func cost(at now: Double) -> Double {
        guard let lastUpdate else { return value }
        return value * exp(-max(now - lastUpdate, 0) / decay)
    }

    /// Replaces the estimate with `seconds`: for a sample taken after the estimate went
    /// stale (the endpoint was not observed while its peers were, many times over).
    package mutating func reset(_ seconds: Double, at now: Double) {
        value = seconds
        lastUpdate = now
    }

    /// Records an observation of `seconds` taken at time `now` (seconds, any monotonic origin).
    package mutating func observe(_ seconds: Double, at now: Double) {
        defer { lastUpdate = now }
        guard let lastUpdate, value > 0 else {
            value = seconds
            return
        }
        if seconds > value {
            value = seconds
        } else {
            let weight = exp(-max(now - lastUpdate, 0) / decay)
            value = value * weight + seconds * (1 - weight)
        }
    }
}
