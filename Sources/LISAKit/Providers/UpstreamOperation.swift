import Foundation

/// The operations LISA forwards: OpenAI's, Anthropic Messages', and the model servers' own
/// tokenizer.
public enum UpstreamOperation: String, Sendable {
    case chatCompletions = "chat/completions"
    case completions = "completions"
    case embeddings = "embeddings"
    /// Anthropic Messages, sent with `x-api-key` and `anthropic-version`.
    case messages = "messages"
    /// Anthropic's token counting.
    case countTokens = "messages/count_tokens"
    /// OpenAI's Responses API.
    case responses = "responses"
    /// vLLM's and llama.cpp's `/tokenize`, at the server's root rather than under `/v1`.
    case tokenize = "tokenize"
    /// llama.cpp's `/apply-template` (the chat template applied to messages), at the root.
    case applyTemplate = "apply-template"
    case imagesGenerations = "images/generations"
    /// A multipart form.
    case imagesEdits = "images/edits"
    /// A multipart form.
    case audioTranscriptions = "audio/transcriptions"
    /// A multipart form.
    case audioTranslations = "audio/translations"
    /// The answer is audio, relayed as it arrives.
    case audioSpeech = "audio/speech"
    case moderations = "moderations"
    /// vLLM's and Cohere's `/v1/rerank`.
    case rerank = "rerank"
    /// Text Embeddings Inference's `/rerank`, at the server's root, in TEI's own shape.
    case teiRerank = "tei/rerank"

    /// Whether the upstream is Anthropic-shaped (its credentials go in `x-api-key`).
    public var isAnthropic: Bool { self == .messages || self == .countTokens }

    /// The URL of the operation at an endpoint's base URL (`http://host:8000/v1`).
    public func url(base: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        if self == .tokenize || self == .applyTemplate || self == .teiRerank, base.hasSuffix("/v1") { base.removeLast(3) }
        return "\(base)/\(self == .teiRerank ? "rerank" : rawValue)"
    }
}
