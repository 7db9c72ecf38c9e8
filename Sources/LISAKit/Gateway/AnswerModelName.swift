import NIOCore

/// Puts the name the client asked for into an upstream's answer, where the upstream wrote its
/// own `modelName`: the top-level `model` of a JSON answer or an OpenAI chunk, `message.model`
/// in Anthropic's `message_start`, `response.model` in the Responses events that carry the
/// response. Only those members' values change; every other byte passes as the upstream sent
/// it (nothing is decoded or re-encoded), and an answer already naming the client's model, or
/// naming none, is passed on as the same buffer.
struct AnswerModelName: Sendable {
    /// The name as a JSON string, quotes included.
    private let encoded: ByteBuffer

    init(_ name: String) {
        encoded = JSONMemberScanner.encodedString(name)
    }

    /// A JSON answer (`{…}`) with its top-level `model` naming the client's model; the same
    /// buffer when there is nothing to change.
    func rewriting(answer: ByteBuffer) -> ByteBuffer {
        rewrite(answer, path: Self.topLevel) ?? answer
    }

    /// Writes one complete server-sent event of `framing` (its raw bytes, as parsed) to
    /// `output` with the model its data names replaced: no copy of the event is made, the
    /// unchanged parts are written around the new name.
    func write(event raw: ByteBuffer, _ event: ServerSentEvent, framing: DialectName, into output: inout ByteBuffer) {
        let path: ArraySlice<String>
        switch framing {
        case .chatCompletions:
            guard event.event == nil || event.event == "message", !event.isDone else {
                output.writeImmutableBuffer(raw)
                return
            }
            path = Self.topLevel
        case .messages:
            guard event.event == "message_start" else {
                output.writeImmutableBuffer(raw)
                return
            }
            path = Self.inMessage
        case .responses:
            // The events that carry the whole response: created, in_progress, completed, …
            if let name = event.event, !Self.responseEvents.contains(name) {
                output.writeImmutableBuffer(raw)
                return
            }
            path = Self.inResponse
        }
        // One data line (no newline in the joined data): its JSON is rewritten in place.
        guard !Self.hasNewline(event.data), let data = Self.dataRange(in: raw),
            let slice = raw.getSlice(at: raw.readerIndex + data.lowerBound, length: data.count),
            let replacements = replacements(in: slice, path: path)
        else {
            output.writeImmutableBuffer(raw)
            return
        }
        Self.splice(
            raw, replacements.map { (($0.range.lowerBound + data.lowerBound)..<($0.range.upperBound + data.lowerBound), $0.bytes) }, into: &output)
    }

    /// One event rewritten (see ``write(event:_:framing:into:)``), as a buffer of its own.
    func rewriting(event raw: ByteBuffer, _ event: ServerSentEvent, framing: DialectName) -> ByteBuffer {
        var output = ByteBuffer()
        write(event: raw, event, framing: framing, into: &output)
        return output
    }

    private static let topLevel: ArraySlice<String> = ["model"]
    private static let inMessage: ArraySlice<String> = ["message", "model"]
    private static let inResponse: ArraySlice<String> = ["response", "model"]
    private static let responseEvents: Set<String> = [
        "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed", "response.queued",
    ]

    /// What to put where in `buffer` for the string at `path` (members of nested objects;
    /// every duplicate) to name the client's model; `nil` when there is none or it already does.
    private func replacements(in buffer: ByteBuffer, path: ArraySlice<String>) -> [(range: Range<Int>, bytes: ByteBuffer)]? {
        guard let name = path.first, let ranges = JSONMemberScanner.valueRanges(of: name, in: buffer), !ranges.isEmpty else { return nil }
        var found: [(range: Range<Int>, bytes: ByteBuffer)] = []
        for range in ranges {
            guard let value = buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count) else { continue }
            if path.count == 1 {
                // Only a string is replaced: `null` or anything else is the upstream's business.
                guard value.readableBytesView.first == UInt8(ascii: "\""), value != encoded else { continue }
                found.append((range, encoded))
            } else if let inner = replacements(in: value, path: path.dropFirst()) {
                var edited = ByteBuffer()
                Self.splice(value, inner, into: &edited)
                found.append((range, edited))
            }
        }
        return found.isEmpty ? nil : found
    }

    private func rewrite(_ buffer: ByteBuffer, path: ArraySlice<String>) -> ByteBuffer? {
        guard let replacements = replacements(in: buffer, path: path) else { return nil }
        var output = ByteBuffer()
        output.reserveCapacity(buffer.readableBytes + replacements.count * encoded.readableBytes)
        Self.splice(buffer, replacements, into: &output)
        return output
    }

    /// Writes `buffer` to `output` with each range (relative to its reader index, ascending)
    /// replaced by its bytes.
    private static func splice(_ buffer: ByteBuffer, _ replacements: [(range: Range<Int>, bytes: ByteBuffer)], into output: inout ByteBuffer) {
        var cursor = 0
        for (range, bytes) in replacements {
            if let slice = buffer.getSlice(at: buffer.readerIndex + cursor, length: range.lowerBound - cursor) { output.writeImmutableBuffer(slice) }
            output.writeImmutableBuffer(bytes)
            cursor = range.upperBound
        }
        if let rest = buffer.getSlice(at: buffer.readerIndex + cursor, length: buffer.readableBytes - cursor) { output.writeImmutableBuffer(rest) }
    }

    /// Whether `text` holds a line feed (its data came in more than one `data:` line).
    private static func hasNewline(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { $0.contains(UInt8(ascii: "\n")) } ?? text.utf8.contains(UInt8(ascii: "\n"))
    }

    /// The byte range of the value of the event's one `data:` line (after `data:` and one
    /// optional space, up to its line end).
    private static func dataRange(in raw: ByteBuffer) -> Range<Int>? {
        raw.withUnsafeReadableBytes { bytes in
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n"), bytes[lineEnd] != UInt8(ascii: "\r") { lineEnd += 1 }
                if lineEnd - lineStart >= 5, bytes[lineStart] == UInt8(ascii: "d"), bytes[lineStart + 1] == UInt8(ascii: "a"),
                    bytes[lineStart + 2] == UInt8(ascii: "t"), bytes[lineStart + 3] == UInt8(ascii: "a"), bytes[lineStart + 4] == UInt8(ascii: ":")
                {
                    var valueStart = lineStart + 5
                    if valueStart < lineEnd, bytes[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
                    return valueStart..<lineEnd
                }
                lineStart = lineEnd + 1
            }
            return nil
        }
    }
}
