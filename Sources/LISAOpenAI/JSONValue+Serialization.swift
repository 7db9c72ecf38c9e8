public import NIOCore

/// JSON text to ``JSONValue`` and back, keeping every object's member order: what a client
/// sent reaches the upstream in its order, in every process (chat templates print tool
/// schemas verbatim, and prompt caches match bytes).
extension JSONValue {
    /// Why a document could not be read: the byte offset and what was expected there.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) (byte \(offset))" }
    }

    /// Reads one JSON document (whitespace around it allowed), objects in document order.
    /// Numbers are read as `JSONDecoder` reads them into a ``JSONValue`` (an integral value
    /// that fits `Int64` is an integer); strings must be valid UTF-8; nesting deeper than
    /// `maximumDepth` is refused. Of duplicate keys the last value wins, at the first's place.
    public init(parsing buffer: ByteBuffer, maximumDepth: Int = StrictJSON.defaultMaximumDepth) throws(ParseError) {
        let result = buffer.withUnsafeReadableBytes { bytes in Self.parse(bytes, maximumDepth: maximumDepth) }
        self = try result.get()
    }

    /// Reads one JSON document from UTF-8 bytes (see ``init(parsing:maximumDepth:)``).
    public init<Bytes: Sequence>(parsing bytes: Bytes, maximumDepth: Int = StrictJSON.defaultMaximumDepth) throws(ParseError)
    where Bytes.Element == UInt8 {
        let result =
            bytes.withContiguousStorageIfAvailable { Self.parse(UnsafeRawBufferPointer($0), maximumDepth: maximumDepth) }
            ?? Array(bytes).withUnsafeBytes { Self.parse($0, maximumDepth: maximumDepth) }
        self = try result.get()
    }

    /// Reads one JSON document from a string (see ``init(parsing:maximumDepth:)``).
    public init(parsing text: String, maximumDepth: Int = StrictJSON.defaultMaximumDepth) throws(ParseError) {
        var text = text
        let result = text.withUTF8 { Self.parse(UnsafeRawBufferPointer($0), maximumDepth: maximumDepth) }
        self = try result.get()
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer, maximumDepth: Int) -> Result<JSONValue, ParseError> {
        var parser = Parser(bytes: bytes, maximumDepth: maximumDepth)
        do throws(ParseError) {
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.index == bytes.count else { throw parser.fail("unexpected bytes after the JSON value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maximumDepth: Int
        var index = 0

        func fail(_ message: String) -> ParseError { ParseError(message: message, offset: index) }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
                index += 1
            }
        }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            skipWhitespace()
            guard index < bytes.count else { throw fail("expected a JSON value") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard depth < maximumDepth else { throw fail("nesting deeper than \(maximumDepth) levels") }
                index += 1
                var members = JSONObject()
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(members)
                }
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    let key = try string()
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    index += 1
                    members[key] = try value(depth: depth + 1)
                    skipWhitespace()
                    guard index < bytes.count else { throw fail("unterminated object") }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                    } else if bytes[index] == UInt8(ascii: "}") {
                        index += 1
                        return .object(members)
                    } else {
                        throw fail("expected ',' or '}'")
                    }
                }
            case UInt8(ascii: "["):
                guard depth < maximumDepth else { throw fail("nesting deeper than \(maximumDepth) levels") }
                index += 1
                var elements: [JSONValue] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                }
                while true {
                    elements.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard index < bytes.count else { throw fail("unterminated array") }
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                    } else if bytes[index] == UInt8(ascii: "]") {
                        index += 1
                        return .array(elements)
                    } else {
                        throw fail("expected ',' or ']'")
                    }
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try number()
            default:
                throw fail("expected a JSON value")
            }
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { throw fail("expected '\(word)'") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw fail("expected '\(word)'") }
            index += count
        }

        mutating func string() throws(ParseError) -> String {
            index += 1
            let start = index
            var escaped = false
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    let content = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                    index += 1
                    if escaped {
                        guard let unescaped = StrictJSON.unescape(content), let text = String(validating: unescaped, as: UTF8.self) else {
                            throw ParseError(message: "a string with a malformed escape or invalid UTF-8", offset: start)
                        }
                        return text
                    }
                    guard let text = String(validating: content, as: UTF8.self) else {
                        throw ParseError(message: "a string that is not valid UTF-8", offset: start)
                    }
                    return text
                case UInt8(ascii: "\\"):
                    escaped = true
                    index += 2
                case 0..<0x20:
                    throw fail("a control character in a string")
                default:
                    index += 1
                }
            }
            throw ParseError(message: "unterminated string", offset: start - 1)
        }

        mutating func number() throws(ParseError) -> JSONValue {
            let start = index
            func digits() -> Int {
                let from = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - from
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            let integerDigits = digits()
            guard integerDigits > 0 else { throw fail("expected digits") }
            guard integerDigits == 1 || bytes[index - integerDigits] != UInt8(ascii: "0") else {
                throw ParseError(message: "a number with a leading zero", offset: start)
            }
            var integral = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                integral = false
                guard digits() > 0 else { throw fail("expected digits after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                integral = false
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw fail("expected digits in the exponent") }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if integral, let value = Int64(text) { return .integer(value) }
            guard let value = Double(text), value.isFinite else { throw ParseError(message: "a number out of range", offset: start) }
            // As JSONDecoder reads `1.0` or `1e2` into a JSONValue: an integral value is an integer.
            if let exact = Int64(exactly: value) { return .integer(exact) }
            return .number(value)
        }
    }
}

extension JSONValue {
    /// The JSON text of this value: members in order, no whitespace, `/` unescaped (as
    /// `JSONEncoder` with `.withoutEscapingSlashes` writes them otherwise).
    public var jsonBytes: ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return buffer
    }

    /// The JSON text of this value as a string (see ``jsonBytes``).
    public var jsonString: String { String(buffer: jsonBytes) }

    /// Appends the JSON text of this value to `buffer` (see ``jsonBytes``).
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .null: buffer.writeStaticString("null")
        case .bool(let value): buffer.writeStaticString(value ? "true" : "false")
        case .integer(let value): buffer.writeString(String(value))
        case .number(let value):
            if !value.isFinite {
                buffer.writeStaticString("null")
            } else if let exact = Int64(exactly: value), exact != 0 || value.sign == .plus {
                buffer.writeString(String(exact))
            } else {
                var text = value.description
                if text.hasSuffix(".0") { text.removeLast(2) }
                buffer.writeString(text)
            }
        case .string(let value): Self.writeString(value, to: &buffer)
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                element.write(to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let members):
            buffer.writeInteger(UInt8(ascii: "{"))
            for (offset, member) in members.enumerated() {
                if offset > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                Self.writeString(member.key, to: &buffer)
                buffer.writeInteger(UInt8(ascii: ":"))
                member.value.write(to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    /// Appends `value` as a JSON string (quoted, escaped as ``write(to:)`` escapes strings).
    package static func writeString(_ value: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for (offset, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart..<offset]))
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                case 0x08: buffer.writeStaticString("\\b")
                case 0x0C: buffer.writeStaticString("\\f")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(hex.utf8Start[Int(byte >> 4)])
                    buffer.writeInteger(hex.utf8Start[Int(byte & 0xF)])
                }
                runStart = offset + 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart...]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
