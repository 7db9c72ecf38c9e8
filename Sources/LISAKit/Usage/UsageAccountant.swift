import Foundation
public import Logging
import NIOCore
import Synchronization
import Tracing

/// Usage recording and the request log (`usage:` in the configuration file).
public struct UsageConfiguration: Sendable, Hashable, Codable {
    /// Whether calls are recorded. Default `true`.
    public var enabled = true
    /// How long records are kept. Default 90 days.
    public var retentionDays = 90
    /// How often buffered records are written (in one batch). Default 1 s.
    public var flushIntervalSeconds = 1.0
    /// The most records kept waiting when the store cannot take them; the oldest go first.
    public var maxBuffered = 100_000
    /// One JSON line per request on standard output (never prompts, answers or secrets). Default `false`.
    public var requestLog = false

    public init() {}

    enum CodingKeys: String, CodingKey { case enabled, retentionDays, flushIntervalSeconds, maxBuffered, requestLog }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays) ?? 90
        flushIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .flushIntervalSeconds) ?? 1
        maxBuffered = try c.decodeIfPresent(Int.self, forKey: .maxBuffered) ?? 100_000
        requestLog = try c.decodeIfPresent(Bool.self, forKey: .requestLog) ?? false
    }
}

/// Accounts for every inference call: reserves budgets before it is sent, and when it ends
/// settles them, records its usage and writes its request-log line.
///
/// The gateway opens a ``Ticket`` per call (``open(_:model:inbound:context:)``); every way a
/// call ends closes it once.
public final class UsageAccountant: Sendable {
    public let settings: UsageConfiguration
    public let budgets: BudgetConfiguration
    public let recorder: UsageRecorder
    private let store: UsageStore
    private let logger: Logger
    /// How long a reservation outlives the longest request before another process releases it.
    private let reservationLifetime: Double

    public init(settings: UsageConfiguration, budgets: BudgetConfiguration, store: UsageStore, requestTimeout: Duration, logger: Logger) {
        self.settings = settings
        self.budgets = budgets
        self.store = store
        self.logger = logger
        self.reservationLifetime = requestTimeout.seconds + 120
        self.recorder = UsageRecorder(settings: settings, store: store, logger: logger)
    }

    // MARK: - Budgets

    /// The budgets that apply to `principal`: its user's (or the default), its groups', its token's.
    public func limits(for principal: Principal) -> [(scope: String, subject: String, limit: BudgetLimit)] {
        guard principal.method != .adminKey else { return [] }
        var result: [(String, String, BudgetLimit)] = []
        if let own = budgets.users[principal.username] ?? budgets.user {
            result.append(("user", principal.username, own))
        }
        for group in Set(principal.groups).sorted() {
            if let shared = budgets.groups[group] { result.append(("group", group, shared)) }
        }
        if let token = principal.budget, let id = principal.tokenID {
            result.append(("token", id, token))
        }
        return result
    }

