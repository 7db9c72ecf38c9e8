import Foundation
import Testing

@testable import LISAKit

@Suite("RAG: chunking and parsing")
struct RAGTests {
    static let prose =
        (0..<60).map { index in
            "Sentence number \(index) talks about topic \(index % 7) with some extra words to fill the line."
        }.joined(separator: index(0)) + "\n\nA second paragraph starts here. It has two sentences."

    static func index(_ unused: Int) -> String { " " }

    @Test(
        "recursive chunks: every word kept in order, sizes within the limit, overlap as configured, words not cut",
        arguments: [(100, 0), (200, 20), (512, 51), (300, 150)])
    func chunkingProperties(size: Int, overlap: Int) throws {
        let strategy = ChunkingStrategy.recursive(size: size, overlap: overlap)
        try strategy.validate()
        let chunks = strategy.split(Self.prose)
        #expect(chunks.count > 1)
        #expect(chunks.allSatisfy { $0.count <= size }, "no chunk over \(size)")
        let words = Self.prose.split(whereSeparator: \.isWhitespace).map(String.init)
        let wordSet = Set(words)
        // No text lost, no word cut: the chunks' words, overlaps removed, are the text's words.
        var rebuilt: [String] = []
        for chunk in chunks {
            let chunkWords = chunk.split(whereSeparator: \.isWhitespace).map(String.init)
            #expect(chunkWords.allSatisfy(wordSet.contains), "a word was cut")
            var skip = 0
            // The overlap is a suffix of what came before.
            for candidate in stride(from: min(chunkWords.count, rebuilt.count), through: 1, by: -1)
            where Array(rebuilt.suffix(candidate)) == Array(chunkWords.prefix(candidate)) {
                skip = candidate
                break
            }
            if overlap == 0 { skip = 0 }
            rebuilt += chunkWords.dropFirst(skip)
        }
        #expect(rebuilt == words, "every word, once, in order")
        // Overlap: consecutive chunks share at most `overlap` characters, and some when asked.
        for (previous, next) in zip(chunks, chunks.dropFirst()) {
            let shared =
                (0...min(previous.count, next.count)).last { length in
                    length == 0 || previous.hasSuffix(next.prefix(length))
                } ?? 0
            #expect(shared <= overlap + 1, "overlap within the setting")
            if overlap >= 40 { #expect(shared > 0, "an overlap of \(overlap) repeats some text") }
        }
    }

    @Test(
        "chunk settings out of LISA's ranges are refused, naming the field",
        arguments: [
            (99, 0, "chunkSize"), (10_001, 0, "chunkSize"), (512, 257, "chunkOverlap"), (512, -1, "chunkOverlap"),
        ])
    func chunkSettings(size: Int, overlap: Int, param: String) {
        #expect { try ChunkingStrategy.recursive(size: size, overlap: overlap).validate() } throws: { ($0 as? LISAError)?.param == param }
    }

    @Test("the none strategy keeps the document whole; a long word is cut only when nothing else fits")
    func otherSplits() {
        #expect(ChunkingStrategy.none.split("  whole text \n") == ["whole text"])
        let long = String(repeating: "x", count: 250)
        #expect(ChunkingStrategy.recursive(size: 100, overlap: 0).split(long).map(\.count) == [100, 100, 50])
    }

    static func fixture(_ name: String) throws -> Data {
        try Fixture.data("documents/\(name)")
    }

    @Test("parsers: text, Markdown, HTML, JSON, CSV, PDF and DOCX from real sample files")
    func parsers() async throws {
        #expect(try await DocumentParser.text(of: try Self.fixture("notes.md"), filename: "notes.md").contains("The *gateway* routes requests."))
        let html = try await DocumentParser.text(of: try Self.fixture("page.html"), filename: "page.html")
        #expect(html == "Tide tables\nHigh tide is at 6 AM & low tide at noon.\nCafé é A", "scripts, styles, head and comments dropped")
        let json = try await DocumentParser.text(of: try Self.fixture("config.json"), filename: "config.json")
        #expect(json == "enabled: true\nservice.name: lisa\nservice.ports[0]: 8080\nservice.ports[1]: 8443")
        let csv = try await DocumentParser.text(of: try Self.fixture("people.csv"), filename: "people.csv")
        #expect(csv == "name: Ada\nrole: engineer, lead\n\nname: Grace\nrole: said \"hello\"")
        let pdf = try await DocumentParser.text(of: try Self.fixture("lighthouse.pdf"), filename: "lighthouse.pdf")
        #expect(pdf.contains("The lighthouse keeper logs the weather every morning.") && pdf.contains("barometer falls quickly"))
        let docx = try await DocumentParser.text(of: try Self.fixture("report.docx"), filename: "report.docx")
        #expect(docx == "Quarterly revenue grew by twelve percent.\nCosts & margins stayed flat.")
    }

    @Test(
        "bad files are refused with a clear error",
        arguments: [
            ("image.png", Data([0x89, 0x50]), LISAError.Code.unsupportedContent), ("empty.txt", Data(), .invalidRequest),
            ("blank.txt", Data("  \n ".utf8), .invalidRequest), ("fake.pdf", Data("not a pdf".utf8), .invalidRequest),
            ("fake.docx", Data("not a zip".utf8), .invalidRequest), ("bad.json", Data("{".utf8), .invalidRequest),
            ("latin1.txt", Data([0xff, 0xfe, 0x00]), .invalidRequest),
        ])
    func badFiles(name: String, data: Data, code: LISAError.Code) async {
        await #expect { _ = try await DocumentParser.text(of: data, filename: name) } throws: { ($0 as? LISAError)?.code == code }
    }
}
