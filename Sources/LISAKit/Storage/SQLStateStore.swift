import Foundation
import Logging
import Synchronization

/// The ``StateStore``: one implementation over a ``StateDatabase``, so SQLite (a file in the
/// data directory, or memory) and PostgreSQL share the schema, the migrations and the
/// behaviour.
///
/// Documents (models, tokens, replica records) are stored as JSON next to the columns that
/// are queried, so fields this version does not act on survive. The schema version lives in
/// `lisa_schema`; opening migrates an older database forward in one transaction (on
/// PostgreSQL under an advisory lock, so replicas starting together migrate once). Every
/// statement is parameterized.
///
/// On PostgreSQL, changes reach the other replicas through `LISTEN/NOTIFY` on the
/// `lisa_state` channel, and leadership is a session advisory lock.
public final class SQLStateStore: StateStore {
    package let database: any StateDatabase
    public let instanceID: String
    public var isShared: Bool { database.changeFeed != nil }

    public func openPGVector(logger: Logger) async throws -> PGVectorStore? {
        guard let postgres = database as? PostgresDatabase else { return nil }
        return try await PGVectorStore.open(database: postgres, logger: logger)
    }
    private let logger: Logger
    /// What a replica waiting for leadership retries by.
    private let clock: AnyClock
    private let broadcaster = ChangeBroadcaster()
    private let listener: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// The channel changes are published on (PostgreSQL).
    static let channel = "lisa_state"
    /// Advisory lock keys ("LISA" in ASCII, then a purpose).
    static let migrationLockKey: Int64 = 0x4C49_5341_0001
    static let leaderLockKey: Int64 = 0x4C49_5341_0002

    private init(database: any StateDatabase, logger: Logger, clock: AnyClock) {
        self.database = database
        self.logger = logger
        self.clock = clock
        self.instanceID = UUID().uuidString.lowercased()
    }

    /// Opens the store on `database`, migrating its schema. `clock`: what a replica waiting
    /// for leadership retries by.
    package static func open(database: any StateDatabase, logger: Logger, clock: AnyClock = .continuous) async throws -> SQLStateStore {
        let store = SQLStateStore(database: database, logger: logger, clock: clock)
        do {
            try await store.migrate()
            try await store.releaseUnsharedReservations()
        } catch {
            try? await database.close()
            throw error
        }
        if let feed = database.changeFeed {
            store.startListening(feed)
        }
        return store
    }

    /// The embedded default: SQLite at `path`, created readable by its owner only.
    public static func openSQLite(path: String, logger: Logger) async throws -> SQLStateStore {
        try await open(database: try await SQLiteDatabase.open(path: path, logger: logger), logger: logger)
    }

    /// PostgreSQL at `url` (`postgres://…`), for several LISAServe replicas. `clock`: what a
    /// replica waiting for leadership retries by (each second).
    public static func openPostgres(url: String, logger: Logger, clock: AnyClock = .continuous) async throws -> SQLStateStore {
        try await open(database: try await PostgresDatabase.connect(url: url, logger: logger), logger: logger, clock: clock)
    }

