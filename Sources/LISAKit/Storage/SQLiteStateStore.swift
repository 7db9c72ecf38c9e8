import Foundation
import Logging
import SQLiteNIO

/// A ``StateStore`` in one SQLite file: the zero-setup default (`<data-dir>/lisa.sqlite`).
///
/// Models are stored as their JSON definition keyed by `modelId`, so fields this version
/// does not act on survive. The schema version lives in `PRAGMA user_version`; opening
/// migrates an older file forward. Every statement is parameterized.
public final class SQLiteStateStore: StateStore {
    private let connection: SQLiteConnection
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// The schema version this build writes.
    static let schemaVersion = 2  // the number of migrations in migrate()

    private init(connection: SQLiteConnection) {
        self.connection = connection
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// A new file is created readable by its owner only (it holds upstream API keys); SQLite
    /// gives its `-wal` and `-shm` files the same mode.
    public static func open(path: String, logger: Logger) async throws -> SQLiteStateStore {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let store = SQLiteStateStore(connection: connection)
        do {
            try await store.migrate()
        } catch {
            try? await connection.close()
            throw error
        }
        return store
    }

    private func migrate() async throws {
        _ = try await connection.query("PRAGMA journal_mode=WAL", [])
        _ = try await connection.query("PRAGMA busy_timeout=5000", [])
        let version = try await connection.query("PRAGMA user_version", []).first?.column("user_version")?.integer ?? 0
        guard version < Self.schemaVersion else {
            if version > Self.schemaVersion {
                throw LISAError.internalError(
                    "The state database was written by a newer LISA (schema \(version), this build knows \(Self.schemaVersion))."
                )
            }
            return
        }
        // Each migration runs in its own transaction and ends by recording its version.
        let migrations: [[String]] = [
            [
                """
                CREATE TABLE IF NOT EXISTS models (
                    model_id TEXT PRIMARY KEY NOT NULL,
                    definition TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL
                )
                """,
                "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
            ],
            [
                """
                CREATE TABLE IF NOT EXISTS api_tokens (
                    id TEXT PRIMARY KEY NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    username TEXT NOT NULL,
                    record TEXT NOT NULL
                )
                """,
                "CREATE INDEX IF NOT EXISTS api_tokens_username ON api_tokens (username)",
            ],
        ]
        for (index, statements) in migrations.enumerated() where index >= Int(version) {
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            do {
                for statement in statements {
                    _ = try await connection.query(statement, [])
                }
                _ = try await connection.query("PRAGMA user_version = \(index + 1)", [])
                _ = try await connection.query("COMMIT", [])
            } catch {
                _ = try? await connection.query("ROLLBACK", [])
                throw error
            }
        }
    }

    public func models() async throws -> [ModelDefinition] {
        let rows = try await connection.query("SELECT definition FROM models ORDER BY model_id", [])
        return try rows.map { try decodeModel($0) }
    }

    public func model(id: String) async throws -> ModelDefinition? {
        let rows = try await connection.query("SELECT definition FROM models WHERE model_id = ?", [.text(id)])
        return try rows.first.map { try decodeModel($0) }
    }

    public func insertModel(_ model: ModelDefinition) async throws {
        let json = String(decoding: try encoder.encode(model), as: UTF8.self)
        let now = Date().timeIntervalSince1970
        let rows = try await connection.query(
            "INSERT INTO models (model_id, definition, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(model_id) DO NOTHING RETURNING model_id",
            [.text(model.modelId), .text(json), .float(now), .float(now)]
        )
        if rows.isEmpty {
            throw LISAError.conflict("A model with modelId '\(model.modelId)' already exists.", code: "model_exists")
        }
    }

    public func deleteModel(id: String) async throws -> Bool {
        let rows = try await connection.query("DELETE FROM models WHERE model_id = ? RETURNING model_id", [.text(id)])
        return !rows.isEmpty
    }

    public func setting(_ key: String) async throws -> String? {
        try await connection.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?.column("value")?.string
    }

    public func setSetting(_ key: String, to value: String) async throws {
        _ = try await connection.query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [.text(key), .text(value)]
        )
    }

    public func insertToken(_ token: APIToken) async throws {
        let record = String(decoding: try encoder.encode(token), as: UTF8.self)
        _ = try await connection.query(
            "INSERT INTO api_tokens (id, token_hash, username, record) VALUES (?, ?, ?, ?)",
            [.text(token.id), .text(token.tokenHash), .text(token.username), .text(record)]
        )
    }

    public func token(hash: String) async throws -> APIToken? {
        try await connection.query("SELECT record FROM api_tokens WHERE token_hash = ?", [.text(hash)]).first.map(decodeToken)
    }

    public func token(id: String) async throws -> APIToken? {
        try await connection.query("SELECT record FROM api_tokens WHERE id = ?", [.text(id)]).first.map(decodeToken)
    }

    public func tokens(username: String?) async throws -> [APIToken] {
        let rows =
            if let username {
                try await connection.query("SELECT record FROM api_tokens WHERE username = ? ORDER BY rowid", [.text(username)])
            } else {
                try await connection.query("SELECT record FROM api_tokens ORDER BY rowid", [])
            }
        return try rows.map(decodeToken)
    }

    public func deleteToken(id: String) async throws -> Bool {
        !(try await connection.query("DELETE FROM api_tokens WHERE id = ? RETURNING id", [.text(id)])).isEmpty
    }

    public func close() async throws {
        try await connection.close()
    }

    private func decodeToken(_ row: SQLiteRow) throws -> APIToken {
        guard let text = row.column("record")?.string else {
            throw LISAError.internalError("A stored token has no record.")
        }
        return try JSONDecoder().decode(APIToken.self, from: Data(text.utf8))
    }

    private func decodeModel(_ row: SQLiteRow) throws -> ModelDefinition {
        guard let text = row.column("definition")?.string else {
            throw LISAError.internalError("A stored model has no definition.")
        }
        return try JSONDecoder().decode(ModelDefinition.self, from: Data(text.utf8))
    }
}
