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

extension UsageStore {

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
    public func aggregates(_ filter: UsageFilter, byUser: Bool, byToken: Bool) async throws -> [UsageAggregate] {
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
    public func groups(_ filter: UsageFilter) async throws -> [String] {
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

    /// The latest `limit` records' latencies (percentiles).
    public func samples(_ filter: UsageFilter, limit: Int) async throws -> [UsageSample] {
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
}
