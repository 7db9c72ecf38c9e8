import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

@testable import LISAKit

/// A CA and certificates made in memory with swift-certificates.
struct TestPKI {
    let caKey = P256.Signing.PrivateKey()
    let caName: DistinguishedName
    let ca: Certificate

    init(name: String) throws {
        caName = try DistinguishedName { CommonName(name) }
        ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey), notValidBefore: Date().addingTimeInterval(-3600),
            notValidAfter: Date().addingTimeInterval(86400), issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil)) },
            issuerPrivateKey: .init(caKey)
        )
    }

    func issue(
        subject: DistinguishedName, names: [GeneralName] = [], validFrom: Date = Date().addingTimeInterval(-3600),
        until: Date = Date().addingTimeInterval(86400)
    ) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: validFrom, notValidAfter: until,
            issuer: caName, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { SubjectAlternativeNames(names) }, issuerPrivateKey: .init(caKey)
        )
    }

    func writeCA() throws -> String {
        var serializer = DER.Serializer()
        try serializer.serialize(ca)
        let pem = PEMDocument(type: "CERTIFICATE", derBytes: serializer.serializedBytes).pemString
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-ca-\(UUID().uuidString).pem").path
        try pem.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite("TLS")
struct TLSTests {
    @Test("a failed upstream handshake is explained: expired, name mismatch, unknown CA")
    func diagnosis() throws {
        let pki = try TestPKI(name: "Private CA")
        let caFile = try pki.writeCA()
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        let subject = try DistinguishedName { CommonName("upstream") }

        let good = try pki.issue(subject: subject, names: [.dnsName("vllm.internal"), .ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 5]))])
        #expect(TLSDiagnosis.describe(good, host: "vllm.internal", caFile: caFile) == nil, "nothing wrong with the certificate")
        #expect(TLSDiagnosis.describe(good, host: "10.0.0.5", caFile: caFile) == nil, "IP SANs count")

        let unknown = try #require(TLSDiagnosis.describe(good, host: "vllm.internal", caFile: nil))
        #expect(unknown.contains("unknown CA") && unknown.contains("Private CA") && unknown.contains("system's trust store"))

        let wrongName = try #require(TLSDiagnosis.describe(good, host: "other.internal", caFile: caFile))
        #expect(wrongName.contains("name mismatch") && wrongName.contains("vllm.internal"))

        let expired = try pki.issue(
            subject: subject, names: [.dnsName("vllm.internal")], validFrom: Date().addingTimeInterval(-86400 * 10),
            until: Date().addingTimeInterval(-86400))
        #expect(TLSDiagnosis.describe(expired, host: "vllm.internal", caFile: caFile)?.contains("expired on") == true)

        let wildcard = try pki.issue(subject: subject, names: [.dnsName("*.models.internal")])
        #expect(TLSDiagnosis.describe(wildcard, host: "a.models.internal", caFile: caFile) == nil)
        #expect(TLSDiagnosis.describe(wildcard, host: "a.b.models.internal", caFile: caFile)?.contains("mismatch") == true, "one label only")
    }

    @Test("a client certificate signs in as its CN with its OUs as groups")
    func clientCertificatePrincipal() throws {
        let pki = try TestPKI(name: "Client CA")
        let certificate = try pki.issue(
            subject: try DistinguishedName {
                OrganizationalUnitName("lisa-admins")
                OrganizationalUnitName("team-a")
                CommonName("batch-job")
            })
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        let principal = try Principal(clientCertificateDER: serializer.serializedBytes)
        #expect(principal.username == "batch-job" && Set(principal.groups) == ["lisa-admins", "team-a"])
        #expect(principal.method == .clientCertificate)
        #expect(AccessConfiguration(adminGroup: "lisa-admins").isAdmin(principal))

        let nameless = try pki.issue(subject: try DistinguishedName { OrganizationalUnitName("x") })
        var other = DER.Serializer()
        try other.serialize(nameless)
        #expect(throws: LISAError.self) { try Principal(clientCertificateDER: other.serializedBytes) }
        #expect(throws: LISAError.self) { try Principal(clientCertificateDER: [1, 2, 3]) }
    }

    @Test("server and upstream TLS come from the file, the environment and flags; half a pair is refused")
    func configuration() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-tls-\(UUID().uuidString).yaml").path
        try """
        server:
          tls: {certificate: /etc/lisa/server.pem, privateKey: /etc/lisa/server.key, clientCA: /etc/lisa/clients.pem,
                requireClientCertificate: true, reloadIntervalSeconds: 2}
        upstream:
          tls: {insecureSkipVerify: true}
        auth: {authority: https://idp.internal/realms/lisa, clientId: lisa, caFile: /etc/lisa/idp-ca.pem}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try LISAConfiguration.load(file: path, environment: ["LISA_TLS_CERTIFICATE": "/run/secrets/new.pem"])
        #expect(configuration.serverTLS?.certificate == "/run/secrets/new.pem", "the environment wins over the file")
        #expect(configuration.serverTLS?.privateKey == "/etc/lisa/server.key")
        #expect(configuration.serverTLS?.clientCA == "/etc/lisa/clients.pem" && configuration.serverTLS?.requireClientCertificate == true)
        #expect(configuration.serverTLS?.reloadIntervalSeconds == 2)
        #expect(configuration.upstreamTLS?.insecureSkipVerify == true)
        #expect(configuration.oidc?.caFile == "/etc/lisa/idp-ca.pem")

        #expect(throws: ConfigurationError.self) {
            try LISAConfiguration.load(file: nil, environment: ["LISA_TLS_CERTIFICATE": "/etc/lisa/server.pem"])
        }
        let endpointTLS = UpstreamTLS(caFile: "/ca.pem").over(UpstreamTLS(caFile: "/global.pem", insecureSkipVerify: false))
        #expect(endpointTLS.caFile == "/ca.pem" && endpointTLS.insecureSkipVerify == false, "endpoint settings over the global ones")
    }
}
