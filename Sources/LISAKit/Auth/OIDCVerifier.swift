public import AsyncHTTPClient
public import Foundation
import JWTKit
public import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
public import ServiceLifecycle

/// OIDC settings, with LISA's configuration names (`auth:` in the file).
public struct OIDCConfiguration: Sendable, Hashable {
    /// The issuer: `{authority}/.well-known/openid-configuration` is read for the JWKS URL,
    /// and tokens must carry it as `iss`.
    public var authority: String
    /// The expected audience (`aud`).
    public var clientId: String
    /// Dot path of the groups claim: `groups`, `cognito:groups`, `realm_access.roles`. Default `groups`.
    public var groupsClaim: String = "groups"
    /// Claim holding the username; falls back to `preferred_username`, `username`,
    /// `cognito:username`, `email`, `sub`.
    public var usernameClaim: String?
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60 s.
    public var leeway: TimeInterval = 60
    /// Signature algorithms accepted. `none` and HMAC are never accepted.
    public var allowedAlgorithms: Set<String> = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
    /// How often keys are refetched in the background. Default one hour.
    public var refreshInterval: Duration = .seconds(3600)
    /// The least time between two fetches triggered by unknown key ids. Default 30 s.
    public var minimumRefetchInterval: Duration = .seconds(30)
    /// A PEM bundle of the CAs to trust for discovery and JWKS (a private IdP); `nil`: the system's.
    public var caFile: String?

    public init(authority: String, clientId: String, groupsClaim: String? = nil) {
        self.authority = authority
        self.clientId = clientId
        if let groupsClaim { self.groupsClaim = groupsClaim }
    }

    var normalizedIssuer: String {
        var issuer = authority
        while issuer.hasSuffix("/") { issuer.removeLast() }
        return issuer
    }
}

/// Where a browser signs in with the issuer (from its discovery document).
public struct OIDCEndpoints: Sendable, Hashable, Codable {
    public var authorization: String
    public var token: String
    public var endSession: String?
}