    /// The start of the UTC day or month `time` is in, and the next one's.
    static func period(_ period: BudgetLimit.Period, at time: Date) -> (start: Date, end: Date) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let unit: Calendar.Component = period == .day ? .day : .month
        let interval = calendar.dateInterval(of: unit, for: time)!
        return (interval.start, interval.end)
    }

    /// One line per metric of each limit, with `tokens` and `cost` as the amounts.
    func lines(for principal: Principal, tokens: Double, cost: Double, at time: Date) -> [BudgetLine] {
        limits(for: principal).flatMap { scope, subject, limit -> [BudgetLine] in
            let start = Self.period(limit.period, at: time).start.timeIntervalSince1970
            var lines: [BudgetLine] = []
            if let most = limit.tokens {
                lines.append(
                    BudgetLine(key: "\(scope):\(subject):tokens:\(limit.period.rawValue)", periodStart: start, limit: Double(most), amount: tokens))
            }
            if let most = limit.cost {
                lines.append(BudgetLine(key: "\(scope):\(subject):cost:\(limit.period.rawValue)", periodStart: start, limit: most, amount: cost))
            }
            return lines
        }
    }

    /// Where the budgets that apply to `principal` stand now.
    public func status(for principal: Principal) async throws -> [BudgetStatus] {
        let now = Date()
        let lines = lines(for: principal, tokens: 0, cost: 0, at: now)
        let counters = try await store.budgetCounters(lines)
        return lines.map { line in
            let (scope, subject, metric, period) = Self.parse(line.key)
            let counter = counters.first { $0.key == line.key && $0.periodStart == line.periodStart }
            return BudgetStatus(
                scope: scope, subject: subject, metric: metric,
                period: period, limit: line.limit, spent: counter?.spent ?? 0, reserved: max(counter?.reserved ?? 0, 0),
                resetsAt: Self.period(period, at: now).end
            )
        }
    }

    /// Throws ``LISAError/quotaExceeded(_:)`` (429, reason `budget_exceeded`) when a budget of
    /// `principal` is spent already (what is spent and reserved has reached its limit): work
    /// that will spend on it later (an ingestion job) is refused before it is queued.
    public func checkBudgets(of principal: Principal) async throws(LISAError) {
        let now = Date()
        let lines = lines(for: principal, tokens: 0, cost: 0, at: now)
        guard !lines.isEmpty else { return }
        let counters: [BudgetCounter]
        do {
            counters = try await store.budgetCounters(lines)
        } catch {
            throw (error as? LISAError) ?? .stateStoreUnavailable("Budgets cannot be checked: the state store failed (\(error)).")
        }
        for line in lines {
            if let counter = counters.first(where: { $0.key == line.key && $0.periodStart == line.periodStart }),
                counter.spent + max(counter.reserved, 0) >= line.limit
            {
                throw Self.exceeded(counter, lines: lines, now: now)
            }
        }
    }

    // MARK: - Tickets

    /// The output tokens a request may produce, every answer of it: see ``OutputLimit``; the
    /// configured default when it sets no limit that counts; `media`'s estimate on the media
    /// routes; none for embeddings, rerank and moderations.
    func reservedOutput(_ operation: UpstreamOperation, inbound: ByteBuffer?, media: MediaEstimate? = nil) -> Int {
        if let media { return media.output }
        guard let inbound, let limit = OutputLimit(operation, inbound: inbound) else { return 0 }
        return limit.reservation(cap: nil, fallback: budgets.defaultReservationTokens)
    }

    /// Opens the accounting of one call: reserves what it may spend on every budget that
    /// applies, or throws ``LISAError/quotaExceeded(_:)`` (429, reason `budget_exceeded`)
    /// naming the budget and when it resets.
    ///
    /// `span` (the call's GenAI span) ends when the ticket closes, with the call's usage; a
    /// call refused here closes its ticket before the error is thrown.
    func open(
        _ operation: UpstreamOperation, model: RoutableModel, inbound: ByteBuffer?, media: MediaEstimate? = nil, context: InferenceContext,
        span: (any Span)? = nil
    ) async throws(LISAError) -> Ticket {
        let now = Date()
        // About four bytes a token of JSON text; forms (audio, images) have their own estimate.
        let inputEstimate = media?.input ?? inbound.map { max($0.readableBytes / 4, 1) } ?? 0
        let ticket = Ticket(
            accountant: self, operation: context.operationUsageLabel(operation), requested: model.definition.modelId,
            context: context, inputEstimate: inputEstimate, media: media, pricing: model.definition.pricing, time: now, span: span
        )
        // Most calls have no budget (the admin key never does): nothing more to do for them.
        if let payer = context.budgetPayer, !limits(for: payer).isEmpty {
            let output = reservedOutput(operation, inbound: inbound, media: media)
            let cost = model.definition.pricing?.tokenCost(input: inputEstimate, output: output) ?? 0
            let lines = lines(for: payer, tokens: Double(inputEstimate + output), cost: cost, at: now)
            if !lines.isEmpty {
                let id = "\(context.requestID)-\(UInt32.random(in: .min ... .max))"
                let refused: BudgetCounter?
                do {
                    refused = try await store.reserveBudget(id: id, lines: lines, expiresAt: now.timeIntervalSince1970 + reservationLifetime)
                } catch {
                    let failure = (error as? LISAError) ?? .stateStoreUnavailable("Budgets cannot be checked: the state store failed (\(error)).")
                    ticket.finish(error: failure)
                    throw failure
                }
                if let refused {
                    let error = Self.exceeded(refused, lines: lines, now: now)
                    ticket.finish(error: error)
                    throw error
                }
                ticket.reservation = (id, lines)
            }
        }
        return ticket
    }

    /// A counter key's parts: `scope:subject:metric:period` (a subject may hold colons).
    static func parse(_ key: String) -> (scope: String, subject: String, metric: String, period: BudgetLimit.Period) {
        let parts = key.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        return (
            parts.first ?? "", parts.dropFirst().dropLast(2).joined(separator: ":"), parts.dropLast().last ?? "tokens",
            BudgetLimit.Period(rawValue: parts.last ?? "day") ?? .day
        )
    }

    /// A token count for a message: whole, and never a trap whatever the stored value.
    static func whole(_ value: Double) -> String {
        value.isFinite && abs(value) < 1e15 ? String(Int(value.rounded())) : String(format: "%.0f", value)
    }

    static func exceeded(_ counter: BudgetCounter, lines: [BudgetLine], now: Date) -> LISAError {
        let (scope, subject, metric, kind) = parse(counter.key)
        let limit = lines.first { $0.key == counter.key }?.limit ?? 0
        let reset = Self.period(kind, at: now).end
        let figures =
            metric == "tokens"
            ? "\(whole(counter.spent)) of \(whole(limit)) tokens used, \(whole(max(counter.reserved, 0))) held by requests in flight"
            : "\(format(counter.spent)) of \(format(limit)) spent, \(format(max(counter.reserved, 0))) held by requests in flight"
        let whose = scope == "token" ? "API token \(subject)" : "\(scope) '\(subject)'"
        return LISAError(
            .quotaExceeded,
            "The \(metric) budget of \(whose) for this \(kind.rawValue) is spent (\(figures)); it resets at \(reset.formatted(.iso8601)).",
            reason: "budget_exceeded", retryAfter: max(Int(reset.timeIntervalSince(now).rounded(.up)), 1)
        )
    }

    private static func format(_ value: Double) -> String {
        String(format: "%.4f", value)
    }

    /// One call's accounting, closed once by whichever way the call ends.
    ///
    /// A gateway without an accountant still gets tickets when it traces: they only end spans.
    final class Ticket: Sendable {
        private let accountant: UsageAccountant?
        let operation: String
        let requested: String
        let context: InferenceContext
        let inputEstimate: Int
        /// The media route's estimate, used when the upstream reports no usage.
        let media: MediaEstimate?
        /// The requested model's prices, for a call that ends before any model answered.
        let pricing: ModelPricing?
        let time: Date
        let start = ContinuousClock.now
        /// The call's GenAI span, ended when the ticket closes.
        let span: (any Span)?
        private let state = Mutex<State>(State())

        private struct State {
            var reservation: (id: String, lines: [BudgetLine])?
            var closed = false
            /// Whether an upstream may have read the prompt (it answered, or the call was
            /// abandoned or timed out after it was sent): a call that fails after this is
            /// charged its input.
            var delivered = false
        }

        init(
            accountant: UsageAccountant?, operation: String, requested: String, context: InferenceContext, inputEstimate: Int,
            media: MediaEstimate? = nil, pricing: ModelPricing? = nil, time: Date, span: (any Span)? = nil
        ) {
            self.accountant = accountant
            self.operation = operation
            self.requested = requested
            self.context = context
            self.inputEstimate = inputEstimate
            self.media = media
            self.pricing = pricing
            self.time = time
            self.span = span
        }

        /// A ticket that only ends `span` (no usage is recorded).
        convenience init(spanOnly span: any Span, requested: String, context: InferenceContext) {
            self.init(accountant: nil, operation: "", requested: requested, context: context, inputEstimate: 0, time: Date(), span: span)
        }

        var reservation: (id: String, lines: [BudgetLine])? {
            get { state.withLock { $0.reservation } }
            set { state.withLock { $0.reservation = newValue } }
        }

        /// Records that an upstream may have read the prompt: it answered, or the call was
        /// abandoned (the client left) or timed out after the request went out.
        func delivered() {
            state.withLock { $0.delivered = true }
        }

        /// Closes the ticket for a call that answered: `usage` as the upstream reported it
        /// (`usageEstimated` when part of it is LISA's estimate), else the media route's
        /// estimate, else the input estimate and `outputEstimate` (LISA's estimate of the
        /// tokens sent back).
        func finish(
            servedBy: ModelDefinition, endpoint: String?, usage: Usage?, usageEstimated: Bool = false, outputEstimate: Int,
            firstToken: ContinuousClock.Instant?, failed: Bool = false
        ) {
            let input = usage?.promptTokens ?? inputEstimate
            let output = usage.map { $0.completionTokens ?? max($0.totalTokens - $0.promptTokens, 0) } ?? media?.output ?? outputEstimate
            close(
                servedBy: servedBy, endpoint: endpoint, input: input, output: output, estimated: usage == nil || usageEstimated,
                firstToken: firstToken, status: failed ? "stream_error" : "ok"
            )
        }

        /// Closes the ticket for a call that failed before an answer: one an upstream may
        /// have read (``delivered()``) is charged its input, estimated.
        func finish(error: LISAError) {
            Traces.fail(span, error)
            let input = state.withLock { $0.delivered } ? inputEstimate : 0
            close(
                servedBy: nil, endpoint: error.endpointLabel, input: input, output: 0, estimated: input > 0, firstToken: nil,
                status: error.reason ?? "error"
            )
        }

        private func close(
            servedBy: ModelDefinition?, endpoint: String?, input: Int, output: Int, estimated: Bool, firstToken: ContinuousClock.Instant?,
            status: String
        ) {
            let reservation: (id: String, lines: [BudgetLine])? = state.withLock { state in
                guard !state.closed else { return nil }
                state.closed = true
                return state.reservation ?? (id: "", lines: [])
            }
            guard let reservation else { return }
            let duration = ContinuousClock.now - start
            // A call no model answered is priced as the model asked for, when it was charged at all.
            let prices = servedBy.map(\.pricing) ?? (input + output > 0 ? pricing : nil)
            let cost = prices?.tokenCost(input: input, output: output)
            if let span {
                if span.isRecording {
                    span.updateAttributes { attributes in
                        if let servedBy {
                            attributes["gen_ai.usage.input_tokens"] = input
                            attributes["gen_ai.usage.output_tokens"] = output
                            if estimated { attributes["lisa.usage.estimated"] = true }
                            attributes["gen_ai.response.model"] = servedBy.modelName
                            if servedBy.modelId != requested { attributes["lisa.served_by"] = servedBy.modelId }
                        }
                        if let endpoint { attributes["lisa.endpoint"] = endpoint }
                        if let firstToken { attributes["lisa.time_to_first_token_ms"] = (firstToken - start).seconds * 1000 }
                        if let cost { attributes["lisa.cost"] = cost }
                        attributes["lisa.status"] = status
                    }
                    if status == "stream_error" { span.setStatus(SpanStatus(code: .error, message: status)) }
                }
                span.end()
            }
            guard let accountant else { return }
            if !reservation.lines.isEmpty {
                let spent = reservation.lines.map { $0.key.contains(":tokens:") ? Double(input + output) : (cost ?? 0) }
                accountant.settle(id: reservation.id, lines: reservation.lines, spent: spent)
            }
            let principal = context.principal
            let payer = context.budgetedAs
            let record = UsageRecord(
                id: UniqueID.uuidString(), time: time, requestId: context.requestID, username: context.billedUser ?? principal.username,
                tokenId: payer?.tokenID ?? principal.tokenID, groups: payer?.groups ?? (context.billedUser == nil ? principal.groups : []),
                model: requested,
                servedBy: servedBy.flatMap { $0.modelId == requested ? nil : $0.modelId }, endpoint: endpoint, operation: operation,
                inputTokens: input, outputTokens: output, estimated: estimated, durationMs: duration.seconds * 1000,
                timeToFirstTokenMs: firstToken.map { ($0 - start).seconds * 1000 }, status: status, cost: cost
            )
            if accountant.settings.enabled { accountant.recorder.record(record) }
            if accountant.settings.requestLog { UsageAccountant.writeLogLine(record) }
        }
    }

    /// Settles a reservation off the request path; a settlement that fails is tried again
    /// twice, then left to expire (released with nothing charged).
    func settle(id: String, lines: [BudgetLine], spent: [Double]) {
        let store = self.store
        let logger = self.logger
        Task {
            for attempt in 1...3 {
                do {
                    try await store.settleBudget(id: id, lines: lines, spent: spent)
                    return
                } catch {
                    if attempt == 3 {
                        logger.warning("settling a budget reservation failed; it is released when it expires", metadata: ["lisa.error": "\(error)"])
                        return
                    }
                    try? await Task.sleep(for: .seconds(attempt))
                }
            }
        }
    }

    // MARK: - Request log

    private static let logEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
        }
        return encoder
    }()

    private static let logOutput = Mutex(())

    /// One JSON object per line on standard output: who, which model, tokens, timing, status.
    static func writeLogLine(_ record: UsageRecord) {
        struct Line: Encodable {
            let type = "lisa.request"
            let record: UsageRecord
            enum CodingKeys: String, CodingKey { case type }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(type, forKey: .type)
                try record.encode(to: encoder)
            }
        }
        guard var data = try? logEncoder.encode(Line(record: record)) else { return }
        data.append(0x0A)
        logOutput.withLock { _ in FileHandle.standardOutput.write(data) }
    }
}

extension InferenceContext {
    /// Whose budgets the call is reserved on: the caller's, or for a call LISA makes for
    /// someone as itself, ``budgetedAs`` (none when it is not set).
    var budgetPayer: Principal? {
        billedUser == nil ? principal : budgetedAs
    }
}

extension UpstreamOperation {
    /// The operation's name in usage records: `chat.completions`, `images.generations`, …
    var usageLabel: String {
        String(decoding: rawValue.utf8.map { $0 == UInt8(ascii: "/") ? UInt8(ascii: ".") : $0 }, as: UTF8.self)
    }
}
