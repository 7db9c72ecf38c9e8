import Crypto
public import Foundation
import Synchronization

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
    public static func bootstrap(configured: String?, settings: SettingStore) async throws -> (verifier: AdminKeyVerifier, generatedKey: String?) {
        if let configured, !configured.isEmpty {
            return (AdminKeyVerifier(key: configured), nil)
        }
        if let stored = try await settings.value(for: settingKey) {
            guard let verifier = AdminKeyVerifier(hexDigest: stored) else {
                throw LISAError.internalError("The stored admin key hash is corrupt; set LISA_ADMIN_KEY or remove the setting.")
            }
            return (verifier, nil)
        }
        let key = generate()
        let verifier = AdminKeyVerifier(key: key)
        try await settings.setValue(verifier.hexDigest, for: settingKey)
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

/// The admin keys in force: the current one and, for a grace period after a rotation, the
/// previous one. Shared by every request; rotation takes effect at once.
public final class AdminKeyring: Sendable {
    private struct State {
        var current: AdminKeyVerifier
        var previous: AdminKeyVerifier?
        var previousValidUntil: Date?
    }

    private let state: Mutex<State>
    /// Whether the key comes from `LISA_ADMIN_KEY` (then it cannot be rotated through the API).
    public let isConfigured: Bool

    /// A keyring with one key and no previous one.
    public init(current: AdminKeyVerifier, isConfigured: Bool = false) {
        self.state = Mutex(State(current: current))
        self.isConfigured = isConfigured
    }

    /// Whether `presented` is the current key, or the previous one within its grace period.
    public func verify(_ presented: String, at now: Date = Date()) -> Bool {
        let state = self.state.withLock { $0 }
        if state.current.verify(presented) { return true }
        if let previous = state.previous, let until = state.previousValidUntil, now < until {
            return previous.verify(presented)
        }
        return false
    }

    static let previousKey = "admin_key_previous_sha256"
    static let previousUntilKey = "admin_key_previous_valid_until"

    /// The keyring for this start: `LISA_ADMIN_KEY` when set, otherwise the stored hashes
    /// (generating a key on the very first start; it is returned to be printed once).
    public static func load(configured: String?, settings: SettingStore) async throws -> (keyring: AdminKeyring, generatedKey: String?) {
        let (verifier, generated) = try await AdminKey.bootstrap(configured: configured, settings: settings)
        let isConfigured = configured.map { !$0.isEmpty } ?? false
        let keyring = AdminKeyring(current: verifier, isConfigured: isConfigured)
        if !isConfigured, let hex = try await settings.value(for: previousKey), let previous = AdminKeyVerifier(hexDigest: hex),
            let untilText = try await settings.value(for: previousUntilKey), let until = Double(untilText)
        {
            keyring.state.withLock {
                $0.previous = previous
                $0.previousValidUntil = Date(timeIntervalSince1970: until)
            }
        }
        return (keyring, generated)
    }

    /// A rotated key (``AdminKeyRotation``).
    public typealias Rotation = AdminKeyRotation

    /// Replaces the key with a new one; the old one keeps working for `gracePeriod` seconds.
    /// Stored before it takes effect, so a restart keeps the new key.
    public func rotate(gracePeriod: TimeInterval, settings: SettingStore) async throws -> Rotation {
        guard !isConfigured else {
            throw LISAError.conflict("The admin key comes from LISA_ADMIN_KEY; change it there.", reason: "admin_key_configured")
        }
        guard (0...(30 * 86400)).contains(gracePeriod) else {
            throw LISAError.invalidRequest("gracePeriodSeconds must be between 0 and 2592000 (30 days).", param: "gracePeriodSeconds")
        }
        let key = AdminKey.generate()
        let next = AdminKeyVerifier(key: key)
        let until = Date().addingTimeInterval(gracePeriod)
        let current = state.withLock { $0.current }
        try await settings.setValue(current.hexDigest, for: Self.previousKey)
        try await settings.setValue(String(until.timeIntervalSince1970), for: Self.previousUntilKey)
        try await settings.setValue(next.hexDigest, for: AdminKey.settingKey)
        state.withLock { $0 = State(current: next, previous: current, previousValidUntil: until) }
        return Rotation(adminKey: key, previousKeyValidUntil: until)
    }
}
