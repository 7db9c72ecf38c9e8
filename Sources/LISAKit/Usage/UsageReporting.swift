public import Foundation

extension UsageQuery {
    /// A query from `GET /usage`'s parameters: `from`, `to` (Unix seconds or ISO 8601;
    /// default the last 24 hours), `bucket` (`hour`, `day`, `month`, `none`; default `day`),
    /// `groupBy` (comma-separated `user`, `model`, `group`, `token`), `user`, `model`.
    public init(parameters: [String: String], now: Date = Date()) throws(LISAError) {
        func date(_ name: String) throws(LISAError) -> Date? {
            guard let text = parameters[name], !text.isEmpty else { return nil }
            var parsed: Date?
            if let seconds = Double(text), seconds.isFinite {
                parsed = Date(timeIntervalSince1970: seconds)
            } else if text.utf8.count <= 64 {
                parsed = (try? Date(text, strategy: .iso8601)) ?? (try? Date(text + "T00:00:00Z", strategy: .iso8601))
            }
            // Years 1970 to 9999: anything else is no date a call was made on.
            guard let parsed, (0...253_402_300_799).contains(parsed.timeIntervalSince1970) else {
                throw .invalidRequest("\(name) must be Unix seconds or an ISO 8601 date from 1970 to 9999.", param: name)
            }
            return parsed
        }
        let to = try date("to") ?? now
        let from = try date("from") ?? to.addingTimeInterval(-86400)
        guard from < to else { throw .invalidRequest("from must be before to.", param: "from") }
        guard to.timeIntervalSince(from) <= Self.maximumWindow else {
            throw .invalidRequest("A report covers at most \(Int(Self.maximumWindow / 86400)) days; narrow from and to.", param: "from")
        }
        var bucket = Bucket.day
        if let text = parameters["bucket"] {
            guard let value = Bucket(rawValue: text) else {
                throw .invalidRequest(
                    "bucket '\(text)' is not one of \(Bucket.allCases.map(\.rawValue).joined(separator: ", ")).", param: "bucket"
                )
            }
            bucket = value
        }
        if bucket == .hour, to.timeIntervalSince(from) > 31 * 86400 {
            throw .invalidRequest("Hourly buckets cover at most 31 days; use bucket=day.", param: "bucket")
        }
        var dimensions: [Dimension] = []
        for name in (parameters["groupBy"] ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let dimension = Dimension(rawValue: name) else {
                throw .invalidRequest(
                    "groupBy '\(name)' is not one of \(Dimension.allCases.map(\.rawValue).joined(separator: ", ")).", param: "groupBy"
                )
            }
            if !dimensions.contains(dimension) { dimensions.append(dimension) }
        }
        self.init(
            from: from, to: to, bucket: bucket, groupBy: dimensions, user: parameters["user"].flatMap { $0.isEmpty ? nil : $0 },
            model: parameters["model"].flatMap { $0.isEmpty ? nil : $0 }
        )
    }
}

extension UsageReport.Row {
    mutating func add(_ aggregate: UsageAggregate, hostedShare share: Double) {
        requests += aggregate.requests
        errors += aggregate.errors
        inputTokens += aggregate.inputTokens
        outputTokens += aggregate.outputTokens
        estimatedRequests += aggregate.estimated
        cost += aggregate.cost + share
        hostedCost += share
    }
}

