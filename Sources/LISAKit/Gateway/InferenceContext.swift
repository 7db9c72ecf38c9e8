public import Logging

/// What the front end knows of one inference request besides its body.
public struct InferenceContext: Sendable {
    /// The request id, also sent back as `X-Request-Id` and logged as `lisa.request_id`.
    public var requestID: String
    /// Request headers the gateway may use, lower-cased names: `x-…` (session affinity),
    /// `anthropic-beta` (carried on to an Anthropic upstream when Messages passes through),
    /// and `traceparent`/`tracestate` (the parent of the call's span; passed upstream as
    /// they came when LISA makes no spans).
    public var headers: [String: String]
    public var logger: Logger
    /// Who is asking; decides which models exist for them.
    public var principal: Principal
    /// The dialect the client called in; a call in another than chat completions is
    /// translated onto it, and usage records and spans name it by its dialect.
    public var dialect: DialectName = .chatCompletions
    /// What usage records and spans call the operation instead of its name, for calls LISA
    /// makes for itself (`rag.ingestion`, `rag.retrieval`).
    public var usageLabel: String?
    /// Whose usage this is, when LISA works for someone as itself (RAG ingestion runs as
    /// the admin key for the uploader): recorded under this name.
    public var billedUser: String?
    /// Whose budgets such a call is reserved on and charged to (the uploader, the user whose
    /// query is embedded); `nil`: none.
    public var budgetedAs: Principal?

    public init(requestID: String, headers: [String: String] = [:], principal: Principal = .admin, logger: Logger) {
        self.requestID = requestID
        self.headers = headers
        self.principal = principal
        self.logger = logger
    }
}

extension InferenceContext {
    /// The call's name in usage records and spans: LISA's own label, else the client's
    /// dialect (`messages`, `responses`), else the operation (`chat.completions`, …).
    func operationUsageLabel(_ operation: UpstreamOperation) -> String {
        usageLabel ?? dialect.usageLabel ?? operation.usageLabel
    }
}
