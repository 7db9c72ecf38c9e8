import Foundation
public import Logging
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
    let logger: Logger
    /// What a replica waiting for leadership retries by.
    let clock: AnyClock
    let broadcaster = ChangeBroadcaster()
    let listener: Mutex<Task<Void, Never>?> = Mutex(nil)

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
            [
                .text(kind), .text(id), parent.map(StateValue.text) ?? .null, .text(body), summary.map(StateValue.text) ?? .null, .double(now),
                .double(now),
            ]
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
            [
                .text(token.id), .text(token.tokenHash), .text(token.username), .text(try Self.json(token)),
                .double(token.createdAt.timeIntervalSince1970),
            ]
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