extension LISARuntime {
    /// `GET /usage`: administrators see everyone's calls; anyone else only their own
    /// (asking for another user is refused). Cost is what the records' token prices say
    /// plus, for `lisa_hosted` models with `pricing.replicaHourly`, the replica time measured
    /// in each hour shared over that hour's tokens (an admin's unfiltered totals also carry
    /// the cost of hours nobody used).
    public func usageReport(_ query: UsageQuery, for principal: Principal) async throws -> UsageReport {
        var query = query
        let isAdmin = configuration.access.isAdmin(principal)
        if !isAdmin {
            if let user = query.user, user != principal.username {
                throw LISAError.forbidden("You may see your own usage only.")
            }
            query.user = principal.username
        }
        let filter = UsageFilter(from: query.from, to: query.to, user: query.user, model: query.model)
        let byUser = query.groupBy.contains(.user)
        let byToken = query.groupBy.contains(.token)
        var tagged: [(group: String?, aggregate: UsageAggregate)] = []
        if query.groupBy.contains(.group) {
            for group in try await store.usage.groups(filter) {
                var scoped = filter
                scoped.group = group
                tagged += try await store.usage.aggregates(scoped, byUser: byUser, byToken: byToken).map { (group, $0) }
            }
        } else {
            tagged = try await store.usage.aggregates(filter, byUser: byUser, byToken: byToken).map { (nil, $0) }
        }

        // Hosted replica time, shared over each hour's tokens of the model (everyone's).
        let fromHour = Int64(query.from.timeIntervalSince1970 / 3600) * 3600
        let toHour = Int64((query.to.timeIntervalSince1970 / 3600).rounded(.up)) * 3600
        let hourly = Dictionary(
            models.records().compactMap { record in record.definition.pricing?.replicaHourly.map { (record.definition.modelId, $0) } },
            uniquingKeysWith: { first, _ in first }
        )
        var hostedCost: [String: Double] = [:]  // "model@hour" → cost
        var idleCost = 0.0
        if !hourly.isEmpty {
            for time in try await store.usage.replicaSeconds(fromHour: fromHour, toHour: toHour) {
                guard let price = hourly[time.model] else { continue }
                hostedCost["\(time.model)@\(time.hour)"] = time.seconds * price / 3600
            }
        }
        var hourTokens: [String: Int] = [:]
        if !hostedCost.isEmpty {
            let everyone = UsageFilter(from: Date(timeIntervalSince1970: Double(fromHour)), to: Date(timeIntervalSince1970: Double(toHour)))
            for aggregate in try await store.usage.aggregates(everyone, byUser: false, byToken: false) {
                hourTokens["\(aggregate.model)@\(aggregate.hour)", default: 0] += aggregate.inputTokens + aggregate.outputTokens
            }
            if isAdmin && query.user == nil && !query.groupBy.contains(.group) {
                for (key, cost) in hostedCost where (hourTokens[key] ?? 0) == 0 {
                    if let model = query.model, !key.hasPrefix(model + "@") { continue }
                    idleCost += cost
                }
            }
        }

        var rows: [String: UsageReport.Row] = [:]
        var order: [String] = []
        var totals = UsageReport.Row()
        for (group, aggregate) in tagged {
            let start = Self.bucketStart(query.bucket, hour: aggregate.hour)
            let hourKey = "\(aggregate.model)@\(aggregate.hour)"
            let tokens = aggregate.inputTokens + aggregate.outputTokens
            let share =
                hostedCost[hourKey].map { cost in (hourTokens[hourKey] ?? 0) > 0 ? cost * Double(tokens) / Double(hourTokens[hourKey]!) : 0 } ?? 0
            var row = UsageReport.Row(
                start: start, user: byUser ? aggregate.user : nil, model: query.groupBy.contains(.model) ? aggregate.model : nil,
                group: group, tokenId: byToken ? aggregate.tokenID : nil
            )
            let key = [start.map { "\($0.timeIntervalSince1970)" } ?? "", row.user ?? "", row.model ?? "", row.group ?? "", row.tokenId ?? ""]
                .joined(separator: "\u{1F}")
            if let existing = rows[key] { row = existing } else { order.append(key) }
            row.add(aggregate, hostedShare: share)
            rows[key] = row
            // With groupBy=group a call counts once in each group it was made under, in the totals too.
            totals.add(aggregate, hostedShare: share)
        }
        totals.cost += idleCost
        totals.hostedCost += idleCost
        let data = order.compactMap { rows[$0] }.sorted { lhs, rhs in
            if lhs.start != rhs.start { return (lhs.start ?? .distantPast) < (rhs.start ?? .distantPast) }
            return (lhs.user ?? "", lhs.model ?? "", lhs.group ?? "", lhs.tokenId ?? "") < (
                rhs.user ?? "", rhs.model ?? "", rhs.group ?? "", rhs.tokenId ?? ""
            )
        }

        let samples = try await store.usage.samples(filter, limit: Self.latencySampleLimit)
        let latency = Dictionary(grouping: samples, by: \.model).map { model, samples -> UsageReport.ModelLatency in
            let durations = samples.map(\.durationMs).sorted()
            let firstTokens = samples.compactMap(\.timeToFirstTokenMs).sorted()
            return UsageReport.ModelLatency(
                model: model, requests: samples.count, errors: samples.filter { !$0.ok }.count, p50Ms: Self.percentile(durations, 0.5),
                p99Ms: Self.percentile(durations, 0.99), timeToFirstTokenP50Ms: firstTokens.isEmpty ? nil : Self.percentile(firstTokens, 0.5),
                timeToFirstTokenP99Ms: firstTokens.isEmpty ? nil : Self.percentile(firstTokens, 0.99)
            )
        }.sorted { $0.model < $1.model }
        return UsageReport(from: query.from, to: query.to, bucket: query.bucket, groupBy: query.groupBy, data: data, totals: totals, latency: latency)
    }

    /// Where the budgets that apply to `principal` stand; an administrator may ask about
    /// another principal (``Principal`` with the user's name and groups).
    public func budgets(for principal: Principal) async throws -> BudgetList {
        BudgetList(data: try await usage.status(for: principal))
    }

    /// How many of the window's latest calls a report's latency percentiles are taken from:
    /// read from raw records, so bounded.
    static let latencySampleLimit = 10_000

    /// The nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.min(Swift.max(rank, 0), sorted.count - 1)]
    }

    static func bucketStart(_ bucket: UsageQuery.Bucket, hour: Int64) -> Date? {
        let time = Date(timeIntervalSince1970: Double(hour))
        switch bucket {
        case .none: return nil
        case .hour: return time
        case .day: return UsageAccountant.period(.day, at: time).start
        case .month: return UsageAccountant.period(.month, at: time).start
        }
    }
}
