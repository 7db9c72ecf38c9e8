import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import LISAHummingbirdTesting
import NIOCore
import NIOHTTP1
import Testing

@testable import LISAHummingbird
@testable import LISAKit

/// What an attacker with one ordinary API token tries, through the real HTTP stack.
@Suite("Hostile users: permission bypasses, path tricks, token floods, quotas")
struct HostileUserTests {
    static let access = AccessConfiguration(adminGroup: "lisa-admins", userGroup: nil, apiGroup: "lisa-api")

    static func models(_ url: String) -> [ModelDefinition] {
        var secret = ModelDefinition(modelId: "secret", modelName: "secret-upstream", modelUrl: url)
        secret.allowedGroups = ["vip"]
        return [
            ModelDefinition(modelId: "public", modelName: "public-upstream", modelUrl: url), secret,
            ModelDefinition(modelId: "redirecting", modelName: "redirect", modelUrl: url),
            ModelDefinition(modelId: "html", modelName: "html-200", modelUrl: url),
            ModelDefinition(modelId: "embed", modelName: "embed-upstream", modelType: .embedding, modelUrl: url),
        ]
    }

    struct Created: Decodable {
        var token: String
        var tokenInfo: APIToken.View
    }

    static func decodeCreated(_ body: String) throws -> Created {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(Created.self, from: Data(body.utf8))
    }

