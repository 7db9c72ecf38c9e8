import Foundation

/// A `POST /v1/chat/completions` request body.
///
/// Every member OpenAI documents that a gateway acts on is typed; every other member
/// (newer OpenAI fields, vendor extensions such as vLLM's `top_k` or
/// `chat_template_kwargs`) is kept in ``additionalFields`` and re-encoded unchanged.
public struct ChatCompletionRequest: Sendable, Hashable, Codable {
    /// The model the client asked for: a LISA `modelId`, an open string.
    public var model: String
    public var messages: [ChatMessage]
    public var frequencyPenalty: Double?
    public var presencePenalty: Double?
    /// Token id (as a string) to bias, kept as sent.
    public var logitBias: [String: JSONValue]?
    public var logprobs: Bool?
    public var topLogprobs: Int?
    /// Deprecated by OpenAI in favour of ``maxCompletionTokens`` but still what most servers read.
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var n: Int?
    public var seed: Int64?
    public var stop: StopSequences?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var temperature: Double?
    public var topP: Double?
    public var tools: [Tool]?
    public var toolChoice: ToolChoice?
    public var parallelToolCalls: Bool?
    public var responseFormat: ResponseFormat?
    public var user: String?
    public var metadata: [String: String]?
    public var modalities: [String]?
    public var reasoningEffort: String?
    public var serviceTier: String?
    public var store: Bool?
    /// Audio output parameters, kept as sent.
    public var audio: JSONValue?
    /// Predicted output, kept as sent.
    public var prediction: JSONValue?
    /// Members this library does not model, re-encoded unchanged.
    public var additionalFields: [String: JSONValue]

    public init(
        model: String,
        messages: [ChatMessage],
        maxTokens: Int? = nil,
        stream: Bool? = nil,
        temperature: Double? = nil,
        additionalFields: [String: JSONValue] = [:]
    ) {
        self.model = model
        self.messages = messages
        self.maxTokens = maxTokens
        self.stream = stream
        self.temperature = temperature
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, messages, logprobs, n, seed, stop, stream, temperature, tools, user, metadata, modalities, store, audio,
            prediction
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case logitBias = "logit_bias"
        case topLogprobs = "top_logprobs"
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
        case streamOptions = "stream_options"
        case topP = "top_p"
        case toolChoice = "tool_choice"
        case parallelToolCalls = "parallel_tool_calls"
        case responseFormat = "response_format"
        case reasoningEffort = "reasoning_effort"
        case serviceTier = "service_tier"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        messages = try c.decode([ChatMessage].self, forKey: .messages)
        frequencyPenalty = try c.decodeIfPresent(Double.self, forKey: .frequencyPenalty)
        presencePenalty = try c.decodeIfPresent(Double.self, forKey: .presencePenalty)
        logitBias = try c.decodeIfPresent([String: JSONValue].self, forKey: .logitBias)
        logprobs = try c.decodeIfPresent(Bool.self, forKey: .logprobs)
        topLogprobs = try c.decodeIfPresent(Int.self, forKey: .topLogprobs)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens)
        maxCompletionTokens = try c.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        n = try c.decodeIfPresent(Int.self, forKey: .n)
        seed = try c.decodeIfPresent(Int64.self, forKey: .seed)
        stop = try c.decodeIfPresent(StopSequences.self, forKey: .stop)
        stream = try c.decodeIfPresent(Bool.self, forKey: .stream)
        streamOptions = try c.decodeIfPresent(StreamOptions.self, forKey: .streamOptions)
        temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        tools = try c.decodeIfPresent([Tool].self, forKey: .tools)
        toolChoice = try c.decodeIfPresent(ToolChoice.self, forKey: .toolChoice)
        parallelToolCalls = try c.decodeIfPresent(Bool.self, forKey: .parallelToolCalls)
        responseFormat = try c.decodeIfPresent(ResponseFormat.self, forKey: .responseFormat)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        modalities = try c.decodeIfPresent([String].self, forKey: .modalities)
        reasoningEffort = try c.decodeIfPresent(String.self, forKey: .reasoningEffort)
        serviceTier = try c.decodeIfPresent(String.self, forKey: .serviceTier)
        store = try c.decodeIfPresent(Bool.self, forKey: .store)
        audio = try c.decodeIfPresent(JSONValue.self, forKey: .audio)
        prediction = try c.decodeIfPresent(JSONValue.self, forKey: .prediction)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(messages, forKey: .messages)
        try c.encodeIfPresent(frequencyPenalty, forKey: .frequencyPenalty)
        try c.encodeIfPresent(presencePenalty, forKey: .presencePenalty)
        try c.encodeIfPresent(logitBias, forKey: .logitBias)
        try c.encodeIfPresent(logprobs, forKey: .logprobs)
        try c.encodeIfPresent(topLogprobs, forKey: .topLogprobs)
        try c.encodeIfPresent(maxTokens, forKey: .maxTokens)
        try c.encodeIfPresent(maxCompletionTokens, forKey: .maxCompletionTokens)
        try c.encodeIfPresent(n, forKey: .n)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encodeIfPresent(stop, forKey: .stop)
        try c.encodeIfPresent(stream, forKey: .stream)
        try c.encodeIfPresent(streamOptions, forKey: .streamOptions)
        try c.encodeIfPresent(temperature, forKey: .temperature)
        try c.encodeIfPresent(topP, forKey: .topP)
        try c.encodeIfPresent(tools, forKey: .tools)
        try c.encodeIfPresent(toolChoice, forKey: .toolChoice)
        try c.encodeIfPresent(parallelToolCalls, forKey: .parallelToolCalls)
        try c.encodeIfPresent(responseFormat, forKey: .responseFormat)
        try c.encodeIfPresent(user, forKey: .user)
        try c.encodeIfPresent(metadata, forKey: .metadata)
        try c.encodeIfPresent(modalities, forKey: .modalities)
        try c.encodeIfPresent(reasoningEffort, forKey: .reasoningEffort)
        try c.encodeIfPresent(serviceTier, forKey: .serviceTier)
        try c.encodeIfPresent(store, forKey: .store)
        try c.encodeIfPresent(audio, forKey: .audio)
        try c.encodeIfPresent(prediction, forKey: .prediction)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// `stop`: one stop sequence or several.
public enum StopSequences: Sendable, Hashable, Codable {
    case single(String)
    case multiple([String])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(String.self) {
            self = .single(value)
        } else if let values = try? container.decode([String].self) {
            self = .multiple(values)
        } else {
            throw DecodingError.typeMismatch(
                StopSequences.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a string or an array of strings")
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .single(let value): try container.encode(value)
        case .multiple(let values): try container.encode(values)
        }
    }

