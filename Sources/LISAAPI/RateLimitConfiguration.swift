import Foundation
import LISAOpenAI

/// Request-rate limits per principal (`rateLimits:` in the configuration file). The admin key
/// is not limited. Defaults follow LISA: 60 requests a minute with bursts of 10.
public struct RateLimitConfiguration: Sendable, Hashable, Codable {
    /// One limit.
    public struct Limit: Sendable, Hashable, Codable {
        public var requestsPerMinute: Double
        public var burst: Int

        public init(requestsPerMinute: Double, burst: Int) {
            self.requestsPerMinute = requestsPerMinute
            self.burst = burst
        }
    }

    public var enabled: Bool = true
    /// The limit of principals no group override applies to.
    public var `default` = Limit(requestsPerMinute: 60, burst: 10)
    /// Per-group limits; a principal in several groups gets the most generous. A limit set on
    /// an API token itself wins over both.
    public var groups: [String: Limit] = [:]

    public init(enabled: Bool = true, default limit: Limit = Limit(requestsPerMinute: 60, burst: 10), groups: [String: Limit] = [:]) {
        self.enabled = enabled
        self.default = limit
        self.groups = groups
    }

    enum CodingKeys: String, CodingKey { case enabled, `default`, groups }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        `default` = try c.decodeIfPresent(Limit.self, forKey: .default) ?? Limit(requestsPerMinute: 60, burst: 10)
        groups = try c.decodeIfPresent([String: Limit].self, forKey: .groups) ?? [:]
    }

    /// The limit that applies to `principal`, or `nil` for none.
    public func limit(for principal: Principal) -> Limit? {
        guard enabled, principal.method != .adminKey else { return nil }
        if let own = principal.rateLimit { return own }
        let candidates = principal.groups.compactMap { groups[$0] }
        return candidates.max { $0.requestsPerMinute < $1.requestsPerMinute } ?? `default`
    }
}