    /// A store in memory (SQLite), for tests and short-lived embedding.
    public static func inMemory() async throws -> SQLStateStore {
        try await open(database: try await SQLiteDatabase.inMemory(), logger: Logger(label: "lisa.store"))
    }

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
            "INSERT INTO usage_hourly (\(usageHourlyColumns)) \(usageHourlySelect) GROUP BY \(usageHourlyKeys)",
        ],
    ]

    private func migrate() async throws {
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

    // MARK: - Models

    private static let modelColumns = "model_id, definition, status, status_reason, created_at, updated_at"

    public func models() async throws -> [StoredModel] {
        try await database.query("SELECT \(Self.modelColumns) FROM models ORDER BY model_id").map(Self.decodeModel)
    }

    public func model(id: String) async throws -> StoredModel? {
        try await database.query("SELECT \(Self.modelColumns) FROM models WHERE model_id = ?", [.text(id)]).first.map(Self.decodeModel)
    }

    @discardableResult
    public func insertModel(_ model: ModelDefinition, status: ModelStatus) async throws -> StoredModel {
        let now = Date().timeIntervalSince1970
        let rows = try await database.query(
            """
            INSERT INTO models (model_id, definition, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (model_id) DO NOTHING RETURNING model_id
            """,
            [.text(model.modelId), .text(try Self.json(model)), .text(status.rawValue), .double(now), .double(now)]
        )
        if rows.isEmpty {
            throw LISAError.conflict("A model with modelId '\(model.modelId)' already exists.", reason: "model_exists")
        }
        await publish(StateChange(kind: .model, id: model.modelId))
        return StoredModel(definition: model, status: status, createdAt: now, updatedAt: now)
    }

    public func updateModel(
        id: String, expecting: Set<ModelStatus>?, _ change: @escaping @Sendable (inout StoredModel) throws -> Void
    ) async throws -> StoredModel? {
        let lock = database.dialect == .postgres ? " FOR UPDATE" : ""
        let updated = try await database.transaction { db -> StoredModel? in
            let rows = try await db.query("SELECT \(Self.modelColumns) FROM models WHERE model_id = ?\(lock)", [.text(id)])
            guard var model = try rows.first.map(Self.decodeModel) else { return nil }
            if let expecting, !expecting.contains(model.status) { return nil }
            let before = model
            try change(&model)
            guard model != before else { return model }
            model.updatedAt = Date().timeIntervalSince1970
            try await db.query(
                "UPDATE models SET definition = ?, status = ?, status_reason = ?, updated_at = ? WHERE model_id = ?",
                [
                    .text(try Self.json(model.definition)), .text(model.status.rawValue), model.statusReason.map(StateValue.text) ?? .null,
                    .double(model.updatedAt), .text(id),
                ]
            )
            return model
        }
        if updated != nil { await publish(StateChange(kind: .model, id: id)) }
        return updated
    }

    public func deleteModel(id: String, expecting: Set<ModelStatus>?) async throws -> Bool {
        let deleted = try await database.transaction { db -> Bool in
            let rows: [StateRow]
            if let expecting {
                let marks = Array(repeating: "?", count: expecting.count).joined(separator: ", ")
                rows = try await db.query(
                    "DELETE FROM models WHERE model_id = ? AND status IN (\(marks)) RETURNING model_id",
                    [.text(id)] + expecting.map { .text($0.rawValue) }
                )
            } else {
                rows = try await db.query("DELETE FROM models WHERE model_id = ? RETURNING model_id", [.text(id)])
            }
            guard !rows.isEmpty else { return false }
            try await db.query("DELETE FROM model_replicas WHERE model_id = ?", [.text(id)])
            return true
        }
        if deleted { await publish(StateChange(kind: .model, id: id)) }
        return deleted
    }

    private static func decodeModel(_ row: StateRow) throws -> StoredModel {
        guard let text = row["definition"].string else { throw LISAError.internalError("A stored model has no definition.") }
        let definition = try JSONDecoder().decode(ModelDefinition.self, from: Data(text.utf8))
        let status = row["status"].string.flatMap(ModelStatus.init(rawValue:)) ?? .inService
        return StoredModel(
            definition: definition, status: status, statusReason: row["status_reason"].string,
            createdAt: row["created_at"].double ?? 0, updatedAt: row["updated_at"].double ?? 0
        )
    }

    // MARK: - Replicas and instances

    public func replicas(modelId: String?) async throws -> [ReplicaRecord] {
        let rows =
            if let modelId {
                try await database.query("SELECT record FROM model_replicas WHERE model_id = ? ORDER BY replica_id", [.text(modelId)])
            } else {
                try await database.query("SELECT record FROM model_replicas ORDER BY model_id, replica_id")
            }
        return try rows.map { try Self.decode(ReplicaRecord.self, $0["record"]) }
    }

    public func saveReplica(_ replica: ReplicaRecord) async throws {
        try await database.query(
            """
            INSERT INTO model_replicas (replica_id, model_id, record, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (replica_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at
            """,
            [.text(replica.replicaId), .text(replica.modelId), .text(try Self.json(replica)), .double(Date().timeIntervalSince1970)]
        )
        await publish(StateChange(kind: .replica, id: replica.modelId))
    }

    public func deleteReplica(id: String) async throws {
        let rows = try await database.query("DELETE FROM model_replicas WHERE replica_id = ? RETURNING model_id", [.text(id)])
        if let modelId = rows.first?["model_id"].string {
            await publish(StateChange(kind: .replica, id: modelId))
        }
    }

    public func saveInstance(_ instance: InstanceRecord) async throws {
        try await database.query(
            """
            INSERT INTO instances (instance_id, heartbeat_at, record) VALUES (?, ?, ?)
            ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, record = excluded.record
            """,
            [.text(instance.instanceId), .double(instance.heartbeatAt), .text(try Self.json(instance))]
        )
    }

    public func instances(heartbeatAfter time: Double) async throws -> [InstanceRecord] {
        try await database.query("SELECT record FROM instances WHERE heartbeat_at > ? ORDER BY instance_id", [.double(time)])
            .map { try Self.decode(InstanceRecord.self, $0["record"]) }
    }

    public func deleteInstance(id: String) async throws {
        try await database.query("DELETE FROM instances WHERE instance_id = ?", [.text(id)])
    }

    public func deleteInstances(heartbeatBefore time: Double) async throws {
        try await database.query("DELETE FROM instances WHERE heartbeat_at < ?", [.double(time)])
    }

    // MARK: - Records

    public func putRecord(kind: String, id: String, parent: String?, body: String) async throws {
        try await putRecord(kind: kind, id: id, parent: parent, body: body, summary: nil)
    }

    public func putRecord(kind: String, id: String, parent: String?, body: String, summary: String?) async throws {
        let now = Date().timeIntervalSince1970
        try await database.query(
            """
            INSERT INTO records (kind, id, parent, body, summary, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (kind, id) DO UPDATE
            SET parent = excluded.parent, body = excluded.body, summary = excluded.summary, updated_at = excluded.updated_at
            """,
            [.text(kind), .text(id), parent.map(StateValue.text) ?? .null, .text(body), summary.map(StateValue.text) ?? .null, .double(now), .double(now)]
        )
    }

    public func recordSummaries(kind: String, parent: String?) async throws -> [String] {
        try await listRecords(column: "COALESCE(summary, body)", kind: kind, parent: parent)
    }

    public func recordUsage(kind: String, parent: String) async throws -> RecordUsage {
        let row = try await database.query(
            "SELECT count(*) AS n, COALESCE(sum(length(body)), 0) AS size FROM records WHERE kind = ? AND parent = ?", [.text(kind), .text(parent)]
        ).first
        return RecordUsage(count: row?["n"].int ?? 0, characters: row?["size"].int ?? 0)
    }

    public func record(kind: String, id: String) async throws -> String? {
        try await database.query("SELECT body FROM records WHERE kind = ? AND id = ?", [.text(kind), .text(id)]).first?["body"].string
    }

    public func records(kind: String, parent: String?) async throws -> [String] {
        try await listRecords(column: "body", kind: kind, parent: parent)
    }

    /// `column` (a fixed expression, never input) of the records of `kind` (under `parent`), oldest first.
    private func listRecords(column: String, kind: String, parent: String?) async throws -> [String] {
        let rows =
            if let parent {
                try await database.query(
                    "SELECT \(column) AS value FROM records WHERE kind = ? AND parent = ? ORDER BY created_at, id", [.text(kind), .text(parent)]
                )
            } else {
                try await database.query("SELECT \(column) AS value FROM records WHERE kind = ? ORDER BY created_at, id", [.text(kind)])
            }
        return rows.compactMap { $0["value"].string }
    }

    @discardableResult
    public func deleteRecord(kind: String, id: String) async throws -> Bool {
        !(try await database.query("DELETE FROM records WHERE kind = ? AND id = ? RETURNING id", [.text(kind), .text(id)])).isEmpty
    }

    @discardableResult
    public func deleteRecords(kind: String, parent: String) async throws -> Int {
        try await database.query("DELETE FROM records WHERE kind = ? AND parent = ? RETURNING id", [.text(kind), .text(parent)]).count
    }

    // MARK: - Settings and tokens

    public func setting(_ key: String) async throws -> String? {
        try await database.query("SELECT value FROM settings WHERE key = ?", [.text(key)]).first?["value"].string
    }

    public func setSetting(_ key: String, to value: String) async throws {
        try await database.query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [.text(key), .text(value)]
        )
    }

    public func insertToken(_ token: APIToken) async throws {
        try await database.query(
            "INSERT INTO api_tokens (id, token_hash, username, record, created_at) VALUES (?, ?, ?, ?, ?)",
            [.text(token.id), .text(token.tokenHash), .text(token.username), .text(try Self.json(token)), .double(token.createdAt.timeIntervalSince1970)]
        )
        await publish(StateChange(kind: .token, id: token.id))
    }

    public func token(hash: String) async throws -> APIToken? {
        try await database.query("SELECT record FROM api_tokens WHERE token_hash = ?", [.text(hash)]).first.map {
            try Self.decode(APIToken.self, $0["record"])
        }
    }

    public func token(id: String) async throws -> APIToken? {
        try await database.query("SELECT record FROM api_tokens WHERE id = ?", [.text(id)]).first.map {
            try Self.decode(APIToken.self, $0["record"])
        }
    }

    public func tokens(username: String?) async throws -> [APIToken] {
        let rows =
            if let username {
                try await database.query("SELECT record FROM api_tokens WHERE username = ? ORDER BY created_at, id", [.text(username)])
            } else {
                try await database.query("SELECT record FROM api_tokens ORDER BY created_at, id")
            }
        return try rows.map { try Self.decode(APIToken.self, $0["record"]) }
    }

    public func deleteToken(id: String) async throws -> Bool {
        let deleted = !(try await database.query("DELETE FROM api_tokens WHERE id = ? RETURNING id", [.text(id)])).isEmpty
        if deleted { await publish(StateChange(kind: .token, id: id)) }
        return deleted
    }

    // MARK: - Uploads and claims

    public func putBlob(id: String, bytes: [UInt8]) async throws {
        try await database.query(
            "INSERT INTO blobs (id, data, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            [.text(id), .blob(bytes), .double(Date().timeIntervalSince1970)]
        )
    }

    public func blob(id: String) async throws -> [UInt8]? {
        guard let row = try await database.query("SELECT data FROM blobs WHERE id = ?", [.text(id)]).first else { return nil }
        return row["data"].bytes ?? []
    }

    public func deleteBlob(id: String) async throws {
        try await database.query("DELETE FROM blobs WHERE id = ?", [.text(id)])
    }

    public func claim(_ id: String, holder: String, seconds: Double) async throws -> Bool {
        let now = Date().timeIntervalSince1970
        let rows = try await database.query(
            """
            INSERT INTO claims (id, holder, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
            WHERE claims.holder = EXCLUDED.holder OR claims.expires_at < ?
            RETURNING holder
            """,
            [.text(id), .text(holder), .double(now + seconds), .double(now)]
        )
        return rows.first?["holder"].string == holder
    }

    public func releaseClaim(_ id: String, holder: String) async throws {
        try await database.query("DELETE FROM claims WHERE id = ? AND holder = ?", [.text(id), .text(holder)])
    }

    // MARK: - Rate limits

    public func takeRateToken(key: String, perSecond: Double, capacity: Double) async throws -> Double? {
        guard isShared, database.dialect == .postgres else { return nil }
        // One atomic statement: refill by the time since the last take, then take one if
        // there is one. The database's clock, so replicas' clocks do not matter.
        let refilled = "LEAST(?, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now()) - b.updated_at) * ?)"
        let taken = try await database.query(
            """
            INSERT INTO rate_buckets AS b (key, tokens, updated_at) VALUES (?, ? - 1, EXTRACT(EPOCH FROM now()))
            ON CONFLICT (key) DO UPDATE SET tokens = \(refilled) - 1, updated_at = EXTRACT(EPOCH FROM now())
            WHERE \(refilled) >= 1
            RETURNING tokens
            """,
            [.text(key), .double(capacity), .double(capacity), .double(perSecond), .double(capacity), .double(perSecond)]
        )
        if !taken.isEmpty {
            if Int.random(in: 0..<2000) == 0 {
                // Buckets idle for a day are full again; forget them.
                try? await database.query("DELETE FROM rate_buckets WHERE updated_at < EXTRACT(EPOCH FROM now()) - 86400")
            }
            return 0
        }
        guard perSecond > 0 else { return .infinity }
        let level = try await database.query("SELECT \(refilled)::float8 AS level FROM rate_buckets AS b WHERE key = ?", [
            .double(capacity), .double(perSecond), .text(key),
        ]).first?["level"].double ?? 0
        return max((1 - level) / perSecond, 0.001)
    }

    // MARK: - Coordination

    public func publish(_ change: StateChange) async {
        var change = change
        change.origin = instanceID
        broadcaster.send(change)
        guard let feed = database.changeFeed else { return }
        do {
            try await feed.notify(channel: Self.channel, payload: try Self.json(change))
        } catch {
            // The periodic resync of every replica catches what a lost notification missed.
            logger.warning("could not publish a state change", metadata: ["lisa.error": "\(error)"])
        }
    }

    public func changes() -> AsyncStream<StateChange> {
        broadcaster.subscribe()
    }

    public func runAsLeader(_ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let election = database.leaderElection else {
            try await body()
            return
        }
        while !Task.isCancelled {
            do {
                let ran = try await election.withAdvisoryLock(key: Self.leaderLockKey) {
                    self.logger.notice("this replica leads the hosting workflows", metadata: ["lisa.instance": "\(self.instanceID)"])
                    try await body()
                }
                if ran != nil {
                    logger.notice("leadership released", metadata: ["lisa.instance": "\(instanceID)"])
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("leadership lost", metadata: ["lisa.error": "\(String(describing: error).prefix(200))"])
            }
            try? await clock.sleep(for: .seconds(1))
        }
    }

    private func startListening(_ feed: any DatabaseChangeFeed) {
        let task = Task { [broadcaster, instanceID, logger] in
            while !Task.isCancelled {
                do {
                    // Anything published while the listener was away is unknown: resync.
                    broadcaster.send(StateChange(kind: .resync, id: "", origin: ""))
                    try await feed.listen(channel: Self.channel) { payload in
                        guard let change = try? JSONDecoder().decode(StateChange.self, from: Data(payload.utf8)),
                            change.origin != instanceID
                        else { return }
                        broadcaster.send(change)
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("state change listener lost its connection; reconnecting", metadata: ["lisa.error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        listener.withLock { $0 = task }
    }

    public func close() async throws {
        if let task = listener.withLock({ $0 }) {
            task.cancel()
            _ = await task.value
        }
        broadcaster.finish()
        try await database.close()
    }

    // MARK: - JSON

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ value: StateValue) throws -> T {
        guard let text = value.string else { throw LISAError.internalError("A stored \(T.self) is empty.") }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

/// Fans changes out to every subscriber.
final class ChangeBroadcaster: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<StateChange>.Continuation]>([:])

    func subscribe() -> AsyncStream<StateChange> {
        let (stream, continuation) = AsyncStream.makeStream(of: StateChange.self, bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    func send(_ change: StateChange) {
        for continuation in subscribers.withLock({ Array($0.values) }) {
            continuation.yield(change)
        }
    }

    func finish() {
        for continuation in subscribers.withLock({ Array($0.values) }) {
            continuation.finish()
        }
    }
}
