public import Foundation
public import Logging

/// Where LISA keeps what must survive a restart — models and their lifecycle, hosted
/// replicas, API tokens, settings — and how LISAServe replicas sharing it coordinate.
///
/// The implementation is ``SQLStateStore``: one store over SQLite (the embedded default,
/// or in memory) or PostgreSQL (several LISAServe replicas). All methods are safe to call
/// concurrently. Every write publishes a ``StateChange``.
public protocol StateStore: Sendable {
    /// This process's id among the replicas sharing the store.
    var instanceID: String { get }
    /// Whether other LISAServe processes may share this store (PostgreSQL).
    var isShared: Bool { get }

    // MARK: Models

    /// Every stored model, ordered by id.
    func models() async throws -> [StoredModel]

    /// The model with this id, or `nil`.
    func model(id: String) async throws -> StoredModel?

    /// Stores a new model; throws ``LISAError/conflict(_:code:)`` when the id is taken.
    @discardableResult
    func insertModel(_ model: ModelDefinition, status: ModelStatus) async throws -> StoredModel

    /// Changes a model atomically when its status is one of `expecting` (`nil`: any).
    /// Returns the stored result, or `nil` (and changes nothing) when the model is missing
    /// or its status did not match — another request or replica moved it first.
    func updateModel(
        id: String, expecting: Set<ModelStatus>?, _ change: @escaping @Sendable (inout StoredModel) throws -> Void
    ) async throws -> StoredModel?

    /// Removes a model (and its replica records) when its status is one of `expecting`
    /// (`nil`: any); returns whether it was removed.
    func deleteModel(id: String, expecting: Set<ModelStatus>?) async throws -> Bool

    // MARK: Hosted replicas and instances

    /// The replica records of one model, or of all (`nil`).
    func replicas(modelId: String?) async throws -> [ReplicaRecord]

    /// Inserts or replaces a replica record.
    func saveReplica(_ replica: ReplicaRecord) async throws

    func deleteReplica(id: String) async throws

    /// Inserts or replaces this instance's heartbeat.
    func saveInstance(_ instance: InstanceRecord) async throws

    /// Instances whose last heartbeat is after `time` (Unix seconds).
    func instances(heartbeatAfter time: Double) async throws -> [InstanceRecord]

    func deleteInstance(id: String) async throws

    /// Forgets instances whose last heartbeat is before `time`.
    func deleteInstances(heartbeatBefore time: Double) async throws

    // MARK: Settings and tokens

    /// A stored setting, or `nil`.
    func setting(_ key: String) async throws -> String?

    /// Stores a setting, replacing any previous value.
    func setSetting(_ key: String, to value: String) async throws

    /// Stores a new API token (its hash, never its secret).
    func insertToken(_ token: APIToken) async throws

    /// The token whose secret hashes to `hash`, or `nil`.
    func token(hash: String) async throws -> APIToken?

    /// The token with this public id, or `nil`.
    func token(id: String) async throws -> APIToken?

    /// Every token, or those of one user, oldest first.
    func tokens(username: String?) async throws -> [APIToken]

    /// Removes a token; returns whether it existed.
    func deleteToken(id: String) async throws -> Bool

    // MARK: Records

    /// Stores a JSON document of `kind` (repositories, documents, jobs, …) under `id`,
    /// replacing any previous one, optionally under a `parent` id for listing.
    func putRecord(kind: String, id: String, parent: String?, body: String) async throws

    /// The document of `kind` with this id, or `nil`.
    func record(kind: String, id: String) async throws -> String?

    /// The documents of `kind` (under `parent`, when given), oldest first.
    func records(kind: String, parent: String?) async throws -> [String]

    /// Stores a document with a small `summary` of it beside, for lists
    /// (``recordSummaries(kind:parent:)``); `nil` stores none.
    func putRecord(kind: String, id: String, parent: String?, body: String, summary: String?) async throws

    /// For each record of `kind` (under `parent`), oldest first: its summary, or its whole
    /// document where it was stored without one.
    func recordSummaries(kind: String, parent: String?) async throws -> [String]

    /// How many records of `kind` `parent` holds and their size (quotas).
    func recordUsage(kind: String, parent: String) async throws -> RecordUsage

    /// Removes a document; returns whether it existed.
    @discardableResult
    func deleteRecord(kind: String, id: String) async throws -> Bool

    /// Removes every document of `kind` under `parent`; returns how many.
    @discardableResult
    func deleteRecords(kind: String, parent: String) async throws -> Int

    // MARK: Coordination

    /// Tells every process sharing the store (this one included) about a change.
    func publish(_ change: StateChange) async

    /// The changes published from now on, by any process sharing the store. A
    /// `.resync` change means some may have been missed: reload everything.
    func changes() -> AsyncStream<StateChange>

    /// Runs `body` whenever this process is the leader — at most one process sharing the
    /// store at a time — and cancels it when leadership is lost. Returns when cancelled.
    func runAsLeader(_ body: @escaping @Sendable () async throws -> Void) async throws

    // MARK: Uploads and claims

    /// Stores bytes under `id` (an upload waiting for its ingestion job) in the store itself,
    /// so whichever process runs the job can read them.
    func putBlob(id: String, bytes: [UInt8]) async throws

    /// The bytes stored under `id`, or `nil`.
    func blob(id: String) async throws -> [UInt8]?

