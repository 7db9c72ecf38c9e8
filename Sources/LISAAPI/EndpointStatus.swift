import Foundation
import LISAOpenAI

/// An endpoint's routing state, as `GET /models/{id}` shows it.
public struct EndpointStatus: Sendable, Hashable, Codable {
    public var url: String
    public var weight: Int
    /// Active-probe health (always `true` without probes).
    public var healthy: Bool
    /// `closed`, `open` or `half_open`.
    public var circuit: String
    public var inFlight: Int
    public var ewmaLatencyMilliseconds: Double

    public init(url: String, weight: Int, healthy: Bool, circuit: String, inFlight: Int, ewmaLatencyMilliseconds: Double) {
        self.url = url
        self.weight = weight
        self.healthy = healthy
        self.circuit = circuit
        self.inFlight = inFlight
        self.ewmaLatencyMilliseconds = ewmaLatencyMilliseconds
    }
}