    /// The stop sequences as a list.
    public var sequences: [String] {
        switch self {
        case .single(let value): [value]
        case .multiple(let values): values
        }
    }
}

/// `stream_options`: whether the last chunk carries token usage.
public struct StreamOptions: Sendable, Hashable, Codable {
    public var includeUsage: Bool?
    public var additionalFields: [String: JSONValue]

    public init(includeUsage: Bool? = nil, additionalFields: [String: JSONValue] = [:]) {
        self.includeUsage = includeUsage
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case includeUsage = "include_usage"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        includeUsage = try c.decodeIfPresent(Bool.self, forKey: .includeUsage)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(includeUsage, forKey: .includeUsage)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A tool the model may call: `{"type": "function", "function": {...}}`.
public struct Tool: Sendable, Hashable, Codable {
    /// A function definition with a JSON Schema for its parameters.
    public struct FunctionDefinition: Sendable, Hashable, Codable {
        public var name: String
        public var description: String?
        /// The JSON Schema of the arguments, kept as sent.
        public var parameters: JSONValue?
        public var strict: Bool?

        public init(name: String, description: String? = nil, parameters: JSONValue? = nil, strict: Bool? = nil) {
            self.name = name
            self.description = description
            self.parameters = parameters
            self.strict = strict
        }
    }

    /// `function` for OpenAI's documented tools; other types (e.g. `custom`) are kept.
    public var type: String
    public var function: FunctionDefinition?
    public var additionalFields: [String: JSONValue]

    public init(function: FunctionDefinition) {
        self.type = "function"
        self.function = function
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, function }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        function = try c.decodeIfPresent(FunctionDefinition.self, forKey: .function)
        if type == "function" && function == nil {
            throw DecodingError.keyNotFound(
                CodingKeys.function, .init(codingPath: decoder.codingPath, debugDescription: "function tools need a function")
            )
        }
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(function, forKey: .function)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// `tool_choice`: `none`, `auto`, `required`, or a named function.
public enum ToolChoice: Sendable, Hashable, Codable {
    case none
    case auto
    case required
    case function(name: String)
    /// Any other string or object, kept as sent.
    case other(JSONValue)

    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        switch value {
        case .string("none"): self = .none
        case .string("auto"): self = .auto
        case .string("required"): self = .required
        case .object(let object) where object["type"] == .string("function"):
            if let name = object["function"]?["name"]?.stringValue, object.count == 2, object["function"]?.objectValue?.count == 1 {
                self = .function(name: name)
            } else {
                self = .other(value)
            }
        case .string, .object: self = .other(value)
        default:
            throw DecodingError.typeMismatch(
                ToolChoice.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a string or an object")
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .none: try JSONValue.string("none").encode(to: encoder)
        case .auto: try JSONValue.string("auto").encode(to: encoder)
        case .required: try JSONValue.string("required").encode(to: encoder)
        case .function(let name):
            try JSONValue.object(["type": "function", "function": .object(["name": .string(name)])]).encode(to: encoder)
        case .other(let value): try value.encode(to: encoder)
        }
    }
}

/// `response_format`: plain text, any JSON object, or JSON that follows a schema.
public enum ResponseFormat: Sendable, Hashable, Codable {
    case text
    case jsonObject
    case jsonSchema(JSONSchemaFormat)
    /// Another format type, kept as sent.
    case other([String: JSONValue])

    /// The `json_schema` member of a `{"type": "json_schema"}` response format.
    public struct JSONSchemaFormat: Sendable, Hashable, Codable {
        public var name: String
        public var description: String?
        public var schema: JSONValue?
        public var strict: Bool?

        public init(name: String, description: String? = nil, schema: JSONValue? = nil, strict: Bool? = nil) {
            self.name = name
            self.description = description
            self.schema = schema
            self.strict = strict
        }
    }

    private enum CodingKeys: String, CodingKey {
        case type
        case jsonSchema = "json_schema"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .type) {
        case "text": self = .text
        case "json_object": self = .jsonObject
        case "json_schema": self = .jsonSchema(try c.decode(JSONSchemaFormat.self, forKey: .jsonSchema))
        default: self = .other(try [String: JSONValue](from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if case .other(let object) = self {
            try object.encode(to: encoder)
            return
        }
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .text: try c.encode("text", forKey: .type)
        case .jsonObject: try c.encode("json_object", forKey: .type)
        case .jsonSchema(let format):
            try c.encode("json_schema", forKey: .type)
            try c.encode(format, forKey: .jsonSchema)
        case .other: break
        }
    }
}
