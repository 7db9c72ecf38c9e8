public import Foundation
public import Logging
public import Tracing

/// Turns the credential a request presents into a ``Principal``: the admin key, an API token,
/// or an OIDC JWT (with an ``OIDCVerifier``).
///
/// API tokens are looked up by the hash of the secret and kept briefly in a ``TokenCache``
/// that revocation clears on every replica, so a revoked token stops working at once and a
/// state store outage does not stop inference.
public struct Authenticator: Sendable {
    public let adminKeys: AdminKeyring
    /// Where API tokens are looked up.
    public let tokens: TokenStore
    public let access: AccessConfiguration
    /// Verifies OIDC JWTs when an issuer is configured.
    public let oidc: OIDCVerifier?
    /// Tokens verified recently (give ``APITokenService`` the same one).
    public let tokenCache: TokenCache
    /// Makes an `authenticate` span per call when set (``LISARuntime`` sets its tracer).
    public var tracer: (any Tracer)?

    public init(
        adminKeys: AdminKeyring, tokens: TokenStore, access: AccessConfiguration = AccessConfiguration(), oidc: OIDCVerifier? = nil,
        tokenCache: TokenCache? = nil
    ) {
        self.adminKeys = adminKeys
        self.tokens = tokens
        self.access = access
        self.oidc = oidc
        self.tokenCache = tokenCache ?? TokenCache(following: tokens)
    }

    /// An authenticator with one fixed admin key.
    public init(adminKey: AdminKeyVerifier, tokens: TokenStore, access: AccessConfiguration = AccessConfiguration()) {
        self.init(adminKeys: AdminKeyring(current: adminKey, isConfigured: true), tokens: tokens, access: access)
    }

    /// The principal for `presented`, or a 401 that does not say which part was wrong.
    public func authenticate(_ presented: String?) async throws(LISAError) -> Principal {
        guard tracer != nil else { return try await verify(presented) }
        return try await Traces.within(tracer, "authenticate") { span throws(LISAError) in
            let principal = try await verify(presented)
            span?.attributes["lisa.auth.method"] = principal.method.rawValue
            span?.attributes["user.id"] = principal.username
            return principal
        }
    }

    private func verify(_ presented: String?) async throws(LISAError) -> Principal {
        guard let presented else {
            throw .unauthorized("Missing credentials: send 'Authorization: Bearer <key>' or 'Api-Key: <key>'.")
        }
        if adminKeys.verify(presented) {
            return .admin
        }
        if presented.hasPrefix(APIToken.secretPrefix) {
            if let token = try await apiToken(hash: APIToken.hash(presented)) {
                guard !token.isExpired() else {
                    throw .unauthorized("The API token has expired.")
                }
                return Principal(
                    username: token.username, groups: token.groups, method: .apiToken, tokenID: token.id, rateLimit: token.rateLimit,
                    credentialExpiresAt: token.expiresAt, budget: token.budget
                )
            }
        }
        if let oidc, presented.hasPrefix("eyJ"), presented.split(separator: ".", omittingEmptySubsequences: false).count == 3 {
            return try await oidc.verify(presented)
        }
        throw .unauthorized("Invalid API key.")
    }

    /// The stored token with this hash: from the cache while fresh, else from the store —
    /// or, when the store cannot answer, from the cache within its outage grace.
    private func apiToken(hash: String) async throws(LISAError) -> APIToken? {
        let (cached, generation) = tokenCache.lookup(hash: hash)
        var fallback: APIToken?
        switch cached {
        case .fresh(let token): return token
        case .stale(let token):
            // While the store is known to be down, a stale token is used at once.
            if tokenCache.storeRecentlyFailed() { return token }
            fallback = token
        case .missing: break
        }
        let tokens = self.tokens
        do {
            // With a token to fall back on, the store gets a second, not its full deadline.
            let read: @Sendable () async throws -> APIToken? = { try await tokens.token(hash: hash) }
            let found =
                fallback == nil
                ? try await read()
                : try await withDeadline(.seconds(1), timedOut: { LISAError.stateStoreUnavailable("token lookup") }, operation: read)
            guard let token = found else {
                tokenCache.remove(hash: hash)
                return nil
            }
            tokenCache.insert(token, hash: hash, generation: generation)
            return token
        } catch {
            tokenCache.storeFailed()
            if let fallback { return fallback }
            if let error = error as? LISAError, error.code == .upstreamUnavailable { throw error }
            throw .internalError()
        }
    }
}

/// Issues, lists and revokes API tokens, enforcing who may do what.
public struct APITokenService: Sendable {
    /// Where the tokens are kept.
    public let tokens: TokenStore
    public let access: AccessConfiguration
    /// Lifetime of tokens created without `expiresInDays`. Default 90 days.
    public var defaultLifetime: TimeInterval = 90 * 24 * 3600
    /// How long and how many tokens users may hold.
    public var policy: APITokenPolicy
    private let logger: Logger

    /// Cleared of a token when it is revoked (the ``Authenticator``'s).
    public let tokenCache: TokenCache?

    public init(
        tokens: TokenStore, access: AccessConfiguration, policy: APITokenPolicy = APITokenPolicy(), tokenCache: TokenCache? = nil,
        logger: Logger
    ) {
        self.tokens = tokens
        self.access = access
        self.policy = policy
        self.tokenCache = tokenCache
        self.logger = logger
    }

    /// What a caller asks for when creating a token (``APITokenCreateRequest``).
    public typealias CreateRequest = APITokenCreateRequest
    /// A created token and its secret (``APITokenCreated``).
    public typealias Created = APITokenCreated