    /// Removes the bytes stored under `id`.
    func deleteBlob(id: String) async throws

    /// Claims the work item `id` for `holder` for `seconds` (a lease) unless another
    /// holder's lease on it is still running; a holder renews its own lease the same way.
    /// Returns whether `holder` has it now. Leases are timed by each process's clock.
    func claim(_ id: String, holder: String, seconds: Double) async throws -> Bool

    /// Ends `holder`'s lease on `id` (the work is done or given back).
    func releaseClaim(_ id: String, holder: String) async throws

    /// Takes one request from the rate-limit bucket `key` that every process sharing the
    /// store draws on (`capacity` at most, refilled at `perSecond`, timed by the database's
    /// clock): 0 when allowed, else the seconds until the next request is. `nil` when the
    /// store keeps no shared buckets (one process: its own buckets are exact).
    func takeRateToken(key: String, perSecond: Double, capacity: Double) async throws -> Double?

    // MARK: Usage and budgets

    /// Stores usage records (one batch, one transaction).
    func insertUsage(_ records: [UsageRecord]) async throws

    /// Sums of the records `filter` selects, per hour and model, and per user and token when asked.
    func usageAggregates(_ filter: UsageFilter, byUser: Bool, byToken: Bool) async throws -> [UsageAggregate]

    /// The groups the records `filter` selects were made under.
    func usageGroups(_ filter: UsageFilter) async throws -> [String]

    /// The latest `limit` records' latencies (percentiles).
    func usageSamples(_ filter: UsageFilter, limit: Int) async throws -> [UsageSample]

    /// Forgets records older than `time` (retention); returns how many.
    @discardableResult
    func deleteUsage(before time: Date) async throws -> Int

    /// Adds `seconds` of replica time to `model`'s account for the hour starting at `hour` (Unix seconds).
    func addReplicaSeconds(_ seconds: Double, model: String, hour: Int64) async throws

    /// Replica time per model and hour, for hours in `from..<to` (Unix seconds).
    func replicaSeconds(fromHour: Int64, toHour: Int64) async throws -> [ReplicaTime]

    /// Reserves every line's amount at once, atomically across every process sharing the
    /// store: each counter takes its amount unless what is spent and reserved on it has
    /// already reached its limit. Returns `nil` when all were reserved (and remembers the
    /// reservation under `id` until `expiresAt`), or the counter that refused, reserving nothing.
    func reserveBudget(id: String, lines: [BudgetLine], expiresAt: Double) async throws -> BudgetCounter?

    /// Ends the reservation `id`: each line's reservation is released and `spent[i]` charged.
    /// A reservation already released as expired is only charged.
    func settleBudget(id: String, lines: [BudgetLine], spent: [Double]) async throws

    /// Releases reservations whose holder never settled them (it died) by `time`; returns how many.
    @discardableResult
    func releaseExpiredReservations(before time: Double) async throws -> Int

    /// The counters with these keys and periods (those that exist).
    func budgetCounters(_ keys: [BudgetLine]) async throws -> [BudgetCounter]

    /// pgvector in the state database, when the store has one (PostgreSQL with the
    /// extension); `nil` otherwise (the default).
    func openPGVector(logger: Logger) async throws -> PGVectorStore?

    /// Releases the store's resources. Calls after this fail.
    func close() async throws
}

extension StateStore {
    /// Stores shared by no other process keep no shared buckets.
    public func takeRateToken(key: String, perSecond: Double, capacity: Double) async throws -> Double? { nil }

    /// Stores that keep no summaries store the document alone.
    public func openPGVector(logger: Logger) async throws -> PGVectorStore? { nil }

    public func putRecord(kind: String, id: String, parent: String?, body: String, summary: String?) async throws {
        try await putRecord(kind: kind, id: id, parent: parent, body: body)
    }

    /// Counted from the documents themselves, for stores without a faster way.
    public func recordUsage(kind: String, parent: String) async throws -> RecordUsage {
        let bodies = try await records(kind: kind, parent: parent)
        return RecordUsage(count: bodies.count, characters: bodies.reduce(0) { $0 + $1.count })
    }

    /// Stores that keep no summaries list whole documents.
    public func recordSummaries(kind: String, parent: String?) async throws -> [String] {
        try await records(kind: kind, parent: parent)
    }

    /// Stores a Codable record as JSON, with a Codable summary of it for lists.
    public func put<T: Encodable, S: Encodable>(_ value: T, summary: S, kind: String, id: String, parent: String? = nil) async throws {
        try await putRecord(kind: kind, id: id, parent: parent, body: try SQLStateStore.json(value), summary: try SQLStateStore.json(summary))
    }

    /// Stores a Codable record as JSON.
    public func put<T: Encodable>(_ value: T, kind: String, id: String, parent: String? = nil) async throws {
        try await putRecord(kind: kind, id: id, parent: parent, body: try SQLStateStore.json(value))
    }

    /// A Codable record, or `nil`.
    public func get<T: Decodable>(_ type: T.Type, kind: String, id: String) async throws -> T? {
        guard let body = try await record(kind: kind, id: id) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(body.utf8))
    }

    /// Every Codable record of `kind` (under `parent`).
    public func list<T: Decodable>(_ type: T.Type, kind: String, parent: String? = nil) async throws -> [T] {
        try await records(kind: kind, parent: parent).map { try JSONDecoder().decode(T.self, from: Data($0.utf8)) }
    }
}
