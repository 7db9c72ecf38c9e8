public import Foundation

/// Which usage records a query reads.
public struct UsageFilter: Sendable, Hashable {
    public var from: Date
    public var to: Date
    public var user: String?
    public var model: String?
    /// Only records made under this group.
    public var group: String?

    public init(from: Date, to: Date, user: String? = nil, model: String? = nil, group: String? = nil) {
        self.from = from
        self.to = to
        self.user = user
        self.model = model
        self.group = group
    }
}

/// Sums of usage records in one hour for one model (and user and token, when asked).
public struct UsageAggregate: Sendable, Hashable {
    public var hour: Int64
    public var model: String
    public var user: String?
    public var tokenID: String?
    public var requests: Int
    public var errors: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var estimated: Int
    public var cost: Double
}

/// One record's latencies.
public struct UsageSample: Sendable, Hashable {
    public var model: String
    public var durationMs: Double
    public var timeToFirstTokenMs: Double?
    public var ok: Bool
}

/// Replica time of a hosted model in one hour.
public struct ReplicaTime: Sendable, Hashable {
    public var model: String
    public var hour: Int64
    public var seconds: Double
}

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

extension SQLStateStore {
    /// How groups are kept in one column: `,a,b,`, with `%` and `,` in names escaped, so
    /// one `LIKE` finds a group.
    static func groupsColumn(_ groups: [String]) -> String {
        "," + groups.map(escapeGroup).joined(separator: ",") + ","
    }

