import Foundation
public import Logging
import Synchronization

/// The state LISA keeps across restarts, opened once over a ``StateDatabase`` — SQLite (a
/// file in the data directory, or memory) or PostgreSQL (several LISAServe replicas) — so
/// both share the schema, the migrations and the behaviour.
///
/// The store owns the database and its change listener, and hands each service the small
/// store it needs: ``models``, ``tokens``, ``records``, ``usage``, ``settings`` and
/// ``coordination``. Documents are stored as JSON next to the columns that are queried, so
/// fields this version does not act on survive. The schema version lives in `lisa_schema`;
/// opening migrates an older database forward in one transaction (on PostgreSQL under an
/// advisory lock, so replicas starting together migrate once). Every statement is
/// parameterized.
public final class SQLStateStore: Sendable {
    package let database: any StateDatabase
    /// Models, their lifecycle status and their hosted replicas.
    public let models: ModelStore
    /// API tokens (their hashes).
    public let tokens: TokenStore
    /// JSON documents of any kind, and uploads waiting for ingestion.
    public let records: RecordStore
    /// Usage records, replica time and budgets.
    public let usage: UsageStore
    /// Small named values (the admin key's hash, the deployment id).
    public let settings: SettingStore
    /// The change feed, leadership, claims, shared rate buckets and instance heartbeats.
    public let coordination: StateCoordination
    let logger: Logger
    /// What the change listener retries by.
    let clock: AnyClock
    let broadcaster: ChangeBroadcaster
    let listener: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// This process's id among the replicas sharing the store.
    public var instanceID: String { coordination.instanceID }
    /// Whether other LISAServe processes may share this store (PostgreSQL).
    public var isShared: Bool { database.changeFeed != nil }

    /// The channel changes are published on (PostgreSQL).
    static let channel = "lisa_state"
    /// Advisory lock keys ("LISA" in ASCII, then a purpose).
    static let migrationLockKey: Int64 = 0x4C49_5341_0001
    static let leaderLockKey: Int64 = 0x4C49_5341_0002

    private init(database: any StateDatabase, logger: Logger, clock: AnyClock) {
        self.database = database
        self.logger = logger
        self.clock = clock
        let broadcaster = ChangeBroadcaster()
        self.broadcaster = broadcaster
        let coordination = StateCoordination(
            database: database, broadcaster: broadcaster, clock: clock, logger: logger, instanceID: UUID().uuidString.lowercased()
        )
        self.coordination = coordination
        models = ModelStore(database: database, coordination: coordination)
        tokens = TokenStore(database: database, coordination: coordination)
        records = RecordStore(database: database)
        usage = UsageStore(database: database)
        settings = SettingStore(database: database)
    }

    /// Opens the store on `database`, migrating its schema. `clock`: what a replica waiting
    /// for leadership retries by.
    package static func open(database: any StateDatabase, logger: Logger, clock: AnyClock = .continuous) async throws -> SQLStateStore {
        let store = SQLStateStore(database: database, logger: logger, clock: clock)
        do {
            try await store.migrate()
            try await store.usage.releaseUnsharedReservations()
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

    /// pgvector in the state database, when it has one (PostgreSQL with the extension);
    /// `nil` otherwise.
    public func openPGVector(logger: Logger) async throws -> PGVectorStore? {
        guard let postgres = database as? PostgresDatabase else { return nil }
        return try await PGVectorStore.open(database: postgres, logger: logger)
    }

    /// Stops the change listener, ends every change stream and closes the database. Calls
    /// to the small stores after this fail.
    public func close() async throws {
        if let task = listener.withLock({ $0 }) {
            task.cancel()
            _ = await task.value
        }
        broadcaster.finish()
        try await database.close()
    }

    /// Relays the changes other processes publish to this process's subscribers, and a
    /// `.resync` each time the listener (re)connects.
    private func startListening(_ feed: any DatabaseChangeFeed) {
        let task = Task { [broadcaster, instanceID, logger, clock] in
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
                try? await clock.sleep(for: .seconds(1))
            }
        }
        listener.withLock { $0 = task }
    }

    // MARK: - JSON

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// `value` as the store keeps it: JSON with sorted keys.
    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A document the store kept as JSON.
    static func decode<T: Decodable>(_ type: T.Type, _ value: StateValue) throws -> T {
        guard let text = value.string else { throw LISAError.internalError("A stored \(T.self) is empty.") }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
