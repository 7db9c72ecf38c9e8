import AsyncHTTPClient
import Foundation
import HTTPTypes
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import LISAKitTesting
import NIOCore
import NIOHTTP1
import Testing

@Suite("Access control: API tokens, groups, per-model permissions")
struct AccessControlTests {
    static let access = AccessConfiguration(adminGroup: "lisa-admins", userGroup: nil, apiGroup: "lisa-api")

    static func models(_ url: String) -> [ModelDefinition] {
        var teamA = ModelDefinition(modelId: "team-a-model", modelName: "a", modelUrl: url)
        teamA.allowedGroups = ["team-a"]
        var teamB = ModelDefinition(modelId: "team-b-model", modelName: "b", modelUrl: url)
        teamB.allowedGroups = ["team-b"]
        return [ModelDefinition(modelId: "open-model", modelName: "open", modelUrl: url), teamA, teamB]
    }

    struct Created: Decodable {
        var token: String
        var tokenInfo: APIToken.View
    }

    func createToken(_ lisa: Harness, for user: String, groups: [String], key: String = adminKey) async throws -> Created {
        let (status, body, _) = try await lisa.send(
            "/api-tokens/\(user)",
            json: #"{"name":"\#(user) laptop","groups":\#(String(decoding: try JSONEncoder().encode(groups), as: UTF8.self))}"#,
            key: key
        )
        #expect(status == 201, "\(body)")
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(Created.self, from: Data(body.utf8))
    }

    @Test("an API token's lifecycle: created once, listed without its secret, revoked at once")
    func tokenLifecycle() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let alice = try await createToken(lisa, for: "alice", groups: ["team-a"])
            #expect(alice.token.hasPrefix("lisa_") && alice.token.count > 40)
            #expect(alice.tokenInfo.username == "alice" && alice.tokenInfo.createdBy == Principal.admin.username)
            let expires = try #require(alice.tokenInfo.expiresAt)
            #expect(abs(expires.timeIntervalSinceNow - 90 * 86400) < 60, "90 days by default")

            #expect(try await lisa.send(.GET, "/v1/models", key: alice.token).status == 200)
            let bob = try await createToken(lisa, for: "bob", groups: ["team-b"])
            let mine = try await lisa.send(.GET, "/api-tokens", key: alice.token)
            #expect(mine.body.contains(alice.tokenInfo.id) && !mine.body.contains(bob.tokenInfo.id), "users see their own tokens")
            let all = try await lisa.send(.GET, "/api-tokens")
            #expect(all.body.contains(alice.tokenInfo.id) && all.body.contains(bob.tokenInfo.id), "admins see all")
            #expect(!all.body.contains(alice.token) && !all.body.contains("tokenHash"), "secrets and hashes are never shown")
            #expect(try await lisa.send(.GET, "/api-tokens/\(bob.tokenInfo.id)", key: alice.token).status == 404)
            #expect(try await lisa.send(.DELETE, "/api-tokens/\(bob.tokenInfo.id)", key: alice.token).status == 404, "not someone else's")

