import Foundation
import Logging

extension SQLStateStore {
    // MARK: - Schema

    /// How long opening a database may spend migrating it (and waiting for another replica
    /// that migrates), whatever the database's per-call deadline.
    static let migrationTimeLimit: Duration = .seconds(3600)

    /// The schema version this build writes: the number of migrations.
    public static var schemaVersion: Int { migrations.count }

    /// Each migration is portable SQL (types both engines accept: TEXT, BIGINT, DOUBLE
    /// PRECISION). Append only; never edit one that has shipped in a way SQLite or
    /// PostgreSQL would read differently.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE IF NOT EXISTS models (
                model_id TEXT PRIMARY KEY NOT NULL,
                definition TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
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
        [
            "ALTER TABLE models ADD COLUMN status TEXT NOT NULL DEFAULT 'InService'",
            "ALTER TABLE models ADD COLUMN status_reason TEXT",
            "ALTER TABLE api_tokens ADD COLUMN created_at DOUBLE PRECISION NOT NULL DEFAULT 0",
            """
            CREATE TABLE IF NOT EXISTS model_replicas (
                replica_id TEXT PRIMARY KEY NOT NULL,
                model_id TEXT NOT NULL,
                record TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS model_replicas_model ON model_replicas (model_id)",
            """
            CREATE TABLE IF NOT EXISTS instances (
                instance_id TEXT PRIMARY KEY NOT NULL,
                heartbeat_at DOUBLE PRECISION NOT NULL,
                record TEXT NOT NULL
            )
            """,
        ],
        [
            """
            CREATE TABLE IF NOT EXISTS records (
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                parent TEXT,
                body TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (kind, id)
            )
            """,
            "CREATE INDEX IF NOT EXISTS records_parent ON records (kind, parent)",
        ],
        // v5: a small summary beside a record's body, so lists need not read whole documents.
        ["ALTER TABLE records ADD COLUMN summary TEXT"],
        // v6: the leader's lease (fencing, PostgreSQL) and rate-limit buckets shared by replicas.
        [
            """
            CREATE TABLE IF NOT EXISTS lisa_leases (
                key BIGINT PRIMARY KEY NOT NULL,
                holder TEXT NOT NULL,
                confirmed_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS rate_buckets (
                key TEXT PRIMARY KEY NOT NULL,
                tokens DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
        ],
        // v7: uploads kept in the store (every replica can ingest them) and leases on work.
        [
            """
            CREATE TABLE IF NOT EXISTS blobs (
                id TEXT PRIMARY KEY NOT NULL,
                data {BLOB} NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS claims (
                id TEXT PRIMARY KEY NOT NULL,
                holder TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
        ],
        // v8: usage records, budget counters and their open reservations, hosted replica time.
        [
            """
            CREATE TABLE IF NOT EXISTS usage_records (
                id TEXT PRIMARY KEY NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                hour BIGINT NOT NULL,
                request_id TEXT NOT NULL,
                username TEXT NOT NULL,
                token_id TEXT,
                groups TEXT NOT NULL,
                model TEXT NOT NULL,
                served_by TEXT,
                endpoint TEXT,
                operation TEXT NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                estimated BIGINT NOT NULL,
                duration_ms DOUBLE PRECISION NOT NULL,
                ttft_ms DOUBLE PRECISION,
                status TEXT NOT NULL,
                cost DOUBLE PRECISION
            )
            """,
            "CREATE INDEX IF NOT EXISTS usage_records_at ON usage_records (at)",
            "CREATE INDEX IF NOT EXISTS usage_records_user_at ON usage_records (username, at)",
            """
            CREATE TABLE IF NOT EXISTS budget_counters (
                key TEXT NOT NULL,
                period_start DOUBLE PRECISION NOT NULL,
                spent DOUBLE PRECISION NOT NULL,
                reserved DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (key, period_start)
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS budget_reservations (
                id TEXT PRIMARY KEY NOT NULL,
                lines TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS replica_seconds (
                model TEXT NOT NULL,
                hour BIGINT NOT NULL,
                seconds DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (model, hour)
            )
            """,
        ],
        // v9: hourly sums of the usage records, kept as records are written, so reports read
        // a few rows an hour instead of every call ('' is the token of calls without one).
        [
            """
            CREATE TABLE IF NOT EXISTS usage_hourly (
                hour BIGINT NOT NULL,
                model TEXT NOT NULL,
                username TEXT NOT NULL,
                token_id TEXT NOT NULL,
                groups TEXT NOT NULL,
                requests BIGINT NOT NULL,
                errors BIGINT NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                estimated BIGINT NOT NULL,
                cost DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (hour, model, username, token_id, groups)
            )
            """,
            "CREATE INDEX IF NOT EXISTS usage_hourly_user_hour ON usage_hourly (username, hour)",
            "INSERT INTO usage_hourly (\(UsageStore.usageHourlyColumns)) \(UsageStore.usageHourlySelect) GROUP BY \(UsageStore.usageHourlyKeys)",
        ],
    ]

    func migrate() async throws {
        let dialect = database.dialect
        // Replicas starting beside the one that migrates wait for its advisory lock, and a
        // back-fill grows with the data: neither is held to the per-call deadline.
        let applied = try await database.transaction(atLeast: Self.migrationTimeLimit) { db -> Int in
            if dialect == .postgres {
                try await db.query("SELECT pg_advisory_xact_lock(?)", [.integer(Self.migrationLockKey)])
            }
            try await db.query("CREATE TABLE IF NOT EXISTS lisa_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
            var version: Int
            if let stored = try await db.query("SELECT version FROM lisa_schema WHERE id = 1").first?["version"].int {
                version = stored
            } else {
                // Files written before lisa_schema kept their version in SQLite's user_version.
                version = dialect == .sqlite ? (try await db.query("PRAGMA user_version").first?["user_version"].int ?? 0) : 0
                try await db.query("INSERT INTO lisa_schema (id, version) VALUES (1, ?)", [.integer(Int64(version))])
            }
            guard version <= Self.schemaVersion else {
                throw LISAError.internalError(
                    "The state database was written by a newer LISA (schema \(version); this build knows schema \(Self.schemaVersion) and older). "
                        + "Run that LISA version or a newer one, or restore a backup taken before the upgrade (Documentation/Upgrading.md)."
                )
            }
            for (index, statements) in Self.migrations.enumerated() where index >= version {
                for statement in statements {
                    try await db.query(statement.replacingOccurrences(of: "{BLOB}", with: dialect == .postgres ? "BYTEA" : "BLOB"))
                }
                version = index + 1
            }
            try await db.query("UPDATE lisa_schema SET version = ? WHERE id = 1", [.integer(Int64(version))])
            return version
        }
        logger.debug("state schema ready", metadata: ["lisa.schema_version": "\(applied)", "lisa.database": "\(dialect.rawValue)"])
    }
}
