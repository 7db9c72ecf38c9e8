import Foundation
import NIOCore
import NIOPosix
public import NIOSSL
import SwiftASN1
import Synchronization
import X509

extension UpstreamTLS {
    private static let cache = Mutex<[UpstreamTLS: (at: ContinuousClock.Instant, configuration: TLSConfiguration)]>([:])

    /// ``makeConfiguration()``, kept for a minute: requests do not read the files, and a
    /// rotated client certificate is picked up within a minute.
    public func configuration() -> TLSConfiguration {
        let now = ContinuousClock.now
        if let cached = Self.cache.withLock({ $0[self] }), now - cached.at < .seconds(60) { return cached.configuration }
        let configuration = makeConfiguration()
        Self.cache.withLock { $0[self] = (now, configuration) }
        return configuration
    }

    /// NIO's client configuration: TLS 1.2 or newer, full verification (against `caFile`
    /// when given), the client certificate when given.
    public func makeConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile { configuration.trustRoots = .file(caFile) }
        if let certificate, let privateKey {
            configuration.certificateChain = (try? NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }) ?? []
            // Loaded as PEM whatever the file is called (NIO guesses the format from the extension).
            configuration.privateKey = (try? NIOSSLPrivateKey(file: privateKey, format: .pem)).map { .privateKey($0) }
        }
        if insecureSkipVerify == true { configuration.certificateVerification = .none }
        return configuration
    }

    /// Checks that the files exist and parse; the first problem is a 400 naming `param`.
    public func validate(param: String) throws(LISAError) {
        if let caFile {
            do { _ = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
                throw .invalidRequest("\(param).caFile: cannot read a PEM certificate bundle from '\(caFile)'.", param: "\(param).caFile")
            }
        }
        if (certificate == nil) != (privateKey == nil) {
            throw .invalidRequest("\(param): certificate and privateKey go together.", param: "\(param).certificate")
        }
        if let certificate {
            do { _ = try NIOSSLCertificate.fromPEMFile(certificate) } catch {
                throw .invalidRequest("\(param).certificate: cannot read a PEM certificate from '\(certificate)'.", param: "\(param).certificate")
            }
        }
        if let privateKey {
            do { _ = try NIOSSLPrivateKey(file: privateKey, format: .pem) } catch {
                throw .invalidRequest("\(param).privateKey: cannot read a PEM private key from '\(privateKey)'.", param: "\(param).privateKey")
            }
        }
    }
}

/// Explains a failed TLS handshake with an upstream: connects again without verifying,
/// reads the certificate the server presents and says what is wrong with it (expired, not
/// yet valid, for another name, or issued by a CA the bundle does not hold).
/// Results are kept for 30 s per endpoint, so a failing endpoint under load costs one
/// diagnosis, not one per request.
public enum TLSDiagnosis {
    private static let cache = Mutex<[String: (at: ContinuousClock.Instant, reason: String)]>([:])

    public static func explain(url: String, tls: UpstreamTLS?, fallback: String) async -> String {
        guard let components = URLComponents(string: url), let host = components.host else { return fallback }
        let port = components.port ?? 443
        let key = "\(host):\(port)|\(tls?.caFile ?? "")"
        if let cached = cache.withLock({ $0[key] }), ContinuousClock.now - cached.at < .seconds(30) { return cached.reason }
        let reason = await diagnose(host: host, port: port, caFile: tls?.caFile) ?? fallback
        cache.withLock { $0[key] = (ContinuousClock.now, reason) }
        return reason
    }

    static func diagnose(host: String, port: Int, caFile: String?) async -> String? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        guard let context = try? NIOSSLContext(configuration: configuration) else { return nil }
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        let serverName: String? = isAddress ? nil : host
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                }
                .connect(host: host, port: port).get()
            defer { channel.close(promise: nil) }
            // The handshake completes before the peer certificate is available.
            var peer: NIOSSLCertificate?
            for _ in 0..<50 {
                peer = try await channel.nioSSL_peerCertificate().get()
                if peer != nil { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            guard let peer else { return nil }
            return describe(try Certificate(derEncoded: try peer.toDERBytes()), host: host, caFile: caFile)
        } catch {
            return nil
        }
    }

    /// What is wrong with `certificate` for `host`, checked in the order a person would;
    /// `nil` when nothing is (the handshake failed for another reason, such as a client
    /// certificate the server wants).
    static func describe(_ certificate: Certificate, host: String, caFile: String?, now: Date = Date()) -> String? {
        var problems: [String] = []
        if now > certificate.notValidAfter {
            problems.append("its certificate expired on \(iso(certificate.notValidAfter))")
        } else if now < certificate.notValidBefore {
            problems.append("its certificate is not valid before \(iso(certificate.notValidBefore))")
        }
        let names = subjectNames(certificate)
        if !names.contains(where: { matches($0, host: host) }) {
            problems.append("its certificate is for \(names.isEmpty ? "no name" : names.joined(separator: ", ")), not \(host) (name mismatch)")
        }
        let issuer = certificate.issuer.description
        let trusted =
            caFile.flatMap { try? NIOSSLCertificate.fromPEMFile($0) }?
            .compactMap { try? Certificate(derEncoded: try $0.toDERBytes()) } ?? []
        if !trusted.contains(where: { $0.subject == certificate.issuer }) {
            let bundle = caFile.map { "the CA bundle '\($0)'" } ?? "the system's trust store"
            problems.append("its certificate is issued by \(issuer), which \(bundle) does not hold (unknown CA)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    static func subjectNames(_ certificate: Certificate) -> [String] {
        var names: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                switch name {
                case .dnsName(let dns): names.append(dns)
                case .ipAddress(let bytes):
                    let octets = Array(bytes.bytes)
                    if octets.count == 4 { names.append(octets.map(String.init).joined(separator: ".")) }
                default: break
                }
            }
        }
        return names
    }

    static func matches(_ name: String, host: String) -> Bool {
        let name = name.lowercased()
        let host = host.lowercased()
        if name == host { return true }
        if name.hasPrefix("*."), let dot = host.firstIndex(of: ".") {
            return host[host.index(after: dot)...] == name.dropFirst(2)
        }
        return false
    }

    private static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
