/// A forward-only reader of JSON tokens over raw bytes, for the hot path's one-pass reads
/// (``ChatCompletionRequest/routingFields(in:)``, ``Usage/quickRead(_:)``).
///
/// Every method either consumes exactly one well-formed token (or value) and returns it,
/// or returns `nil`/`false` and leaves the cursor somewhere undefined: callers give up on
/// the whole document at the first `nil` and fall back to the typed decoder, which then
/// reports the error. It never traps on any input, allocates only for strings it returns,
/// and runs in time linear in the bytes it reads (nesting is bounded by `maximumDepth`).
package struct JSONCursor {
    package let bytes: UnsafeRawBufferPointer
    package var index: Int

    package init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.index = 0
    }

    /// The next significant byte, after whitespace; `nil` at the end.
    package mutating func peek() -> UInt8? {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return bytes[index]
            }
        }
        return nil
    }

    /// Consumes `byte` when it is the next significant byte.
    package mutating func consume(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        index += 1
        return true
    }

    /// Whether only whitespace is left.
    package mutating func atEnd() -> Bool { peek() == nil }

    /// The raw content (between the quotes) of the string at the cursor, and whether it has
    /// escapes. Checks only that the string ends; the validator checked the rest.
    package mutating func rawString() -> (content: UnsafeRawBufferPointer, escaped: Bool)? {
        guard consume(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var escaped = false
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                let content = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return (content, escaped)
            case UInt8(ascii: "\\"):
                escaped = true
                index += 2
            case 0..<0x20:
                return nil
            default:
                index += 1
            }
        }
        return nil
    }

    /// The string at the cursor, unescaped; `nil` when it is not a string or an escape is bad.
    package mutating func string() -> String? {
        guard let (content, escaped) = rawString() else { return nil }
        if !escaped { return String(decoding: content, as: UTF8.self) }
        guard let unescaped = StrictJSON.unescape(content) else { return nil }
        return String(decoding: unescaped, as: UTF8.self)
    }

    /// A member name without escapes (every name LISA reads is plain ASCII): `nil` for an
    /// escaped one, so a caller that must know every name falls back.
    package mutating func plainKey() -> UnsafeRawBufferPointer? {
        guard let (content, escaped) = rawString(), !escaped, consume(UInt8(ascii: ":")) else { return nil }
        return content
    }

    /// `true` or `false` at the cursor.
    package mutating func bool() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    /// Consumes `null` when it is next.
    package mutating func null() -> Bool { literal("null") }

    /// An integer written plainly (an optional minus and at most 18 digits, no fraction or
    /// exponent): exactly what every decoder reads as the same `Int`.
    package mutating func integer() -> Int? {
        guard let first = peek() else { return nil }
        var negative = false
        if first == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        let start = index
        let count = digits()
        guard count > 0, count <= 18, !isNumberContinuation() else { return nil }
        var value = 0
        for position in start..<index { value = value * 10 + Int(bytes[position] &- UInt8(ascii: "0")) }
        return negative ? -value : value
    }

    /// Skips a number without an exponent and of at most 24 characters: a value every
    /// decoder reads as the same finite `Double` (longer or exponent forms fall back).
    package mutating func plainNumber() -> Bool {
        guard let first = peek() else { return false }
        let start = index
        if first == UInt8(ascii: "-") { index += 1 }
        guard digits() > 0 else { return false }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        return index - start <= 24 && !isNumberContinuation()
    }

    private mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        let count = index - start
        // JSON allows no leading zero ("007"); such input is left to the decoder to refuse.
        return count > 1 && bytes[start] == UInt8(ascii: "0") ? 0 : count
    }

    /// The deepest nesting ``skipValue()`` follows (a bit per level says object or array).
    package static let maximumDepth = 64

    /// Skips any value made of objects, arrays, strings, literals and plain numbers (see
    /// ``plainNumber()``), nesting at most ``maximumDepth`` deep; `false` on anything else.
    package mutating func skipValue() -> Bool {
        var depth = 0
        /// Bit `n` set: the container at depth `n + 1` is an object.
        var objects: UInt64 = 0
        // At the top of the loop the cursor is where a value starts.
        while true {
            guard let byte = peek() else { return false }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < Self.maximumDepth else { return false }
                index += 1
                let isObject = byte == UInt8(ascii: "{")
                if consume(isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) { break }
                if isObject {
                    objects |= 1 << UInt64(depth)
                    guard rawString() != nil, consume(UInt8(ascii: ":")) else { return false }
                } else {
                    objects &= ~(1 << UInt64(depth))
                }
                depth += 1
                continue
            case UInt8(ascii: "\""):
                guard rawString() != nil else { return false }
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                guard bool() != nil else { return false }
            case UInt8(ascii: "n"):
                guard null() else { return false }
            default:
                guard plainNumber() else { return false }
            }
            // A value ended: close containers, or move on to the next entry.
            closing: while depth > 0 {
                let inObject = objects & (1 << UInt64(depth - 1)) != 0
                guard let next = peek() else { return false }
                index += 1
                switch next {
                case UInt8(ascii: ","):
                    if inObject {
                        guard rawString() != nil, consume(UInt8(ascii: ":")) else { return false }
                    }
                    break closing
                case UInt8(ascii: "}") where inObject, UInt8(ascii: "]") where !inObject:
                    depth -= 1
                default:
                    return false
                }
            }
            if depth == 0 { return true }
        }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        guard peek() != nil, index + word.utf8CodeUnitCount <= bytes.count else { return false }
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for offset in 0..<expected.count where bytes[index + offset] != expected[offset] {
            return false
        }
        index += expected.count
        return !isNumberContinuation()
    }

    /// Whether the byte at the cursor would continue a number or word (so what was read was
    /// only the start of a longer token).
    private func isNumberContinuation() -> Bool {
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"),
            UInt8(ascii: "-"), UInt8(ascii: "a")...UInt8(ascii: "z"):
            return true
        default:
            return false
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are `name`'s UTF-8 (for member names).
    package func equals(_ name: StaticString) -> Bool {
        guard count == name.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        for offset in 0..<count where self[offset] != expected[offset] {
            return false
        }
        return true
    }
}