/// Verifies OIDC JWTs against the issuer's published keys (usable without the server).
///
/// Keys come from the issuer's discovery document and JWKS; an unknown `kid` triggers a
/// refetch (at most one per ``OIDCConfiguration/minimumRefetchInterval``, so a flood of bad
/// tokens cannot hammer the IdP); ``run()`` refreshes them in the background as a `Service`.
/// Only algorithms in the allow-list pass; `iss`, `aud`, `exp`, `nbf`, `iat` are checked with
/// the configured leeway.
public actor OIDCVerifier: Service {
    public let configuration: OIDCConfiguration
    private let httpClient: HTTPClient
    private let logger: Logger
    private var keys = JWTKeyCollection()
    private var kids: Set<String> = []
    private var lastFetch: ContinuousClock.Instant?
    private var inFlightFetch: Task<Void, any Error>?
    private var endpoints: OIDCEndpoints?

    public init(configuration: OIDCConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
    }

    /// Refreshes the keys on the configured interval until graceful shutdown.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.refresh()
                } catch {
                    self.logger.warning("OIDC key refresh failed", metadata: ["lisa.reason": "\(error)"])
                }
                try await Task.sleep(for: self.configuration.refreshInterval)
            }
        }
    }

    /// The issuer's sign-in endpoints from its discovery document, for browser clients
    /// (LISA Chat's authorization-code flow). Fetched now if no refresh has succeeded yet —
    /// at most once per ``OIDCConfiguration/minimumRefetchInterval``, so page loads while the
    /// issuer is down do not hammer it.
    public func signInEndpoints() async -> OIDCEndpoints? {
        if endpoints == nil, lastFetch.map({ ContinuousClock.now - $0 >= configuration.minimumRefetchInterval }) ?? true {
            try? await refresh()
        }
        return endpoints
    }

    /// Fetches the discovery document and the JWKS, replacing the keys.
    public func refresh() async throws {
        if let inFlightFetch { return try await inFlightFetch.value }
        let task = Task { try await self.fetchKeys() }
        inFlightFetch = task
        defer { inFlightFetch = nil }
        try await task.value
    }

    private func fetchKeys() async throws {
        lastFetch = .now
        struct Discovery: Decodable {
            var issuer: String?
            var jwks_uri: String
            var authorization_endpoint: String?
            var token_endpoint: String?
            var end_session_endpoint: String?
        }
        let discovery = try await fetchJSON(Discovery.self, from: configuration.normalizedIssuer + "/.well-known/openid-configuration")
        if let issuer = discovery.issuer, issuer.trimmingSlashes != configuration.normalizedIssuer {
            throw LISAError.internalError("The OIDC discovery document names issuer '\(issuer)', not '\(configuration.authority)'.")
        }
        if let authorization = discovery.authorization_endpoint, let token = discovery.token_endpoint {
            endpoints = OIDCEndpoints(authorization: authorization, token: token, endSession: discovery.end_session_endpoint)
        }
        let jwks = try await fetchJSON(JWKS.self, from: discovery.jwks_uri)
        let collection = JWTKeyCollection()
        var kids: Set<String> = []
        for jwk in jwks.keys {
            guard let kid = jwk.keyIdentifier?.string else { continue }
            do {
                try await collection.add(jwk: jwk)
                kids.insert(kid)
            } catch {
                logger.notice("skipping an unusable JWKS key", metadata: ["lisa.kid": "\(kid)", "lisa.reason": "\(error)"])
            }
        }
        keys = collection
        self.kids = kids
        logger.info("OIDC keys loaded", metadata: ["lisa.keys": "\(kids.count)"])
    }

    private func fetchJSON<T: Decodable>(_ type: T.Type, from url: String) async throws -> T {
        var request = HTTPClientRequest(url: url)
        if url.hasPrefix("https:"), let caFile = configuration.caFile {
            request.tlsConfiguration = UpstreamTLS(caFile: caFile).configuration()
        }
        let response = try await httpClient.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1024 * 1024)
        guard response.status == .ok else {
            throw LISAError.internalError("Fetching \(url) answered HTTP \(response.status.code).")
        }
        return try JSONDecoder().decode(type, from: body)
    }

    /// The principal a token stands for, or a 401 naming what was wrong (never the token).
    public func verify(_ token: String) async throws(LISAError) -> Principal {
        let header: JWTHeaderFields
        do {
            header = try JWTHeaderFields.decode(token)
        } catch {
            throw .unauthorized("The token is not a well-formed JWT.")
        }
        guard configuration.allowedAlgorithms.contains(header.alg) else {
            throw .unauthorized("The token's algorithm '\(header.alg)' is not accepted.")
        }
        guard let kid = header.kid else { throw .unauthorized("The token has no key id (kid).") }
        if !kids.contains(kid) {
            let canRefetch = lastFetch.map { ContinuousClock.now - $0 >= configuration.minimumRefetchInterval } ?? true
            if canRefetch {
                do { try await refresh() } catch { logger.warning("OIDC key refetch failed", metadata: ["lisa.reason": "\(error)"]) }
            }
            guard kids.contains(kid) else { throw .unauthorized("The token was signed with an unknown key.") }
        }
        let claims: OIDCClaims
        do {
            claims = try await keys.verify(token, as: OIDCClaims.self)
        } catch {
            throw .unauthorized("The token's signature is not valid.")
        }
        return try principal(from: claims.values)
    }

    func principal(from claims: [String: JSONValue], now: Date = Date()) throws(LISAError) -> Principal {
        let leeway = configuration.leeway
        guard case .some(let exp) = claims["exp"].flatMap(Self.number) else {
            throw .unauthorized("The token has no expiry (exp).")
        }
        guard now.timeIntervalSince1970 < exp + leeway else { throw .unauthorized("The token has expired.") }
        if let nbf = claims["nbf"].flatMap(Self.number), now.timeIntervalSince1970 + leeway < nbf {
            throw .unauthorized("The token is not valid yet (nbf).")
        }
        if let iat = claims["iat"].flatMap(Self.number), now.timeIntervalSince1970 + leeway < iat {
            throw .unauthorized("The token was issued in the future (iat).")
        }
        guard claims["iss"]?.stringValue?.trimmingSlashes == configuration.normalizedIssuer else {
            throw .unauthorized("The token's issuer is not the configured authority.")
        }
        let audiences: [String] =
            switch claims["aud"] {
            case .string(let audience): [audience]
            case .array(let values): values.compactMap(\.stringValue)
            default: []
            }
        guard audiences.contains(configuration.clientId) else {
            throw .unauthorized("The token's audience does not include the configured client id.")
        }
        let candidates = [configuration.usernameClaim, "preferred_username", "username", "cognito:username", "email", "sub"]
        guard let username = candidates.compactMap({ $0.flatMap { claims[$0]?.stringValue } }).first(where: { !$0.isEmpty }) else {
            throw .unauthorized("The token names no user (sub).")
        }
        guard !Principal.isReserved(username) else {
            throw .unauthorized("The token's username is reserved for LISA itself.")
        }
        return Principal(
            username: username, groups: Self.groups(at: configuration.groupsClaim, in: claims), method: .oidc,
            credentialExpiresAt: Date(timeIntervalSince1970: exp)
        )
    }

    /// The strings at a dot path (`realm_access.roles`); a claim name containing dots or
    /// colons as a whole (`cognito:groups`) is tried first.
    static func groups(at path: String, in claims: [String: JSONValue]) -> [String] {
        var value: JSONValue? = claims[path]
        if value == nil {
            var current: JSONValue? = .object(claims)
            for component in path.split(separator: ".") { current = current?[String(component)] }
            value = current
        }
        switch value {
        case .array(let items): return items.compactMap(\.stringValue)
        case .string(let text): return text.split(separator: " ").map(String.init)
        default: return []
        }
    }

    private static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }
}

/// All of a token's claims; LISA checks them itself after the signature.
struct OIDCClaims: JWTPayload {
    var values: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        values = try [String: JSONValue](from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try values.encode(to: encoder)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// The JOSE header fields LISA checks before verifying.
struct JWTHeaderFields: Decodable {
    var alg: String
    var kid: String?

    static func decode(_ token: String) throws -> JWTHeaderFields {
        guard let first = token.split(separator: ".", omittingEmptySubsequences: false).first else { throw LISAError.unauthorized("") }
        var base64 = first.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { throw LISAError.unauthorized("") }
        // The header LISA picks the key by is the one jwt-kit verifies with: no duplicate `kid`/`alg`.
        try StrictJSON.validate(Array(data))
        return try JSONDecoder().decode(JWTHeaderFields.self, from: data)
    }
}

extension String {
    var trimmingSlashes: String {
        var value = self
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }
}
