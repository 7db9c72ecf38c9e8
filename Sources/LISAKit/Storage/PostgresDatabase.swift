import Foundation
package import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// A ``StateDatabase`` over a PostgreSQL connection pool (PostgresNIO), with LISTEN/NOTIFY
/// and session advisory locks for coordinating several LISAServe replicas.
package final class PostgresDatabase: StateDatabase, DatabaseChangeFeed, DatabaseLeaderElection {
    package var changeFeed: (any DatabaseChangeFeed)? { self }
    package var leaderElection: (any DatabaseLeaderElection)? { self }

    package var dialect: StateDialect { .postgres }
    let client: PostgresClient
    private let runner: Task<Void, Never>
    private let reportLock = AsyncLock()
    private let logger: Logger
    /// The most one call (a statement, a transaction, a lock check) may take before it
    /// fails with ``LISAError/stateStoreUnavailable(_:)``: the URL's `call_timeout`
    /// (seconds), 10 s by default. A database that is down or unreachable answers nothing
    /// at all, and no request may hang on it.
    package let callTimeout: Duration
    /// How long leadership outlives its last confirmation (``withAdvisoryLock(key:_:)``).
    package let leaderLease: Duration

    /// Connects to `url` (`postgres://user:password@host:port/database?sslmode=…`).
    ///
    /// `sslmode` follows libpq: `disable`; `prefer` (the default) and `require` encrypt
    /// without verifying the certificate; `verify-ca` and `verify-full` verify it, against
    /// `sslrootcert` (a PEM file) when given, else the system's trust store.
    package static func connect(url: String, logger: Logger) async throws -> PostgresDatabase {
        let settings = try Settings(url: url)
        // One direct connection first: the pool retries failed connections quietly, while
        // this says at once why the server cannot be used (refused, TLS, authentication).
        do {
            let connection = try await PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.any(), configuration: try settings.connectionConfiguration(), id: 0, logger: logger
            ).get()
            try await connection.close()
        } catch {
            throw ConnectionError("cannot reach PostgreSQL at \(Self.redacted(url)): \(Self.describe(error))")
        }
        let client = PostgresClient(configuration: settings.clientConfiguration(), backgroundLogger: logger)
        let database = PostgresDatabase(
            client: client, callTimeout: .seconds(settings.callTimeout), leaderLease: .seconds(settings.leaderLease), logger: logger
        )
        do {
            try await database.query("SELECT 1")
        } catch {
            try? await database.close()
            throw ConnectionError("cannot reach PostgreSQL at \(Self.redacted(url)): \(Self.describe(error))")
        }
        return database
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return String(describing: underlying).prefix(300).description }
            return "\(error.code)"
        }
        return String(describing: error).prefix(300).description
    }

    /// A connection failure, with the URL's password removed.
    package struct ConnectionError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    private init(client: PostgresClient, callTimeout: Duration, leaderLease: Duration, logger: Logger) {
        self.client = client
        self.callTimeout = callTimeout
        self.leaderLease = leaderLease
        self.logger = logger
        self.runner = Task { await client.run() }
    }

    /// What a `postgres://` URL says.
    struct Settings {
        var host: String
        var port: Int
        var username: String
        var password: String?
        var database: String?
        var mode: String
        var tlsConfiguration: TLSConfiguration
        var poolMaximum: Int
        var connectTimeout: Int
        var callTimeout: Double
        var leaderLease: Double

        init(url: String) throws {
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                scheme == "postgres" || scheme == "postgresql", let host = components.host, !host.isEmpty
            else {
                throw ConnectionError("'\(PostgresDatabase.redacted(url))' is not a postgres:// URL")
            }
            let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
            mode = query["sslmode"] ?? "prefer"
            tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            switch mode {
            case "disable":
                break
            case "allow", "prefer", "require":
                tlsConfiguration.certificateVerification = .none
            case "verify-ca", "verify-full":
                if let root = query["sslrootcert"], !root.isEmpty {
                    tlsConfiguration.trustRoots = .file(root)
                }
                tlsConfiguration.certificateVerification = mode == "verify-ca" ? .noHostnameVerification : .fullVerification
            default:
                throw ConnectionError("sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not '\(mode)'")
            }
            self.host = host
            self.port = components.port ?? 5432
            self.username = components.user?.removingPercentEncoding ?? "postgres"
            self.password = components.password?.removingPercentEncoding
            let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            self.database = path.isEmpty ? nil : path
            self.poolMaximum = Int(query["pool_max"] ?? "") ?? 16
            self.connectTimeout = Int(query["connect_timeout"] ?? "") ?? 10
            self.callTimeout = try Self.seconds(query, "call_timeout", default: 10)
            self.leaderLease = try Self.seconds(query, "leader_lease", default: 10)
            guard leaderLease >= 3 else { throw ConnectionError("leader_lease must be at least 3 seconds, not \(leaderLease)") }
        }

        private static func seconds(_ query: [String: String], _ name: String, default value: Double) throws -> Double {
            guard let text = query[name] else { return value }
            guard let seconds = Double(text), seconds > 0, seconds <= 3600 else {
                throw ConnectionError("\(name) must be a number of seconds in (0, 3600], not '\(text)'")
            }
            return seconds
        }

        func clientConfiguration() -> PostgresClient.Configuration {
            let tls: PostgresClient.Configuration.TLS =
                switch mode {
                case "disable": .disable
                case "allow", "prefer": .prefer(tlsConfiguration)
                default: .require(tlsConfiguration)
                }
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
            configuration.options.maximumConnections = poolMaximum
            configuration.options.connectTimeout = .seconds(connectTimeout)
            return configuration
        }

        func connectionConfiguration() throws -> PostgresConnection.Configuration {
            let tls: PostgresConnection.Configuration.TLS =
                switch mode {
                case "disable": .disable
                case "allow", "prefer": .prefer(try NIOSSLContext(configuration: tlsConfiguration))
                default: .require(try NIOSSLContext(configuration: tlsConfiguration))
                }
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
            configuration.options.connectTimeout = .seconds(Int64(connectTimeout))
            return configuration
        }
    }

    /// `url` without its password, for messages and logs.
    package static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "(invalid URL)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(invalid URL)"
    }

    @discardableResult
    package func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        let query = try Self.postgresQuery(sql, binds)
        return try await bounded { [client, logger] in
            try await Self.collect(try await client.query(query, logger: logger))
        }
    }

    /// Reports take one connection of the pool at a time, whatever their number: the others
    /// stay for the request path (budgets, rate buckets, tokens).
    package func report(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        try await offEventLoops { try await self.reportLock.withLock { try await self.query(sql, binds) } }
    }

    package func transaction<T: Sendable>(_ body: @escaping @Sendable (any StateDatabase) async throws -> T) async throws -> T {
        try await transaction(atLeast: .zero, body)
    }

    package func transaction<T: Sendable>(
        atLeast minimum: Duration, _ body: @escaping @Sendable (any StateDatabase) async throws -> T
    ) async throws -> T {
        // The body runs in the deadline's own task; a transaction abandoned at its deadline
        // is rolled back with its connection.
        try await bounded(atLeast: minimum) { [client, logger] in
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    let result = try await body(Connection(connection: connection, logger: logger))
                    try await connection.query("COMMIT", logger: logger)
                    return result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    /// `operation` within ``callTimeout``; a timeout or a lost connection becomes
    /// ``LISAError/stateStoreUnavailable(_:)`` (what the server itself refused stays as it is).
    package func bounded<T: Sendable>(
        atLeast minimum: Duration = .zero, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = Swift.max(callTimeout, minimum)
        do {
            return try await withDeadline(
                timeout,
                timedOut: {
                    LISAError.stateStoreUnavailable("The state database did not answer within \(Int(timeout.seconds.rounded(.up))) s.")
                }, operation: operation)
        } catch let error as PSQLError where error.serverInfo == nil && error.code != .queryCancelled {
            throw LISAError.stateStoreUnavailable("The state database cannot be reached: \(Self.describe(error)).")
        }
    }

    package func close() async throws {
        runner.cancel()
        _ = await runner.value
    }

    /// Publishes `payload` on `channel` to every listener (`pg_notify`).
    package func notify(channel: String, payload: String) async throws {
        try await query("SELECT pg_notify(?, ?)", [.text(channel), .text(payload)])
    }

    /// Calls `onNotification` for every notification on `channel` until cancelled or the
    /// connection fails (then throws; callers reconnect).
    package func listen(channel: String, onNotification: @Sendable (String) async -> Void) async throws {
        try await client.withConnection { connection in
            try await connection.listen(on: channel) { notifications in
                for try await notification in notifications {
                    await onNotification(notification.payload)
                }
            }
        }
    }

    /// Holds a session advisory lock on `key` while `body` runs, on a connection of its
    /// own: released when `body` returns or when the connection dies (so a crashed holder
    /// frees it). Returns `nil` without running `body` if another session holds the lock.
    ///
    /// Leadership is fenced by a lease of ``leaderLease`` kept in `lisa_leases`:
    /// - the holder confirms the lock every second, each check bounded by what is left of
    ///   the lease (the time since the last confirmed check counts from when it was sent);
    ///   when a check fails or cannot finish in time, the connection is closed and `body` is
    ///   cancelled, with at least 2 s of the lease left to wind down;
    /// - a new holder whose predecessor confirmed within the lease waits until that lease
    ///   has run out before it starts `body`, so two bodies never run at once — even when
    ///   the old holder cannot reach the database to learn it has lost the lock (a
    ///   PostgreSQL restart drops every session's locks at once).
    package func withAdvisoryLock<T: Sendable>(
        key: Int64, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        let lease = leaderLease
        let holder = UUID().uuidString.lowercased()
        return try await client.withConnection { connection in
            let check = LockCheck(connection: connection, logger: logger)
            do {
                let locked = try await check.run(within: callTimeout, "SELECT pg_try_advisory_lock(?) AS locked", [.integer(key)])
                guard locked.first?["locked"] == .integer(1) else { return nil }
                // The predecessor's lease, in the database's clock: wait it out.
                let previous = try await check.run(
                    within: callTimeout,
                    """
                    SELECT holder, GREATEST(0, confirmed_at + ? - EXTRACT(EPOCH FROM clock_timestamp()))::float8 AS remaining
                    FROM lisa_leases WHERE key = ?
                    """,
                    [.double(lease.seconds), .integer(key)]
                )
                if let remaining = previous.first?["remaining"].double, remaining > 0 {
                    logger.notice(
                        "waiting out the previous leader's lease",
                        metadata: ["lisa.lease_seconds": "\(String(format: "%.1f", remaining))"]
                    )
                    try await EventLoopTimer.sleep(for: .seconds(clamping: remaining) + .milliseconds(100))
                }
                let result = try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask {
                        try await check.confirm(key: key, holder: holder)
                        return try await body()
                    }
                    group.addTask {
                        try await check.keep(key: key, holder: holder, lease: lease)
                        return nil
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
                await check.release(key: key, holder: holder, within: callTimeout)
                return result
            } catch {
                // The lock must not go back to the pool with the connection: give it up, or
                // end the session when that cannot be done.
                if !(error is CancellationError) || check.isBroken {
                    check.close()
                } else {
                    await check.release(key: key, holder: holder, within: callTimeout)
                }
                throw error
            }
        }
    }

    /// The lock connection's statements, each with a deadline; a statement that misses it
    /// closes the connection (so the server drops the lock too, if it still can).
    private final class LockCheck: Sendable {
        let connection: PostgresConnection
        let logger: Logger
        private let broken = Atomic(false)
        var isBroken: Bool { broken.load(ordering: .relaxed) }

        init(connection: PostgresConnection, logger: Logger) {
            self.connection = connection
            self.logger = logger
        }

        @discardableResult
        func run(within timeout: Duration, _ sql: String, _ binds: [StateValue] = []) async throws -> [StateRow] {
            let query = try PostgresDatabase.postgresQuery(sql, binds)
            do {
                return try await withDeadline(
                    timeout,
                    timedOut: {
                        LISAError.stateStoreUnavailable("The state database did not confirm the leader lock in time.")
                    }
                ) { [connection, logger] in
                    try await PostgresDatabase.collect(try await connection.query(query, logger: logger))
                }
            } catch {
                if !(error is CancellationError) { close() }
                throw error
            }
        }

        /// Records that `holder` has the lock now (the database's clock).
        func confirm(key: Int64, holder: String) async throws {
            try await run(
                within: .seconds(5),
                """
                INSERT INTO lisa_leases (key, holder, confirmed_at) VALUES (?, ?, EXTRACT(EPOCH FROM clock_timestamp()))
                ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, confirmed_at = EXCLUDED.confirmed_at
                """,
                [.integer(key), .text(holder)]
            )
        }

        /// Gives the lock up, ending the lease at once so a successor need not wait it out
        /// (``withAdvisoryLock(key:_:)`` calls this only after `body` has finished).
        /// Runs in a task of its own: the caller is usually being cancelled (shutdown), and
        /// the lock must be given up all the same. Closes the connection when it cannot be.
        func release(key: Int64, holder: String, within timeout: Duration) async {
            await Task {
                do {
                    try await run(
                        within: timeout, "UPDATE lisa_leases SET confirmed_at = 0 WHERE key = ? AND holder = ?", [.integer(key), .text(holder)])
                    try await run(within: timeout, "SELECT pg_advisory_unlock(?)", [.integer(key)])
                } catch {
                    close()
                }
            }.value
        }

        /// Confirms the lock every second until a confirmation cannot be had within what is
        /// left of the lease (less 2 s to wind down); then throws.
        func keep(key: Int64, holder: String, lease: Duration) async throws {
            var confirmedSince = ContinuousClock.now
            while true {
                try await EventLoopTimer.sleep(for: .seconds(1))
                let sent = ContinuousClock.now
                let budget = confirmedSince + lease - .seconds(2) - sent
                guard budget > .milliseconds(50) else { throw LeadershipLost() }
                do {
                    try await withDeadline(budget, timedOut: { LeadershipLost() }) { [self] in
                        try await self.confirm(key: key, holder: holder)
                    }
                    confirmedSince = sent
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    close()
                    logger.warning(
                        "the leader lock could not be confirmed; leadership ends",
                        metadata: ["lisa.error": "\(String(describing: error).prefix(200))"]
                    )
                    throw LeadershipLost()
                }
            }
        }

        func close() {
            guard !broken.exchange(true, ordering: .relaxed) else { return }
            connection.close().whenComplete { _ in }
        }
    }

    /// The leader lock could not be confirmed within its lease.
    package struct LeadershipLost: Error, CustomStringConvertible {
        package var description: String { "the leader lock could not be confirmed within its lease" }
    }

    struct Connection: StateDatabase {
        let connection: PostgresConnection
        let logger: Logger
        var dialect: StateDialect { .postgres }

        func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
            try await PostgresDatabase.collect(try await connection.query(try PostgresDatabase.postgresQuery(sql, binds), logger: logger))
        }

        func transaction<T: Sendable>(_ body: @escaping @Sendable (any StateDatabase) async throws -> T) async throws -> T {
            try await body(self)
        }

        func close() async throws {}
    }

    /// `?` placeholders → `$1…$n` (outside quoted literals), values bound.
    static func postgresQuery(_ sql: String, _ binds: [StateValue]) throws -> PostgresQuery {
        var text = ""
        text.reserveCapacity(sql.utf8.count + 8)
        var index = 0
        var inQuote = false
        for character in sql {
            if character == "'" { inQuote.toggle() }
            if character == "?" && !inQuote {
                index += 1
                text += "$\(index)"
            } else {
                text.append(character)
            }
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .null: bindings.appendNull()
            case .text(let string): bindings.append(string)
            case .integer(let int): bindings.append(int)
            case .double(let double): bindings.append(double)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }

    static func collect(_ rows: PostgresRowSequence) async throws -> [StateRow] {
        var result: [StateRow] = []
        for try await row in rows {
            var values: [String: StateValue] = [:]
            for cell in row {
                values[cell.columnName] = try value(of: cell)
            }
            result.append(StateRow(values: values))
        }
        return result
    }

    private static func value(of cell: PostgresCell) throws -> StateValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .double(try cell.decode(Double.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .void: return .null
        case .bytea: return .blob(Array((try cell.decode(ByteBuffer.self)).readableBytesView))
        default: return .text(try cell.decode(String.self))
        }
    }
}
