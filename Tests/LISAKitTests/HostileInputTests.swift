import Foundation
import NIOCore
import Testing
import ZIPFoundation

@testable import LISAKit

/// Inputs an attacker sends: every parser must answer them in time linear in their size,
/// within its budget, and the same way any other parser would.
///
/// The time limits are not benchmarks: each input here took minutes (or forever) with the
/// quadratic code these tests were written against, and takes well under a second now, so
/// a one-minute limit holds on a loaded machine and still fails a regression.
@Suite("Hostile input: one parse, linear parsers, budgets")
struct HostileInputTests {
    // MARK: - One parse

    @Test("an escaped duplicate of a routing key is refused, wherever it is")
    func escapedDuplicateKeys() throws {
        let bodies = [
            #"{"model":"public","mod\u0065l":"secret-upstream","messages":[]}"#,
            #"{"model":"public","model":"secret-upstream"}"#,
            #"{"stream":false,"str\u0065am":true}"#,
            #"{"lisa":{"rag":{"repositoryId":"a"}},"li\u0073a":{"rag":{"repositoryId":"b"}}}"#,
            #"{"messages":[{"role":"user","role":"system","content":"x"}]}"#,
            #"{"a":{"b":{"c":1,"\u0063":2}}}"#,
            // A surrogate pair spelled out is the same key as the character itself.
            #"{"\ud83d\ude00":1,"😀":2}"#,
        ]
        for body in bodies {
            #expect(throws: StrictJSON.Violation.self, "\(body)") { try StrictJSON.validate(Array(body.utf8)) }
        }
        do {
            try StrictJSON.validate(Array(#"{"model":"a","messages":[{"role":"user","content":"x"},{"role":"user","content":"y"}]}"#.utf8))
        }
        let error = #expect(throws: StrictJSON.Violation.self) { try StrictJSON.validate(Array(#"{"messages":[{"a":1},{"b":1,"b":2}]}"#.utf8)) }
        #expect(error?.path == "messages[1].b")
        #expect(error?.isWellFormed == true)
    }

    @Test("duplicates are found in objects of any size (compared in place, then by set), and the path names the open keys")
    func duplicatesInLargeObjects() throws {
        for count in [1, 15, 16, 17, 40] {
            let members = (0..<count).map { #""k\#($0)":\#($0)"# }
            try StrictJSON.validate(Array(("{" + members.joined(separator: ",") + "}").utf8))
            for (index, duplicate) in [#""k0":1"#, #""\u006b\#(count - 1)":1"#].enumerated() {
                let body = #"{"outer":{"# + (members + [duplicate]).joined(separator: ",") + #"},"after":1}"#
                let error = #expect(throws: StrictJSON.Violation.self, "\(count) keys, case \(index)") { try StrictJSON.validate(Array(body.utf8)) }
                #expect(error?.path == "outer.k\(index == 0 ? 0 : count - 1)")
            }
        }
        // Keys of closed objects are forgotten: the same key in sibling objects is fine.
        try StrictJSON.validate(Array(#"{"a":{"x":1,"y":{"x":2}},"b":{"x":3},"x":4}"#.utf8))
        let error = #expect(throws: StrictJSON.Violation.self) { try StrictJSON.validate(Array(#"{"a":{"x":1,"y":[{"z":1}]},"a":2}"#.utf8)) }
        #expect(error?.path == "a")
    }

    @Test("what other parsers read differently is refused: BOM, NaN, bad UTF-8, lone surrogate keys, trailing data, deep nesting")
    func ambiguousDocuments() throws {
        let refused: [[UInt8]] = [
            [0xEF, 0xBB, 0xBF] + Array(#"{"model":"a"}"#.utf8),
            Array(#"{"temperature":NaN}"#.utf8),
            Array(#"{"temperature":Infinity}"#.utf8),
            Array(#"{"temperature":-Infinity}"#.utf8),
            Array(#"{"model":"a"}{"model":"b"}"#.utf8),
            Array(#"{"model":"a"} x"#.utf8),
            Array(#"{"model":"a",}"#.utf8),
            Array(#"{'model':'a'}"#.utf8),
            Array(#"{"n":01}"#.utf8),
            Array(#"{"n":1.}"#.utf8),
            Array(#"{"model":"a\u00"}"#.utf8),
            Array("{\"model\":\"a\tb\"}".utf8),
            Array(#"{"model":""#.utf8) + [0xC0, 0xAF] + Array(#""}"#.utf8),  // overlong '/'
            Array(#"{"model":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8),  // an encoded surrogate
            Array(#"{"model":""#.utf8) + [0xFF] + Array(#""}"#.utf8),
            Array(String(repeating: "[", count: 200).utf8) + Array(String(repeating: "]", count: 200).utf8),
            // Found by the fuzzer: numbers past a Double's range (infinity to Python, an error to
            // Foundation) and unpaired surrogates (Foundation refuses them, Python accepts them).
            Array(#"{"t":188.5e6888888880}"#.utf8), Array(#"{"t":-1e400}"#.utf8), Array(#"[1.8e308]"#.utf8),
            Array((#"{"t":"# + String(repeating: "9", count: 400) + "}").utf8),
            Array(#"{"\ud800":1}"#.utf8), Array(#"{"a":"\udc00"}"#.utf8), Array(#"{"a":"\ud83d\ud0e0"}"#.utf8), Array(#"{"a":"\ud83dx"}"#.utf8),
            Array(String(repeating: #"{"a":"#, count: 129).utf8) + Array("1".utf8) + Array(String(repeating: "}", count: 129).utf8),
        ]
        for body in refused {
            #expect(throws: StrictJSON.Violation.self, "\(String(decoding: body, as: UTF8.self).prefix(40))") { try StrictJSON.validate(body) }
        }
        let accepted = [
            #"  {"model":"a","n":-0.5e+10,"t":true,"f":false,"z":null,"s":"\"\\\/\b\f\n\r\t\u00e9😀","e":{},"l":[]}  "#,
            #"[1,2,3]"#, #""text""#, "0", "1.7976931348623157e308", "1e-400", "0e999999", "123456789012345678901234567890",
            String(repeating: "[", count: 127) + String(repeating: "]", count: 127),
        ]
        for body in accepted {
            try StrictJSON.validate(Array(body.utf8))
        }
    }

    @Test("the in-place model rewrite finds an escaped key too")
    func scannerUnescapesKeys() throws {
        let body = ByteBuffer(string: #"{"mod\u0065l":"public","messages":[]}"#)
        let rewritten = try #require(JSONMemberScanner.replacingStringMember("model", with: "upstream-name", in: body))
        #expect(String(buffer: rewritten) == #"{"mod\u0065l":"upstream-name","messages":[]}"#)
    }

    @Test("the gateway refuses a duplicate model key with a 400 naming it")
    func gatewayRefusesDuplicates() throws {
        let error = #expect(throws: LISAError.self) {
            _ = try RequestJSON.decode(
                ChatCompletionRequest.self, from: ByteBuffer(string: #"{"model":"public","mod\u0065l":"secret","messages":[]}"#))
        }
        #expect(error?.code == .invalidRequest)
        #expect(error?.param == "model")
        #expect(error?.message.contains("Duplicate key 'model'") == true)
    }

    @Test("validation is linear: a 4 MB body of many keys and a deep-but-allowed one", .timeLimit(.minutes(1)))
    func validationIsLinear() throws {
        var wide = "{"
        for index in 0..<200_000 { wide += "\"k\(index)\":\(index)," }
        wide += "\"end\":0}"
        try StrictJSON.validate(Array(wide.utf8))
        let long = "{\"content\":\"" + String(repeating: "\\u0041", count: 700_000) + "\"}"
        try StrictJSON.validate(Array(long.utf8))
    }

    // MARK: - Server-sent events

    @Test("one huge event is parsed in linear time, fed in small reads", .timeLimit(.minutes(1)))
    func sseHugeEventLinear() throws {
        var parser = ServerSentEventParser()
        let payload = String(repeating: "x", count: 12 * 1024 * 1024)
        let wire = ByteBuffer(string: "data: \(payload)\n\n")
        var events: [ServerSentEventParser.ParsedEvent] = []
        var offset = 0
        while offset < wire.readableBytes {
            let length = min(8 * 1024, wire.readableBytes - offset)
            events += try parser.feed(wire.getSlice(at: offset, length: length)!)
            offset += length
        }
        #expect(events.count == 1)
        #expect(events.first?.event.data.utf8.count == payload.utf8.count)
    }

    @Test("an event larger than the budget is refused instead of buffered")
    func sseEventBudget() throws {
        var parser = ServerSentEventParser(maximumEventSize: 1024 * 1024)
        let chunk = ByteBuffer(string: "data: " + String(repeating: "y", count: 64 * 1024))
        var fed = 0
        let error = #expect(throws: ServerSentEventParser.EventTooLarge.self) {
            while fed < 4 * 1024 * 1024 {
                _ = try parser.feed(chunk)
                fed += chunk.readableBytes
            }
        }
        #expect(error?.limit == 1024 * 1024)
        #expect(fed <= 1024 * 1024 + chunk.readableBytes, "it stops at the budget, not at the end of the stream")
    }

    // MARK: - Chunker and extractors

    @Test("a 2 MB document without whitespace is chunked in linear time, nothing lost", .timeLimit(.minutes(1)))
    func chunkerLinear() throws {
        let text = String(repeating: "abcdefghij", count: 200_000)
        let chunks = ChunkingStrategy.recursive(size: 512, overlap: 51).split(text)
        #expect(chunks.allSatisfy { $0.count <= 512 })
        #expect(chunks.joined() == text)
        let lines = String(repeating: "word ", count: 300_000)
        let lineChunks = ChunkingStrategy.recursive(size: 1000, overlap: 100).split(lines)
        #expect(lineChunks.allSatisfy { $0.count <= 1000 })
    }

    @Test("CRLF line breaks count as line breaks for the splitter")
    func chunkerCRLF() throws {
        let text = (0..<40).map { "Line \($0) has a few words in it." }.joined(separator: "\r\n")
        let chunks = ChunkingStrategy.recursive(size: 120, overlap: 0).split(text)
        #expect(chunks.allSatisfy { $0.count <= 120 && !$0.hasPrefix("ine") })
    }

    @Test("HTML with 100k unclosed <script and <!-- is read in linear time", .timeLimit(.minutes(1)))
    func htmlLinear() throws {
        let scripts = "<p>Visible</p>" + String(repeating: "<script>x", count: 100_000)
        #expect(DocumentParser.html(scripts) == "Visible")
        let comments = "<p>Kept</p>" + String(repeating: "<!-- c", count: 100_000)
        #expect(DocumentParser.html(comments) == "Kept")
        let tags = "Start " + String(repeating: "<a", count: 200_000)
        #expect(DocumentParser.html(tags) == "Start")
        let entities = String(repeating: "&amp;&#233;&unknown;&", count: 100_000)
        #expect(DocumentParser.decodeEntities(entities).hasPrefix("&é&unknown;&&é"))
    }

    @Test("HTML text: entities, blocks, scripts, styles, the head and comments")
    func htmlText() {
        let page = """
            <!doctype html><html><head><title>T</title><style>p{}</style></head>
            <body><h1>Title &amp; more</h1><script>alert(1)</script><p>One<br>two &#x41;&#66;</p><!-- gone --><div>3 &lt; 4</div></body></html>
            """
        #expect(DocumentParser.html(page) == "Title & more\nOne\ntwo AB\n3 < 4")
    }

    @Test("a DOCX that expands past its budget is refused before it is inflated", .timeLimit(.minutes(1)))
    func docxBomb() async throws {
        // 64 MiB of spaces deflate to about 64 KB.
        let archive = try Archive(data: Data(), accessMode: .create)
        let size = 64 * 1024 * 1024
        try archive.addEntry(
            with: "word/document.xml", type: .file, uncompressedSize: Int64(size), compressionMethod: .deflate,
            provider: { _, length in Data(repeating: 0x20, count: length) }
        )
        let data = try #require(archive.data)
        #expect(data.count < 1024 * 1024)
        var limits = DocumentParser.Limits()
        limits.maxExpandedBytes = 4 * 1024 * 1024
        let error = await #expect(throws: LISAError.self) { _ = try await DocumentParser.text(of: data, filename: "bomb.docx", limits: limits) }
        #expect(error?.code == .tooLarge)
        #expect(error?.message.contains("expands to more than") == true)
    }

    @Test("a document with more text than the budget is a 413")
    func textBudget() async throws {
        var limits = DocumentParser.Limits()
        limits.maxTextBytes = 1000
        let error = await #expect(throws: LISAError.self) {
            _ = try await DocumentParser.text(of: Data(String(repeating: "a ", count: 1000).utf8), filename: "big.txt", limits: limits)
        }
        #expect(error?.code == .tooLarge)
    }

    // MARK: - Ingestion scheduling

    @Test("ingestion is fair: one user's hundred uploads never hold every worker")
    func schedulerFairness() {
        var scheduler = IngestionScheduler(concurrency: 4)
        for index in 0..<100 { scheduler.add("mallory-\(index)", user: "mallory") }
        var started: [String] = []
        while let next = scheduler.next() { started.append(next.jobId) }
        #expect(started == ["mallory-0", "mallory-1"], "one user holds at most half the workers")
        scheduler.add("alice-0", user: "alice")
        scheduler.add("alice-1", user: "alice")
        scheduler.add("alice-2", user: "alice")
        #expect(scheduler.next()?.jobId == "alice-0", "another user starts at once")
        #expect(scheduler.next()?.jobId == "alice-1")
        #expect(scheduler.next() == nil, "every worker is busy")
        scheduler.add("bob-0", user: "bob")
        scheduler.finished(user: "mallory")
        #expect(scheduler.next()?.jobId == "bob-0", "the free worker goes to the user with the fewest running")
        scheduler.finished(user: "alice")
        #expect(scheduler.next()?.jobId == "mallory-2", "mallory (1 running) before alice (1 running): mallory was waiting first")
        #expect(scheduler.runningCount == 4)
        #expect(scheduler.waitingCount == 98)

        var single = IngestionScheduler(concurrency: 1)
        single.add("a", user: "u")
        single.add("b", user: "u")
        #expect(single.next()?.jobId == "a")
        #expect(single.next() == nil)
        single.finished(user: "u")
        #expect(single.next()?.jobId == "b")
    }
}
