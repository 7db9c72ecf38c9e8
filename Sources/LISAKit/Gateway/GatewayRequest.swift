import NIOCore

/// A request whose `model` the gateway rewrites.
protocol ModelNamed {
    var model: String { get set }
}

/// What the gateway needs of an OpenAI request it serves.
protocol GatewayRequest: Codable, Sendable, ModelNamed {
    static var operation: UpstreamOperation { get }
    static var modelType: ModelType { get }
    var isStreaming: Bool { get }
    var user: String? { get }
    /// Checks what decoding cannot (non-empty lists).
    func validate() throws(LISAError)
    /// The routing fields read in one pass when the body has the common shape (the request
    /// would decode and validate with the same fields); `nil` sends it to the typed decode.
    static func routingFields(in body: ByteBuffer) -> RoutingFields?
}

extension GatewayRequest {
    static func routingFields(in body: ByteBuffer) -> RoutingFields? { nil }
}

extension ChatCompletionRequest: GatewayRequest {
    static var operation: UpstreamOperation { .chatCompletions }
    static var modelType: ModelType { .textgen }
    var isStreaming: Bool { stream ?? false }

    func validate() throws(LISAError) {
        guard !messages.isEmpty else {
            throw .invalidRequest("messages must contain at least one message.", param: "messages")
        }
    }
}

extension CompletionRequest: GatewayRequest {
    static var operation: UpstreamOperation { .completions }
    static var modelType: ModelType { .textgen }
    var isStreaming: Bool { stream ?? false }

    func validate() throws(LISAError) {}
}

extension EmbeddingRequest: GatewayRequest {
    static var operation: UpstreamOperation { .embeddings }
    static var modelType: ModelType { .embedding }
    var isStreaming: Bool { false }

    func validate() throws(LISAError) {
        guard !input.isEmpty else {
            throw .invalidRequest("input must not be empty.", param: "input")
        }
    }
}
