public import Foundation

/// What a model costs (`pricing:` on a model): per million tokens for rented models, per
/// replica-hour for models LISA hosts. The unit is whatever currency the prices are in;
/// LISA never converts.
public struct ModelPricing: Sendable, Hashable, Codable {
    /// Cost of one million input (prompt) tokens.
    public var inputPerMillionTokens: Double?
    /// Cost of one million output (completion) tokens.
    public var outputPerMillionTokens: Double?
    /// For `lisa_hosted` models: what one replica costs an hour while it runs. Reports turn
    /// the measured replica-seconds into cost and share it over the tokens served.
    public var replicaHourly: Double?

    public init(inputPerMillionTokens: Double? = nil, outputPerMillionTokens: Double? = nil, replicaHourly: Double? = nil) {
        self.inputPerMillionTokens = inputPerMillionTokens
        self.outputPerMillionTokens = outputPerMillionTokens
        self.replicaHourly = replicaHourly
    }

    /// The per-token cost of `input` and `output` tokens; `nil` when the model has no token prices.
    public func tokenCost(input: Int, output: Int) -> Double? {
        guard inputPerMillionTokens != nil || outputPerMillionTokens != nil else { return nil }
        return Double(input) * (inputPerMillionTokens ?? 0) / 1_000_000 + Double(output) * (outputPerMillionTokens ?? 0) / 1_000_000
    }

    /// Checks the prices: finite and not negative.
    public func validate(param: String) throws(LISAError) {
        for (name, value) in [
            ("inputPerMillionTokens", inputPerMillionTokens), ("outputPerMillionTokens", outputPerMillionTokens), ("replicaHourly", replicaHourly),
        ] {
            if let value, !(value.isFinite && value >= 0) {
                throw .invalidRequest("\(param).\(name) must be a number ≥ 0.", param: "\(param).\(name)")
            }
        }
    }
}

/// One inference call as LISA recorded it (every dialect, embeddings, RAG ingestion).
public struct UsageRecord: Sendable, Hashable, Codable {
    public var id: String
    public var time: Date
    public var requestId: String
    public var username: String
    public var tokenId: String?
    public var groups: [String]
    /// The model the client asked for.
    public var model: String
    /// The model that answered, when a fallback did.
    public var servedBy: String?
    /// The endpoint that answered (its host and port), when one did.
    public var endpoint: String?
    /// `chat.completions`, `completions`, `embeddings`, `messages`, `responses`, a media
    /// route (`images.generations`, …), or `rag.ingestion`.
    public var operation: String
    public var inputTokens: Int
    public var outputTokens: Int
    /// Whether the token counts are LISA's estimate (the upstream reported none).
    public var estimated: Bool
    public var durationMs: Double
    public var timeToFirstTokenMs: Double?
    /// `ok`, or the error's reason (`upstream_timeout`, `budget_exceeded`, `cancelled`, …).
    public var status: String
    /// From the model's token prices; `nil` when it has none.
    public var cost: Double?

    public init(
        id: String, time: Date, requestId: String, username: String, tokenId: String?, groups: [String], model: String, servedBy: String?,
        endpoint: String?, operation: String, inputTokens: Int, outputTokens: Int, estimated: Bool, durationMs: Double,
        timeToFirstTokenMs: Double?, status: String, cost: Double?
    ) {
        self.id = id
        self.time = time
        self.requestId = requestId
        self.username = username
        self.tokenId = tokenId
        self.groups = groups
        self.model = model
        self.servedBy = servedBy
        self.endpoint = endpoint
        self.operation = operation
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.estimated = estimated
        self.durationMs = durationMs
        self.timeToFirstTokenMs = timeToFirstTokenMs
        self.status = status
        self.cost = cost
    }
}

/// What `GET /usage` is asked.
public struct UsageQuery: Sendable, Hashable {
    /// How rows are bucketed in time.
    public enum Bucket: String, Sendable, Hashable, Codable, CaseIterable {
        case hour, day, month, none
    }

    /// What rows are grouped by, besides time.
    public enum Dimension: String, Sendable, Hashable, Codable, CaseIterable {
        case user, model, group, token
    }

    public var from: Date
    public var to: Date
    public var bucket: Bucket
    public var groupBy: [Dimension]
    /// Only this user's calls.
    public var user: String?
    /// Only calls to this model.
    public var model: String?

    public init(from: Date, to: Date, bucket: Bucket = .day, groupBy: [Dimension] = [], user: String? = nil, model: String? = nil) {
        self.from = from
        self.to = to
        self.bucket = bucket
        self.groupBy = groupBy
        self.user = user
        self.model = model
    }

    /// The longest window one report covers.
    public static let maximumWindow: TimeInterval = 400 * 86400
}

/// `GET /usage`: sums per time bucket and group, and latency by model.
public struct UsageReport: Sendable, Hashable, Codable {
    /// One bucket of one group.
    public struct Row: Sendable, Hashable, Codable {
        /// The bucket's start (absent for `bucket=none`).
        public var start: Date?
        public var user: String?
        public var model: String?
        public var group: String?
        public var tokenId: String?
        public var requests: Int
        public var errors: Int
        public var inputTokens: Int
        public var outputTokens: Int
        /// Requests whose token counts are estimates.
        public var estimatedRequests: Int
        /// Token-priced cost plus the share of hosted replica cost.
        public var cost: Double
        /// The share of `lisa_hosted` replica cost included in ``cost``.
        public var hostedCost: Double

