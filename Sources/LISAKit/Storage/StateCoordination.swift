import Foundation
import Logging
import Synchronization

/// How the LISAServe processes sharing a ``SQLStateStore`` work together: the change feed,
/// leadership, leases on work items, shared rate buckets and instance heartbeats.
///
/// On PostgreSQL, changes reach the other processes through `LISTEN/NOTIFY` on the
/// `lisa_state` channel, and leadership is a session advisory lock. On SQLite (one
/// process), changes reach this process's subscribers only and this process always leads.
/// Get one from ``SQLStateStore/coordination``; it is safe to use concurrently.
public struct StateCoordination: Sendable {
    let database: any StateDatabase
    let broadcaster: ChangeBroadcaster
    /// What a replica waiting for leadership retries by.
    let clock: AnyClock
    let logger: Logger
    /// This process's id among the processes sharing the store.
    public let instanceID: String

    /// Whether other LISAServe processes may share the store (PostgreSQL).
    public var isShared: Bool { database.changeFeed != nil }

    // MARK: - Changes and leadership

    /// Tells every process sharing the store (this one included) about a change.
    public func publish(_ change: StateChange) async {
        var change = change
        change.origin = instanceID
        broadcaster.send(change)
        guard let feed = database.changeFeed else { return }
        do {
            try await feed.notify(channel: SQLStateStore.channel, payload: try SQLStateStore.json(change))
        } catch {
            // The periodic resync of every replica catches what a lost notification missed.
            logger.warning("could not publish a state change", metadata: ["lisa.error": "\(error)"])
        }
    }

    /// The changes published from now on, by any process sharing the store. A `.resync`
    /// change means some may have been missed: reload everything.
    public func changes() -> AsyncStream<StateChange> {
        broadcaster.subscribe()
    }

    /// Runs `body` whenever this process is the leader — at most one process sharing the
    /// store at a time — and cancels it when leadership is lost. Returns when cancelled.
    public func runAsLeader(_ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let election = database.leaderElection else {
            try await body()
            return
        }
        while !Task.isCancelled {
            do {
                let ran: Void? = try await election.withAdvisoryLock(key: SQLStateStore.leaderLockKey) { [logger, instanceID] in
                    logger.notice("this replica leads the hosting workflows", metadata: ["lisa.instance": "\(instanceID)"])
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

    // MARK: - Claims

    /// Claims the work item `id` for `holder` for `seconds` (a lease) unless another
    /// holder's lease on it is still running; a holder renews its own lease the same way.
    /// Returns whether `holder` has it now. Leases are timed by each process's clock.
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

    /// Ends `holder`'s lease on `id` (the work is done or given back).
    public func releaseClaim(_ id: String, holder: String) async throws {
        try await database.query("DELETE FROM claims WHERE id = ? AND holder = ?", [.text(id), .text(holder)])
    }

    // MARK: - Rate limits

    /// Takes one request from the rate-limit bucket `key` that every process sharing the
    /// store draws on (`capacity` at most, refilled at `perSecond`, timed by the database's
    /// clock): 0 when allowed, else the seconds until the next request is. `nil` when the
    /// store keeps no shared buckets (one process: its own buckets are exact).
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
                _ = try? await database.query("DELETE FROM rate_buckets WHERE updated_at < EXTRACT(EPOCH FROM now()) - 86400")
            }
            return 0
        }
        guard perSecond > 0 else { return .infinity }
        let level =
            try await database.query(
                "SELECT \(refilled)::float8 AS level FROM rate_buckets AS b WHERE key = ?",
                [
                    .double(capacity), .double(perSecond), .text(key),
                ]
            ).first?["level"].double ?? 0
        return max((1 - level) / perSecond, 0.001)
    }

    // MARK: - Instances

    /// Inserts or replaces this instance's heartbeat.
    public func saveInstance(_ instance: InstanceRecord) async throws {
        try await database.query(
            """
            INSERT INTO instances (instance_id, heartbeat_at, record) VALUES (?, ?, ?)
            ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, record = excluded.record
            """,
            [.text(instance.instanceId), .double(instance.heartbeatAt), .text(try SQLStateStore.json(instance))]
        )
    }

    /// Instances whose last heartbeat is after `time` (Unix seconds).
    public func instances(heartbeatAfter time: Double) async throws -> [InstanceRecord] {
        try await database.query("SELECT record FROM instances WHERE heartbeat_at > ? ORDER BY instance_id", [.double(time)])
            .map { try SQLStateStore.decode(InstanceRecord.self, $0["record"]) }
    }

    /// Forgets one instance's heartbeat.
    public func deleteInstance(id: String) async throws {
        try await database.query("DELETE FROM instances WHERE instance_id = ?", [.text(id)])
    }

    /// Forgets instances whose last heartbeat is before `time`.
    public func deleteInstances(heartbeatBefore time: Double) async throws {
        try await database.query("DELETE FROM instances WHERE heartbeat_at < ?", [.double(time)])
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
