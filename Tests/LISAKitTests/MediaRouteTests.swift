import Foundation
import NIOCore
import NIOFoundationCompat
import Testing

@testable import LISAKit

@Suite("Media routes: forms, rerank, relayed types")
struct MediaRouteTests {
    @Test("a form re-written from its parts parses back to the same parts, whatever the names hold")
    func formRoundTrip() throws {
        let hostile = "a\"\r\nContent-Type: text/html\r\n\r\n<script>"
        let form = MultipartForm(parts: [
            .init(name: "model", data: Data("whisper".utf8)),
            .init(name: "file", filename: hostile, contentType: "audio/wav", data: Data((0..<2000).map { UInt8($0 % 256) })),
            .init(name: hostile, data: Data("value".utf8)),
        ])
        let (body, contentType) = form.encoded()
        let boundary = try #require(MultipartForm.boundary(of: contentType))
        let parsed = try MultipartForm(body: body, boundary: boundary)
        #expect(parsed.parts.count == 3, "no part was injected")
        #expect(parsed.field("model") == "whisper")
        #expect(parsed.parts[1].data == form.parts[1].data)
        #expect(parsed.parts[1].contentType == "audio/wav")
        // Quotes and line breaks are percent-encoded, as browsers do: they cannot end the header.
        #expect(parsed.parts[1].filename == "a%22%0D%0AContent-Type: text/html%0D%0A%0D%0A<script>")
        #expect(parsed.parts[2].name == parsed.parts[1].filename)
    }

    @Test("two re-written forms get different boundaries")
    func freshBoundaries() {
        let form = MultipartForm(parts: [.init(name: "model", data: Data("m".utf8))])
        #expect(form.encoded().contentType != form.encoded().contentType)
    }

    @Test("TEI's scores come back best first, cut to top_n, with documents when asked")
    func teiRerank() throws {
        let request = DialectJSON.encode(["model": "r", "query": "q", "documents": ["a", ["text": "b"], "c"], "top_n": 2, "return_documents": true])
        let tei: JSONValue = [["index": 0, "score": 0.1], ["index": 2, "score": 0.9], ["index": 1, "score": 0.5], ["index": 9, "score": 1.0]]
        let answer = try Rerank.answer(fromTEI: tei, request: request, model: "r")
        #expect(
            answer["results"] == [
                ["index": 2, "relevance_score": 0.9, "document": ["text": "c"]], ["index": 1, "relevance_score": 0.5, "document": ["text": "b"]],
            ])
        #expect(try Rerank.teiRequest(from: try JSONDecoder().decode(JSONValue.self, from: request))["texts"] == ["a", "b", "c"])
    }

    @Test(
        "rerank requests are checked, naming the field",
        arguments: [
            (#"{"model":"r","documents":["a"]}"#, "query"), (#"{"model":"r","query":"q","documents":[]}"#, "documents"),
            (#"{"model":"r","query":"q","documents":[1]}"#, "documents[0]"), (#"{"model":"r","query":"q","documents":["a"],"top_n":0}"#, "top_n"),
        ])
    func rerankRefusals(body: String, param: String) throws {
        let request = try JSONDecoder().decode(JSONValue.self, from: Data(body.utf8)).objectValue!
        #expect { try Rerank.validate(request) } throws: { ($0 as? LISAError)?.param == param }
    }

    @Test(
        "only audio, text, subtitles, JSON and events are relayed from audio routes",
        arguments: [
            ("audio/mpeg", true), ("audio/wav; rate=24000", true), ("text/plain; charset=utf-8", true), ("text/vtt", true),
            ("application/json", true), ("text/html", false), ("application/javascript", false), ("image/svg+xml", false), ("", false),
        ])
    func relayedTypes(type: String, relayed: Bool) {
        #expect((Gateway.relayableMediaType(type) != nil) == relayed)
    }
}
