import Foundation

/// One counter a request reserves on: `amount` of the budget `key` for the period starting
/// at `periodStart`, whose limit is `limit`.
public struct BudgetLine: Sendable, Hashable, Codable {
    public var key: String
    public var periodStart: Double
    public var limit: Double
    public var amount: Double

    public init(key: String, periodStart: Double, limit: Double, amount: Double) {
        self.key = key
        self.periodStart = periodStart
        self.limit = limit
        self.amount = amount
    }
}

/// A budget counter as stored.
public struct BudgetCounter: Sendable, Hashable {
    public var key: String
    public var periodStart: Double
    public var spent: Double
    public var reserved: Double
}

extension UsageStore {

    /// Thrown inside a reservation's transaction to roll it back.
    private struct Refused: Error {
        let counter: BudgetCounter
    }

    /// Takes `line`'s amount unless its counter is at its limit: one atomic statement.
    private static let take = """
        INSERT INTO budget_counters AS c (key, period_start, spent, reserved) VALUES (?, ?, 0, ?)
        ON CONFLICT (key, period_start) DO UPDATE SET reserved = c.reserved + EXCLUDED.reserved
        WHERE c.spent + c.reserved < ?
        """

    private static func takeBinds(_ line: BudgetLine) -> [StateValue] {
        [.text(line.key), .double(line.periodStart), .double(line.amount), .double(line.limit)]
    }

    private static let charge = "UPDATE budget_counters SET reserved = reserved - ?, spent = spent + ? WHERE key = ? AND period_start = ?"

    private func counter(_ line: BudgetLine, in db: any StateDatabase) async throws -> BudgetCounter {
        let current = try await db.query(
            "SELECT spent, reserved FROM budget_counters WHERE key = ? AND period_start = ?", [.text(line.key), .double(line.periodStart)]
        ).first
        return BudgetCounter(
            key: line.key, periodStart: line.periodStart, spent: current?["spent"].double ?? 0, reserved: current?["reserved"].double ?? 0
        )
    }

    /// Reserves every line's amount at once, atomically across every process sharing the
    /// store: each counter takes its amount unless what is spent and reserved on it has
    /// already reached its limit. Returns `nil` when all were reserved (and remembers the
    /// reservation under `id` until `expiresAt`), or the counter that refused, reserving nothing.
    public func reserveBudget(id: String, lines: [BudgetLine], expiresAt: Double) async throws -> BudgetCounter? {
        // Reservations are remembered (`budget_reservations`) only where another process may
        // have to release them: a store shared by replicas. One SQLite file has one process,
        // which releases whatever was held when it opens the store again.
        guard !lines.isEmpty else { return nil }
        let shared = isShared && database.dialect == .postgres
        if lines.count == 1, let line = lines.first {
            // The common case in one round trip: take, and remember the reservation, atomically.
            let taken: [StateRow]
            if shared {
                taken = try await database.query(
                    """
                    WITH taken AS (\(Self.take) RETURNING key),
                    remembered AS (INSERT INTO budget_reservations (id, lines, expires_at) SELECT ?, ?, ? FROM taken RETURNING id)
                    SELECT key FROM taken
                    """,
                    Self.takeBinds(line) + [.text(id), .text(try SQLStateStore.json(lines)), .double(expiresAt)]
                )
            } else {
                taken = try await database.query(Self.take + " RETURNING key", Self.takeBinds(line))
            }
            return taken.isEmpty ? try await counter(line, in: database) : nil
        }
        // One order for every request, so two reservations never wait on each other's rows.
        let ordered = lines.sorted { ($0.key, $0.periodStart) < ($1.key, $1.periodStart) }
        let record = try SQLStateStore.json(lines)
        do {
            try await database.transaction { db in
                for line in ordered where try await db.query(Self.take + " RETURNING key", Self.takeBinds(line)).isEmpty {
                    throw Refused(counter: try await self.counter(line, in: db))
                }
                if shared {
                    try await db.query(
                        "INSERT INTO budget_reservations (id, lines, expires_at) VALUES (?, ?, ?)", [.text(id), .text(record), .double(expiresAt)]
                    )
                }
            }
        } catch let refused as Refused {
            return refused.counter
        }
        return nil
    }

    /// Ends the reservation `id`: each line's reservation is released and `spent[i]` charged.
    /// A reservation already released as expired is only charged.
    public func settleBudget(id: String, lines: [BudgetLine], spent: [Double]) async throws {
        let shared = isShared && database.dialect == .postgres
        if lines.count == 1, let line = lines.first, let charge = spent.first {
            if shared {
                // Only the process that deletes the reservation releases what it held.
                try await database.query(
                    """
                    WITH held AS (DELETE FROM budget_reservations WHERE id = ? RETURNING id)
                    UPDATE budget_counters SET reserved = reserved - CASE WHEN EXISTS (SELECT 1 FROM held) THEN ? ELSE 0 END, spent = spent + ?
                    WHERE key = ? AND period_start = ?
                    """,
                    [.text(id), .double(line.amount), .double(charge), .text(line.key), .double(line.periodStart)]
                )
            } else {
                try await database.query(Self.charge, [.double(line.amount), .double(charge), .text(line.key), .double(line.periodStart)])
            }
            return
        }
        let pairs = zip(lines, spent).sorted { ($0.0.key, $0.0.periodStart) < ($1.0.key, $1.0.periodStart) }
        try await database.transaction { db in
            let held = shared ? !(try await db.query("DELETE FROM budget_reservations WHERE id = ? RETURNING id", [.text(id)])).isEmpty : true
            for (line, charge) in pairs {
                try await db.query(Self.charge, [.double(held ? line.amount : 0), .double(charge), .text(line.key), .double(line.periodStart)])
            }
        }
    }

    /// On a store no other process shares, nothing can still hold a reservation when it opens.
    func releaseUnsharedReservations() async throws {
        guard !(isShared && database.dialect == .postgres) else { return }
        try await database.query("UPDATE budget_counters SET reserved = 0 WHERE reserved <> 0")
        try await database.query("DELETE FROM budget_reservations")
    }

    /// Releases reservations whose holder never settled them (it died) by `time`; returns how many.
    @discardableResult
    public func releaseExpiredReservations(before time: Double) async throws -> Int {
        let expired = try await database.query(
            "SELECT id, lines FROM budget_reservations WHERE expires_at < ? ORDER BY expires_at LIMIT 100", [.double(time)]
        )
        var released = 0
        for row in expired {
            guard let id = row["id"].string, let body = row["lines"].string,
                let lines = try? JSONDecoder().decode([BudgetLine].self, from: Data(body.utf8))
            else { continue }
            try await settleBudget(id: id, lines: lines, spent: lines.map { _ in 0 })
            released += 1
        }
        if Int.random(in: 0..<100) == 0 {
            // Counters of periods long past are never read again.
            _ = try? await database.query("DELETE FROM budget_counters WHERE period_start < ? AND reserved <= 0", [.double(time - 400 * 86400)])
        }
        return released
    }

    /// The counters with these keys and periods (those that exist).
    public func budgetCounters(_ keys: [BudgetLine]) async throws -> [BudgetCounter] {
        var counters: [BudgetCounter] = []
        for line in keys {
            if let row = try await database.query(
                "SELECT spent, reserved FROM budget_counters WHERE key = ? AND period_start = ?", [.text(line.key), .double(line.periodStart)]
            ).first {
                counters.append(
                    BudgetCounter(
                        key: line.key, periodStart: line.periodStart, spent: row["spent"].double ?? 0, reserved: row["reserved"].double ?? 0)
                )
            }
        }
        return counters
    }
}
