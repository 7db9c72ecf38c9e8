import Foundation
package import Logging
import NIOCore
import SQLiteNIO

/// A ``StateDatabase`` over one SQLite connection (a file, or memory).
///
/// SQLite serializes writers anyway; one connection behind a FIFO lock keeps a
/// transaction's statements from interleaving with another caller's. Reports
/// (``report(_:_:)``) read through a second, read-only connection with its own lock: in WAL
/// mode it reads beside the writer, so a long report never holds the request path's
/// connection. A database in memory has one connection only.
package final class SQLiteDatabase: StateDatabase {
    package var dialect: StateDialect { .sqlite }
    private let connection: SQLiteConnection
    private let lock = AsyncLock()
    private let reader: SQLiteConnection?
    private let readerLock = AsyncLock()

    private init(connection: SQLiteConnection, reader: SQLiteConnection? = nil) {
        self.connection = connection
        self.reader = reader
    }

    /// Opens (creating if needed) the database file at `path`, readable by its owner only.
    package static func open(path: String, logger: Logger) async throws -> SQLiteDatabase {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let database = SQLiteDatabase(connection: connection)
        // The busy timeout first: it replaces any busy handler, so a database another
        // process holds fails within 5 s instead of being retried forever.
        try await database.query("PRAGMA busy_timeout=5000")
        do {
            try await database.query("PRAGMA journal_mode=WAL")
            // In WAL mode NORMAL syncs at checkpoints, not on every commit: a crash of LISA
            // loses nothing committed; a power cut may undo the last commits, never corrupts.
            try await database.query("PRAGMA synchronous=NORMAL")
            _ = try await database.query("SELECT count(*) FROM sqlite_master")
        } catch {
            try? await connection.close()
            let text = String(describing: error)
            if text.localizedCaseInsensitiveContains("locked") || text.localizedCaseInsensitiveContains("busy") {
                throw ConfigurationError(
                    "another process holds the SQLite database '\(path)' (it stayed locked for 5 s): stop it, or give this LISAServe another --data-dir"
                )
            }
            throw error
        }
        do {
            let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            do {
                for pragma in ["PRAGMA busy_timeout=5000", "PRAGMA query_only=1"] { _ = try await Self.run(reader, pragma, []) }
            } catch {
                try? await reader.close()
                throw error
            }
            return SQLiteDatabase(connection: connection, reader: reader)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A database in memory: nothing survives the process.
    package static func inMemory(logger: Logger = Logger(label: "lisa.sqlite")) async throws -> SQLiteDatabase {
        SQLiteDatabase(connection: try await SQLiteConnection.open(storage: .memory, logger: logger))
    }

    @discardableResult
    package func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        try await lock.withLock { try await Self.run(connection, sql, binds) }
    }

    package func report(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        try await offEventLoops {
            guard let reader = self.reader else { return try await self.query(sql, binds) }
            return try await self.readerLock.withLock { try await Self.run(reader, sql, binds) }
        }
    }

    package func transaction<T: Sendable>(_ body: @escaping @Sendable (any StateDatabase) async throws -> T) async throws -> T {
        try await lock.withLock {
            try await Self.run(connection, "BEGIN IMMEDIATE", [])
            do {
                let result = try await body(Transaction(connection: connection))
                try await Self.run(connection, "COMMIT", [])
                return result
            } catch {
                _ = try? await Self.run(connection, "ROLLBACK", [])
                throw error
            }
        }
    }

    package func close() async throws {
        try? await reader?.close()
        try await connection.close()
    }

    /// The database a transaction's body sees: the same connection, lock already held.
    private struct Transaction: StateDatabase {
        let connection: SQLiteConnection
        var dialect: StateDialect { .sqlite }

        func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
            try await SQLiteDatabase.run(connection, sql, binds)
        }

        func transaction<T: Sendable>(_ body: @escaping @Sendable (any StateDatabase) async throws -> T) async throws -> T {
            try await body(self)
        }

        func close() async throws {}
    }

    static func run(_ connection: SQLiteConnection, _ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        let data: [SQLiteData] = binds.map { value in
            switch value {
            case .null: .null
            case .text(let text): .text(text)
            case .integer(let int): .integer(SQLiteInt64(int))
            case .double(let double): .float(double)
            case .blob(let bytes): .blob(ByteBuffer(bytes: bytes))
            }
        }
        return try await connection.query(sql, data).map { row in
            var values: [String: StateValue] = [:]
            for column in row.columns {
                values[column.name] =
                    switch column.data {
                    case .null: .null
                    case .text(let text): .text(text)
                    case .integer(let int): .integer(Int64(int))
                    case .float(let double): .double(double)
                    case .blob(let buffer): .blob(Array(buffer.readableBytesView))
                    }
            }
            return StateRow(values: values)
        }
    }
}
