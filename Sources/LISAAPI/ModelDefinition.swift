import Foundation
public import LISAOpenAI

/// What a model does. Unknown values are kept (and refused by validation).
///
/// `textgen` serves chat completions, completions and the dialects on them; `embedding`
/// serves embeddings; the others serve OpenAI's routes of the same purpose:
/// `imagegen` `/v1/images/*`, `transcription` `/v1/audio/transcriptions` and
/// `/v1/audio/translations`, `speech` `/v1/audio/speech`, `moderation` `/v1/moderations`,
/// `rerank` `/v1/rerank`.
public enum ModelType: OpenStringEnum {
    case textgen, embedding, imagegen, transcription, speech, moderation, rerank
    case other(String)

    /// The types LISA serves.
    public static let known: [ModelType] = [.textgen, .embedding, .imagegen, .transcription, .speech, .moderation, .rerank]

    public init(rawValue: String) {
        self = Self.known.first { $0.rawValue == rawValue } ?? .other(rawValue)
    }

    public var rawValue: String {
        switch self {
        case .textgen: "textgen"
        case .embedding: "embedding"
        case .imagegen: "imagegen"
        case .transcription: "transcription"
        case .speech: "speech"
        case .moderation: "moderation"
        case .rerank: "rerank"
        case .other(let value): value
        }
    }
}

/// The server software behind a model's endpoints. All of them are reached through their
/// OpenAI-compatible API (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`).
public enum InferenceContainer: OpenStringEnum {
    case openai, vllm, tgi, tei, ollama, llamacpp
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "openai": self = .openai
        case "vllm": self = .vllm
        case "tgi": self = .tgi
        case "tei": self = .tei
        case "ollama": self = .ollama
        case "llamacpp": self = .llamacpp
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .openai: "openai"
        case .vllm: "vllm"
        case .tgi: "tgi"
        case .tei: "tei"
        case .ollama: "ollama"
        case .llamacpp: "llamacpp"
        case .other(let value): value
        }
    }
}

/// The API a model's upstream speaks. LISA passes a request through when the client's
/// dialect matches and translates otherwise (`Documentation/Dialects.md`).
public enum UpstreamAPI: OpenStringEnum {
    /// OpenAI's chat completions, completions and embeddings (vLLM, TGI, TEI, Ollama, llama.cpp, OpenAI…): the default.
    case openai
    /// Anthropic Messages (`/v1/messages`), with `x-api-key` and `anthropic-version`.
    case anthropic
    /// OpenAI's Responses API (`/v1/responses`).
    case openAIResponses
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "openai": self = .openai
        case "anthropic": self = .anthropic
        case "openai-responses": self = .openAIResponses
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .openai: "openai"
        case .anthropic: "anthropic"
        case .openAIResponses: "openai-responses"
        case .other(let value): value
        }
    }
}

/// One replica of a model: the OpenAI-compatible base URL (for vLLM, `http://host:8000/v1`),
/// its share of the traffic, and the key LISA sends to it.
public struct EndpointDefinition: Sendable, Hashable, Codable {
    public var url: String
    /// Relative share of traffic; 1 by default.
    public var weight: Int
    /// Sent upstream as `Authorization: Bearer …` (`x-api-key` for an Anthropic upstream). Never returned by the API or logged.
    public var apiKey: String?
    /// Most requests in flight at once on this endpoint; `nil` for no cap.
    public var maxInFlight: Int?
    /// TLS settings for an `https` URL, over the global `upstream.tls`.
    public var tls: UpstreamTLS?

    public init(url: String, weight: Int = 1, apiKey: String? = nil, maxInFlight: Int? = nil, tls: UpstreamTLS? = nil) {
        self.tls = tls
        self.url = url
        self.weight = weight
        self.apiKey = apiKey
        self.maxInFlight = maxInFlight
    }

    enum CodingKeys: String, CodingKey { case url, weight, apiKey, maxInFlight, tls }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1
        apiKey = try c.decodeIfPresent(String.self, forKey: .apiKey)
        maxInFlight = try c.decodeIfPresent(Int.self, forKey: .maxInFlight)
        tls = try c.decodeIfPresent(UpstreamTLS.self, forKey: .tls)
    }
}

