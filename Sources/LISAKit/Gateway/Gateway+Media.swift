import Foundation
public import NIOCore
import NIOFoundationCompat

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
        guard case .object(let request) = try RequestJSON.decode(JSONValue.self, from: body) else {
            throw .invalidRequest("The request body must be a JSON object.")
        }
        guard case .string(let modelID)? = request["model"] else { throw .invalidRequest("model is required and must be a string.", param: "model") }
        if route == .imageGenerations, request["stream"] == .bool(true) {
            throw .invalidRequest("Streamed image generation is not supported; omit stream.", param: "stream", reason: "unsupported_parameter")
        }
        if route == .speech, request["stream_format"] == .string("sse") {
            throw .invalidRequest(
                "stream_format sse is not supported; the audio is streamed as it is made.", param: "stream_format", reason: "unsupported_parameter")
        }
        if route == .rerank {
            try Rerank.validate(request)
        }
        let model = try resolve(modelID, serving: route.modelType, for: context.principal)
        let user = request["user"]?.stringValue
        let estimate = MediaEstimate(route, request: request)
        return try await self.route(route.operation, model: model, stream: false, user: user, context: context, inbound: body, media: estimate) {
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
            route.operation, model: model, stream: stream, user: form.field("user"), context: context, contentType: formType,
            media: MediaEstimate(route, form: form)
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

/// LISA's estimate of a media call's tokens: reserved on budgets before the call is sent, and
/// recorded (marked as an estimate) when the upstream reports no usage.
///
/// Images are counted as OpenAI's image models count them (an output image of 1024×1024 is
/// 272, 1056 or 4160 tokens at low, medium and high quality, in proportion to its area; an
/// input image 765), audio at 10 tokens a second in and 4 a second of transcript out, text at
/// four bytes a token.
struct MediaEstimate: Sendable, Equatable {
    var input: Int
    var output: Int

    /// Audio tokens a second of input (OpenAI's audio models count one per 100 ms).
    static let audioTokensPerSecond = 10.0
    /// Transcript tokens a second of speech (about 150 words a minute).
    static let transcriptTokensPerSecond = 4.0
    /// The tokens of one input image.
    static let inputImageTokens = 765
    /// Audio bytes a second when the file does not say (128 kbit/s).
    static let assumedAudioBytesPerSecond = 16_000.0

    /// The estimate for a JSON media request (image generation, speech); `nil` for routes
    /// whose text the gateway's own estimate covers (moderations, rerank).
    init?(_ route: MediaRoute, request: JSONObject) {
        switch route {
        case .imageGenerations:
            input = Self.textTokens(request["prompt"]?.stringValue)
            output =
                Self.imageCount(request["n"]) * Self.outputImageTokens(size: request["size"]?.stringValue, quality: request["quality"]?.stringValue)
        case .speech:
            // About 15 characters a second of speech, 20 audio tokens a second of it.
            let characters = request["input"]?.stringValue?.count ?? 0
            input = Self.textTokens(request["input"]?.stringValue)
            output = Int((Double(characters) / 15 * 20).rounded(.up))
        default:
            return nil
        }
    }

    /// The estimate for a form (image edits, transcriptions, translations).
    init?(_ route: MediaRoute, form: MultipartForm) {
        switch route {
        case .imageEdits:
            let images = form.parts.filter { $0.filename != nil && ($0.name == "image" || $0.name == "image[]" || $0.name == "mask") }.count
            input = Self.textTokens(form.field("prompt")) + images * Self.inputImageTokens
            output =
                Self.imageCount(form.field("n").flatMap { Int64($0) }.map { .integer($0) })
                * Self.outputImageTokens(size: form.field("size"), quality: form.field("quality"))
        case .transcriptions, .translations:
            let seconds = form.parts.first { $0.name == "file" && $0.filename != nil }.map { Self.audioSeconds($0.data) } ?? 0
            input = Int((seconds * Self.audioTokensPerSecond).rounded(.up)) + Self.textTokens(form.field("prompt"))
            output = Int((seconds * Self.transcriptTokensPerSecond).rounded(.up))
        default:
            return nil
        }
    }

    static func textTokens(_ text: String?) -> Int {
        text.map { ($0.utf8.count + 3) / 4 } ?? 0
    }

    /// `n` images, 1 when unset or not a count (at most 128).
    static func imageCount(_ n: JSONValue?) -> Int {
        guard let count = count(n), count >= 1 else { return 1 }
        return min(count, 128)
    }

    /// A whole number ≥ 0 (an upstream's or a client's, so any bytes: huge values are clamped, never trapped on).
    static func count(_ value: JSONValue?) -> Int? {
        switch value {
        case .integer(let value)?: Int(clamping: max(value, 0))
        case .number(let value)? where value.isFinite && value >= 0 && value.rounded() == value: Int(min(value, 1e15))
        default: nil
        }
    }

    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    /// The output tokens of one image of `size` (`WxH`; 1024×1024 when unset or `auto`) at `quality`.
    static func outputImageTokens(size: String?, quality: String?) -> Int {
        let perMegapixel: Double =
            switch quality?.lowercased() {
            case "low": 272
            case "high", "hd": 4160
            default: 1056  // medium, standard, auto
            }
        let sides = (size ?? "").lowercased().split(separator: "x").compactMap { Int($0) }
        let area = sides.count == 2 && sides.allSatisfy({ (1...16384).contains($0) }) ? Double(sides[0] * sides[1]) : 1024 * 1024
        return Int((perMegapixel * area / (1024 * 1024)).rounded(.up))
    }

    /// An audio file's length in seconds: exact for WAV (its header), else from its size at 128 kbit/s.
    static func audioSeconds(_ data: Data) -> Double {
        let bytes = [UInt8](data.prefix(4096))
        func le32(_ at: Int) -> Int? {
            guard at + 4 <= bytes.count else { return nil }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        if bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WAVE".utf8) {
            // Chunks after the header: `fmt ` holds the byte rate, `data` the samples.
            var at = 12
            var byteRate: Int?
            while at + 8 <= bytes.count, let size = le32(at + 4) {
                let id = bytes[at..<at + 4]
                if id.elementsEqual("fmt ".utf8) { byteRate = le32(at + 16) }
                if id.elementsEqual("data".utf8), let byteRate, byteRate > 0 {
                    return Double(min(size, data.count - at - 8)) / Double(byteRate)
                }
                at += 8 + size + (size & 1)
            }
        }
        return Double(data.count) / assumedAudioBytesPerSecond
    }
}

extension Gateway {
    /// The usage of a media answer (images, transcripts, rerank) in the media APIs' own shapes:
    /// `{"input_tokens", "output_tokens", "total_tokens", "input_tokens_details"}` (images,
    /// token-billed transcription), `{"type": "duration", "seconds"}` or a transcript's
    /// `duration` (an estimate from the audio's length: `estimated`), vLLM rerank's
    /// `{"total_tokens"}`; `nil` when there is none.
    static func mediaUsage(_ operation: UpstreamOperation, answer: ByteBuffer) -> (usage: Usage, estimated: Bool)? {
        switch operation {
        case .imagesGenerations, .imagesEdits, .audioTranscriptions, .audioTranslations, .rerank: break
        default: return nil
        }
        let usage = JSONMemberScanner.value(of: "usage", in: answer).flatMap { try? JSONDecoder().decode(JSONValue.self, from: $0) }
        let count = MediaEstimate.count
        // vLLM's rerank counts the tokens it read as `total_tokens` alone.
        if operation == .rerank {
            guard let total = count(usage?["total_tokens"]) else { return nil }
            return (Usage(promptTokens: total, completionTokens: 0, totalTokens: total), false)
        }
        if let usage, let input = count(usage["input_tokens"]) ?? count(usage["prompt_tokens"]) {
            let output = count(usage["output_tokens"]) ?? count(usage["completion_tokens"])
            let total = count(usage["total_tokens"]) ?? input + (output ?? 0)
            var read = Usage(promptTokens: input, completionTokens: output ?? max(total - input, 0), totalTokens: total)
            read.promptTokensDetails = usage["input_tokens_details"] ?? usage["input_token_details"]
            return (read, false)
        }
        // Billed by duration, or a verbose transcript: tokens from the audio's length, and the transcript's text.
        let seconds: Double? =
            if let usage, usage["type"]?.stringValue == "duration" { usage["seconds"].flatMap(MediaEstimate.number) } else {
                JSONMemberScanner.value(of: "duration", in: answer).flatMap { Double(String(buffer: $0)) }
            }
        guard let seconds, seconds.isFinite, seconds >= 0, seconds < 1e9 else { return nil }
        let input = Int((seconds * MediaEstimate.audioTokensPerSecond).rounded(.up))
        let text = JSONMemberScanner.value(of: "text", in: answer).map { max($0.readableBytes - 2, 0) } ?? 0
        let output = (text + 3) / 4
        return (Usage(promptTokens: input, completionTokens: output, totalTokens: input + output), true)
    }

    /// Whether an answer of `operation` labelled `contentType` is read whole for its usage
    /// (a transcript in JSON) instead of relayed as it arrives.
    static func readsUsage(of operation: UpstreamOperation, contentType: String) -> Bool {
        (operation == .audioTranscriptions || operation == .audioTranslations)
            && contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } == "application/json"
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
        if let topN = request["top_n"], (integer(topN) ?? 0) < 1 {
            throw .invalidRequest("top_n must be a positive integer.", param: "top_n")
        }
    }

    /// A whole number within ±10¹⁵, else `nil` (a huge number in a client's or an upstream's
    /// bytes is refused, never trapped on).
    static func integer(_ value: JSONValue?) -> Int? {
        switch value {
        case .integer(let value)? where (-1_000_000_000_000_000...1_000_000_000_000_000).contains(value): Int(value)
        case .number(let value)? where value.isFinite && value.rounded() == value && abs(value) <= 1e15: Int(value)
        default: nil
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
            guard let index = integer(item["index"]).map(Int64.init), index >= 0, Int(index) < max(documents.count, 1) || documents.isEmpty else {
                continue
            }
            let score: Double =
                switch item["score"] {
                case .number(let value)?: value
                case .integer(let value)?: Double(value)
                default: 0
                }
            results.append((index, score))
        }
        results.sort { $0.score > $1.score }
        if let topN = integer(original["top_n"]) { results = Array(results.prefix(max(topN, 0))) }
        let out: [JSONValue] = results.map { result in
            var entry: [String: JSONValue] = ["index": .integer(result.index), "relevance_score": .number(result.score)]
            if withDocuments, Int(result.index) < documents.count {
                entry["document"] = ["text": .string(text(of: documents[Int(result.index)]) ?? "")]
            }
            return .object(entry)
        }
        return ["id": .string(DialectJSON.id("rerank-")), "model": .string(model), "results": .array(out), "usage": ["total_tokens": 0]]
    }
}
