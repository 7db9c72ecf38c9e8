import Foundation
import NIOCore

/// OpenAI's routes beyond text (images, audio, moderations) and rerank: what each carries,
/// which model type serves it, and how its answer comes back.
public enum MediaRoute: String, Sendable, CaseIterable {
    case imageGenerations = "images/generations"
    case imageEdits = "images/edits"
    case transcriptions = "audio/transcriptions"
    case translations = "audio/translations"
    case speech = "audio/speech"
    case moderations = "moderations"
    case rerank = "rerank"

    public var operation: UpstreamOperation {
        switch self {
        case .imageGenerations: .imagesGenerations
        case .imageEdits: .imagesEdits
        case .transcriptions: .audioTranscriptions
        case .translations: .audioTranslations
        case .speech: .audioSpeech
        case .moderations: .moderations
        case .rerank: .rerank
        }
    }

    /// The model type that serves the route.
    public var modelType: ModelType {
        switch self {
        case .imageGenerations, .imageEdits: .imagegen
        case .transcriptions, .translations: .transcription
        case .speech: .speech
        case .moderations: .moderation
        case .rerank: .rerank
        }
    }

    /// Whether the request is a `multipart/form-data` form (a file upload) rather than JSON.
    public var isMultipart: Bool { self == .imageEdits || self == .transcriptions || self == .translations }
}

extension Gateway {
    /// The largest multipart form LISA forwards (OpenAI's own limit for audio is 25 MB).
    public static let maxFormSize = 32 * 1024 * 1024

    /// `POST /v1/<route>` for the routes beyond text: the model is read from the JSON body
    /// or the form's `model` field in the one parse LISA forwards (a form is re-written from
    /// its parsed parts), resolved for the caller (access, type), and routed like chat:
    /// balancing, retries, fallbacks, timeouts, metrics. JSON answers come back checked;
    /// audio and transcripts are relayed as they arrive.
    ///
    /// - Parameter contentType: the request's `Content-Type` (the form's boundary).
    public func media(_ route: MediaRoute, body: ByteBuffer, contentType: String?, context: InferenceContext) async throws(LISAError)
        -> GatewayResponse
    {
        if route.isMultipart {
            return try await form(route, body: body, contentType: contentType, context: context)
        }
        guard case .object(let request) = try Self.decode(JSONValue.self, from: body) else {
            throw .invalidRequest("The request body must be a JSON object.")
        }
        guard case .string(let modelID)? = request["model"] else { throw .invalidRequest("model is required and must be a string.", param: "model") }
        if route == .imageGenerations, request["stream"] == .bool(true) {
            throw .invalidRequest("Streamed image generation is not supported; omit stream.", param: "stream", reason: "unsupported_parameter")
        }
        if route == .speech, request["stream_format"] == .string("sse") {
            throw .invalidRequest("stream_format sse is not supported; the audio is streamed as it is made.", param: "stream_format", reason: "unsupported_parameter")
        }
        if route == .rerank {
            try Rerank.validate(request)
        }
        let model = try resolve(modelID, serving: route.modelType, for: context.principal)
        let user = request["user"]?.stringValue
        return try await self.route(route.operation, model: model, stream: false, user: user, context: context, inbound: body) {
            modelName throws(LISAError) in
            if let edited = JSONMemberScanner.replacingStringMember("model", with: modelName, in: body) { return edited }
            var members = request
            members["model"] = .string(modelName)
            return DialectJSON.encode(.object(members))
        }
    }

    private func form(_ route: MediaRoute, body: ByteBuffer, contentType: String?, context: InferenceContext) async throws(LISAError)
        -> GatewayResponse
    {
        guard let contentType, let boundary = MultipartForm.boundary(of: contentType) else {
            throw LISAError(
                .unsupportedContent, "Unsupported Content-Type '\(contentType ?? "")': send this request as multipart/form-data.",
                reason: "unsupported_media_type"
            )
        }
        guard body.readableBytes <= Self.maxFormSize else {
            throw .payloadTooLarge("The form is larger than \(Self.maxFormSize / 1024 / 1024) MiB.")
        }
        let form: MultipartForm
        do {
            form = try MultipartForm(body: body, boundary: boundary)
        } catch {
            throw .invalidRequest("The multipart form is malformed.")
        }
        guard let modelID = form.field("model") else { throw .invalidRequest("model is required.", param: "model") }
        let required = route == .imageEdits ? "image" : "file"
        guard form.parts.contains(where: { $0.name == required || $0.name == "\(required)[]" }) else {
            throw .invalidRequest("\(required) is required.", param: required)
        }
        let stream = form.field("stream") == "true"
        let model = try resolve(modelID, serving: route.modelType, for: context.principal)
        if stream { try checkStreaming(true, model: model) }
        let boundaryOut = "lisa-" + (0..<2).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
        let (_, formType) = MultipartForm(parts: []).encoded(boundary: boundaryOut)
        return try await self.route(
            route.operation, model: model, stream: stream, user: form.field("user"), context: context, contentType: formType
        ) { modelName in
            var parts = form.parts
            for index in parts.indices where parts[index].name == "model" && parts[index].filename == nil {
                parts[index].data = Data(modelName.utf8)
            }
            return MultipartForm(parts: parts).encoded(boundary: boundaryOut).body
        }
    }