/// A model clients can call, with LISA's field names.
///
/// Clients send ``modelId`` as `model`; LISA sends ``modelName`` upstream. Members this
/// version does not act on are kept in
/// ``additionalFields`` and stored unchanged.
public struct ModelDefinition: Sendable, Hashable, Codable {
    public var modelId: String
    public var modelName: String
    public var modelType: ModelType
    public var inferenceContainer: InferenceContainer
    /// What the upstream speaks; `openai` (chat completions) by default.
    public var upstreamAPI: UpstreamAPI
    /// `third_party`, `internal_hosted` or `lisa_hosted`; kept as given.
    public var hostingType: String?
    /// A single endpoint's base URL; used when ``endpoints`` is empty.
    public var modelUrl: String?
    public var endpoints: [EndpointDefinition]
    /// Whether the model may be called with `stream: true`.
    public var streaming: Bool
    /// Groups allowed to use the model; empty means everyone who may call inference.
    public var allowedGroups: [String]
    /// Free-form feature flags, kept as given.
    public var features: JSONValue?
    /// How requests are spread over the endpoints; `nil`: the global default (power of two choices).
    public var loadBalancing: LoadBalancingPolicy?
    /// For `sessionAffinity`: the request header holding the session key (default
    /// `x-session-id`; the OpenAI `user` field is used when the header is absent).
    public var sessionHeader: String?
    /// Models to try, in order, when every endpoint of this one failed.
    public var fallbacks: [String]
    /// Whether answers show the upstream's model name (``modelName``, or whatever the upstream
    /// writes) instead of the name the client asked for. Default `false`.
    public var passUpstreamModelName: Bool
    public var timeouts: ModelTimeouts?
    /// Active probes; `nil`: none (passive outlier detection still applies).
    public var healthCheck: HealthCheckConfiguration?
    public var circuitBreaker: CircuitBreakerConfiguration?
    public var retry: RetryConfiguration?
    /// For `lisa_hosted` models: how many replicas to run, and when to scale.
    public var autoScalingConfig: AutoScalingConfig?
    /// For `lisa_hosted` models: how to start a replica.
    public var launch: LaunchSpec?
    /// What calls cost: token prices, or a replica-hour price for `lisa_hosted` models.
    public var pricing: ModelPricing?
    public var additionalFields: [String: JSONValue]

