import Foundation
import HTTPTypes
import Hummingbird
import LISAHummingbird
import LISAKit
import NIOCore
import NIOFoundationCompat
import Synchronization

/// The fake's OpenAI routes beyond text, in their wire formats:
///
/// | route | answer |
/// |---|---|
/// | `POST /v1/images/generations` | `{"created", "data": [{"b64_json"}]}`, the image bytes being `image for: <prompt>` (`n` of them) |
/// | `POST /v1/images/edits` (form) | the same, with `edited <filename> (<bytes> bytes): <prompt>` |
/// | `POST /v1/audio/transcriptions`, `/translations` (form) | `{"text": "transcribed <filename> (<bytes> bytes) as <model>"}`; `response_format: text` answers `text/plain` |
/// | `POST /v1/audio/speech` | `audio/mpeg`: ``Configuration/speechChunks`` chunks of 4 KiB, ``Configuration/speechChunkDelay`` apart |
/// | `POST /v1/moderations` | flags any input containing `kill` |
/// | `POST /v1/rerank` | vLLM's shape: documents scored by the words they share with the query |
/// | `POST /rerank` | TEI's shape (`[{"index", "score"}]`) for the same scores |
///
/// Each records the request (``Observations/lastBody`` holds the form's text fields, and
/// `file_bytes`, for forms) so tests can see what LISA forwarded.
extension FakeUpstream {
    func addOtherRoutes(to router: Router<LISARequestContext>) {
        router.post("/v1/images/generations") { request, _ in
            let body = try await self.record(request)
            let prompt = body["prompt"]?.stringValue ?? ""
            return try Self.images("image for: \(prompt)", count: Int(body["n"]?.int64Value ?? 1))
        }
        router.post("/v1/images/edits") { request, _ in
            let form = try await self.recordForm(request)
            guard let image = form.parts.first(where: { $0.name == "image" || $0.name == "image[]" }) else {
                return try Self.error(status: 400, message: "image is required", type: "invalid_request_error")
            }
            return try Self.images("edited \(image.filename ?? "") (\(image.data.count) bytes): \(form.field("prompt") ?? "")", count: 1)
        }
        for path in ["/v1/audio/transcriptions", "/v1/audio/translations"] {
            router.post(RouterPath(path)) { request, _ in
                let form = try await self.recordForm(request)
                guard let file = form.parts.first(where: { $0.name == "file" }) else {
                    return try Self.error(status: 400, message: "file is required", type: "invalid_request_error")
                }
                let verb = path.hasSuffix("translations") ? "translated" : "transcribed"
                let text = "\(verb) \(file.filename ?? "") (\(file.data.count) bytes) as \(form.field("model") ?? "")"
                if form.field("response_format") == "text" {
                    return Response(
                        status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
                }
                return try Self.json(["text": .string(text)])
            }
        }
        router.post("/v1/audio/speech") { request, _ in
            _ = try await self.record(request)
            let (chunks, delay) = (self.configuration.speechChunks, self.configuration.speechChunkDelay)
            return Response(
                status: .ok, headers: [.contentType: "audio/mpeg"],
                body: ResponseBody { writer in
                    for index in 0..<chunks {
                        if index > 0 { try await Task.sleep(for: delay) }
                        try await writer.write(ByteBuffer(bytes: [UInt8](repeating: UInt8(index % 256), count: 4096)))
                    }
                    try await writer.finish(nil)
                    self.state.withLock { $0.completed += 1 }
                }
            )
        }
        router.post("/v1/moderations") { request, _ in
            let body = try await self.record(request)
            let inputs: [String] = body["input"]?.arrayValue?.compactMap(\.stringValue) ?? [body["input"]?.stringValue ?? ""]
            let results: [JSONValue] = inputs.map { text in
                let flagged = text.lowercased().contains("kill")
                return [
                    "flagged": .bool(flagged), "categories": ["violence": .bool(flagged)],
                    "category_scores": ["violence": .number(flagged ? 0.97 : 0.01)],
                ]
            }
            return try Self.json(["id": "modr-fake", "model": body["model"] ?? "", "results": .array(results)])
        }
        router.post("/v1/rerank") { request, _ in
            let body = try await self.record(request)
            let scores = Self.scores(query: body["query"]?.stringValue ?? "", documents: body["documents"]?.arrayValue ?? [])
            var results = scores.enumerated().map { ($0.offset, $0.element) }.sorted { $0.1 > $1.1 }
            if let topN = body["top_n"]?.int64Value { results = Array(results.prefix(Int(topN))) }
            return try Self.json([
                "id": "rerank-fake", "model": body["model"] ?? "",
                "results": .array(results.map { ["index": .integer(Int64($0.0)), "relevance_score": .number($0.1)] }),
                "usage": ["total_tokens": 7],
            ])
        }
        router.post("/rerank") { request, _ in
            let body = try await self.record(request)
            let scores = Self.scores(query: body["query"]?.stringValue ?? "", documents: body["texts"]?.arrayValue ?? [])
            let ranked = scores.enumerated().sorted { $0.element > $1.element }
            return try Self.json(.array(ranked.map { ["index": .integer(Int64($0.offset)), "score": .number($0.element)] }))
        }
    }

    private func record(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 64 * 1024 * 1024)
        let body = try JSONDecoder().decode(JSONValue.self, from: buffer)
        state.withLock { state in
            state.requests[request.uri.path, default: 0] += 1
            state.lastBody = body
            state.lastAuthorization = request.headers[.authorization]
        }
        return body
    }

    private func recordForm(_ request: Request) async throws -> MultipartForm {
        let buffer = try await request.body.collect(upTo: 64 * 1024 * 1024)
        guard let boundary = MultipartForm.boundary(of: request.headers[.contentType] ?? "") else {
            throw HTTPError(.unsupportedMediaType)
        }
        let form = try MultipartForm(body: buffer, boundary: boundary)
        var fields: [String: JSONValue] = [:]
        for part in form.parts {
            if part.filename == nil {
                fields[part.name] = .string(String(decoding: part.data, as: UTF8.self))
            } else {
                fields["file_bytes"] = .integer(Int64(part.data.count))
                fields["file_name"] = .string(part.filename ?? "")
            }
        }
        state.withLock { state in
            state.requests[request.uri.path, default: 0] += 1
            state.lastBody = .object(fields)
            state.lastAuthorization = request.headers[.authorization]
        }
        return form
    }

    private static func images(_ content: String, count: Int) throws -> Response {
        let item: JSONValue = ["b64_json": .string(Data(content.utf8).base64EncodedString())]
        return try json(["created": 1_700_000_000, "data": .array(Array(repeating: item, count: max(1, min(count, 10))))])
    }

    /// Each document's share of the query's words.
    private static func scores(query: String, documents: [JSONValue]) -> [Double] {
        let words = Set(query.lowercased().split(separator: " "))
        return documents.map { document in
            let text = (document.stringValue ?? document["text"]?.stringValue ?? "").lowercased()
            let shared = Set(text.split(separator: " ")).intersection(words).count
            return words.isEmpty ? 0 : Double(shared) / Double(words.count)
        }
    }
}