    func token(_ lisa: Harness, for user: String, groups: [String] = [], extra: String = "") async throws -> Created {
        let groupList = String(decoding: try JSONEncoder().encode(groups), as: UTF8.self)
        let (status, body, _) = try await lisa.send("/api-tokens/\(user)", json: #"{"name":"t","groups":\#(groupList)\#(extra)}"#)
        #expect(status == 201, "\(body)")
        return try Self.decodeCreated(body)
    }

    @Test("an escaped duplicate model key cannot reach a model the caller may not use")
    func duplicateModelKey() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let user = try await token(lisa, for: "mallory")
            let before = lisa.fake.observations.requests["/v1/chat/completions"] ?? 0
            for body in [
                #"{"model":"public","mod\u0065l":"secret","messages":[{"role":"user","content":"hi"}]}"#,
                #"{"model":"public","messages":[{"role":"user","content":"hi"}],"model":"secret"}"#,
                "\u{FEFF}" + #"{"model":"public","messages":[{"role":"user","content":"hi"}]}"#,
            ] {
                let (status, text, _) = try await lisa.send("/v1/chat/completions", json: body, key: user.token)
                #expect(status == 400, "\(text)")
            }
            #expect((lisa.fake.observations.requests["/v1/chat/completions"] ?? 0) == before, "nothing reached the upstream")
            let escaped = try await lisa.send(
                "/v1/chat/completions", json: #"{"mod\u0065l":"public","messages":[{"role":"user","content":"hi"}]}"#, key: user.token
            )
            #expect(escaped.status == 200, "an escaped key alone is the same member: routed and rewritten")
            #expect(lisa.fake.observations.lastBody?["model"]?.stringValue == "public-upstream")
        }
    }

    @Test("every spelling of an inference path is metered: trailing slash, empty segments, /v2/serve")
    func pathFormsAreMetered() async throws {
        let limits = RateLimitConfiguration(default: .init(requestsPerMinute: 1, burst: 3))
        try await Harness.run(access: Self.access, rateLimits: limits, models: Self.models) { lisa in
            let user = try await token(lisa, for: "mallory")
            let chat = #"{"model":"public","messages":[{"role":"user","content":"hi"}]}"#
            for path in ["/v1/chat/completions/", "//v1//chat/completions", "/v2/serve/chat/completions/"] {
                #expect(try await lisa.send(path, json: chat, key: user.token).status == 200, "\(path) is routed")
            }
            let embed = try await lisa.send("/v2/serve/embeddings/", json: #"{"model":"embed","input":"x"}"#, key: user.token)
            #expect(embed.status == 429, "the fourth call is over the burst of 3, whatever its spelling")
            #expect(try await lisa.send("/v1/chat%2Fcompletions", json: chat, key: user.token).status == 404)
        }
    }

    @Test("limits are per user: new tokens of the same user share one bucket")
    func limitsPerUser() async throws {
        let limits = RateLimitConfiguration(default: .init(requestsPerMinute: 1, burst: 2))
        try await Harness.run(access: Self.access, rateLimits: limits, models: Self.models) { lisa in
            let first = try await token(lisa, for: "mallory", groups: ["lisa-api"])
            let chat = #"{"model":"public","messages":[{"role":"user","content":"hi"}]}"#
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: first.token).status == 200)
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: first.token).status == 200)
            // Mallory mints a fresh token for herself and tries again.
            let (status, body, _) = try await lisa.send("/api-tokens", json: #"{"name":"fresh"}"#, key: first.token)
            #expect(status == 201)
            let fresh = try Self.decodeCreated(body)
            #expect(try await lisa.send("/v1/chat/completions", json: chat, key: fresh.token).status == 429)
        }
    }

    @Test("a token minted by a token never outlives it, and a user's live tokens are capped")
    func mintedTokensAreBounded() async throws {
        try await Harness.run(access: Self.access, tokenPolicy: APITokenPolicy(maxLifetimeDays: 30, maxTokensPerUser: 4), models: Self.models) {
            lisa in
            let parent = try await token(lisa, for: "mallory", groups: ["lisa-api"], extra: #","expiresInDays":2"#)
            let parentExpiry = try #require(parent.tokenInfo.expiresAt)
            let long = try await lisa.send("/api-tokens", json: #"{"name":"forever","expiresInDays":3650}"#, key: parent.token)
            #expect(long.status == 400, "past auth.maxTokenLifetimeDays: \(long.body)")
            let child = try await lisa.send("/api-tokens", json: #"{"name":"child","expiresInDays":20}"#, key: parent.token)
            #expect(child.status == 201)
            let childExpiry = try #require(try Self.decodeCreated(child.body).tokenInfo.expiresAt)
            #expect(childExpiry <= parentExpiry.addingTimeInterval(1), "no later than the token that made it")
            // Two more reach the cap of four live tokens (the parent counts).
            for _ in 0..<2 { #expect(try await lisa.send("/api-tokens", json: #"{"name":"more"}"#, key: parent.token).status == 201) }
            let flood = try await lisa.send("/api-tokens", json: #"{"name":"one too many"}"#, key: parent.token)
            #expect(flood.status == 429)
            #expect(try errorBody(flood.body).code == "quota_exceeded")
        }
    }

    @Test("a user called admin does not share the admin key's sessions; lisa: names are reserved")
    func reservedAdminName() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let saved = try await lisa.send(
                .PUT, "/session/admin-notes", json: #"{"history":[{"role":"user","content":"the admin key's secret plans"}]}"#)
            #expect(saved.status == 200, "\(saved.body)")
            let impostor = try await token(lisa, for: "admin")
            let list = try await lisa.send(.GET, "/session", key: impostor.token)
            #expect(list.status == 200 && !list.body.contains("admin-notes"), "\(list.body)")
            #expect(try await lisa.send(.GET, "/session/admin-notes", key: impostor.token).status == 404)
            let reserved = try await lisa.send("/api-tokens/lisa:admin", json: #"{"name":"t"}"#)
            #expect(reserved.status == 400)
        }
    }

    @Test("JSON routes need a JSON content type; over-limit bodies are 413 however they arrive")
    func contentTypeAndSize() async throws {
        try await Harness.run(maxRequestBodySize: 64 * 1024, access: Self.access, models: Self.models) { lisa in
            let chat = #"{"model":"public","messages":[{"role":"user","content":"hi"}]}"#
            #expect(try await lisa.send("/v1/chat/completions", json: chat, headers: []).status == 415, "no Content-Type")
            #expect(try await lisa.send("/v1/chat/completions", json: chat, headers: [("Content-Type", "text/plain")]).status == 415)
            #expect(try await lisa.send("/admin/rotate-key", json: "", headers: []).status == 415, "an empty POST without a type too")

            // A chunked body without Content-Length, over the limit.
            var request = HTTPClientRequest(url: lisa.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(adminKey)")
            request.headers.add(name: "Content-Type", value: "application/json")
            let big = ByteBuffer(string: "{\"model\":\"public\",\"pad\":\"" + String(repeating: "x", count: 200 * 1024) + "\"}")
            request.body = .stream(
                AsyncStream { continuation in
                    var rest = big
                    while let slice = rest.readSlice(length: min(8192, rest.readableBytes)), slice.readableBytes > 0 { continuation.yield(slice) }
                    continuation.finish()
                }, length: .unknown)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            #expect(response.status.code == 413)
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(try errorBody(text).code == "request_too_large")
        }
    }

    @Test("upstream redirects are not followed, and an upstream's HTML is never served as such")
    func redirectsAndContentTypes() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let user = try await token(lisa, for: "mallory")
            let redirected = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"redirecting","messages":[{"role":"user","content":"secret"}]}"#, key: user.token
            )
            #expect(redirected.status == 502, "\(redirected.body)")
            #expect(lisa.fake.observations.requests["/v1/redirected"] == nil, "the body was not replayed to the redirect target")
            let html = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"html","messages":[{"role":"user","content":"x"}]}"#, key: user.token)
            #expect(html.status == 502)
            #expect(html.headers.first(name: "Content-Type") == "application/json")
            #expect(html.headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(!html.body.contains("<script>"))
        }
    }

    @Test("non-admins get a generic upstream error with the request id; admins the detail")
    func upstreamDetailIsForAdmins() async throws {
        try await Harness.run(
            access: Self.access,
            models: { _ in
                [ModelDefinition(modelId: "down", modelName: "x", modelUrl: "http://127.0.0.1:1/v1")]
            }
        ) { lisa in
            let user = try await token(lisa, for: "mallory")
            let chat = #"{"model":"down","messages":[{"role":"user","content":"hi"}]}"#
            let plain = try await lisa.send(
                "/v1/chat/completions", json: chat, key: user.token, headers: [("Content-Type", "application/json"), ("X-Request-Id", "req-probe-1")])
            #expect(plain.status == 502)
            let message = try errorBody(plain.body).message
            #expect(message.contains("req-probe-1") && !message.contains("127.0.0.1") && !message.contains(":1"), "\(message)")
            let admin = try await lisa.send("/v1/chat/completions", json: chat)
            #expect(try errorBody(admin.body).message.contains("could be reached"), "\(admin.body)")
        }
    }

    @Test("quotas: sessions per user and templates per user; earlier private revisions stay private")
    func quotasAndRevisions() async throws {
        var quotas = StorageQuotas()
        quotas.maxSessionsPerUser = 2
        quotas.maxTemplatesPerUser = 1
        quotas.maxSessionBytesPerUser = 4096
        try await Harness.run(access: Self.access, quotas: quotas, models: Self.models) { lisa in
            let user = try await token(lisa, for: "mallory")
            for id in ["a", "b"] {
                #expect(try await lisa.send(.PUT, "/session/\(id)", json: #"{"history":[]}"#, key: user.token).status == 200)
            }
            let third = try await lisa.send(.PUT, "/session/c", json: #"{"history":[]}"#, key: user.token)
            #expect(third.status == 429)
            #expect(try errorBody(third.body).code == "quota_exceeded")
            #expect(
                try await lisa.send(.PUT, "/session/a", json: #"{"history":[{"role":"user","content":"again"}]}"#, key: user.token).status == 200,
                "replacing an existing session is not a new one")
            let big = try await lisa.send(
                .PUT, "/session/b", json: #"{"history":[{"role":"user","content":"\#(String(repeating: "z", count: 5000))"}]}"#, key: user.token
            )
            #expect(big.status == 413)
            let kept = try await lisa.send(.GET, "/session/b", key: user.token)
            #expect(kept.status == 200 && !kept.body.contains("zzzz"), "the refused save changed nothing")

            let owner = try await token(lisa, for: "olivia", groups: ["team"])
            let created = try await lisa.send(
                "/prompt-templates", json: #"{"title":"plan","body":"private draft: launch codes","groups":[]}"#, key: owner.token)
            #expect(created.status == 201 || created.status == 200, "\(created.body)")
            #expect(try await lisa.send("/prompt-templates", json: #"{"title":"two","body":"b"}"#, key: owner.token).status == 429)
            let id = try #require(try JSONDecoder().decode(PromptTemplate.self, from: Data(created.body.utf8)).id)
            #expect(
                try await lisa.send(
                    .PUT, "/prompt-templates/\(id)", json: #"{"title":"plan","body":"public now","groups":["lisa:public"]}"#, key: owner.token
                ).status == 200)
            let revisions = try await lisa.send(.GET, "/prompt-templates/\(id)/revisions", key: user.token)
            #expect(revisions.status == 200 && !revisions.body.contains("launch codes"), "\(revisions.body)")
            let own = try await lisa.send(.GET, "/prompt-templates/\(id)/revisions", key: owner.token)
            #expect(own.body.contains("launch codes"), "the owner still sees them")
        }
    }

    @Test("a request signed in with a client certificate is refused when another site made it")
    func crossSiteCertificateRequests() throws {
        func request(_ method: HTTPRequest.Method, _ fields: HTTPFields) -> Request {
            Request(
                head: HTTPRequest(method: method, scheme: "https", authority: "lisa.example:8443", path: "/session/x", headerFields: fields),
                body: RequestBody(buffer: ByteBuffer())
            )
        }
        let crossSite = HTTPField.Name("Sec-Fetch-Site")!
        let origin = HTTPField.Name("Origin")!
        #expect(throws: LISAError.self) {
            try AuthenticationMiddleware<LISARequestContext>.refuseCrossSite(request(.post, [crossSite: "cross-site"]))
        }
        #expect(throws: LISAError.self) {
            try AuthenticationMiddleware<LISARequestContext>.refuseCrossSite(request(.put, [origin: "https://evil.example"]))
        }
        try AuthenticationMiddleware<LISARequestContext>.refuseCrossSite(
            request(.post, [crossSite: "same-origin", origin: "https://lisa.example:8443"]))
        try AuthenticationMiddleware<LISARequestContext>.refuseCrossSite(request(.post, [:]))  // curl, lisactl
        try AuthenticationMiddleware<LISARequestContext>.refuseCrossSite(request(.get, [crossSite: "cross-site"]))  // reads change nothing
    }

    // MARK: - Multipart

    @Test("multipart: an 80 KB boundary is refused; a pathological 70-byte one parses in linear time", .timeLimit(.minutes(1)))
    func multipartBoundaries() throws {
        #expect(MultipartForm.boundary(of: "multipart/form-data; boundary=" + String(repeating: "a", count: 80 * 1024)) == nil)
        #expect(MultipartForm.boundary(of: "multipart/form-data; boundary=" + String(repeating: "a", count: 71)) == nil)
        let boundary = String(repeating: "a", count: 69) + "b"
        #expect(MultipartForm.boundary(of: "multipart/form-data; boundary=\"\(boundary)\"") == boundary)
        // A file made of near-misses of the delimiter: each one matches 69 bytes before failing.
        let nearMiss = "\r\n--" + String(repeating: "a", count: 69) + "c"
        let file = String(repeating: nearMiss, count: 100_000)
        let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n\(file)\r\n--\(boundary)--\r\n"
        let form = try MultipartForm(body: ByteBuffer(string: body), boundary: boundary)
        #expect(form.parts.count == 1)
        #expect(form.parts[0].data.count == file.utf8.count)
        #expect(MultipartForm.Search(Array("abab".utf8)).first(in: Array("aabababab".utf8), from: 0) == 1)
    }

    @Test("canonical paths: empty segments and trailing slashes collapse; dot segments and encoded slashes name nothing")
    func canonicalPaths() {
        #expect(CanonicalPathMiddleware<LISARequestContext>.canonical("/v1/chat/completions/") == "/v1/chat/completions")
        #expect(CanonicalPathMiddleware<LISARequestContext>.canonical("//v2//serve/embeddings") == "/v2/serve/embeddings")
        #expect(CanonicalPathMiddleware<LISARequestContext>.canonical("/") == "/")
        #expect(CanonicalPathMiddleware<LISARequestContext>.canonical("/v1/../admin") == nil)
        #expect(CanonicalPathMiddleware<LISARequestContext>.canonical("/repository/x%2F..%2Fy") == nil)
        // The byte-level shortcut only ever passes paths the full check leaves unchanged.
        typealias Paths = CanonicalPathMiddleware<LISARequestContext>
        let probes = [
            "/", "/v1/chat/completions", "/v1/chat/completions/", "//v1", "/v1//x", "/.", "/..", "/a/.", "/a/..", "/a/.b",
            "/a%2f", "/a%2F..%2Fb", "/a\\b", "/a/b.c", "/a.", "", "v1/x", "/a/b/", "/é/ü", "/a//", "/.well-known/x",
        ]
        for path in probes where Paths.isPlainlyCanonical(path) {
            #expect(Paths.fullyCanonical(path) == path, "\(path)")
        }
        #expect(Paths.isPlainlyCanonical("/v1/chat/completions") && Paths.isPlainlyCanonical("/"))
    }
}
