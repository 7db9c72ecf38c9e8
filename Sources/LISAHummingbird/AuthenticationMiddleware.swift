import Foundation
public import HTTPTypes
public import Hummingbird
import Instrumentation
public import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOSSL

/// Authenticates every request (admin key or API token) and records the principal in the
/// context. Failures are 401s that never echo what was presented; they are logged (without
/// the credential) with the request id, as an audit trail.
public struct AuthenticationMiddleware<Context: LISARoutesContext>: RouterMiddleware {
    let authenticator: Authenticator
    let rateLimiter: RateLimiter?
    let acceptsClientCertificates: Bool

    /// - Parameters:
    ///   - rateLimiter: when given, each authenticated principal is held to its limit (429 over it).
    ///   - acceptsClientCertificates: a request without credentials signs in with the TLS
    ///     client certificate the server verified (`server.tls.clientCA`), if any.
    public init(authenticator: Authenticator, rateLimiter: RateLimiter? = nil, acceptsClientCertificates: Bool = false) {
        self.authenticator = authenticator
        self.rateLimiter = rateLimiter
        self.acceptsClientCertificates = acceptsClientCertificates
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented = PresentedCredential.extract(
            authorization: request.headers[.authorization],
            apiKey: request.headers[HTTPField.Name("Api-Key")!] ?? request.headers[HTTPField.Name("X-Api-Key")!]
        )
        var context = context
        var certificate: [UInt8]?
        if presented == nil, acceptsClientCertificates, let channel = context.channel {
            certificate = try? await Self.clientCertificate(of: channel)
        }
        do {
            if let certificate {
                // A client certificate the TLS layer verified against server.tls.clientCA.
                // The browser sends it to any site's request, so a cross-site request that
                // changes something is refused (Fetch Metadata, then Origin).
                try Self.refuseCrossSite(request)
                context.principal = try Principal(clientCertificateDER: certificate)
            } else {
                context.principal = try await authenticator.authenticate(presented)
            }
        } catch {
            context.logger.notice(
                "authentication failed",
                metadata: [
                    "lisa.request_id": "\(context.requestID ?? "")", "lisa.reason": "\(error.message)",
                    "lisa.path": "\(request.method) \(request.uri.path)",
                ]
            )
            throw error
        }
        // Signed in: the caller's trace sampling decision may count now (RequestSpanMiddleware).
        InstrumentationContext.current?.remoteSamplingGate?.confirm()
        if let rateLimiter, let principal = context.principal, Self.isMetered(method: request.method, path: request.uri.path) {
            try await rateLimiter.admit(principal)
        }
        return try await next(request, context)
    }

    /// Refuses a state-changing request another site made: `Sec-Fetch-Site` other than
    /// `same-origin`/`none`, or an `Origin` that is not this server's. Only certificate
    /// sign-ins need it: bearer credentials are never attached by the browser on its own.
    static func refuseCrossSite(_ request: Request) throws(LISAError) {
        guard request.method != .get, request.method != .head, request.method != .options else { return }
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
            throw LISAError.forbidden("Cross-site requests signed in with a client certificate are refused.")
        }
        if let origin = request.headers[HTTPField.Name("Origin")!], let host = request.headers[HTTPField.Name("Host")!] ?? request.head.authority {
            let originHost = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
            guard originHost?.lowercased() == host.lowercased() else {
                throw LISAError.forbidden("Cross-site requests signed in with a client certificate are refused.")
            }
        }
    }

    /// Whether a request counts against its principal's rate limit: the calls that cost
    /// compute — inference (chat, completions, embeddings), reading or deleting stored
    /// responses, usage reports and RAG work (similarity search, uploads, bulk ingestion).
    /// Reading lists, sessions and settings does not, so a UI can refresh what it shows
    /// without spending the user's budget.
    public static func isMetered(method: HTTPRequest.Method, path: String) -> Bool {
        if path == "/usage" { return true }
        if method == .get || method == .delete, path.hasPrefix("/v1/responses/") || path.hasPrefix("/v2/serve/responses/") { return true }
        if method == .post,
            path.hasSuffix("/chat/completions") || path.hasSuffix("/completions") || path.hasSuffix("/embeddings") || path.hasSuffix("/messages")
                || path.hasSuffix("/messages/count_tokens") || path.hasSuffix("/responses")
                || MediaRoute.allCases.contains(where: { path.hasSuffix("/" + $0.rawValue) })
        {
            return path.hasPrefix("/v1/") || path.hasPrefix("/v2/serve/")
        }
        guard path.hasPrefix("/repository/") else { return false }
        return path.hasSuffix("/similaritySearch") || (method == .post && (path.hasSuffix("/upload") || path.hasSuffix("/bulk")))
    }
}

extension AuthenticationMiddleware {
    /// The verified client certificate of the connection (HTTP/1.1) or of the HTTP/2
    /// connection a stream belongs to; `nil` without TLS or without a certificate.
    static func clientCertificate(of channel: any Channel) async throws -> [UInt8]? {
        for candidate in [channel, channel.parent].compactMap({ $0 }) {
            guard (try? await candidate.pipeline.handler(type: NIOSSLServerHandler.self).get()) != nil else { continue }
            return try await candidate.nioSSL_peerCertificate().get()?.toDERBytes()
        }
        return nil
    }
}

/// Lets only administrators through (403 otherwise). Every management route is registered
/// behind it.
public struct AdminOnlyMiddleware<Context: LISARoutesContext>: RouterMiddleware {
    let access: AccessConfiguration

    public init(access: AccessConfiguration) {
        self.access = access
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let principal = context.principal, access.isAdmin(principal) else {
            context.logger.notice(
                "management route refused",
                metadata: [
                    "lisa.request_id": "\(context.requestID ?? "")", "lisa.principal": "\(context.principal?.username ?? "")",
                    "lisa.path": "\(request.method) \(request.uri.path)",
                ]
            )
            throw LISAError.forbidden("This route is for administrators.")
        }
        let response = try await next(request, context)
        if request.method != .get {
            context.logger.notice(
                "management action",
                metadata: [
                    "lisa.request_id": "\(context.requestID ?? "")", "lisa.principal": "\(principal.username)",
                    "lisa.auth_method": "\(principal.method.rawValue)", "lisa.path": "\(request.method) \(request.uri.path)",
                    "lisa.status": "\(response.status.code)",
                ]
            )
        }
        return response
    }
}
