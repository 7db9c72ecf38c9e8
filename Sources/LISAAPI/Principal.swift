public import Foundation
import LISAOpenAI

/// Who is making a request, and how they proved it.
public struct Principal: Sendable, Hashable, Codable {
    /// How the principal authenticated.
    public enum Method: String, Sendable, Hashable, Codable {
        case adminKey, apiToken, oidc, clientCertificate
    }

    public var username: String
    public var groups: [String]
    public var method: Method
    /// The API token's id, for `apiToken` principals.
    public var tokenID: String?
    /// A rate limit set on the token itself, overriding the configured ones.
    public var rateLimit: RateLimitConfiguration.Limit?
    /// A budget set on the API token itself.
    public var budget: BudgetLimit?
    /// When the credential that signed this principal in stops being valid (an API token's
    /// expiry, an OIDC token's `exp`); `nil` when it does not expire. Tokens a principal
    /// mints for itself expire no later.
    public var credentialExpiresAt: Date?

    public init(
        username: String, groups: [String], method: Method, tokenID: String? = nil, rateLimit: RateLimitConfiguration.Limit? = nil,
        credentialExpiresAt: Date? = nil, budget: BudgetLimit? = nil
    ) {
        self.budget = budget
        self.username = username
        self.groups = groups
        self.method = method
        self.tokenID = tokenID
        self.rateLimit = rateLimit
        self.credentialExpiresAt = credentialExpiresAt
    }

    /// Usernames with this prefix belong to LISA itself; no token, identity provider or
    /// certificate can sign in as one, so nothing they own can be shared by accident.
    public static let reservedPrefix = "lisa:"

    /// The principal of a request that presented the admin key. Its name is reserved, so a
    /// user called `admin` does not share the admin key's sessions and templates.
    public static let admin = Principal(username: "lisa:admin", groups: [], method: .adminKey)

    /// Whether `username` is one no outside credential may carry.
    public static func isReserved(_ username: String) -> Bool {
        username.lowercased().hasPrefix(reservedPrefix)
    }
}

/// Group names that grant roles, with LISA's configuration names (`auth:` in the file).
public struct AccessConfiguration: Sendable, Hashable, Codable {
    /// Members administer LISA (models, everyone's tokens, configuration).
    public var adminGroup: String?
    /// When set, only members (and admins) may call inference.
    public var userGroup: String?
    /// Members may create API tokens for themselves.
    public var apiGroup: String?
    /// Members may manage RAG repositories and collections.
    public var ragAdminGroup: String?

    public init(adminGroup: String? = nil, userGroup: String? = nil, apiGroup: String? = nil, ragAdminGroup: String? = nil) {
        self.adminGroup = adminGroup
        self.userGroup = userGroup
        self.apiGroup = apiGroup
        self.ragAdminGroup = ragAdminGroup
    }

    /// Whether `principal` is an administrator: the admin key, or a member of `adminGroup`.
    public func isAdmin(_ principal: Principal) -> Bool {
        principal.method == .adminKey || adminGroup.map(principal.groups.contains) == true
    }

    /// Whether `principal` may call inference at all.
    public func mayCallInference(_ principal: Principal) -> Bool {
        guard let userGroup else { return true }
        return isAdmin(principal) || principal.groups.contains(userGroup)
    }

    /// Whether `principal` may create API tokens for themselves.
    public func mayCreateOwnTokens(_ principal: Principal) -> Bool {
        isAdmin(principal) || apiGroup.map(principal.groups.contains) == true
    }

    /// Whether `principal` may use a model: admins always; others when the model has no
    /// `allowedGroups` or they share one.
    public func mayUse(_ model: ModelDefinition, _ principal: Principal) -> Bool {
        isAdmin(principal) || model.allowedGroups.isEmpty || !Set(model.allowedGroups).isDisjoint(with: principal.groups)
    }
}

/// What a caller is and may do (`GET /whoami`): how clients such as LISA Chat decide what
/// to show. The server still checks every request; this only describes.
public struct CallerIdentity: Sendable, Hashable, Codable {
    public var username: String
    public var groups: [String]
    public var method: Principal.Method
    /// Manages models, everyone's tokens, the admin key.
    public var isAdmin: Bool
    /// Manages RAG repositories' collections.
    public var isRagAdmin: Bool
    /// May call inference at all (`auth.userGroup`).
    public var mayCallInference: Bool
    /// May create API tokens for themselves (`auth.apiGroup`).
    public var mayCreateTokens: Bool

    public init(_ principal: Principal, access: AccessConfiguration) {
        username = principal.username
        groups = principal.groups
        method = principal.method
        isAdmin = access.isAdmin(principal)
        isRagAdmin = access.isRAGAdmin(principal)
        mayCallInference = access.mayCallInference(principal)
        mayCreateTokens = access.mayCreateOwnTokens(principal)
    }
}

extension AccessConfiguration {
    /// Whether `principal` may manage RAG repositories and collections.
    public func isRAGAdmin(_ principal: Principal) -> Bool {
        isAdmin(principal) || ragAdminGroup.map(principal.groups.contains) == true
    }

    /// Whether `principal` may search a repository and add documents to it.
    public func mayUse(_ repository: RAGRepository, _ principal: Principal) -> Bool {
        isRAGAdmin(principal)
            || (mayCallInference(principal)
                && (repository.allowedGroups.isEmpty || !Set(repository.allowedGroups).isDisjoint(with: principal.groups)))
    }
}
