import Crypto
public import Foundation

/// An API token as stored: everything but the secret, which only exists as its hash.
public struct APIToken: Sendable, Hashable, Codable {
    /// A public identifier (`tok_…`), safe to show and log.
    public var id: String
    public var name: String
    /// Whose token it is; requests made with it act as this user.
    public var username: String
    public var groups: [String]
    public var createdBy: String
    public var createdAt: Date
    /// `nil`: never expires (system tokens only).
    public var expiresAt: Date?
    /// A token for a service rather than a person (may have no expiry).
    public var isSystemToken: Bool
    /// Hex SHA-256 of the secret.
    public var tokenHash: String
    /// A rate limit for this token only (administrators set it), overriding the configured ones.
    public var rateLimit: RateLimitConfiguration.Limit?
    /// A budget of this token's own.
    public var budget: BudgetLimit?

    public init(
        id: String, name: String, username: String, groups: [String], createdBy: String, createdAt: Date, expiresAt: Date?,
        isSystemToken: Bool, tokenHash: String, rateLimit: RateLimitConfiguration.Limit? = nil,
        budget: BudgetLimit? = nil
    ) {
        self.budget = budget
        self.rateLimit = rateLimit
        self.id = id
        self.name = name
        self.username = username
        self.groups = groups
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.isSystemToken = isSystemToken
        self.tokenHash = tokenHash
    }

    /// Whether the token is past its expiry at `now`.
    public func isExpired(at now: Date = Date()) -> Bool {
        expiresAt.map { now >= $0 } ?? false
    }

    /// The token without its hash, as the API shows it.
    public var view: View {
        View(
            id: id, name: name, username: username, groups: groups, createdBy: createdBy, createdAt: createdAt, expiresAt: expiresAt,
            isSystemToken: isSystemToken, rateLimit: rateLimit, budget: budget
        )
    }

    /// What `GET /api-tokens` returns for a token (``APITokenView``).
    public typealias View = APITokenView

    /// The prefix every token secret starts with, so leaked tokens are recognisable.
    public static let secretPrefix = "lisa_"

    /// A new secret: `lisa_` and 256 random bits in base64url.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return secretPrefix + Data(bytes).base64URLEncodedString()
    }

    /// A new public id.
    public static func generateID() -> String {
        var generator = SystemRandomNumberGenerator()
        return "tok_" + (0..<12).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// The stored form of a secret.
    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
