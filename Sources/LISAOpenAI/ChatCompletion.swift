import Foundation

/// Why the model stopped generating. Unknown reasons are kept in ``other(_:)``.
public enum FinishReason: OpenStringEnum {
    case stop, length, toolCalls, contentFilter, functionCall
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "stop": self = .stop
        case "length": self = .length
        case "tool_calls": self = .toolCalls
        case "content_filter": self = .contentFilter
        case "function_call": self = .functionCall
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .stop: "stop"
        case .length: "length"
        case .toolCalls: "tool_calls"
        case .contentFilter: "content_filter"
        case .functionCall: "function_call"
        case .other(let value): value
        }
    }
}

/// Token counts of a request.
///
/// Counts come from upstreams, which may send anything: each is held to
/// `0...`\(``maximumTokenCount``) when a usage is made or decoded, so that what LISA adds up,
/// charges and counts in metrics can neither go negative nor overflow.
public struct Usage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int?
    public var totalTokens: Int
    public var promptTokensDetails: JSONValue?
    public var completionTokensDetails: JSONValue?
    public var additionalFields: [String: JSONValue]

    /// The largest token count LISA takes from an upstream (10¹²); larger counts are read as this.
    public static let maximumTokenCount = 1_000_000_000_000

    /// `count` held to `0...maximumTokenCount`.
    public static func clamped(_ count: Int) -> Int { min(max(count, 0), maximumTokenCount) }

    public init(promptTokens: Int, completionTokens: Int? = nil, totalTokens: Int, additionalFields: [String: JSONValue] = [:]) {
        self.promptTokens = Self.clamped(promptTokens)
        self.completionTokens = completionTokens.map(Self.clamped)
        self.totalTokens = Self.clamped(totalTokens)
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
        case completionTokensDetails = "completion_tokens_details"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = Self.clamped(try c.decode(Int.self, forKey: .promptTokens))
        completionTokens = try c.decodeIfPresent(Int.self, forKey: .completionTokens).map(Self.clamped)
        totalTokens = Self.clamped(try c.decode(Int.self, forKey: .totalTokens))
        promptTokensDetails = try c.decodeIfPresent(JSONValue.self, forKey: .promptTokensDetails)
        completionTokensDetails = try c.decodeIfPresent(JSONValue.self, forKey: .completionTokensDetails)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encodeIfPresent(completionTokens, forKey: .completionTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
        try c.encodeIfPresent(promptTokensDetails, forKey: .promptTokensDetails)
        try c.encodeIfPresent(completionTokensDetails, forKey: .completionTokensDetails)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A non-streaming `chat.completion` response.
public struct ChatCompletion: Sendable, Hashable, Codable {
    /// One generated answer.
    public struct Choice: Sendable, Hashable, Codable {
        public var index: Int
        public var message: AssistantMessage
        public var finishReason: FinishReason?
        /// Token log probabilities, kept as sent.
        public var logprobs: JSONValue?
        public var additionalFields: [String: JSONValue]

        public init(index: Int, message: AssistantMessage, finishReason: FinishReason?, additionalFields: [String: JSONValue] = [:]) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
            self.additionalFields = additionalFields
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case index, message, logprobs
            case finishReason = "finish_reason"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(Int.self, forKey: .index)
            message = try c.decode(AssistantMessage.self, forKey: .message)
            finishReason = try c.decodeIfPresent(FinishReason.self, forKey: .finishReason)
            logprobs = try c.decodeIfPresent(JSONValue.self, forKey: .logprobs)
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(message, forKey: .message)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeIfPresent(logprobs, forKey: .logprobs)
            try encoder.encodeAdditionalFields(additionalFields)
        }
    }

    public var id: String
    public var object: String
    public var created: Int64
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
    public var systemFingerprint: String?
    public var serviceTier: String?
    public var additionalFields: [String: JSONValue]

    public init(
        id: String, created: Int64, model: String, choices: [Choice], usage: Usage? = nil,
        additionalFields: [String: JSONValue] = [:]
    ) {
        self.id = id
        self.object = "chat.completion"
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, object, created, model, choices, usage
        case systemFingerprint = "system_fingerprint"
        case serviceTier = "service_tier"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        object = try c.decode(String.self, forKey: .object)
        created = try c.decode(Int64.self, forKey: .created)
        model = try c.decode(String.self, forKey: .model)
        choices = try c.decode([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        systemFingerprint = try c.decodeIfPresent(String.self, forKey: .systemFingerprint)
        serviceTier = try c.decodeIfPresent(String.self, forKey: .serviceTier)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encodeIfPresent(usage, forKey: .usage)
        try c.encodeIfPresent(systemFingerprint, forKey: .systemFingerprint)
        try c.encodeIfPresent(serviceTier, forKey: .serviceTier)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// One `chat.completion.chunk` of a streamed chat completion.
public struct ChatCompletionChunk: Sendable, Hashable, Codable {
    /// The increment of one choice.
    public struct Choice: Sendable, Hashable, Codable {
        public var index: Int
        public var delta: Delta
        public var finishReason: FinishReason?
        public var logprobs: JSONValue?
        public var additionalFields: [String: JSONValue]

        public init(index: Int, delta: Delta, finishReason: FinishReason? = nil, additionalFields: [String: JSONValue] = [:]) {
            self.index = index
            self.delta = delta
            self.finishReason = finishReason
            self.additionalFields = additionalFields
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case index, delta, logprobs
            case finishReason = "finish_reason"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(Int.self, forKey: .index)
            delta = try c.decodeIfPresent(Delta.self, forKey: .delta) ?? Delta()
            finishReason = try c.decodeIfPresent(FinishReason.self, forKey: .finishReason)
            logprobs = try c.decodeIfPresent(JSONValue.self, forKey: .logprobs)
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(delta, forKey: .delta)
            try c.encode(finishReason, forKey: .finishReason)
            try c.encodeIfPresent(logprobs, forKey: .logprobs)
            try encoder.encodeAdditionalFields(additionalFields)
        }
    }

    /// What one chunk adds to the message.
    public struct Delta: Sendable, Hashable, Codable {
        public var role: MessageRole?
        public var content: String?
        public var refusal: String?
        public var toolCalls: [ToolCallDelta]?
        public var additionalFields: [String: JSONValue]

        public init(role: MessageRole? = nil, content: String? = nil, refusal: String? = nil, toolCalls: [ToolCallDelta]? = nil) {
            self.role = role
            self.content = content
            self.refusal = refusal
            self.toolCalls = toolCalls
            self.additionalFields = [:]
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case role, content, refusal
            case toolCalls = "tool_calls"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            role = try c.decodeIfPresent(MessageRole.self, forKey: .role)
            content = try c.decodeIfPresent(String.self, forKey: .content)
            refusal = try c.decodeIfPresent(String.self, forKey: .refusal)
            toolCalls = try c.decodeIfPresent([ToolCallDelta].self, forKey: .toolCalls)
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(role, forKey: .role)
            try c.encodeIfPresent(content, forKey: .content)
            try c.encodeIfPresent(refusal, forKey: .refusal)
            try c.encodeIfPresent(toolCalls, forKey: .toolCalls)
            try encoder.encodeAdditionalFields(additionalFields)
        }
    }

    /// A piece of a tool call; pieces with the same `index` concatenate.
    public struct ToolCallDelta: Sendable, Hashable, Codable {
        public struct Function: Sendable, Hashable, Codable {
            public var name: String?
            public var arguments: String?

            public init(name: String? = nil, arguments: String? = nil) {
                self.name = name
                self.arguments = arguments
            }
        }

        public var index: Int
        public var id: String?
        public var type: String?
        public var function: Function?

        public init(index: Int, id: String? = nil, type: String? = nil, function: Function? = nil) {
            self.index = index
            self.id = id
            self.type = type
            self.function = function
        }
    }

    public var id: String
    public var object: String
    public var created: Int64
    public var model: String
    public var choices: [Choice]
    /// Present on the last chunk when `stream_options.include_usage` was set.
    public var usage: Usage?
    public var systemFingerprint: String?
    public var additionalFields: [String: JSONValue]

    public init(id: String, created: Int64, model: String, choices: [Choice], usage: Usage? = nil) {
        self.id = id
        self.object = "chat.completion.chunk"
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, object, created, model, choices, usage
        case systemFingerprint = "system_fingerprint"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        object = try c.decode(String.self, forKey: .object)
        created = try c.decode(Int64.self, forKey: .created)
        model = try c.decode(String.self, forKey: .model)
        choices = try c.decode([Choice].self, forKey: .choices)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        systemFingerprint = try c.decodeIfPresent(String.self, forKey: .systemFingerprint)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(choices, forKey: .choices)
        try c.encodeIfPresent(usage, forKey: .usage)
        try c.encodeIfPresent(systemFingerprint, forKey: .systemFingerprint)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}
