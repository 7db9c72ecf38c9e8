import AsyncHTTPClient
import Foundation
import Logging
import Testing

@testable import LISAKit

@Suite("OIDC claims")
struct OIDCClaimsTests {
    func verifier(_ configure: (inout OIDCConfiguration) -> Void = { _ in }) -> OIDCVerifier {
        var configuration = OIDCConfiguration(authority: "https://idp.example.com/realms/lisa/", clientId: "lisa", groupsClaim: "realm_access.roles")
        configure(&configuration)
        return OIDCVerifier(configuration: configuration, httpClient: HTTPClient.shared, logger: Logger(label: "t"))
    }

    let now = Date(timeIntervalSince1970: 1_800_000_000)
    func claims(_ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
        var claims: [String: JSONValue] = [
            "iss": "https://idp.example.com/realms/lisa", "aud": ["account", "lisa"], "sub": "u-1", "exp": 1_800_000_300,
            "iat": 1_800_000_000, "realm_access": ["roles": ["lisa-users", "team-a"]], "cognito:groups": ["c1"],
        ]
        claims.merge(extra) { $1 }
        return claims
    }

    @Test("groups come from a dot path or a whole claim name; the username falls back to sub")
    func mapping() async throws {
        let principal = try await verifier().principal(from: claims(), now: now)
        #expect(principal.username == "u-1" && principal.groups == ["lisa-users", "team-a"] && principal.method == .oidc)
        let named = try await verifier().principal(from: claims(["preferred_username": "alice"]), now: now)
        #expect(named.username == "alice")
        let cognito = try await verifier { $0.groupsClaim = "cognito:groups" }.principal(from: claims(), now: now)
        #expect(cognito.groups == ["c1"])
        let custom = try await verifier { $0.usernameClaim = "email" }.principal(
            from: claims(["email": "a@example.com", "preferred_username": "x"]), now: now)
        #expect(custom.username == "a@example.com")
    }

    @Test(
        "exp, nbf and iat are checked with the leeway; iss and aud must match",
        arguments: [
            (["exp": JSONValue.integer(1_800_000_000 - 61)], "expired"),
            (["nbf": JSONValue.integer(1_800_000_000 + 61)], "not valid yet"),
            (["iat": JSONValue.integer(1_800_000_000 + 61)], "future"),
            (["iss": JSONValue.string("https://idp.example.com/realms/other")], "issuer"),
            (["aud": JSONValue.string("other")], "audience"),
            (["exp": JSONValue.null], "expiry"),
        ])
    func rejections(extra: [String: JSONValue], reason: String) async throws {
        var claims = claims(extra)
        if extra["exp"] == .null { claims["exp"] = nil }
        do {
            _ = try await verifier().principal(from: claims, now: now)
            Issue.record("accepted claims that should fail: \(reason)")
        } catch {
            #expect(error.code == .unauthenticated)
            #expect(error.message.contains(reason), "\(error.message)")
        }
        let withinLeeway = try await verifier().principal(from: self.claims(["exp": .integer(1_800_000_000 - 30)]), now: now)
        #expect(withinLeeway.username == "u-1", "30 s past exp is within the 60 s leeway")
    }
}
