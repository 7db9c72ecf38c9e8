import Foundation
public import NIOCore

/// One server-sent event (`text/event-stream`), as OpenAI streams chunks.
public struct ServerSentEvent: Sendable, Hashable {
    /// The `event:` field; `nil` for the default `message` event.
    public var event: String?
    /// The `data:` lines joined with newlines.
    public var data: String
    public var id: String?
    public var retry: Int?

    public init(event: String? = nil, data: String, id: String? = nil, retry: Int? = nil) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
    }

    /// The `data: [DONE]` sentinel OpenAI sends after the last chunk.
    public static let done = ServerSentEvent(data: "[DONE]")

    /// Whether this is the `[DONE]` sentinel.
    public var isDone: Bool { data == "[DONE]" }

    /// The wire form of the event, ending with the blank line that dispatches it: the data
    /// as one `data:` line per line feed byte (see ``write(to:)``).
    public func encoded() -> String {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return String(buffer: buffer)
    }

    /// Writes the wire form into a buffer: `event:`, `id:`, `retry:` when set, then a `data:`
    /// line for each line of the data (split at line feed bytes, so `\r\n` keeps its `\r`).
    public func write(to buffer: inout ByteBuffer) {
        if let event {
            buffer.writeStaticString("event: ")
            buffer.writeString(event)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        if let id {
            buffer.writeStaticString("id: ")
            buffer.writeString(id)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        if let retry {
            buffer.writeStaticString("retry: ")
            buffer.writeString(String(retry))
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        var data = data
        data.withUTF8 { utf8 in
            var lineStart = 0
            for offset in 0...utf8.count where offset == utf8.count || utf8[offset] == UInt8(ascii: "\n") {
                buffer.writeStaticString("data: ")
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[lineStart..<offset]))
                buffer.writeInteger(UInt8(ascii: "\n"))
                lineStart = offset + 1
            }
        }
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    /// An `error` event carrying an OpenAI error envelope, for failures after a stream started.
    public static func error(_ body: ErrorResponse.Body) -> ServerSentEvent {
        let data = (try? JSONEncoder().encode(ErrorResponse(error: body))).map { String(decoding: $0, as: UTF8.self) }
        return ServerSentEvent(event: "error", data: data ?? #"{"error":{"message":"stream failed","type":"server_error"}}"#)
    }
}

/// An incremental `text/event-stream` parser.
///
/// Feed it bytes as they arrive; it returns each event once its terminating blank line
/// has been seen, with the exact bytes that made it up, so a proxy can forward events
/// unchanged and still know where each one ends. Follows the HTML Living Standard's
/// rules: lines end with LF, CRLF or CR; a leading BOM is skipped; comment lines
/// (starting with `:`) are kept in the raw bytes but produce no field.
public struct ServerSentEventParser: Sendable {
    /// A parsed event and the bytes it was read from.
    public struct ParsedEvent: Sendable {
        public var event: ServerSentEvent
        public var raw: ByteBuffer
    }

    /// An event larger than ``maximumEventSize``: the stream is refused rather than buffered.
    public struct EventTooLarge: Error, Sendable, Hashable, CustomStringConvertible {
        public var limit: Int
        public var description: String { "a server-sent event is larger than \(limit) bytes" }
    }

    /// The largest event (its raw bytes, fields and comments included) buffered before
    /// ``feed(_:)`` throws. Default 16 MiB: far above any chat chunk, far below memory trouble.
    public var maximumEventSize: Int

    private var pending = ByteBuffer()
    /// Where the event being read starts, relative to `pending`'s reader index.
    private var eventStart = 0
    /// Where the line being read starts.
    private var lineStart = 0
    /// How far bytes have been scanned: each byte is looked at once, however it is fed.
    private var scanIndex = 0
    private var current = Fields()
    private var sawBOMCheck = false
    private var lastWasCR = false

    private struct Fields {
        var event: String?
        var data: [String] = []
        var id: String?
        var retry: Int?
        var hasField = false
    }

    public init(maximumEventSize: Int = 16 * 1024 * 1024) {
        self.maximumEventSize = maximumEventSize
    }

    /// Bytes received that do not yet form a complete event.
    public var bufferedByteCount: Int { pending.readableBytes }

    /// Appends bytes and returns every event they complete, in time linear in the bytes fed.
    ///
    /// - Throws: ``EventTooLarge`` when an unfinished event grows past ``maximumEventSize``.
    public mutating func feed(_ bytes: ByteBuffer) throws(EventTooLarge) -> [ParsedEvent] {
        var bytes = bytes
        pending.writeBuffer(&bytes)
        var events: [ParsedEvent] = []
        if !sawBOMCheck {
            // Nothing is scanned before it is known whether the stream starts with a BOM,
            // so a BOM split across reads is dropped like a whole one.
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            let start = pending.readableBytesView.prefix(3)
            if start.count < 3, start.elementsEqual(bom.prefix(start.count)) { return [] }
            sawBOMCheck = true
            if start.elementsEqual(bom) { pending.moveReaderIndex(forwardBy: 3) }
        }
        var index = scanIndex
        var lineFrom = lineStart
        do {
            // A local copy (a reference to the same storage, released before `pending`
            // changes) is read while `self` changes.
            let buffer = pending
            buffer.withUnsafeReadableBytes { view in
                while index < view.count {
                    let byte = view[index]
                    guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else {
                        lastWasCR = false
                        index += 1
                        while index < view.count, view[index] != UInt8(ascii: "\n"), view[index] != UInt8(ascii: "\r") { index += 1 }
                        continue
                    }
                    if byte == UInt8(ascii: "\n") && lastWasCR {
                        // The LF of a CRLF whose CR already ended the line.
                        lastWasCR = false
                        index += 1
                        lineFrom = index
                        continue
                    }
                    lastWasCR = byte == UInt8(ascii: "\r")
                    let line = UnsafeRawBufferPointer(rebasing: view[lineFrom..<index])
                    index += 1
                    lineFrom = index
                    if line.isEmpty {
                        if let event = dispatch() {
                            let raw = buffer.getSlice(at: buffer.readerIndex + eventStart, length: index - eventStart) ?? ByteBuffer()
                            events.append(ParsedEvent(event: event, raw: raw))
                        }
                        eventStart = index
                    } else {
                        process(line: line)
                    }
                }
            }
        }
        // Keep the partial line (and the event it belongs to) for the next feed.
        scanIndex = index
        lineStart = lineFrom
        if eventStart > 0 {
            pending.moveReaderIndex(forwardBy: eventStart)
            scanIndex -= eventStart
            lineStart -= eventStart
            eventStart = 0
            pending.discardReadBytes()
        }
        if pending.readableBytes > maximumEventSize {
            throw EventTooLarge(limit: maximumEventSize)
        }
        return events
    }

    /// Whether bytes of an event that never ended are still buffered (a truncated stream).
    public var hasIncompleteEvent: Bool {
        current.hasField || pending.readableBytes > 0
    }

    /// One field line, read as bytes: the name up to the first `:`, the value after it
    /// (one leading space dropped); a line starting with `:` is a comment.
    private mutating func process(line: UnsafeRawBufferPointer) {
        guard let first = line.first, first != UInt8(ascii: ":") else { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        var valueStart = Swift.min(colon + 1, line.count)
        if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])
        if name.elementsEqual("data".utf8) {
            current.data.append(String(decoding: value, as: UTF8.self))
        } else if name.elementsEqual("event".utf8) {
            current.event = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("id".utf8) {
            current.id = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("retry".utf8) {
            current.retry = Int(String(decoding: value, as: UTF8.self))
        } else {
            return
        }
        current.hasField = true
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer { current = Fields() }
        guard current.hasField, !current.data.isEmpty || current.event != nil else { return nil }
        let data = current.data.count == 1 ? current.data[0] : current.data.joined(separator: "\n")
        return ServerSentEvent(event: current.event, data: data, id: current.id, retry: current.retry)
    }
}
