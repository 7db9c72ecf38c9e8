import Foundation
import LISAOpenAI

/// A circuit breaker's thresholds (`circuitBreaker` of a model).
public struct CircuitBreakerConfiguration: Sendable, Hashable, Codable {
    public var failureThreshold: Int = 5
    public var cooldownSeconds: Double = 30

    public init(failureThreshold: Int = 5, cooldownSeconds: Double = 30) {
        self.failureThreshold = failureThreshold
        self.cooldownSeconds = cooldownSeconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        failureThreshold = try c.decodeIfPresent(Int.self, forKey: .failureThreshold) ?? 5
        cooldownSeconds = try c.decodeIfPresent(Double.self, forKey: .cooldownSeconds) ?? 30
    }
}
