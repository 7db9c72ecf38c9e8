import Foundation
public import Logging
import NIOCore
public import NIOSSL
public import ServiceLifecycle
import Synchronization

/// HTTPS for LISAServe (`server.tls`).
public struct ServerTLSConfiguration: Sendable, Hashable, Codable {
    /// PEM certificate chain, leaf first.
    public var certificate: String
    /// PEM private key.
    public var privateKey: String
    /// PEM bundle of the CAs whose client certificates are accepted (mTLS); `nil`: none asked.
    public var clientCA: String?
    /// With `clientCA`: refuse connections that present no client certificate.
    public var requireClientCertificate: Bool?
    /// Seconds between checks of the files for a new certificate. Default 5.
    public var reloadIntervalSeconds: Double?

    public init(certificate: String, privateKey: String, clientCA: String? = nil, requireClientCertificate: Bool? = nil) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.clientCA = clientCA
        self.requireClientCertificate = requireClientCertificate
    }
}

/// The server certificate and key, reloaded when their files change, so a rotated
/// certificate is served to new connections without a restart. A file that does not
/// parse (half-written during a rotation) keeps the previous pair and is retried.
///
/// ``configuration()`` gives a NIO TLS configuration whose per-handshake callback hands
/// out the current pair; run the reloader as a `Service`.
public final class ReloadingServerCertificate: Service, Sendable {
    public let settings: ServerTLSConfiguration
    private let logger: Logger
    private struct Loaded: @unchecked Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var stamp: String
    }
    private let current: Mutex<Loaded>

    /// Loads the pair; throws a message naming the file when it cannot.
    public init(settings: ServerTLSConfiguration, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        self.current = Mutex(try Self.load(settings))
    }

    static func stamp(_ settings: ServerTLSConfiguration) -> String {
        [settings.certificate, settings.privateKey].map { path in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let size = (attributes?[.size] as? Int) ?? -1
            let inode = (attributes?[.systemFileNumber] as? Int) ?? 0
            return "\(modified)/\(size)/\(inode)"
        }.joined(separator: "|")
    }

    private static func load(_ settings: ServerTLSConfiguration) throws -> Loaded {
        let stamp = stamp(settings)
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(settings.certificate)
        } catch {
            throw ConfigurationError("server.tls.certificate: cannot read a PEM certificate chain from '\(settings.certificate)'")
        }
        guard !chain.isEmpty else { throw ConfigurationError("server.tls.certificate: '\(settings.certificate)' holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: settings.privateKey, format: .pem)
        } catch {
            throw ConfigurationError("server.tls.privateKey: cannot read a PEM private key from '\(settings.privateKey)'")
        }
        return Loaded(chain: chain, key: key, stamp: stamp)
    }

    /// Reloads the pair if either file changed; returns whether it did.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        let stamp = Self.stamp(settings)
        guard stamp != current.withLock({ $0.stamp }) else { return false }
        do {
            let loaded = try Self.load(settings)
            current.withLock { $0 = loaded }
            logger.notice("server certificate reloaded", metadata: ["lisa.certificate": "\(settings.certificate)"])
            return true
        } catch {
            logger.error("server certificate not reloaded; still serving the previous one", metadata: ["lisa.error": "\(error)"])
            return false
        }
    }

    public func run() async throws {
        let interval = Duration.seconds(clamping: settings.reloadIntervalSeconds ?? 5)
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                self.reloadIfChanged()
            }
        }
    }

    /// TLS 1.2+ with forward-secret AEAD suites only, ALPN set by the server builder, the
    /// current certificate per handshake, and client certificates when `clientCA` is set.
    public func configuration() throws -> TLSConfiguration {
        let loaded = current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: loaded.chain.map { .certificate($0) }, privateKey: .privateKey(loaded.key)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuiteValues = [
            .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        if let clientCA = settings.clientCA {
            configuration.trustRoots = .file(clientCA)
            configuration.certificateVerification = settings.requireClientCertificate == true ? .noHostnameVerification : .optionalVerification
        }
        configuration.sslContextCallback = { [self] _, promise in
            let loaded = self.current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = loaded.chain.map { .certificate($0) }
            override.privateKey = .privateKey(loaded.key)
            promise.succeed(override)
        }
        return configuration
    }
}