    /// The media types LISA relays from audio and transcription routes: audio, plain text,
    /// subtitles, JSON and events — never anything a browser would run from LISA's origin.
    static func relayableMediaType(_ contentType: String) -> String? {
        let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let allowed = ["text/plain", "text/vtt", "application/x-subrip", "application/json", "text/event-stream", "application/octet-stream"]
        guard type.hasPrefix("audio/") || allowed.contains(type) else { return nil }
        return contentType
    }
}

/// Rerank requests in the shape vLLM and Cohere share (`query`, `documents`, `top_n`,
/// `return_documents`), and their translation to Text Embeddings Inference's `/rerank`.
public enum Rerank {
    /// The most documents one request may rank.
    public static let maxDocuments = 1000

    static func validate(_ request: JSONObject) throws(LISAError) {
        guard case .string? = request["query"] else { throw .invalidRequest("query is required and must be a string.", param: "query") }
        guard case .array(let documents)? = request["documents"], !documents.isEmpty else {
            throw .invalidRequest("documents must be a non-empty array.", param: "documents")
        }
        guard documents.count <= maxDocuments else {
            throw .invalidRequest("documents may hold at most \(maxDocuments) items.", param: "documents")
        }
        for (index, document) in documents.enumerated() where text(of: document) == nil {
            throw .invalidRequest("documents[\(index)] must be a string or an object with text.", param: "documents[\(index)]")
        }
        if let topN = request["top_n"], (topN.int64Value ?? 0) < 1 {
            throw .invalidRequest("top_n must be a positive integer.", param: "top_n")
        }
    }

    static func text(of document: JSONValue) -> String? {
        document.stringValue ?? document["text"]?.stringValue
    }

    /// TEI's request for a rerank request.
    static func teiRequest(from request: JSONValue) throws(LISAError) -> JSONValue {
        guard let query = request["query"]?.stringValue, let documents = request["documents"]?.arrayValue else {
            throw .invalidRequest("query and documents are required.", param: "query")
        }
        return [
            "query": .string(query), "texts": .array(documents.map { .string(text(of: $0) ?? "") }), "raw_scores": false,
            "return_text": false, "truncate": true,
        ]
    }

    /// The Cohere-shaped answer for TEI's `[{"index", "score"}]`: best first, `top_n` of
    /// them, with the documents when `return_documents` asked.
    static func answer(fromTEI ranked: JSONValue, request: ByteBuffer, model: String) throws(LISAError) -> JSONValue {
        guard let items = ranked.arrayValue else {
            throw .badGateway("The rerank upstream's answer is not a list of scores.", reason: "upstream_invalid_response")
        }
        let original = (try? JSONDecoder().decode(JSONValue.self, from: request)) ?? [:]
        let documents = original["documents"]?.arrayValue ?? []
        let withDocuments = original["return_documents"] == .bool(true)
        var results: [(index: Int64, score: Double)] = []
        for item in items {
            guard let index = item["index"]?.int64Value, index >= 0, Int(index) < max(documents.count, 1) || documents.isEmpty else { continue }
            let score: Double =
                switch item["score"] {
                case .number(let value)?: value
                case .integer(let value)?: Double(value)
                default: 0
                }
            results.append((index, score))
        }
        results.sort { $0.score > $1.score }
        if let topN = original["top_n"]?.int64Value { results = Array(results.prefix(Int(topN))) }
        let out: [JSONValue] = results.map { result in
            var entry: [String: JSONValue] = ["index": .integer(result.index), "relevance_score": .number(result.score)]
            if withDocuments, Int(result.index) < documents.count { entry["document"] = ["text": .string(text(of: documents[Int(result.index)]) ?? "")] }
            return .object(entry)
        }
        return ["id": .string(DialectJSON.id("rerank-")), "model": .string(model), "results": .array(out), "usage": ["total_tokens": 0]]
    }
}
