import Foundation
import LISAOpenAI

/// TLS settings for calling an HTTPS upstream: globally (`upstream.tls`) or per endpoint
/// (`endpoints[].tls`, member by member over the global ones).
public struct UpstreamTLS: Sendable, Hashable, Codable {
    /// PEM bundle of the CAs to trust (instead of the system's).
    public var caFile: String?
    /// PEM client certificate chain, for upstreams that require one (mTLS).
    public var certificate: String?
    /// PEM private key of the client certificate.
    public var privateKey: String?
    /// Skips certificate verification. For labs only: logged loudly at start.
    public var insecureSkipVerify: Bool?

    public init(caFile: String? = nil, certificate: String? = nil, privateKey: String? = nil, insecureSkipVerify: Bool? = nil) {
        self.caFile = caFile
        self.certificate = certificate
        self.privateKey = privateKey
        self.insecureSkipVerify = insecureSkipVerify
    }

    /// These settings over `defaults`: each member set here wins.
    public func over(_ defaults: UpstreamTLS?) -> UpstreamTLS {
        guard let defaults else { return self }
        return UpstreamTLS(
            caFile: caFile ?? defaults.caFile,
            certificate: certificate ?? defaults.certificate,
            privateKey: privateKey ?? defaults.privateKey,
            insecureSkipVerify: insecureSkipVerify ?? defaults.insecureSkipVerify
        )
    }
}
