import Crypto
import Foundation

/// Verifies the management (admin) key without keeping it: only its SHA-256 is held.
///
/// Admin keys are 256-bit random secrets, so a fast hash is the right tool (as for API
/// tokens); comparison is constant-time.
public struct AdminKeyVerifier: Sendable {
    private let digest: [UInt8]

    /// A verifier for a key given in clear (from `LISA_ADMIN_KEY`).
    public init(key: String) {
        self.digest = Array(SHA256.hash(data: Data(key.utf8)))
    }

    /// A verifier for a stored hex SHA-256 digest; `nil` when the text is not one.
    public init?(hexDigest: String) {
        guard let bytes = [UInt8](hex: hexDigest), bytes.count == SHA256.byteCount else { return nil }
        self.digest = bytes
    }

    /// The hex SHA-256 digest, the form that is stored.
    public var hexDigest: String { digest.map { String(format: "%02x", $0) }.joined() }

    /// Whether `presented` is the admin key.
    public func verify(_ presented: String) -> Bool {
        let candidate = Array(SHA256.hash(data: Data(presented.utf8)))
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, digest) { difference |= a ^ b }
        return difference == 0
    }
}

/// Creating and loading the admin key.
public enum AdminKey {
    /// The settings key under which the admin key's hash is stored.
    static let settingKey = "admin_key_sha256"

    /// Makes a new key: `lisa-admin-` followed by 256 random bits in base64url.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "lisa-admin-" + Data(bytes).base64URLEncodedString()
    }

    /// The admin key in force, and the key itself when this call generated it (to print once).
    ///
    /// A `configured` key wins and nothing is stored. Otherwise the stored hash is used; when
    /// there is none, a key is generated and only its hash is stored.
    public static func bootstrap(configured: String?, store: any StateStore) async throws -> (verifier: AdminKeyVerifier, generatedKey: String?) {
        if let configured, !configured.isEmpty {
            return (AdminKeyVerifier(key: configured), nil)
        }
        if let stored = try await store.setting(settingKey) {
            guard let verifier = AdminKeyVerifier(hexDigest: stored) else {
                throw LISAError.internalError("The stored admin key hash is corrupt; set LISA_ADMIN_KEY or remove the setting.")
            }
            return (verifier, nil)
        }
        let key = generate()
        let verifier = AdminKeyVerifier(key: key)
        try await store.setSetting(settingKey, to: verifier.hexDigest)
        return (verifier, key)
    }
}

extension Data {
    /// Base64url without padding (RFC 4648 §5).
    func base64URLEncodedString() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

extension [UInt8] {
    init?(hex: String) {
        guard hex.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self = bytes
    }
}

/// Reads the credential a request presents: `Authorization: Bearer <key>` or `Api-Key: <key>`.
public enum PresentedCredential {
    /// The secret from the header values, or `nil` when neither header carries one.
    public static func extract(authorization: String?, apiKey: String?) -> String? {
        if let authorization {
            let value = trimmed(authorization.utf8[...])
            let scheme = Array("bearer".utf8)
            if value.count > scheme.count,
                zip(value.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 }),
                value[value.index(value.startIndex, offsetBy: scheme.count)] == UInt8(ascii: " ")
            {
                let token = trimmed(value.dropFirst(scheme.count + 1))
                if !token.isEmpty { return String(token) }
            }
        }
        if let apiKey {
            let token = trimmed(apiKey.utf8[...])
            if !token.isEmpty { return String(token) }
        }
        return nil
    }

    private static func trimmed(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        var bytes = bytes
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { bytes.removeFirst() }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { bytes.removeLast() }
        return bytes
    }
}
