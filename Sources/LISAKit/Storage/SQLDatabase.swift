import Foundation
import Synchronization

/// A value bound to, or read from, a SQL statement. The common ground of SQLite and PostgreSQL
/// that LISA's schema uses: text (JSON documents included), 64-bit integers and doubles.
package enum StateValue: Sendable, Hashable {
    case null
    case text(String)
    case integer(Int64)
    case double(Double)
    case blob([UInt8])

    package var string: String? {
        switch self {
        case .text(let value): value
        case .integer(let value): String(value)
        case .double(let value): String(value)
        case .null, .blob: nil
        }
    }

    package var bytes: [UInt8]? {
        if case .blob(let bytes) = self { return bytes }
        return nil
    }

    package var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .double(let value): Int(exactly: value.rounded(.towardZero))
        case .text(let value): Int(value)
        case .null, .blob: nil
        }
    }

    package var double: Double? {
        switch self {
        case .double(let value): value
        case .integer(let value): Double(value)
        case .text(let value): Double(value)
        case .null, .blob: nil
        }
    }
}

/// One result row: column name → value.
package struct StateRow: Sendable {
    package var values: [String: StateValue]

    package init(values: [String: StateValue]) { self.values = values }

    package subscript(_ column: String) -> StateValue { values[column] ?? .null }
}

/// Which SQL engine a ``StateDatabase`` talks to, for the few statements that differ.
package enum StateDialect: String, Sendable {
    case sqlite, postgres
}

/// The small SQL surface LISA's stores are written against, so one store implementation
/// runs on SQLite (embedded default) and PostgreSQL (scale-out).
///
/// Statements use `?` placeholders; drivers translate them (`$1`, `$2`, … for PostgreSQL).
/// Every value is bound, never spliced into the text.
package protocol StateDatabase: Sendable {
    var dialect: StateDialect { get }

    /// Runs one statement and returns its rows.
    @discardableResult
    func query(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow]

    /// Runs one read-only statement for a report (usage reports and other reads that may
    /// scan many rows) where it cannot hold up the request path: on a connection of its own
    /// (SQLite in WAL mode reads beside the writer) or a bounded share of a pool, and off the
    /// event loops. The default runs it as ``query(_:_:)``.
    func report(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow]

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// Statements inside must go through the database passed to `body`.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any StateDatabase) async throws -> T) async throws -> T

    /// ``transaction(_:)`` allowed at least `minimum`, where a database bounds its calls by
    /// a shorter deadline (schema migrations, whose back-fills scale with the data).
    func transaction<T: Sendable>(
        atLeast minimum: Duration, _ body: @escaping @Sendable (any StateDatabase) async throws -> T
    ) async throws -> T

    /// Releases the database's connections. Calls after this fail.
    func close() async throws

    /// Notifications to every process on the same database, when it can send them
    /// (PostgreSQL's LISTEN/NOTIFY); `nil`: this process is the only one.
    var changeFeed: (any DatabaseChangeFeed)? { get }

    /// One leader among the processes on the same database (PostgreSQL's advisory locks);
    /// `nil`: this process is the only one, and leads.
    var leaderElection: (any DatabaseLeaderElection)? { get }
}

extension StateDatabase {
    package func transaction<T: Sendable>(
        atLeast minimum: Duration, _ body: @escaping @Sendable (any StateDatabase) async throws -> T
    ) async throws -> T {
        try await transaction(body)
    }

    package func report(_ sql: String, _ binds: [StateValue]) async throws -> [StateRow] {
        try await offEventLoops { try await query(sql, binds) }
    }

    package var changeFeed: (any DatabaseChangeFeed)? { nil }
    package var leaderElection: (any DatabaseLeaderElection)? { nil }
}

/// A database's notifications across processes.
package protocol DatabaseChangeFeed: Sendable {
    func notify(channel: String, payload: String) async throws
    /// Calls `onNotification` for each payload on `channel` until cancelled or the
    /// connection is lost (then it throws).
    func listen(channel: String, onNotification: @Sendable (String) async -> Void) async throws
}

/// A database's leader election across processes.
package protocol DatabaseLeaderElection: Sendable {
    /// Runs `body` while this process holds the lock `key`; `nil`, without running it, when
    /// another process holds it. `body` is cancelled when the lock can no longer be confirmed.
    func withAdvisoryLock<T: Sendable>(key: Int64, _ body: @escaping @Sendable () async throws -> T) async throws -> T?
}

extension StateDatabase {
    @discardableResult
    package func query(_ sql: String) async throws -> [StateRow] {
        try await query(sql, [])
    }
}

/// Runs `operation` on the global concurrent executor instead of the caller's: a request's
/// task runs on its connection's event loop (``EventLoopExecutor``), and work that may take
/// long (a large decode, a report) must not hold up the other connections of that loop.
package func offEventLoops<T: Sendable>(_ operation: @Sendable () async throws -> T) async throws -> T {
    try await withTaskExecutorPreference(globalConcurrentExecutor) { try await operation() }
}

/// A FIFO lock for async code: one holder at a time, waiters resumed in arrival order.
/// Used where one connection must not interleave statements of two callers (SQLite).
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if state.locked {
                    state.waiters.append(continuation)
                    return false
                }
                state.locked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
