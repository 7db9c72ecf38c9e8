import Foundation
import SwiftASN1
import X509

extension Principal {
    /// The principal a verified client certificate stands for: the subject's common name
    /// as the username, its organizational units as groups (so `OU=lisa-admins` grants the
    /// admin group when that is `auth.adminGroup`).
    public init(clientCertificateDER der: [UInt8]) throws(LISAError) {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: der)
        } catch {
            throw .unauthorized("The client certificate cannot be read.")
        }
        var commonName: String?
        var units: [String] = []
        for rdn in certificate.subject {
            for attribute in rdn {
                if attribute.type == .RDNAttributeType.commonName { commonName = commonName ?? attribute.value.description }
                if attribute.type == .RDNAttributeType.organizationalUnitName { units.append(attribute.value.description) }
            }
        }
        guard let commonName, !commonName.isEmpty else {
            throw .unauthorized("The client certificate has no common name (CN) to sign in as.")
        }
        guard !Principal.isReserved(commonName) else {
            throw .unauthorized("The client certificate's common name is reserved for LISA itself.")
        }
        self.init(username: commonName, groups: units, method: .clientCertificate, credentialExpiresAt: certificate.notValidAfter)
    }
}