    public init(
        modelId: String,
        modelName: String,
        modelType: ModelType = .textgen,
        inferenceContainer: InferenceContainer = .openai,
        modelUrl: String? = nil,
        endpoints: [EndpointDefinition] = [],
        streaming: Bool = true,
        allowedGroups: [String] = []
    ) {
        self.modelId = modelId
        self.modelName = modelName
        self.modelType = modelType
        self.inferenceContainer = inferenceContainer
        self.upstreamAPI = .openai
        self.modelUrl = modelUrl
        self.endpoints = endpoints
        self.streaming = streaming
        self.allowedGroups = allowedGroups
        self.fallbacks = []
        self.passUpstreamModelName = false
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case modelId, modelName, modelType, inferenceContainer, upstreamAPI, hostingType, modelUrl, endpoints, streaming, allowedGroups,
            features, loadBalancing, sessionHeader, fallbacks, timeouts, healthCheck, circuitBreaker, retry, autoScalingConfig, launch,
            pricing, passUpstreamModelName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelId = try c.decode(String.self, forKey: .modelId)
        modelName = try c.decodeIfPresent(String.self, forKey: .modelName) ?? modelId
        modelType = try c.decodeIfPresent(ModelType.self, forKey: .modelType) ?? .textgen
        inferenceContainer = try c.decodeIfPresent(InferenceContainer.self, forKey: .inferenceContainer) ?? .openai
        upstreamAPI = try c.decodeIfPresent(UpstreamAPI.self, forKey: .upstreamAPI) ?? .openai
        hostingType = try c.decodeIfPresent(String.self, forKey: .hostingType)
        modelUrl = try c.decodeIfPresent(String.self, forKey: .modelUrl)
        endpoints = try c.decodeIfPresent([EndpointDefinition].self, forKey: .endpoints) ?? []
        streaming = try c.decodeIfPresent(Bool.self, forKey: .streaming) ?? true
        allowedGroups = try c.decodeIfPresent([String].self, forKey: .allowedGroups) ?? []
        features = try c.decodeIfPresent(JSONValue.self, forKey: .features)
        loadBalancing = try c.decodeIfPresent(LoadBalancingPolicy.self, forKey: .loadBalancing)
        sessionHeader = try c.decodeIfPresent(String.self, forKey: .sessionHeader)
        fallbacks = try c.decodeIfPresent([String].self, forKey: .fallbacks) ?? []
        passUpstreamModelName = try c.decodeIfPresent(Bool.self, forKey: .passUpstreamModelName) ?? false
        timeouts = try c.decodeIfPresent(ModelTimeouts.self, forKey: .timeouts)
        healthCheck = try c.decodeIfPresent(HealthCheckConfiguration.self, forKey: .healthCheck)
        circuitBreaker = try c.decodeIfPresent(CircuitBreakerConfiguration.self, forKey: .circuitBreaker)
        retry = try c.decodeIfPresent(RetryConfiguration.self, forKey: .retry)
        autoScalingConfig = try c.decodeIfPresent(AutoScalingConfig.self, forKey: .autoScalingConfig)
        launch = try c.decodeIfPresent(LaunchSpec.self, forKey: .launch)
        pricing = try c.decodeIfPresent(ModelPricing.self, forKey: .pricing)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    /// Encodes every member, endpoint API keys included: this is the stored form.
    /// Use ``redacted()`` for anything a client or a log sees.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelId, forKey: .modelId)
        try c.encode(modelName, forKey: .modelName)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(inferenceContainer, forKey: .inferenceContainer)
        if upstreamAPI != .openai { try c.encode(upstreamAPI, forKey: .upstreamAPI) }
        try c.encodeIfPresent(hostingType, forKey: .hostingType)
        try c.encodeIfPresent(modelUrl, forKey: .modelUrl)
        try c.encode(endpoints.map(StoredEndpoint.init), forKey: .endpoints)
        try c.encode(streaming, forKey: .streaming)
        try c.encode(allowedGroups, forKey: .allowedGroups)
        try c.encodeIfPresent(features, forKey: .features)
        try c.encodeIfPresent(loadBalancing, forKey: .loadBalancing)
        try c.encodeIfPresent(sessionHeader, forKey: .sessionHeader)
        if !fallbacks.isEmpty { try c.encode(fallbacks, forKey: .fallbacks) }
        if passUpstreamModelName { try c.encode(passUpstreamModelName, forKey: .passUpstreamModelName) }
        try c.encodeIfPresent(timeouts, forKey: .timeouts)
        try c.encodeIfPresent(healthCheck, forKey: .healthCheck)
        try c.encodeIfPresent(circuitBreaker, forKey: .circuitBreaker)
        try c.encodeIfPresent(retry, forKey: .retry)
        try c.encodeIfPresent(autoScalingConfig, forKey: .autoScalingConfig)
        try c.encodeIfPresent(launch, forKey: .launch)
        try c.encodeIfPresent(pricing, forKey: .pricing)
        try encoder.encodeAdditionalFields(additionalFields)
    }

    private struct StoredEndpoint: Encodable {
        let endpoint: EndpointDefinition
        init(_ endpoint: EndpointDefinition) { self.endpoint = endpoint }
        enum CodingKeys: String, CodingKey { case url, weight, apiKey, maxInFlight, tls }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(endpoint.url, forKey: .url)
            try c.encode(endpoint.weight, forKey: .weight)
            try c.encodeIfPresent(endpoint.apiKey, forKey: .apiKey)
            try c.encodeIfPresent(endpoint.maxInFlight, forKey: .maxInFlight)
            try c.encodeIfPresent(endpoint.tls, forKey: .tls)
        }
    }

    /// The endpoints to route to: ``endpoints``, or one built from ``modelUrl``.
    public var resolvedEndpoints: [EndpointDefinition] {
        if !endpoints.isEmpty { return endpoints }
        if let modelUrl { return [EndpointDefinition(url: modelUrl)] }
        return []
    }

    /// Whether LISA launches and scales this model's replicas (`hostingType: lisa_hosted`).
    public var isHosted: Bool { hostingType == HostingType.lisaHosted.rawValue }

    /// A copy safe to show: endpoint API keys removed.
    public func redacted() -> ModelDefinition {
        var copy = self
        copy.endpoints = copy.endpoints.map {
            EndpointDefinition(url: $0.url, weight: $0.weight, apiKey: nil, maxInFlight: $0.maxInFlight, tls: $0.tls)
        }
        return copy
    }

    /// Whether a string is an acceptable `modelId`.
    public static func isValidModelID(_ id: String) -> Bool {
        guard (1...128).contains(id.utf8.count), let first = id.unicodeScalars.first,
            first.isASCII && CharacterSet.alphanumerics.contains(first)
        else { return false }
        return id.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "._-:".unicodeScalars.contains(scalar))
        }
    }
}
