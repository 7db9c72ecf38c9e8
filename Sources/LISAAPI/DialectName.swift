/// The API dialects a LISA server answers in, by name: the one spelling of "which API" that
/// clients, usage records, spans, stream framing and upstream definitions share.
///
/// LISAKit's ``Dialect`` conformers (`ChatCompletionsDialect`, `AnthropicDialect`,
/// `ResponsesDialect`) do the work; this enum only names them, so light clients (lisactl,
/// LISAClient) can too.
public enum DialectName: String, Sendable, Hashable, CaseIterable, Codable {
    /// OpenAI chat completions (with completions, embeddings and the media routes):
    /// `/v1/chat/completions`, the gateway's own form.
    case chatCompletions = "chat"
    /// Anthropic Messages: `/v1/messages` (Claude Code, the anthropic SDKs).
    case messages
    /// OpenAI Responses: `/v1/responses` (the Agents SDK, Codex).
    case responses

    /// The route a call in this dialect is posted to, under `/v1` (and `/v2/serve`).
    public var route: String {
        switch self {
        case .chatCompletions: "/chat/completions"
        case .messages: "/messages"
        case .responses: "/responses"
        }
    }
}

extension UpstreamAPI {
    /// The dialect an upstream of this API answers in; `nil` for one LISA does not know.
    public var dialect: DialectName? {
        switch self {
        case .openai: .chatCompletions
        case .anthropic: .messages
        case .openAIResponses: .responses
        case .other: nil
        }
    }
}