    /// Creates a token for `username` (the caller's own when `nil`).
    public func create(_ request: CreateRequest, for username: String?, by caller: Principal) async throws -> Created {
        let isAdmin = access.isAdmin(caller)
        let owner = username ?? caller.username
        if username != nil || request.isSystemToken == true || request.rateLimit != nil {
            guard isAdmin else {
                throw LISAError.forbidden("Only administrators may create tokens for other users, system tokens or tokens with their own rate limit.")
            }
        } else {
            guard access.mayCreateOwnTokens(caller) else {
                throw LISAError.forbidden("Creating API tokens needs membership of the API group.")
            }
        }
        let name = request.name.trimmingCharacters(in: .whitespaces)
        guard (1...128).contains(name.count) else { throw LISAError.invalidRequest("name must be 1-128 characters.", param: "name") }
        guard !owner.isEmpty, owner.count <= 256 else { throw LISAError.invalidRequest("username must be 1-256 characters.", param: "username") }
        guard username == nil || !Principal.isReserved(owner) else {
            throw LISAError.invalidRequest("Usernames starting with '\(Principal.reservedPrefix)' are reserved for LISA itself.", param: "username")
        }
        var expiresAt: Date?
        if let limit = request.rateLimit, !(0.001...1_000_000_000).contains(limit.requestsPerMinute) || !(1...1_000_000_000).contains(limit.burst) {
            throw LISAError.invalidRequest("rateLimit needs requestsPerMinute of 0.001 to 10⁹ and a burst of 1 to 10⁹.", param: "rateLimit")
        }
        try request.budget?.validate(param: "budget")
        if request.noExpiry == true {
            guard request.isSystemToken == true else {
                throw LISAError.invalidRequest("Only system tokens may have no expiry.", param: "noExpiry")
            }
            expiresAt = nil
        } else if let days = request.expiresInDays {
            let most = isAdmin ? 3650 : policy.maxLifetimeDays
            guard (1...most).contains(days) else {
                throw LISAError.invalidRequest("expiresInDays must be 1-\(most) (auth.maxTokenLifetimeDays).", param: "expiresInDays")
            }
            expiresAt = Date().addingTimeInterval(TimeInterval(days) * 86400)
        } else {
            expiresAt = Date().addingTimeInterval(min(defaultLifetime, isAdmin ? defaultLifetime : TimeInterval(policy.maxLifetimeDays) * 86400))
        }
        // A token a principal mints for itself never outlives the credential that minted it
        // (an API token, an OIDC sign-in), so a short-lived credential cannot be stretched.
        if username == nil, let limit = caller.credentialExpiresAt, expiresAt.map({ $0 > limit }) ?? true {
            guard limit > Date() else { throw LISAError.unauthorized("The credential creating this token has expired.") }
            expiresAt = limit
        }
        let live = try await tokens.tokens(username: owner).filter { !$0.isExpired() }.count
        guard live < policy.maxTokensPerUser else {
            throw LISAError.quotaExceeded(
                "'\(owner)' already has \(live) live API tokens, the most allowed (auth.maxTokensPerUser); revoke one first."
            )
        }
        // A user's own token carries their groups; an admin may set groups for others.
        let groups = username != nil ? (request.groups ?? []) : caller.groups
        let secret = APIToken.generateSecret()
        let token = APIToken(
            id: APIToken.generateID(), name: name, username: owner, groups: groups, createdBy: caller.username, createdAt: Date(),
            expiresAt: expiresAt, isSystemToken: request.isSystemToken == true, tokenHash: APIToken.hash(secret), rateLimit: request.rateLimit,
            budget: request.budget
        )
        try await tokens.insert(token)
        logger.info(
            "api token created",
            metadata: ["lisa.token_id": "\(token.id)", "lisa.owner": "\(owner)", "lisa.principal": "\(caller.username)"]
        )
        return Created(token: secret, tokenInfo: token.view)
    }

    /// Tokens the caller may see: all for admins, their own for others.
    public func list(by caller: Principal) async throws -> [APIToken.View] {
        try await tokens.tokens(username: access.isAdmin(caller) ? nil : caller.username).map(\.view)
    }

    /// One token, if the caller may see it (404 otherwise, so ids of others do not leak).
    public func get(id: String, by caller: Principal) async throws -> APIToken.View {
        guard let token = try await tokens.token(id: id), access.isAdmin(caller) || token.username == caller.username else {
            throw LISAError.notFound("No API token with id '\(id)'.", reason: "token_not_found")
        }
        return token.view
    }

    /// Logs an admin key rotation (never the key).
    public func auditRotation(by caller: Principal, until: Date) {
        logger.notice("admin key rotated", metadata: ["lisa.principal": "\(caller.username)", "lisa.previous_valid_until": "\(until)"])
    }

    /// Revokes a token: effective on the next request that presents it.
    public func revoke(id: String, by caller: Principal) async throws {
        _ = try await get(id: id, by: caller)
        tokenCache?.revoke(tokenID: id)
        _ = try await tokens.delete(id: id)
        tokenCache?.revoke(tokenID: id)
        logger.info("api token revoked", metadata: ["lisa.token_id": "\(id)", "lisa.principal": "\(caller.username)"])
    }
}

/// How long and how many API tokens users may hold (`auth.maxTokenLifetimeDays`,
/// `auth.maxTokensPerUser`). Administrators creating tokens are held to the count, not the
/// lifetime.
public struct APITokenPolicy: Sendable, Hashable {
    /// The longest lifetime a user may give their own token. Default 365 days.
    public var maxLifetimeDays: Int = 365
    /// Live (unexpired) tokens per username. Default 25.
    public var maxTokensPerUser: Int = 25

    public init(maxLifetimeDays: Int = 365, maxTokensPerUser: Int = 25) {
        self.maxLifetimeDays = maxLifetimeDays
        self.maxTokensPerUser = maxTokensPerUser
    }
}
