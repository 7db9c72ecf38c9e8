import AsyncHTTPClient
import Foundation
import LISAHummingbird
import LISAKit
import LISAWebUI
import NIOCore
import NIOHTTP1
import Testing

@Suite("LISA Chat's files: served from the binary with types, caching and a CSP")
struct WebUITests {
    static let assets = WebAssets.embedded

    @Test("index.html: revalidated by ETag, a strict Content-Security-Policy, versioned references")
    func index() async throws {
        try await Harness.run { lisa in
            let (status, body, headers) = try await lisa.send(.GET, "/", key: nil)
            #expect(status == 200)
            #expect(headers.first(name: "Content-Type") == "text/html; charset=utf-8")
            #expect(headers.first(name: "Cache-Control") == "no-cache")
            #expect(headers.first(name: "X-Content-Type-Options") == "nosniff")
            #expect(headers.first(name: "X-Frame-Options") == "DENY")
            #expect(headers.first(name: "Permissions-Policy")?.contains("camera=()") == true)
            let policy = try #require(headers.first(name: "Content-Security-Policy"))
            for directive in [
                "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self';", "connect-src 'self'", "frame-ancestors 'none'",
            ] {
                #expect(policy.contains(directive), "\(directive) in \(policy)")
            }
            #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"))
            #expect(body.contains("ui/\(Self.assets.version)/app.js"))
            #expect(!body.contains("__LISA_ASSET_VERSION__"))

            let etag = try #require(headers.first(name: "ETag"))
            var request = HTTPClientRequest(url: lisa.baseURL + "/")
            request.headers.add(name: "If-None-Match", value: etag)
            let revalidated = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            #expect(revalidated.status == .notModified)
            #expect(try await revalidated.body.collect(upTo: 1024).readableBytes == 0)
        }
    }

    @Test("assets: content types, immutable under the current version, revalidated under another, 404 in OpenAI's shape")
    func assets() async throws {
        try await Harness.run { lisa in
            let version = Self.assets.version
            let script = try await lisa.send(.GET, "/ui/\(version)/app.js", key: nil)
            #expect(script.status == 200)
            #expect(script.headers.first(name: "Content-Type") == "text/javascript; charset=utf-8")
            #expect(script.headers.first(name: "Cache-Control") == "public, max-age=31536000, immutable")
            let style = try await lisa.send(.GET, "/ui/\(version)/app.css", key: nil)
            #expect(style.headers.first(name: "Content-Type") == "text/css; charset=utf-8")
            let icon = try await lisa.send(.GET, "/ui/\(version)/icon.svg", key: nil)
            #expect(icon.headers.first(name: "Content-Type") == "image/svg+xml")

            let stale = try await lisa.send(.GET, "/ui/0123abcd/app.js", key: nil)
            #expect(stale.status == 200 && stale.headers.first(name: "Cache-Control") == "no-cache", "an old page still loads, uncached")
            let missing = try await lisa.send(.GET, "/ui/\(version)/nope.js", key: nil)
            #expect(missing.status == 404)
            #expect(try errorBody(missing.body).code == "not_found")
        }
    }

    @Test("the bundle is whole and self-contained: every module import and page reference resolves; no HTML injection sinks, no remote code")
    func bundleIntegrity() throws {
        let assets = Self.assets
        #expect(Set(assets.names).isSuperset(of: ["index.html", "app.js", "app.css", "api.js", "markdown.js", "dom.js", "chat.js"]))
        let index = String(decoding: try #require(assets.asset(named: "index.html")).bytes, as: UTF8.self)
        for match in index.matches(of: /(?:src|href)="ui\/[0-9a-f]+\/([^"]+)"/) {
            #expect(assets.asset(named: String(match.1)) != nil, "index.html refers to \(match.1)")
        }
        #expect(!index.contains("http://") && !index.contains("https://"), "index.html loads nothing from elsewhere")
        for name in assets.names where name.hasSuffix(".js") {
            let source = String(decoding: try #require(assets.asset(named: name)).bytes, as: UTF8.self)
            for match in source.matches(of: /from '([^']+)'/) {
                let target = String(match.1)
                #expect(target.hasPrefix("./"), "\(name) imports \(target) (only sibling modules)")
                #expect(assets.asset(named: String(target.dropFirst(2))) != nil, "\(name) imports \(target)")
            }
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                #expect(!source.contains(sink), "\(name) uses \(sink)")
            }
        }
    }

    @Test("GET /auth/config without OIDC: token sign-in; GET /whoami describes the caller")
    func signInAndIdentity() async throws {
        try await Harness.run(access: AccessConfiguration(adminGroup: "admins", apiGroup: "api")) { lisa in
            let config = try await lisa.send(.GET, "/auth/config", key: nil)
            #expect(config.status == 200)
            let object = try JSONSerialization.jsonObject(with: Data(config.body.utf8)) as? [String: Any]
            #expect(object?["oidc"] == nil)
            #expect(object?["uiVersion"] as? String == Self.assets.version)

            #expect(try await lisa.send(.GET, "/whoami", key: nil).status == 401)
            let admin = try JSONDecoder().decode(CallerIdentity.self, from: Data(try await lisa.send(.GET, "/whoami").body.utf8))
            #expect(admin.isAdmin && admin.method == .adminKey)
            let (_, created, _) = try await lisa.send("/api-tokens/bob", json: #"{"name":"bob","groups":["api"]}"#)
            let token = try #require((try JSONSerialization.jsonObject(with: Data(created.utf8)) as? [String: Any])?["token"] as? String)
            let bob = try JSONDecoder().decode(CallerIdentity.self, from: Data(try await lisa.send(.GET, "/whoami", key: token).body.utf8))
            #expect(bob.username == "bob" && bob.groups == ["api"] && bob.method == .apiToken)
            #expect(!bob.isAdmin && !bob.isRagAdmin && bob.mayCreateTokens && bob.mayCallInference)
        }
    }
}
