import Foundation

/// The `prompt` of a legacy completion: text, texts, tokens or token lists.
public enum PromptInput: Sendable, Hashable, Codable {
    case text(String)
    case texts([String])
    case tokens([Int])
    case tokenLists([[Int]])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(String.self) {
            self = .text(value)
        } else if let value = try? container.decode([String].self) {
            self = .texts(value)
        } else if let value = try? container.decode([Int].self) {
            self = .tokens(value)
        } else if let value = try? container.decode([[Int]].self) {
            self = .tokenLists(value)
        } else {
            throw DecodingError.typeMismatch(
                PromptInput.self,
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "expected a string, an array of strings, an array of token ids or an array of token id arrays"
                )
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let value): try container.encode(value)
        case .texts(let value): try container.encode(value)
        case .tokens(let value): try container.encode(value)
        case .tokenLists(let value): try container.encode(value)
        }
    }

    /// Whether the input holds nothing to process.
    public var isEmpty: Bool {
        switch self {
        case .text: false
        case .texts(let value): value.isEmpty
        case .tokens(let value): value.isEmpty
        case .tokenLists(let value): value.isEmpty
        }
    }
}

/// A legacy `POST /v1/completions` request body.
public struct CompletionRequest: Sendable, Hashable, Codable {
    public var model: String
    public var prompt: PromptInput
    public var suffix: String?
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var n: Int?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var logprobs: Int?
    public var echo: Bool?
    public var stop: StopSequences?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    public var bestOf: Int?
    public var logitBias: [String: JSONValue]?
    public var user: String?
    public var seed: Int64?
    public var additionalFields: [String: JSONValue]

    public init(model: String, prompt: PromptInput, maxTokens: Int? = nil, stream: Bool? = nil, additionalFields: [String: JSONValue] = [:]) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.stream = stream
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, prompt, suffix, temperature, n, stream, logprobs, echo, stop, user, seed
        case maxTokens = "max_tokens"
        case topP = "top_p"
        case streamOptions = "stream_options"
        case presencePenalty = "presence_penalty"
        case frequencyPenalty = "frequency_penalty"
        case bestOf = "best_of"
        case logitBias = "logit_bias"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        prompt = try c.decode(PromptInput.self, forKey: .prompt)
        suffix = try c.decodeIfPresent(String.self, forKey: .suffix)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        logprobs = try c.decodeIfPresent(Int.self, forKey: .logprobs)
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo)
        stop = try c.decodeIfPresent(StopSequences.self, forKey: .stop)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        bestOf = try c.decodeIfPresent(Int.self, forKey: .bestOf)
        logitBias = try c.decodeIfPresent([String: JSONValue].self, forKey: .logitBias)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        seed = try c.decodeIfPresent(Int64.self, forKey: .seed)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(prompt, forKey: .prompt)
        try c.encodeIfPresent(suffix, forKey: .suffix)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try c.encodeIfPresent(temperature, forKey: .temperature)
        try c.encodeIfPresent(topP, forKey: .topP)
        try c.encodeIfPresent(n, forKey: .n)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(streamOptions, forKey: .streamOptions)
        try c.encodeIfPresent(logprobs, forKey: .logprobs)
        try c.encodeIfPresent(echo, forKey: .echo)
        try c.encodeIfPresent(stop, forKey: .stop)
        try c.encodeIfPresent(presencePenalty, forKey: .presencePenalty)
        try c.encodeIfPresent(frequencyPenalty, forKey: .frequencyPenalty)
        try c.encodeIfPresent(bestOf, forKey: .bestOf)
        try c.encodeIfPresent(logitBias, forKey: .logitBias)
        try c.encodeIfPresent(user, forKey: .user)
        try c.encodeIfPresent(seed, forKey: .seed)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A legacy `text_completion` response (or one streamed chunk of it).
public struct Completion: Sendable, Hashable, Codable {
    /// One generated text.
    public struct Choice: Sendable, Hashable, Codable {
        public var text: String
        public var index: Int
        public var logprobs: JSONValue?
        public var finishReason: FinishReason?
        public var additionalFields: [String: JSONValue]

        public init(text: String, index: Int, finishReason: FinishReason?) {
            self.text = text
            self.index = index
            self.finishReason = finishReason
            self.additionalFields = [:]
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case text, index, logprobs
            case finishReason = "finish_reason"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            text = try c.decode(String.self, forKey: .text)
            index = try c.decode(Int.self, forKey: .index)
            logprobs = try c.decodeIfPresent(JSONValue.self, forKey: .logprobs)
            finishReason = try c.decodeIfPresent(FinishReason.self, forKey: .finishReason)
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encode(logprobs, forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
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
    public var additionalFields: [String: JSONValue]

    public init(id: String, created: Int64, model: String, choices: [Choice], usage: Usage? = nil) {
        self.id = id
        self.object = "text_completion"
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