    private static func escapeGroup(_ group: String) -> String {
        group.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ",", with: "%2C")
    }

    private static func unescapeGroup(_ group: Substring) -> String {
        group.replacingOccurrences(of: "%2C", with: ",").replacingOccurrences(of: "%25", with: "%")
    }

    /// The rollup's columns, and the statement that sums raw records into them (the v9
    /// migration's backfill, and the repair of an hour that retention cut).
    static let usageHourlyColumns =
        "hour, model, username, token_id, groups, requests, errors, input_tokens, output_tokens, estimated, cost"
    static let usageHourlyKeys = "hour, model, username, COALESCE(token_id, ''), groups"
    static let usageHourlySelect = """
        SELECT \(usageHourlyKeys), COUNT(*), SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens),
            SUM(estimated), SUM(COALESCE(cost, 0)) FROM usage_records
        """

    /// One row of the hourly rollup.
    private struct HourlyKey: Hashable, Comparable {
        var hour: Int64
        var model: String
        var username: String
        var tokenID: String
        var groups: String

        static func < (lhs: HourlyKey, rhs: HourlyKey) -> Bool {
            (lhs.hour, lhs.model, lhs.username, lhs.tokenID, lhs.groups) < (rhs.hour, rhs.model, rhs.username, rhs.tokenID, rhs.groups)
        }
    }

    private struct HourlySums {
        var requests: Int64 = 0
        var errors: Int64 = 0
        var inputTokens: Int64 = 0
        var outputTokens: Int64 = 0
        var estimated: Int64 = 0
        var cost: Double = 0

        mutating func add(_ record: UsageRecord) {
            requests += 1
            errors += record.status == "ok" ? 0 : 1
            inputTokens += Int64(record.inputTokens)
            outputTokens += Int64(record.outputTokens)
            estimated += record.estimated ? 1 : 0
            cost += record.cost ?? 0
        }
    }

    /// Writes usage records and adds them to the hourly rollup, in one transaction: a record
    /// written twice (a retried batch) is stored, and summed, once.
    public func insertUsage(_ records: [UsageRecord]) async throws {
        guard !records.isEmpty else { return }
        let columns =
            "id, at, hour, request_id, username, token_id, groups, model, served_by, endpoint, operation, input_tokens, output_tokens, estimated, duration_ms, ttft_ms, status, cost"
        let row = "(" + Array(repeating: "?", count: 18).joined(separator: ", ") + ")"
        try await database.transaction { db in
            var inserted = Set<String>()
            // 100 rows a statement stays under every driver's bind limit.
            var start = 0
            while start < records.count {
                let slice = records[start..<min(start + 100, records.count)]
                var binds: [StateValue] = []
                binds.reserveCapacity(slice.count * 18)
                for record in slice {
                    let at = record.time.timeIntervalSince1970
                    binds += [
                        .text(record.id), .double(at), .integer(Int64(at / 3600) * 3600), .text(record.requestId), .text(record.username),
                        record.tokenId.map { .text($0) } ?? .null, .text(Self.groupsColumn(record.groups)), .text(record.model),
                        record.servedBy.map { .text($0) } ?? .null, record.endpoint.map { .text($0) } ?? .null, .text(record.operation),
                        .integer(Int64(record.inputTokens)), .integer(Int64(record.outputTokens)), .integer(record.estimated ? 1 : 0),
                        .double(record.durationMs), record.timeToFirstTokenMs.map { .double($0) } ?? .null, .text(record.status),
                        record.cost.map { .double($0) } ?? .null,
                    ]
                }
                let values = Array(repeating: row, count: slice.count).joined(separator: ", ")
                let rows = try await db.query(
                    "INSERT INTO usage_records (\(columns)) VALUES \(values) ON CONFLICT (id) DO NOTHING RETURNING id", binds
                )
                for row in rows { if let id = row["id"].string { inserted.insert(id) } }
                start += slice.count
            }
            var sums: [HourlyKey: HourlySums] = [:]
            for record in records where inserted.remove(record.id) != nil {
                let key = HourlyKey(
                    hour: Int64(record.time.timeIntervalSince1970 / 3600) * 3600, model: record.model, username: record.username,
                    tokenID: record.tokenId ?? "", groups: Self.groupsColumn(record.groups)
                )
                sums[key, default: HourlySums()].add(record)
            }
            try await Self.addToRollup(sums, in: db)
        }
    }

    private static func addToRollup(_ sums: [HourlyKey: HourlySums], in db: any StateDatabase) async throws {
        // One order for every writer, so two batches never wait on each other's rows.
        let keys = sums.keys.sorted()
        var start = 0
        while start < keys.count {
            let slice = keys[start..<min(start + 50, keys.count)]
            var binds: [StateValue] = []
            for key in slice {
                let sum = sums[key]!
                binds += [
                    .integer(key.hour), .text(key.model), .text(key.username), .text(key.tokenID), .text(key.groups), .integer(sum.requests),
                    .integer(sum.errors), .integer(sum.inputTokens), .integer(sum.outputTokens), .integer(sum.estimated), .double(sum.cost),
                ]
            }
            let values = Array(repeating: "(" + Array(repeating: "?", count: 11).joined(separator: ", ") + ")", count: slice.count)
                .joined(separator: ", ")
            try await db.query(
                """
                INSERT INTO usage_hourly AS h (\(usageHourlyColumns)) VALUES \(values)
                ON CONFLICT (hour, model, username, token_id, groups) DO UPDATE SET requests = h.requests + EXCLUDED.requests,
                    errors = h.errors + EXCLUDED.errors, input_tokens = h.input_tokens + EXCLUDED.input_tokens,
                    output_tokens = h.output_tokens + EXCLUDED.output_tokens, estimated = h.estimated + EXCLUDED.estimated,
                    cost = h.cost + EXCLUDED.cost
                """,
                binds
            )
            start += slice.count
        }
    }

    /// The `WHERE` of a usage query over `time` (`at` in the records, `hour` in the rollup)
    /// from `from` to `to`.
    private func usageWhere(_ filter: UsageFilter, time: String = "at", from: Double? = nil, to: Double? = nil) -> (String, [StateValue]) {
        var clauses = ["\(time) >= ?", "\(time) < ?"]
        var binds: [StateValue] = [.double(from ?? filter.from.timeIntervalSince1970), .double(to ?? filter.to.timeIntervalSince1970)]
        if let user = filter.user {
            clauses.append("username = ?")
            binds.append(.text(user))
        }
        if let model = filter.model {
            clauses.append("model = ?")
            binds.append(.text(model))
        }
        if let group = filter.group {
            // LIKE's own wildcards in the name are escaped with '!'.
            let pattern = Self.escapeGroup(group).replacingOccurrences(of: "!", with: "!!").replacingOccurrences(of: "_", with: "!_")
                .replacingOccurrences(of: "%", with: "!%")
            clauses.append("groups LIKE ? ESCAPE '!'")
            binds.append(.text("%," + pattern + ",%"))
        }
        return (clauses.joined(separator: " AND "), binds)
    }

    /// Sums by hour and model (and user, token). Whole hours are read from the hourly rollup;
    /// only the parts of the first and last hour the window cuts are summed from raw
    /// records. Reports read through ``StateDatabase/report(_:_:)``, never the request
    /// path's connection.
    public func usageAggregates(_ filter: UsageFilter, byUser: Bool, byToken: Bool) async throws -> [UsageAggregate] {
        let from = filter.from.timeIntervalSince1970
        let to = filter.to.timeIntervalSince1970
        let wholeFrom = (from / 3600).rounded(.up) * 3600
        let wholeTo = (to / 3600).rounded(.down) * 3600
        guard wholeFrom < wholeTo else { return try await rawAggregates(filter, from: from, to: to, byUser: byUser, byToken: byToken) }
        var keys = ["hour", "model"]
        if byUser { keys.append("username") }
        if byToken { keys.append("token_id") }
        let (whereClause, binds) = usageWhere(filter, time: "hour", from: wholeFrom, to: wholeTo)
        let rows = try await database.report(
            """
            SELECT \(keys.joined(separator: ", ")), CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors,
                CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
                CAST(SUM(estimated) AS BIGINT) AS estimated, SUM(cost) AS cost
            FROM usage_hourly WHERE \(whereClause) GROUP BY \(keys.joined(separator: ", "))
            """,
            binds
        )
        var aggregates = rows.map { Self.aggregate($0, byUser: byUser, byToken: byToken) }
        if from < wholeFrom { aggregates += try await rawAggregates(filter, from: from, to: wholeFrom, byUser: byUser, byToken: byToken) }
        if wholeTo < to { aggregates += try await rawAggregates(filter, from: wholeTo, to: to, byUser: byUser, byToken: byToken) }
        return aggregates
    }

    private func rawAggregates(_ filter: UsageFilter, from: Double, to: Double, byUser: Bool, byToken: Bool) async throws -> [UsageAggregate] {
        let (whereClause, binds) = usageWhere(filter, from: from, to: to)
        var keys = ["hour", "model"]
        if byUser { keys.append("username") }
        if byToken { keys.append("token_id") }
        let rows = try await database.report(
            """
            SELECT \(keys.joined(separator: ", ")), COUNT(*) AS requests,
                CAST(SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS errors,
                CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens,
                CAST(SUM(estimated) AS BIGINT) AS estimated, SUM(COALESCE(cost, 0)) AS cost
            FROM usage_records WHERE \(whereClause) GROUP BY \(keys.joined(separator: ", "))
            """,
            binds
        )
        return rows.map { Self.aggregate($0, byUser: byUser, byToken: byToken) }
    }

    private static func aggregate(_ row: StateRow, byUser: Bool, byToken: Bool) -> UsageAggregate {
        UsageAggregate(
            hour: Int64(row["hour"].int ?? 0), model: row["model"].string ?? "", user: byUser ? row["username"].string : nil,
            tokenID: byToken ? row["token_id"].string.flatMap { $0.isEmpty ? nil : $0 } : nil, requests: row["requests"].int ?? 0,
            errors: row["errors"].int ?? 0, inputTokens: row["input_tokens"].int ?? 0, outputTokens: row["output_tokens"].int ?? 0,
            estimated: row["estimated"].int ?? 0, cost: row["cost"].double ?? 0
        )
    }

    /// The groups calls in the window were made under, from the rollup (a group seen only in
    /// a cut hour's other part lists with no rows).
    public func usageGroups(_ filter: UsageFilter) async throws -> [String] {
        let (whereClause, binds) = usageWhere(
            filter, time: "hour", from: (filter.from.timeIntervalSince1970 / 3600).rounded(.down) * 3600, to: filter.to.timeIntervalSince1970
        )
        let rows = try await database.report("SELECT DISTINCT groups FROM usage_hourly WHERE \(whereClause)", binds)
        var groups = Set<String>()
        for row in rows {
            for name in (row["groups"].string ?? "").split(separator: ",") { groups.insert(Self.unescapeGroup(name)) }
        }
        return groups.sorted()
    }

    public func usageSamples(_ filter: UsageFilter, limit: Int) async throws -> [UsageSample] {
        let (whereClause, binds) = usageWhere(filter)
        let rows = try await database.report(
            "SELECT model, duration_ms, ttft_ms, status FROM usage_records WHERE \(whereClause) ORDER BY at DESC LIMIT ?",
            binds + [.integer(Int64(limit))]
        )
        return rows.map { row in
            UsageSample(
                model: row["model"].string ?? "", durationMs: row["duration_ms"].double ?? 0, timeToFirstTokenMs: row["ttft_ms"].double,
                ok: row["status"].string == "ok"
            )
        }
    }

    /// Deletes the records before `time` and their hours of the rollup; an hour `time` cuts is
    /// summed again from the records it keeps.
    public func deleteUsage(before time: Date) async throws -> Int {
        let cut = Int64((time.timeIntervalSince1970 / 3600).rounded(.down)) * 3600
        return try await database.transaction { db in
            let rows = try await db.query("DELETE FROM usage_records WHERE at < ? RETURNING id", [.double(time.timeIntervalSince1970)])
            try await db.query("DELETE FROM usage_hourly WHERE hour <= ?", [.integer(cut)])
            try await db.query(
                "INSERT INTO usage_hourly (\(Self.usageHourlyColumns)) \(Self.usageHourlySelect) WHERE hour = ? GROUP BY \(Self.usageHourlyKeys)",
                [.integer(cut)]
            )
            return rows.count
        }
    }

    public func addReplicaSeconds(_ seconds: Double, model: String, hour: Int64) async throws {
        try await database.query(
            """
            INSERT INTO replica_seconds (model, hour, seconds) VALUES (?, ?, ?)
            ON CONFLICT (model, hour) DO UPDATE SET seconds = replica_seconds.seconds + EXCLUDED.seconds
            """,
            [.text(model), .integer(hour), .double(seconds)]
        )
    }

    public func replicaSeconds(fromHour: Int64, toHour: Int64) async throws -> [ReplicaTime] {
        let rows = try await database.query(
            "SELECT model, hour, seconds FROM replica_seconds WHERE hour >= ? AND hour < ?", [.integer(fromHour), .integer(toHour)]
        )
        return rows.map { ReplicaTime(model: $0["model"].string ?? "", hour: Int64($0["hour"].int ?? 0), seconds: $0["seconds"].double ?? 0) }
    }

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

    // Reservations are remembered (`budget_reservations`) only where another process may
    // have to release them: a store shared by replicas. One SQLite file has one process,
    // which releases whatever was held when it opens the store again.
    public func reserveBudget(id: String, lines: [BudgetLine], expiresAt: Double) async throws -> BudgetCounter? {
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
                    Self.takeBinds(line) + [.text(id), .text(try Self.json(lines)), .double(expiresAt)]
                )
            } else {
                taken = try await database.query(Self.take + " RETURNING key", Self.takeBinds(line))
            }
            return taken.isEmpty ? try await counter(line, in: database) : nil
        }
        // One order for every request, so two reservations never wait on each other's rows.
        let ordered = lines.sorted { ($0.key, $0.periodStart) < ($1.key, $1.periodStart) }
        let record = try Self.json(lines)
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
            try? await database.query("DELETE FROM budget_counters WHERE period_start < ? AND reserved <= 0", [.double(time - 400 * 86400)])
        }
        return released
    }

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
