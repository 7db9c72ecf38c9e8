import Foundation
import LISAOpenAI

/// How a model's requests are spread over its endpoints.
public enum LoadBalancingPolicy: String, Sendable, Codable, CaseIterable {
    public init(from decoder: any Decoder) throws { self = try Self.decodeChoice(from: decoder) }

    /// Each endpoint in turn, ignoring weights.
    case roundRobin
    /// Smooth weighted round-robin (nginx's algorithm): shares follow weights, evenly interleaved.
    case weightedRoundRobin
    /// The endpoint with the fewest requests in flight (ties broken at random).
    case leastOutstanding
    /// Two endpoints at random, the one with the lower peak-EWMA latency × (in-flight + 1). The default.
    case powerOfTwoChoices
    /// Consistent hashing of a session key with bounded load: a conversation stays on the
    /// replica that holds its KV cache unless that replica is over its share of the load.
    case sessionAffinity
}
