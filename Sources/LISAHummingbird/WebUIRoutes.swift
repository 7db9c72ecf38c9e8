import Foundation
import HTTPTypes
public import Hummingbird
public import LISAKit
public import LISAWebUI
import NIOCore

/// LISA Chat, the web UI: `index.html` at `/`, its scripts and styles under
/// `/ui/{version}/`, and `GET /auth/config` (how a browser signs in). Everything else the
/// UI does goes through LISA's public API.
///
/// Caching: `/` is revalidated on every load (`no-cache` + `ETag`); files under the current
/// version are immutable for a year, since a new build changes the version. Every answer
/// carries a Content-Security-Policy that allows only this origin's scripts and styles, no
/// inline script, no framing, and network calls only to this origin and the OIDC token
/// endpoint.
public struct WebUIRoutes<Context: LISARoutesContext>: Sendable {
    public let assets: WebAssets
    public let oidc: OIDCVerifier?
    /// Scopes the UI asks the OIDC issuer for.
    public var scopes: String

    public init(assets: WebAssets = .embedded, oidc: OIDCVerifier?, scopes: String = "openid profile email") {
        self.assets = assets
        self.oidc = oidc
        self.scopes = scopes
    }

    /// What `GET /auth/config` answers.
    struct SignInConfiguration: Encodable {
        struct OIDC: Encodable {
            var authority: String
            var clientId: String
            var scopes: String
            var authorizationEndpoint: String
            var tokenEndpoint: String
            var endSessionEndpoint: String?
        }

        /// `nil`: sign in with an API token or the admin key.
        var oidc: OIDC?
        var uiVersion: String
    }

    /// Adds the UI's routes to `router`; their errors are answered in OpenAI's shape (the
    /// host app's other routes are left alone).
    public func add(to router: Router<Context>) {
        let router = router.group().add(middleware: DialectErrorMiddleware<Context>())
        let assets = self.assets
        router.get("/") { request, _ in
            try await serve("index.html", request: request, immutable: false)
        }
        router.get("/index.html") { request, _ in
            try await serve("index.html", request: request, immutable: false)
        }
        // A HEAD probe of the front page: the page's headers, no body.
        router.head("/") { request, _ in
            let page = try await serve("index.html", request: request, immutable: false)
            return Response(status: page.status, headers: page.headers)
        }
        router.get("/ui/{version}/{file}") { request, context in
            let version = try context.parameters.require("version")
            return try await serve(try context.parameters.require("file"), request: request, immutable: version == assets.version)
        }
        router.get("/auth/config") { _, _ in
            var configuration = SignInConfiguration(oidc: nil, uiVersion: assets.version)
            if let oidc {
                guard let endpoints = await oidc.signInEndpoints() else {
                    throw LISAError.serviceUnavailable("The OIDC issuer's discovery document is not available; try again shortly.")
                }
                let settings = await oidc.configuration
                configuration.oidc = .init(
                    authority: settings.authority, clientId: settings.clientId, scopes: scopes,
                    authorizationEndpoint: endpoints.authorization, tokenEndpoint: endpoints.token,
                    endSessionEndpoint: endpoints.endSession
                )
            }
            var response = try LISARoutes.encode(configuration)
            response.headers[.cacheControl] = "no-store"
            return response
        }
    }

    private func serve(_ name: String, request: Request, immutable: Bool) async throws -> Response {
        guard let asset = assets.asset(named: name) else {
            throw LISAError.notFound("There is no UI file '\(name)'.", reason: "not_found")
        }
        var headers = await securityHeaders()
        headers[.contentType] = asset.contentType
        headers[.eTag] = asset.etag
        headers[.cacheControl] = immutable ? "public, max-age=31536000, immutable" : "no-cache"
        if let presented = request.headers[.ifNoneMatch],
            presented.split(separator: ",").contains(where: {
                $0.trimmingCharacters(in: .whitespaces) == asset.etag
            })
        {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
    }

    /// The Content-Security-Policy and its companions.
    func securityHeaders() async -> HTTPFields {
        var connect = ["'self'"]
        if let oidc, let endpoints = await oidc.signInEndpoints(), let origin = Self.origin(of: endpoints.token) {
            connect.append(origin)
        }
        let policy = [
            "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
            "connect-src \(connect.joined(separator: " "))", "manifest-src 'self'", "base-uri 'none'",
            "form-action 'self'", "frame-ancestors 'none'",
        ].joined(separator: "; ")
        return [
            HTTPField.Name("Content-Security-Policy")!: policy,
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
            HTTPField.Name("Permissions-Policy")!: "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ]
    }

    /// `scheme://host[:port]` of `url`.
    static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return nil }
        return "\(scheme)://\(host)\(components.port.map { ":\($0)" } ?? "")"
    }
}
