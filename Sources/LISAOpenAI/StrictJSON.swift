public import NIOCore

/// A strict, linear-time RFC 8259 validator that every JSON request body passes before LISA
/// reads anything from it.
///
/// It exists so that what LISA authorizes and what an upstream executes are one parse:
/// parsers disagree on duplicate keys (Swift's `JSONDecoder` keeps the first, Python's
/// `json` the last), on a leading byte-order mark, on `NaN`, on invalid UTF-8 and on how
/// deep they nest. A body that any of them could read differently is refused here, so the
/// typed decode, the in-place `model` rewrite and the upstream all see the same document.
///
/// Keys are compared after unescaping (`"mod\u0065l"` is `"model"`). Unpaired surrogate
/// escapes are refused: Foundation refuses them and Python accepts them.
public enum StrictJSON {
    /// Why a document was refused, with the JSON path where it happened.
    public struct Violation: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        /// A dotted path (`messages[2].content`), or `nil` at the top level.
        public var path: String?
        /// The byte offset of the offending input.
        public var offset: Int
        /// `true` for a document that is valid JSON but ambiguous or too deep (a duplicate
        /// key, the nesting budget); `false` for one that is not JSON at all.
        public var isWellFormed: Bool = false

        public var description: String {
            path.map { "\(message) at \($0)" } ?? message
        }
    }

    /// The deepest nesting of objects and arrays accepted by default.
    public static let defaultMaximumDepth = 128

    /// Checks that `buffer` holds exactly one JSON value, strictly per RFC 8259, with no
    /// duplicate key in any object and at most `maximumDepth` levels of nesting.
    ///
    /// Runs in time linear in the input and memory linear in its keys.
    public static func validate(_ buffer: ByteBuffer, maximumDepth: Int = defaultMaximumDepth) throws(Violation) {
        let violation = buffer.withUnsafeReadableBytes { bytes in check(bytes, maximumDepth: maximumDepth) }
        if let violation { throw violation }
    }

    /// Checks a byte array (see ``validate(_:maximumDepth:)``).
    public static func validate(_ bytes: [UInt8], maximumDepth: Int = defaultMaximumDepth) throws(Violation) {
        let violation = bytes.withUnsafeBytes { raw in check(raw, maximumDepth: maximumDepth) }
        if let violation { throw violation }
    }

    /// Whether `bytes` pass ``validate(_:maximumDepth:)``, for callers that only need to know.
    package static func isValid(_ bytes: UnsafeRawBufferPointer, maximumDepth: Int = defaultMaximumDepth) -> Bool {
        check(bytes, maximumDepth: maximumDepth) == nil
    }

    private static func check(_ bytes: UnsafeRawBufferPointer, maximumDepth: Int) -> Violation? {
        var scanner = Scanner(bytes: bytes, maximumDepth: maximumDepth)
        do {
            try scanner.document()
            return nil
        } catch {
            return error
        }
    }

    /// The unescaped bytes of a JSON string's content (between its quotes), or `nil` when
    /// an escape is malformed. Unpaired surrogates become their 3-byte generalized UTF-8
    /// form, which no well-formed string produces.
    public static func unescape<C: Collection>(_ content: C) -> [UInt8]? where C.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(content.count)
        var iterator = content.makeIterator()
        var pendingHigh: UInt32?
        func flushHigh() {
            if let high = pendingHigh { appendScalarValue(high, to: &output) }
            pendingHigh = nil
        }
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "\\") else {
                flushHigh()
                output.append(byte)
                continue
            }
            guard let escape = iterator.next() else { return nil }
            if escape != UInt8(ascii: "u") { flushHigh() }
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "u"):
                var value: UInt32 = 0
                for _ in 0..<4 {
                    guard let digit = iterator.next().flatMap(hexValue) else { return nil }
                    value = value << 4 | UInt32(digit)
                }
                if (0xDC00...0xDFFF).contains(value), let high = pendingHigh {
                    pendingHigh = nil
                    appendScalarValue(0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00), to: &output)
                } else {
                    flushHigh()
                    if (0xD800...0xDBFF).contains(value) {
                        pendingHigh = value
                    } else {
                        appendScalarValue(value, to: &output)
                    }
                }
            default: return nil
            }
        }
        flushHigh()
        return output
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Appends `value` as (generalized) UTF-8: surrogates are encoded like any other code point.
    private static func appendScalarValue(_ value: UInt32, to output: inout [UInt8]) {
        switch value {
        case 0..<0x80: output.append(UInt8(value))
        case 0x80..<0x800:
            output.append(UInt8(0xC0 | (value >> 6)))
            output.append(UInt8(0x80 | (value & 0x3F)))
        case 0x800..<0x10000:
            output.append(UInt8(0xE0 | (value >> 12)))
            output.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
            output.append(UInt8(0x80 | (value & 0x3F)))
        default:
            output.append(UInt8(0xF0 | (value >> 18)))
            output.append(UInt8(0x80 | ((value >> 12) & 0x3F)))
            output.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
            output.append(UInt8(0x80 | (value & 0x3F)))
        }
    }

    /// An iterative scanner: an explicit stack instead of recursion, so depth costs no
    /// native stack.
    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        let maximumDepth: Int
        var index = 0

        /// One open container: an object (where its keys begin in ``keys``, and a set of them
        /// once it has more than ``smallObject``), or an array's next index.
        enum Frame {
            case object(firstKey: Int, large: Set<[UInt8]>?)
            case array(count: Int)

            /// An object's first key and whether it keeps a set, without holding the set (a
            /// second reference would make each insert copy it).
            var keyCount: (firstKey: Int, large: Bool)? {
                guard case .object(let firstKey, let large) = self else { return nil }
                return (firstKey, large != nil)
            }
        }
        var stack: [Frame] = []
        /// A key of an open object: where its bytes are (between the quotes), and whether it
        /// has escapes (then it is compared unescaped).
        struct Key {
            var start: Int
            var end: Int
            var escaped: Bool
        }
        /// The keys of every open object, outermost first: a small object's keys are compared
        /// in place, with no allocation per member.
        var keys: [Key] = []
        /// Up to this many keys an object's duplicates are found by comparing in place; past
        /// it, by a set (linear time in any object).
        static let smallObject = 16

        init(bytes: UnsafeRawBufferPointer, maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        var path: String? {
            guard !stack.isEmpty else { return nil }
            // Each object's current key is its last one: the one before the next object's first.
            var objectStarts: [Int] = []
            for frame in stack {
                if case .object(let firstKey, _) = frame { objectStarts.append(firstKey) }
            }
            var text = ""
            var object = 0
            for frame in stack {
                switch frame {
                case .object(let firstKey, _):
                    let end = object + 1 < objectStarts.count ? objectStarts[object + 1] : keys.count
                    let current = end > firstKey ? name(of: keys[end - 1]) : ""
                    text += text.isEmpty ? current : ".\(current)"
                    object += 1
                case .array(let count): text += "[\(max(count - 1, 0))]"
                }
            }
            return text.isEmpty ? nil : text
        }

        func raw(_ key: Key) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[key.start..<key.end])
        }

        /// The key's bytes, unescaped (the scanner checked its escapes).
        func unescaped(_ key: Key) -> [UInt8] {
            key.escaped ? StrictJSON.unescape(raw(key)) ?? [] : Array(raw(key))
        }

        func name(of key: Key) -> String {
            String(decoding: unescaped(key), as: UTF8.self)
        }

        func same(_ a: Key, _ b: Key) -> Bool {
            if !a.escaped && !b.escaped {
                return a.end - a.start == b.end - b.start && raw(a).elementsEqual(raw(b))
            }
            return unescaped(a) == unescaped(b)
        }

        /// Ends the innermost container, forgetting an object's keys.
        mutating func close() {
            if case .object(let firstKey, _) = stack.removeLast() { keys.removeSubrange(firstKey...) }
        }

        func fail(_ message: String) -> Violation {
            Violation(message: message, path: path, offset: index)
        }

        func tooDeep() -> Violation {
            var violation = fail("The JSON body nests deeper than \(maximumDepth) levels")
            violation.isWellFormed = true
            return violation
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func document() throws(Violation) {
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
                throw fail("The JSON body starts with a byte-order mark; send plain UTF-8")
            }
            skipWhitespace()
            guard index < bytes.count else { throw fail("The body is not a JSON value") }
            try value()
            skipWhitespace()
            guard index == bytes.count else { throw fail("Unexpected data after the JSON value") }
        }

        /// Scans one value, containers included, without recursion.
        mutating func value() throws(Violation) {
            try scalarOrOpen()
            while !stack.isEmpty {
                skipWhitespace()
                guard index < bytes.count else { throw fail("The JSON body ends inside an object or array") }
                let byte = bytes[index]
                switch stack[stack.count - 1] {
                case .object:
                    if byte == UInt8(ascii: "}") {
                        index += 1
                        close()
                        continue
                    }
                    guard byte == UInt8(ascii: ",") else { throw fail("Expected ',' or '}' in an object") }
                    index += 1
                    try member()
                case .array(let count):
                    if byte == UInt8(ascii: "]") {
                        index += 1
                        stack.removeLast()
                        continue
                    }
                    guard byte == UInt8(ascii: ",") else { throw fail("Expected ',' or ']' in an array") }
                    index += 1
                    stack[stack.count - 1] = .array(count: count + 1)
                    skipWhitespace()
                    try scalarOrOpen()
                }
            }
        }

        /// Scans a scalar, or opens a container (pushing its frame and reading its first entry).
        mutating func scalarOrOpen() throws(Violation) {
            skipWhitespace()
            guard index < bytes.count else { throw fail("Expected a JSON value") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                guard stack.count < maximumDepth else { throw tooDeep() }
                index += 1
                stack.append(.object(firstKey: keys.count, large: nil))
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    close()
                    return
                }
                try member()
            case UInt8(ascii: "["):
                guard stack.count < maximumDepth else { throw tooDeep() }
                index += 1
                stack.append(.array(count: 1))
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    stack.removeLast()
                    return
                }
                try scalarOrOpen()
            case UInt8(ascii: "\""):
                _ = try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw fail("Invalid JSON value (NaN, Infinity and unquoted words are not JSON)")
            }
        }

        /// Reads `"key": value` in the innermost object, refusing a key it already has.
        mutating func member() throws(Violation) {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("Expected a string key in an object") }
            let start = index + 1
            let hasEscape = try string()
            let read = Key(start: start, end: index - 1, escaped: hasEscape)
            if hasEscape, StrictJSON.unescape(raw(read)) == nil { throw fail("Invalid escape in a key") }
            guard let (firstKey, isLarge) = stack[stack.count - 1].keyCount else { return }
            keys.append(read)
            let duplicate: Bool
            if isLarge, case .object(_, var set?) = stack[stack.count - 1] {
                stack[stack.count - 1] = .object(firstKey: firstKey, large: nil)  // one owner: inserts in place
                duplicate = !set.insert(unescaped(read)).inserted
                stack[stack.count - 1] = .object(firstKey: firstKey, large: set)
            } else {
                duplicate = keys[firstKey..<(keys.count - 1)].contains { same($0, read) }
                if !duplicate, keys.count - firstKey > Self.smallObject {
                    stack[stack.count - 1] = .object(firstKey: firstKey, large: Set(keys[firstKey...].map(unescaped)))
                }
            }
            if duplicate {
                var violation = fail("Duplicate key '\(name(of: read).prefix(100))'; each key may appear once in an object")
                violation.isWellFormed = true
                throw violation
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("Expected ':' after a key") }
            index += 1
            try scalarOrOpen()
        }

        /// Scans a string from its opening quote; returns whether it had escapes. Checks
        /// escapes, control characters and UTF-8.
        mutating func string() throws(Violation) -> Bool {
            index += 1
            var hasEscape = false
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return hasEscape
                case UInt8(ascii: "\\"):
                    hasEscape = true
                    guard index + 1 < bytes.count else { throw fail("The JSON body ends inside a string") }
                    switch bytes[index + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                        UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 2
                    case UInt8(ascii: "u"):
                        let value = try unicodeEscape(at: index)
                        index += 6
                        if (0xDC00...0xDFFF).contains(value) {
                            throw fail("An unpaired surrogate escape in a string (parsers disagree on what it means)")
                        }
                        if (0xD800...0xDBFF).contains(value) {
                            // A high surrogate must be followed at once by a low one.
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                                (0xDC00...0xDFFF).contains(try unicodeEscape(at: index))
                            else { throw fail("An unpaired surrogate escape in a string (parsers disagree on what it means)") }
                            index += 6
                        }
                    default: throw fail("Invalid escape in a string")
                    }
                case 0..<0x20:
                    throw fail("Unescaped control character in a string")
                case 0x20..<0x80:
                    index += 1
                default:
                    try utf8Sequence(lead: byte)
                }
            }
            throw fail("The JSON body ends inside a string")
        }

        /// The value of the `\\uXXXX` escape whose backslash is at `position`.
        func unicodeEscape(at position: Int) throws(Violation) -> UInt32 {
            guard position + 5 < bytes.count else { throw fail("The JSON body ends inside a \\u escape") }
            var value: UInt32 = 0
            for offset in 2...5 {
                guard let digit = StrictJSON.hexValue(bytes[position + offset]) else { throw fail("Invalid \\u escape in a string") }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        /// Checks one multi-byte UTF-8 sequence (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func utf8Sequence(lead: UInt8) throws(Violation) {
            let length: Int
            var range: ClosedRange<UInt8> = 0x80...0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; range = 0xA0...0xBF
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; range = 0x80...0x9F
            case 0xF0: length = 4; range = 0x90...0xBF
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; range = 0x80...0x8F
            default: throw fail("Invalid UTF-8 in a string")
            }
            guard index + length <= bytes.count, range.contains(bytes[index + 1]) else { throw fail("Invalid UTF-8 in a string") }
            for offset in 2..<length where !(0x80...0xBF).contains(bytes[index + offset]) {
                throw fail("Invalid UTF-8 in a string")
            }
            index += length
        }

        mutating func literal(_ word: String) throws(Violation) {
            let expected = word.utf8
            guard index + expected.count <= bytes.count else { throw fail("Invalid JSON literal") }
            for (offset, byte) in expected.enumerated() where bytes[index + offset] != byte {
                throw fail("Invalid JSON literal")
            }
            index += expected.count
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func number() throws(Violation) {
            func digits() -> Int {
                let start = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - start
            }
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw fail("Invalid number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                throw fail("Invalid number")
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw fail("Invalid number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw fail("Invalid number") }
            }
            // A number past a 64-bit float's range is infinity to Python and an error to
            // Foundation (found by the fuzzer): refused, so both sides read the same.
            if index - start > 308 || bytes[start..<index].contains(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                guard let value = Double(text), value.isFinite else {
                    var violation = fail("A number too large for a 64-bit float")
                    violation.isWellFormed = true
                    throw violation
                }
            }
        }
    }
}
