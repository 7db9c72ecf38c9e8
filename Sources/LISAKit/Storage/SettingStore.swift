/// Small named values LISA keeps for itself: the admin key's hash and its rotation, the
/// deployment id, the readiness probe's read.
///
/// Get one from ``SQLStateStore/settings``; it is safe to use concurrently.
public struct SettingStore: Sendable {
    let database: any StateDatabase

    /// The value stored under `key`, or `nil`.
    public func value(for key: String) async throws -> String? {
        try await database.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?["value"].string
    }

    /// Stores `value` under `key`, replacing any previous value.
    public func setValue(_ value: String, for key: String) async throws {
        try await database.query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [.text(key), .text(value)]
        )
    }
}
