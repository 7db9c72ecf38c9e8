import Foundation
import LISAOpenAI

/// An endpoint's routing state, as `GET /models/{id}` shows it.
public struct EndpointStatus: Sendable, Hashable, Codable {
    public var url: String
    public var weight: Int
    /// Active-probe health (always `true` without probes, and while ``health`` is `unknown`).
    public var healthy: Bool
    /// `unknown` until a probe or a request has answered, then `healthy` or `unhealthy`
    /// (`nil` from servers that predate it).
    public var health: String?
    /// `closed`, `open` or `half_open`.
    public var circuit: String
    public var inFlight: Int
    public var ewmaLatencyMilliseconds: Double

    public init(
        url: String, weight: Int, healthy: Bool, circuit: String, inFlight: Int, ewmaLatencyMilliseconds: Double, health: String? = nil
    ) {
        self.url = url
        self.weight = weight
        self.healthy = healthy
        self.health = health
        self.circuit = circuit
        self.inFlight = inFlight
        self.ewmaLatencyMilliseconds = ewmaLatencyMilliseconds
    }
}
