public import NIOCore

/// Byte ranges of the parts of one JSON document, so that a large document can be read piece
/// by piece (each member or element parsed on its own) without building its whole tree.
///
/// Ranges are offsets into the buffer's readable bytes (0 is its reader index), and cover a
/// value exactly (no surrounding whitespace). The slicer expects a document that passed
/// ``StrictJSON/validate(_:maximumDepth:)``; on anything else it stays in bounds and answers
/// `nil` or `false` where the structure it reads is broken, but it does not validate what it
/// skips. It runs in time linear in the bytes it reads and never recurses.
package enum JSONSlices {
    /// One member of an object: its key (unescaped) and the range of its value.
    package struct Member: Sendable, Hashable {
        package var key: String
        package var value: Range<Int>
    }

    /// The members of the object that spans `range` of `buffer` (the whole document when
    /// `nil`), in document order, or `nil` when that value is not an object.
    package static func members(of buffer: ByteBuffer, in range: Range<Int>? = nil) -> [Member]? {
        buffer.withUnsafeReadableBytes { bytes in
            let range = range ?? 0..<bytes.count
            guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
            var cursor = Cursor(bytes: bytes, index: range.lowerBound, end: range.upperBound)
            return cursor.members()
        }
    }

    /// Calls `body` with the range of each element of the array that spans `range` of
    /// `buffer`, in order, until `body` answers `false`. Answers `false` when that value is
    /// not an array (or `body` stopped early).
    package static func forEachElement(of buffer: ByteBuffer, in range: Range<Int>, _ body: (Range<Int>) -> Bool) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return false }
            var cursor = Cursor(bytes: bytes, index: range.lowerBound, end: range.upperBound)
            return cursor.elements(body)
        }
    }

    /// The first byte of the value at `range` (`{`, `[`, `"`, a digit, …), or `nil` when empty.
    package static func firstByte(of buffer: ByteBuffer, in range: Range<Int>) -> UInt8? {
        guard range.lowerBound >= 0, range.lowerBound < range.upperBound, range.upperBound <= buffer.readableBytes else { return nil }
        return buffer.getInteger(at: buffer.readerIndex + range.lowerBound, as: UInt8.self)
    }

    /// The bytes of `range` as a buffer that shares `buffer`'s storage.
    package static func slice(of buffer: ByteBuffer, _ range: Range<Int>) -> ByteBuffer {
        buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count) ?? ByteBuffer()
    }

    /// A document read as its top-level object's members, each parsed on its own, but for one
    /// (large) member left as a byte range.
    package enum SplitDocument {
        /// Not JSON: ``JSONValue/init(parsing:maximumDepth:)`` refuses it too.
        case invalid
        /// JSON that ``StrictJSON`` refuses though ``JSONValue`` may read it (a duplicate key,
        /// too deep, a number too large): read it whole to decide.
        case ambiguous
        /// JSON, but not an object.
        case notObject
        /// The object's other members, parsed, in order, and the range of the member left out.
        case object(head: JSONObject, member: Range<Int>?)
    }

    /// Validates `buffer` (``StrictJSON/validate(_:maximumDepth:)``) and splits its top-level
    /// object into its members, all parsed but `name`, whose value's range is kept.
    package static func split(_ buffer: ByteBuffer, leaving name: String) -> SplitDocument {
        do {
            try StrictJSON.validate(buffer)
        } catch {
            return error.isWellFormed ? .ambiguous : .invalid
        }
        guard let members = members(of: buffer) else { return .notObject }
        var head = JSONObject()
        var member: Range<Int>?
        for entry in members {
            if entry.key == name {
                member = entry.value
            } else {
                guard let value = try? JSONValue(parsing: slice(of: buffer, entry.value)) else { return .invalid }
                head[entry.key] = value
            }
        }
        return .object(head: head, member: member)
    }

    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index: Int
        let end: Int

        mutating func skipWhitespace() {
            while index < end {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        /// Reads `{ "key": value, … }` from `index`; only whitespace may follow it in the range.
        mutating func members() -> [Member]? {
            skipWhitespace()
            guard index < end, bytes[index] == UInt8(ascii: "{") else { return nil }
            index += 1
            var members: [Member] = []
            skipWhitespace()
            if index < end, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return atEnd() ? members : nil
            }
            while true {
                skipWhitespace()
                guard index < end, bytes[index] == UInt8(ascii: "\"") else { return nil }
                let keyStart = index + 1
                guard let (afterKey, escaped) = skipString(from: index) else { return nil }
                let raw = UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(afterKey - 1)])
                let key: String
                if escaped {
                    guard let unescaped = StrictJSON.unescape(raw) else { return nil }
                    key = String(decoding: unescaped, as: UTF8.self)
                } else {
                    key = String(decoding: raw, as: UTF8.self)
                }
                index = afterKey
                skipWhitespace()
                guard index < end, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                skipWhitespace()
                let valueStart = index
                guard let valueEnd = skipValue(from: index) else { return nil }
                members.append(Member(key: key, value: valueStart..<valueEnd))
                index = valueEnd
                skipWhitespace()
                guard index < end else { return nil }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return atEnd() ? members : nil
                } else {
                    return nil
                }
            }
        }

        /// Reads `[ value, … ]` from `index`, handing each value's range to `body`.
        mutating func elements(_ body: (Range<Int>) -> Bool) -> Bool {
            skipWhitespace()
            guard index < end, bytes[index] == UInt8(ascii: "[") else { return false }
            index += 1
            skipWhitespace()
            if index < end, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return atEnd()
            }
            while true {
                skipWhitespace()
                let valueStart = index
                guard let valueEnd = skipValue(from: index) else { return false }
                guard body(valueStart..<valueEnd) else { return false }
                index = valueEnd
                skipWhitespace()
                guard index < end else { return false }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return atEnd()
                } else {
                    return false
                }
            }
        }

        mutating func atEnd() -> Bool {
            skipWhitespace()
            return index == end
        }

        /// The index after the string whose opening quote is at `start`, and whether it has escapes.
        func skipString(from start: Int) -> (Int, Bool)? {
            var position = start + 1
            var escaped = false
            while position < end {
                switch bytes[position] {
                case UInt8(ascii: "\""): return (position + 1, escaped)
                case UInt8(ascii: "\\"):
                    escaped = true
                    position += 2
                default: position += 1
                }
            }
            return nil
        }

        /// The index after the value that starts at `start`: containers are skipped by
        /// counting brackets outside strings, so no depth costs stack.
        func skipValue(from start: Int) -> Int? {
            guard start < end else { return nil }
            switch bytes[start] {
            case UInt8(ascii: "\""):
                return skipString(from: start)?.0
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                var position = start
                while position < end {
                    switch bytes[position] {
                    case UInt8(ascii: "\""):
                        guard let after = skipString(from: position) else { return nil }
                        position = after.0
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 { return position + 1 }
                    default: break
                    }
                    position += 1
                }
                return nil
            case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ":"):
                return nil
            default:
                // A number or a literal: up to the next delimiter.
                var position = start
                while position < end {
                    switch bytes[position] {
                    case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09: return position
                    default: position += 1
                    }
                }
                return position
            }
        }
    }
}
