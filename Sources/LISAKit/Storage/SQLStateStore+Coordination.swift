import Foundation
import Logging
import Synchronization

extension SQLStateStore {
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
        let level =
            try await database.query(
                "SELECT \(refilled)::float8 AS level FROM rate_buckets AS b WHERE key = ?",
                [
                    .double(capacity), .double(perSecond), .text(key),
                ]
            ).first?["level"].double ?? 0
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

    func startListening(_ feed: any DatabaseChangeFeed) {
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
                try? await clock.sleep(for: .seconds(1))
            }
        }
        listener.withLock { $0 = task }
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
