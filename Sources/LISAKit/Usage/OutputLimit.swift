import LISAOpenAI
import NIOCore

/// The output a request allows its upstream to write, read from the client's bytes: the one
/// reading of `max_tokens` and its kin that budgets reserve by and spans report.
///
/// Every output-limit member the dialect or an upstream behind it may honour counts, and the
/// largest wins: `{"max_completion_tokens": 0, "max_tokens": 300}` may write 300 (vLLM reads
/// 0 as unset). A value that is 0, negative, not a whole number or over ``absurd`` is
/// treated as unset, as upstreams do; a request with no usable limit may write whatever its
/// upstream allows.
struct OutputLimit: Sendable, Equatable {
    /// The largest limit of one answer, `nil` when the request sets none that counts.
    var perAnswer: Int?
    /// How many answers the upstream writes: `n` (and `best_of` for completions), at least 1.
    var answers: Int

    /// A limit above this is no limit a model honours: it counts as unset.
    static let absurd = 1_000_000
    /// The most answers one request is reserved for (more is reserved as this many).
    static let maxAnswers = 1024

    /// The members that limit output on `operation`'s inbound request.
    static func members(of operation: UpstreamOperation) -> [String] {
        switch operation {
        // Chat requests go on to chat, Anthropic (`max_tokens`) and Responses (`max_output_tokens`)
        // upstreams, each translated from these two; `max_output_tokens` on chat is no limit.
        case .chatCompletions: ["max_completion_tokens", "max_tokens"]
        case .completions, .messages: ["max_tokens"]
        case .responses: ["max_output_tokens"]
        default: []
        }
    }

    /// The limit `inbound` sets for `operation`; `nil` for operations that write no text.
    init?(_ operation: UpstreamOperation, inbound: ByteBuffer) {
        let members = Self.members(of: operation)
        guard !members.isEmpty else { return nil }
        perAnswer = members.compactMap { Self.count(of: $0, in: inbound, upTo: Self.absurd) }.max()
        var answers = Self.count(of: "n", in: inbound, upTo: Int.max) ?? 1
        if operation == .completions, let best = Self.count(of: "best_of", in: inbound, upTo: Int.max) { answers = max(answers, best) }
        self.answers = min(answers, Self.maxAnswers)
    }

    /// The output tokens to reserve: the limit (else `cap`, else `fallback`) times the answers.
    func reservation(cap: Int?, fallback: Int) -> Int {
        let each: Int
        if let perAnswer { each = cap.map { min(perAnswer, $0) } ?? perAnswer } else { each = cap ?? fallback }
        return max(each, 0) * answers
    }

    /// The whole number ≥ 1 and ≤ `most` that member `name` holds (`300` or `300.0`), else `nil`.
    static func count(of name: String, in body: ByteBuffer, upTo most: Int) -> Int? {
        guard let bytes = JSONMemberScanner.value(of: name, in: body) else { return nil }
        let text = String(buffer: bytes)
        if let value = Int(text) { return (1...most).contains(value) ? value : nil }
        guard let value = Double(text), value.isFinite, value.rounded() == value, value >= 1, value <= Double(min(most, 1 << 52)) else { return nil }
        return Int(value)
    }
}
