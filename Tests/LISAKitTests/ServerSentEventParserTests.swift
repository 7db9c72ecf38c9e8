import NIOCore
import Testing

@testable import LISAKit

@Suite("Server-sent events")
struct ServerSentEventParserTests {
    @Test("events split across reads come out whole, with their exact bytes")
    func splitAcrossFeeds() throws {
        let wire = "data: {\"a\":1}\n\nevent: error\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n"
        // Feed one byte at a time: the worst case for a proxy reading from TCP.
        var parser = ServerSentEventParser()
        var events: [ServerSentEventParser.ParsedEvent] = []
        for byte in wire.utf8 {
            events += try parser.feed(ByteBuffer(bytes: [byte]))
        }
        #expect(events.map(\.event.data) == [#"{"a":1}"#, "line1\nline2", "[DONE]"])
        #expect(events[1].event.event == "error")
        #expect(events.map { String(buffer: $0.raw) }.joined() == wire)
        #expect(!parser.hasIncompleteEvent)
    }

    @Test("CRLF and CR line endings, comments, and a BOM are handled")
    func lineEndings() throws {
        var parser = ServerSentEventParser()
        let events = try parser.feed(ByteBuffer(string: "\u{FEFF}: keep-alive\r\n\r\ndata:x\r\rid: 7\ndata: y\n\n"))
        #expect(events.map(\.event.data) == ["x", "y"])
        #expect(events[1].event.id == "7")
    }

    @Test("fields: one leading space dropped, colons in values kept, unknown fields and comments ignored, bad UTF-8 replaced")
    func fields() throws {
        var parser = ServerSentEventParser()
        var wire = ByteBuffer(string: "data:x\n\ndata:  two spaces\n\ndata: a:b: c\n\ndata\n\n: comment\nfoo: bar\ndata: y\n\n")
        wire.writeString("event:  named\nretry: 250\nid:\ndata: \n\n")
        wire.writeString("data: bad ")
        wire.writeBytes([0xFF, 0xC3])
        wire.writeString("\n\nretry: x\ndata: z\n\n")
        let events = try parser.feed(wire)
        #expect(events.map(\.event.data) == ["x", " two spaces", "a:b: c", "", "y", "", "bad \u{FFFD}\u{FFFD}", "z"])
        #expect(events[5].event.event == " named" && events[5].event.retry == 250 && events[5].event.id == "")
        #expect(events[7].event.retry == nil)
        #expect(events.map { String(buffer: $0.raw) }.joined() == String(buffer: wire))
    }

    @Test("a BOM split across reads is dropped like a whole one (found by fuzzing)")
    func splitBOM() throws {
        let wire: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("\r\nevent: error\ndata: a\rdata: b\r\n\n".utf8)
        var whole = ServerSentEventParser()
        let reference = try whole.feed(ByteBuffer(bytes: wire))
        var split = ServerSentEventParser()
        var events: [ServerSentEventParser.ParsedEvent] = []
        for byte in wire { events += try split.feed(ByteBuffer(bytes: [byte])) }
        #expect(events.map(\.event) == reference.map(\.event))
        #expect(events.map { Array($0.raw.readableBytesView) } == reference.map { Array($0.raw.readableBytesView) })
        #expect(reference.first?.event.data == "a\nb")
    }

    @Test("a stream cut mid-event reports an incomplete event")
    func truncated() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed(ByteBuffer(string: "data: {\"partial")).isEmpty)
        #expect(parser.hasIncompleteEvent)
    }

    @Test("encoding an error event yields OpenAI's error shape")
    func errorEvent() throws {
        let event = ServerSentEvent.error(.init(message: "upstream died", type: "upstream_error", code: "upstream_error"))
        var parser = ServerSentEventParser()
        let parsed = try parser.feed(ByteBuffer(string: event.encoded()))
        #expect(parsed.count == 1)
        #expect(parsed[0].event.event == "error")
        #expect(parsed[0].event.data.contains(#""message":"upstream died""#))
    }

    @Test("an event is written as its encoded form, data lines split at newlines")
    func writeMatchesEncoded() {
        let events = [
            ServerSentEvent(data: "plain"), ServerSentEvent(event: "x", data: ""), ServerSentEvent(data: "a\nb\n"),
            ServerSentEvent(event: "e", data: "ü\n\nz", id: "7", retry: 1500), ServerSentEvent(data: "\n"), .done,
        ]
        for event in events {
            var buffer = ByteBuffer()
            event.write(to: &buffer)
            #expect(String(buffer: buffer) == event.encoded())
        }
        // A line feed after a carriage return splits too (Swift's "\r\n" is one Character).
        #expect(ServerSentEvent(data: "a\r\nb").encoded() == "data: a\r\ndata: b\n\n")
        #expect(ServerSentEvent(event: "e", data: "x\ny").encoded() == "event: e\ndata: x\ndata: y\n\n")
    }
}
