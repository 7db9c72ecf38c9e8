import Synchronization

/// The memory that buffered upstream answers may hold: per call, and across every call in
/// flight.
///
/// A buffered (non-streamed) answer is charged as its bytes arrive, times a ``Factor`` for
/// what it costs before it reaches the client: 1 when its bytes pass through, more when LISA
/// translates it (from Messages or Responses to chat, or to Messages or Responses for the
/// client). The charge is released when the call's answer has been handed on.
///
/// - A call whose answer would cost more than ``Limits/perCallBytes`` fails with `502`
///   (`upstream_answer_too_large`): that upstream's answer is too large for LISA to hold.
/// - A call that finds ``Limits/inFlightBytes`` spent by other calls fails with `503` and
///   `Retry-After`: LISA is at its memory budget, and no single user can push it past it.
public final class AnswerMemoryBudget: Sendable {
    /// The budgets (`upstream.maxAnswerMemoryBytes`, `upstream.answersInFlightMemoryBytes`).
    public struct Limits: Sendable, Hashable {
        /// What one call's buffered answer may cost. Default 64 MiB.
        public var perCallBytes: Int = 64 << 20
        /// What all buffered answers in flight may cost together. Default 1 GiB.
        public var inFlightBytes: Int = 1 << 30

        public init() {}
    }

    /// What an answer costs per byte of it, by what happens to it before it reaches the
    /// client (measured with `Benchmarks/Memory/translated_answer_rss.py`, peak RSS growth
    /// over the answer's size).
    public enum Factor {
        /// Passed through (its model name spliced in): the bytes themselves.
        public static let passedThrough = 1
        /// A Messages or Responses upstream's answer translated to chat, read block by block
        /// (measured 1.2× and 1.1×).
        public static let translatedFromUpstream = 2
        /// A chat answer translated by the client's Messages or Responses dialect, held as
        /// parsed JSON (measured up to 13.4× for an answer of 200,000 tool calls to a
        /// Responses client, 8.8× to a Messages client, 3.1× for one long text).
        public static let translatedForDialect = 14
    }

    public let limits: Limits
    private let used = Atomic<Int>(0)

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes held by answers in flight now.
    public var bytesInUse: Int { used.load(ordering: .relaxed) }

    /// Takes `bytes` from the shared budget, or nothing when they do not fit.
    func take(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while true {
            let (next, overflow) = current.addingReportingOverflow(bytes)
            guard !overflow, next <= limits.inFlightBytes else { return false }
            let (exchanged, original) = used.compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func give(_ bytes: Int) {
        used.subtract(bytes, ordering: .relaxed)
    }

    /// A new, empty charge for one call's answer, at `factor` per byte.
    func charge(factor: Int) -> AnswerMemoryCharge {
        AnswerMemoryCharge(budget: self, factor: factor)
    }
}

/// One call's charge on an ``AnswerMemoryBudget``: grows as the answer's bytes arrive and is
/// given back when the charge is released (or, at the latest, when it is dropped).
final class AnswerMemoryCharge: Sendable {
    enum Refusal: Error, Sendable, Hashable {
        /// The answer alone costs more than one call may hold.
        case tooLargeForOneCall(limit: Int)
        /// Other calls hold the shared budget.
        case budgetSpent
    }

    let budget: AnswerMemoryBudget
    let factor: Int
    private let held = Atomic<Int>(0)
    private let refused = Mutex<Refusal?>(nil)

    /// Why the charge could not grow, once it could not.
    var refusal: Refusal? { refused.withLock { $0 } }

    init(budget: AnswerMemoryBudget, factor: Int) {
        self.budget = budget
        self.factor = factor
    }

    /// Adds `bytes` of answer, at the charge's factor.
    func add(_ bytes: Int) throws(Refusal) {
        let (cost, overflow) = bytes.multipliedReportingOverflow(by: factor)
        let total = held.load(ordering: .relaxed).addingReportingOverflow(cost)
        guard !overflow, !total.overflow, total.partialValue <= budget.limits.perCallBytes else {
            throw refuse(.tooLargeForOneCall(limit: budget.limits.perCallBytes / factor))
        }
        guard budget.take(cost) else { throw refuse(.budgetSpent) }
        held.add(cost, ordering: .relaxed)
    }

    private func refuse(_ refusal: Refusal) -> Refusal {
        refused.withLock { $0 = refusal }
        return refusal
    }

    /// Gives what the charge holds back to the budget.
    func release() {
        let amount = held.exchange(0, ordering: .relaxed)
        if amount > 0 { budget.give(amount) }
    }

    deinit {
        release()
    }
}