        public init(
            start: Date? = nil, user: String? = nil, model: String? = nil, group: String? = nil, tokenId: String? = nil, requests: Int = 0,
            errors: Int = 0, inputTokens: Int = 0, outputTokens: Int = 0, estimatedRequests: Int = 0, cost: Double = 0, hostedCost: Double = 0
        ) {
            self.start = start
            self.user = user
            self.model = model
            self.group = group
            self.tokenId = tokenId
            self.requests = requests
            self.errors = errors
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.estimatedRequests = estimatedRequests
            self.cost = cost
            self.hostedCost = hostedCost
        }
    }

    /// Latency of one model's calls in the window.
    public struct ModelLatency: Sendable, Hashable, Codable {
        public var model: String
        /// The calls the percentiles are taken over (the latest 100,000 at most).
        public var requests: Int
        public var errors: Int
        public var p50Ms: Double
        public var p99Ms: Double
        public var timeToFirstTokenP50Ms: Double?
        public var timeToFirstTokenP99Ms: Double?

        public init(
            model: String, requests: Int, errors: Int, p50Ms: Double, p99Ms: Double, timeToFirstTokenP50Ms: Double?, timeToFirstTokenP99Ms: Double?
        ) {
            self.model = model
            self.requests = requests
            self.errors = errors
            self.p50Ms = p50Ms
            self.p99Ms = p99Ms
            self.timeToFirstTokenP50Ms = timeToFirstTokenP50Ms
            self.timeToFirstTokenP99Ms = timeToFirstTokenP99Ms
        }
    }

    public var object = "usage"
    public var from: Date
    public var to: Date
    public var bucket: UsageQuery.Bucket
    public var groupBy: [UsageQuery.Dimension]
    public var data: [Row]
    public var totals: Row
    public var latency: [ModelLatency]

    public init(from: Date, to: Date, bucket: UsageQuery.Bucket, groupBy: [UsageQuery.Dimension], data: [Row], totals: Row, latency: [ModelLatency]) {
        self.from = from
        self.to = to
        self.bucket = bucket
        self.groupBy = groupBy
        self.data = data
        self.totals = totals
        self.latency = latency
    }
}

/// A spending limit: tokens (input and output together), cost, or both, per UTC day or month.
public struct BudgetLimit: Sendable, Hashable, Codable {
    public enum Period: String, Sendable, Hashable, Codable, CaseIterable {
        case day, month

        public init(from decoder: any Decoder) throws { self = try Self.decodeChoice(from: decoder) }
    }

    public var period: Period
    public var tokens: Int?
    public var cost: Double?

    public init(period: Period, tokens: Int? = nil, cost: Double? = nil) {
        self.period = period
        self.tokens = tokens
        self.cost = cost
    }

    /// Checks the limit: at least one of tokens and cost, neither negative.
    public func validate(param: String) throws(LISAError) {
        guard tokens != nil || cost != nil else {
            throw .invalidRequest("\(param) needs tokens, cost or both.", param: param)
        }
        if let tokens, tokens < 0 { throw .invalidRequest("\(param).tokens must be ≥ 0.", param: "\(param).tokens") }
        if let cost, !(cost.isFinite && cost >= 0) { throw .invalidRequest("\(param).cost must be a number ≥ 0.", param: "\(param).cost") }
    }
}

/// Budgets (`budgets:` in the configuration file); a token's own budget is set on the token.
public struct BudgetConfiguration: Sendable, Hashable, Codable {
    /// What each user may spend, unless ``users`` names them (the admin key has no budget).
    public var user: BudgetLimit?
    /// Budgets of named users, in place of ``user``.
    public var users: [String: BudgetLimit]
    /// Budgets a group's members share.
    public var groups: [String: BudgetLimit]
    /// The output tokens reserved for a request that sets no `max_tokens` (or
    /// `max_completion_tokens`, `max_output_tokens`).
    public var defaultReservationTokens: Int

    public init(
        user: BudgetLimit? = nil, users: [String: BudgetLimit] = [:], groups: [String: BudgetLimit] = [:], defaultReservationTokens: Int = 4096
    ) {
        self.user = user
        self.users = users
        self.groups = groups
        self.defaultReservationTokens = defaultReservationTokens
    }

    enum CodingKeys: String, CodingKey { case user, users, groups, defaultReservationTokens }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        user = try c.decodeIfPresent(BudgetLimit.self, forKey: .user)
        users = try c.decodeIfPresent([String: BudgetLimit].self, forKey: .users) ?? [:]
        groups = try c.decodeIfPresent([String: BudgetLimit].self, forKey: .groups) ?? [:]
        defaultReservationTokens = try c.decodeIfPresent(Int.self, forKey: .defaultReservationTokens) ?? 4096
    }

    /// Whether any budget is configured (a token may still carry its own).
    public var isEmpty: Bool { user == nil && users.isEmpty && groups.isEmpty }
}

/// Where one budget stands (`GET /budgets`).
public struct BudgetStatus: Sendable, Hashable, Codable {
    /// `user`, `group` or `token`.
    public var scope: String
    public var subject: String
    /// `tokens` or `cost`.
    public var metric: String
    public var period: BudgetLimit.Period
    public var limit: Double
    /// Settled in this period.
    public var spent: Double
    /// Held by requests still running.
    public var reserved: Double
    public var resetsAt: Date

    public init(
        scope: String, subject: String, metric: String, period: BudgetLimit.Period, limit: Double, spent: Double, reserved: Double, resetsAt: Date
    ) {
        self.scope = scope
        self.subject = subject
        self.metric = metric
        self.period = period
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.resetsAt = resetsAt
    }
}

/// `GET /budgets`.
public struct BudgetList: Sendable, Hashable, Codable {
    public var object = "list"
    public var data: [BudgetStatus]

    public init(data: [BudgetStatus]) { self.data = data }
}
