import Foundation
import Logging
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
    private let logger: Logger

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
        let database = PostgresDatabase(client: client, logger: logger)
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

    private init(client: PostgresClient, logger: Logger) {
        self.client = client
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
        try await Self.collect(try await client.query(try Self.postgresQuery(sql, binds), logger: logger))
    }

    package func transaction<T: Sendable>(_ body: @Sendable (any StateDatabase) async throws -> T) async throws -> T {
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
    /// own: the lock is released when `body` returns or when the connection dies (so a
    /// crashed holder frees it). Returns `nil` without running `body` if another session
    /// holds the lock. While `body` runs the connection is pinged every second; if a ping
    /// fails, `body` is cancelled.
    package func withAdvisoryLock<T: Sendable>(
        key: Int64, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        try await client.withConnection { connection in
            let rows = try await Self.collect(
                try await connection.query(try Self.postgresQuery("SELECT pg_try_advisory_lock(?) AS locked", [.integer(key)]), logger: logger)
            )
            guard rows.first?["locked"] == .integer(1) else { return nil }
            let result: Result<T?, any Error>
            do {
                result = .success(try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask { try await body() }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(1))
                            try await connection.query("SELECT 1", logger: self.logger)
                        }
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                })
            } catch {
                result = .failure(error)
            }
            // Released on every path: the connection goes back to the pool and must not keep the lock.
            _ = try await connection.query(try Self.postgresQuery("SELECT pg_advisory_unlock(?)", [.integer(key)]), logger: logger)
            return try result.get()
        }
    }

    struct Connection: StateDatabase {
        let connection: PostgresConnection
        let logger: Logger
        var dialect: StateDialect { .postgres }

        func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
            try await PostgresDatabase.collect(try await connection.query(try PostgresDatabase.postgresQuery(sql, binds), logger: logger))
        }

        func transaction<T: Sendable>(_ body: @Sendable (any StateDatabase) async throws -> T) async throws -> T {
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
