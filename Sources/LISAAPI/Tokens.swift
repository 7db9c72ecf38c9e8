public import Foundation
import LISAOpenAI

/// What `GET /api-tokens` returns for a token.
public struct APITokenView: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var username: String
    public var groups: [String]
    public var createdBy: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var isSystemToken: Bool
    public var rateLimit: RateLimitConfiguration.Limit?
    /// A budget of this token's own, besides its user's and groups'.
    public var budget: BudgetLimit?

    public init(
        id: String, name: String, username: String, groups: [String], createdBy: String, createdAt: Date, expiresAt: Date?,
        isSystemToken: Bool, rateLimit: RateLimitConfiguration.Limit?, budget: BudgetLimit? = nil
    ) {
        self.budget = budget
        self.id = id
        self.name = name
        self.username = username
        self.groups = groups
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.isSystemToken = isSystemToken
        self.rateLimit = rateLimit
    }
}

/// What a caller asks for when creating a token.
public struct APITokenCreateRequest: Sendable, Codable {
    public var name: String
    /// For admins creating a token for someone else: its groups. Ignored otherwise.
    public var groups: [String]?
    /// Days until expiry (1…3650); default 90.
    public var expiresInDays: Int?
    /// Admin only: a system token (may have `expiresInDays` omitted for no expiry, with `noExpiry: true`).
    public var isSystemToken: Bool?
    public var noExpiry: Bool?
    /// Admin only: a rate limit for this token, overriding the configured ones.
    public var rateLimit: RateLimitConfiguration.Limit?
    /// A budget for this token alone (anyone may limit their own token; it applies on top
    /// of the user's and groups' budgets).
    public var budget: BudgetLimit?

    public init(name: String, groups: [String]? = nil, expiresInDays: Int? = nil) {
        self.name = name
        self.groups = groups
        self.expiresInDays = expiresInDays
    }
}

/// A created token: its record and the secret, shown this once.
public struct APITokenCreated: Sendable, Codable {
    public var token: String
    public var tokenInfo: APITokenView

    public init(token: String, tokenInfo: APITokenView) {
        self.token = token
        self.tokenInfo = tokenInfo
    }
}

/// A rotated key: the new secret (shown once) and until when the old one still works.
public struct AdminKeyRotation: Sendable, Codable {
    public var adminKey: String
    public var previousKeyValidUntil: Date

    public init(adminKey: String, previousKeyValidUntil: Date) {
        self.adminKey = adminKey
        self.previousKeyValidUntil = previousKeyValidUntil
    }
}
