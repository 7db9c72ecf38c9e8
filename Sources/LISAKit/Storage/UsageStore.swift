public import Foundation

/// Usage records and their hourly rollup, hosted replicas' time, and budget counters with
/// their reservations (`UsageStore+Budgets.swift`); the reports' sums are in
/// `UsageStore+Aggregates.swift`.
///
/// Nothing here publishes a change: the usage recorder and accountant write, and reports
/// read through ``StateDatabase/report(_:_:)``. Get one from ``SQLStateStore/usage``; it is
/// safe to use concurrently.
public struct UsageStore: Sendable {
    let database: any StateDatabase

    /// Whether other LISAServe processes may share the store (PostgreSQL).
    var isShared: Bool { database.changeFeed != nil }

    /// How groups are kept in one column: `,a,b,`, with `%` and `,` in names escaped, so
    /// one `LIKE` finds a group.
    static func groupsColumn(_ groups: [String]) -> String {
        "," + groups.map(escapeGroup).joined(separator: ",") + ","
    }

    static func escapeGroup(_ group: String) -> String {
        group.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ",", with: "%2C")
    }

    static func unescapeGroup(_ group: Substring) -> String {
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
    public func insert(_ records: [UsageRecord]) async throws {
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

    /// Deletes the records before `time` and their hours of the rollup; an hour `time` cuts is
    /// summed again from the records it keeps.
    @discardableResult
    public func delete(before time: Date) async throws -> Int {
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

    /// Adds `seconds` of replica time to `model`'s account for the hour starting at `hour` (Unix seconds).
    public func addReplicaSeconds(_ seconds: Double, model: String, hour: Int64) async throws {
        try await database.query(
            """
            INSERT INTO replica_seconds (model, hour, seconds) VALUES (?, ?, ?)
            ON CONFLICT (model, hour) DO UPDATE SET seconds = replica_seconds.seconds + EXCLUDED.seconds
            """,
            [.text(model), .integer(hour), .double(seconds)]
        )
    }

    /// Replica time per model and hour, for hours in `fromHour..<toHour` (Unix seconds).
    public func replicaSeconds(fromHour: Int64, toHour: Int64) async throws -> [ReplicaTime] {
        let rows = try await database.query(
            "SELECT model, hour, seconds FROM replica_seconds WHERE hour >= ? AND hour < ?", [.integer(fromHour), .integer(toHour)]
        )
        return rows.map { ReplicaTime(model: $0["model"].string ?? "", hour: Int64($0["hour"].int ?? 0), seconds: $0["seconds"].double ?? 0) }
    }
}

/// Replica time of a hosted model in one hour.
public struct ReplicaTime: Sendable, Hashable {
    public var model: String
    public var hour: Int64
    public var seconds: Double
}