            #expect(try await lisa.send(.DELETE, "/api-tokens/\(alice.tokenInfo.id)", key: alice.token).status == 200)
            let revoked = try await lisa.send(.GET, "/v1/models", key: alice.token)
            #expect(revoked.status == 401, "revocation takes effect on the next request")
            let stored = try await lisa.store.tokens.tokens(username: nil)
            #expect(stored.map(\.id) == [bob.tokenInfo.id])
            #expect(!stored.contains { $0.tokenHash == bob.token }, "only the hash is stored")
        }
    }

    @Test("an expired token is refused")
    func expiredToken() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let secret = APIToken.generateSecret()
            try await lisa.store.tokens.insert(
                APIToken(
                    id: APIToken.generateID(), name: "old", username: "carol", groups: [], createdBy: "admin",
                    createdAt: Date(timeIntervalSinceNow: -200), expiresAt: Date(timeIntervalSinceNow: -100), isSystemToken: false,
                    tokenHash: APIToken.hash(secret)
                ))
            let response = try await lisa.send(.GET, "/v1/models", key: secret)
            #expect(response.status == 401)
            #expect(try errorBody(response.body).message.contains("expired"))
        }
    }

    @Test("allowedGroups: a model the caller may not use is not listed and answers 404")
    func allowedGroups() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let alice = try await createToken(lisa, for: "alice", groups: ["team-a"])
            let listed = try JSONDecoder().decode(ModelList.self, from: Data(try await lisa.send(.GET, "/v1/models", key: alice.token).body.utf8))
            #expect(listed.data.map(\.id) == ["open-model", "team-a-model"])
            let chat = #"{"model":"MODEL","messages":[{"role":"user","content":"hi"}]}"#
            #expect(
                try await lisa.send("/v1/chat/completions", json: chat.replacingOccurrences(of: "MODEL", with: "team-a-model"), key: alice.token)
                    .status == 200)
            let hidden = try await lisa.send(
                "/v1/chat/completions", json: chat.replacingOccurrences(of: "MODEL", with: "team-b-model"), key: alice.token)
            #expect(hidden.status == 404)
            #expect(try errorBody(hidden.body).code == "model_not_found", "indistinguishable from a model that does not exist")
            let everything = try JSONDecoder().decode(ModelList.self, from: Data(try await lisa.send(.GET, "/v1/models").body.utf8))
            #expect(everything.data.count == 3, "admins see every model")
            let groupAdmin = try await createToken(lisa, for: "dana", groups: ["lisa-admins"])
            #expect(try await lisa.send(.GET, "/models", key: groupAdmin.token).status == 200, "adminGroup members are admins")
        }
    }

    @Test("every management route answers 403 to a non-admin and 401 without credentials")
    func managementRoutesNeedAdmin() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let alice = try await createToken(lisa, for: "alice", groups: ["team-a", "lisa-api"])
            #expect(LISARoutes.managementRoutes.count >= 6)
            for route in LISARoutes.managementRoutes {
                let path = route.path.replacingOccurrences(of: "{modelId}", with: "open-model").replacingOccurrences(of: "{id}", with: "alice")
                let method = HTTPMethod(rawValue: route.method.rawValue)
                let json: String? = route.method == .post ? "{}" : nil
                let denied = try await lisa.send(method, path, json: json, key: alice.token)
                #expect(denied.status == 403, "\(route.method) \(route.path)")
                #expect(try errorBody(denied.body).type == "permission_error")
                #expect(try await lisa.send(method, path, json: json, key: nil).status == 401, "\(route.method) \(route.path)")
            }
            #expect(try await lisa.send(.GET, "/models/open-model").status == 200, "the admin key still works")
        }
    }

    @Test("userGroup and apiGroup: only members call inference or create their own tokens")
    func userAndAPIGroups() async throws {
        let access = AccessConfiguration(adminGroup: "lisa-admins", userGroup: "lisa-users", apiGroup: "lisa-api")
        try await Harness.run(access: access, models: Self.models) { lisa in
            let outsider = try await createToken(lisa, for: "eve", groups: [])
            let listed = try JSONDecoder().decode(ModelList.self, from: Data(try await lisa.send(.GET, "/v1/models", key: outsider.token).body.utf8))
            #expect(listed.data.isEmpty)
            let chat = #"{"model":"open-model","messages":[{"role":"user","content":"hi"}]}"#
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: outsider.token).status == 403)
            #expect(try await lisa.send("/api-tokens", json: #"{"name":"mine"}"#, key: outsider.token).status == 403)

            let member = try await createToken(lisa, for: "frank", groups: ["lisa-users", "lisa-api"])
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: member.token).status == 200)
            let (status, body, _) = try await lisa.send("/api-tokens", json: #"{"name":"script","expiresInDays":7}"#, key: member.token)
            #expect(status == 201)
            #expect(body.contains(#""username":"frank""#) && body.contains("lisa-users"), "a user's own token carries their groups")
            #expect(try await lisa.send("/api-tokens", json: #"{"name":"x","expiresInDays":0}"#, key: member.token).status == 400)
            #expect(try await lisa.send("/api-tokens", json: #"{"name":"x","isSystemToken":true}"#, key: member.token).status == 403)
        }
    }

    @Test("rate limits: inference is metered (429 with Retry-After), reads are not; refill, group overrides, admin exempt")
    func rateLimits() async throws {
        let limits = RateLimitConfiguration(
            // One token every 10 s, on a clock the test moves: nothing refills until it does.
            default: .init(requestsPerMinute: 6, burst: 2), groups: ["batch": .init(requestsPerMinute: 60_000, burst: 50)]
        )
        let clock = ManualClock()
        try await Harness.run(access: Self.access, rateLimits: limits, clock: AnyClock(clock), models: Self.models) { lisa in
            let chat = #"{"model":"open-model","messages":[{"role":"user","content":"hi"}]}"#
            let alice = try await createToken(lisa, for: "alice", groups: ["team-a"])
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: alice.token).status == 200)
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: alice.token).status == 200)
            let limited = try await lisa.send("/v1/chat/completions", json: chat, key: alice.token)
            #expect(limited.status == 429)
            #expect(try errorBody(limited.body).code == "rate_limit_exceeded")
            #expect((1...10).contains(Int(limited.headers.first(name: "Retry-After") ?? "") ?? 0))
            for path in ["/v1/models", "/session", "/whoami", "/prompt-templates"] {
                #expect(try await lisa.send(.GET, path, key: alice.token).status == 200, "reading \(path) is not metered")
            }
            // Recovers once a token has refilled (a refused request takes none): 10 s at 6 a minute.
            clock.advance(by: .seconds(10))
            let recovered = try await lisa.send("/v1/chat/completions", json: chat, key: alice.token).status == 200
            #expect(recovered, "recovers after the refill")

            let batch = try await createToken(lisa, for: "robot", groups: ["batch"])
            for _ in 0..<10 { #expect(try await lisa.send("/v1/chat/completions", json: chat, key: batch.token).status == 200) }
            for _ in 0..<10 { #expect(try await lisa.send("/v1/chat/completions", json: chat).status == 200, "the admin key is not limited") }

            let (status, body, _) = try await lisa.send(
                "/api-tokens/slowpoke", json: #"{"name":"limited","rateLimit":{"requestsPerMinute":1,"burst":1}}"#
            )
            #expect(status == 201)
            let limitedToken = try JSONDecoder().decode(Created.self, from: Data(body.utf8)).token
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: limitedToken).status == 200)
            let second = try await lisa.send("/v1/chat/completions", json: chat, key: limitedToken)
            #expect(second.status == 429, "the token's own limit wins")
            #expect(Int(second.headers.first(name: "Retry-After") ?? "") ?? 0 > 30)
        }
    }
}
