import Foundation
public import NIOCore

/// Finds the members of a JSON document's top-level object without decoding it, so the
/// gateway can forward a client's exact bytes with only the `model` value replaced, and read
/// `usage` out of an answer without parsing the rest.
///
/// It only locates; it does not validate (the typed decode does). On anything it does not
/// understand it returns `nil` and callers fall back to a full re-encode.
package enum JSONMemberScanner {
    /// The byte ranges (relative to the buffer's reader index) of the values of every
    /// top-level member named `name`, or `nil` when the document is not an object.
    package static func valueRanges(of name: String, in buffer: ByteBuffer) -> [Range<Int>]? {
        var name = name
        return name.withUTF8 { key in
            buffer.withUnsafeReadableBytes { bytes in
                var scanner = Scanner(bytes: bytes)
                return scanner.valueRanges(of: UnsafeRawBufferPointer(key))
            }
        }
    }

    /// A forward scan over raw bytes (no captured state, so no exclusivity checks per byte:
    /// this runs on every relayed event).
    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        /// Skips a string starting at `index` (on its opening quote); returns its content range.
        mutating func skipString() -> Range<Int>? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\\"): index += 2
                case UInt8(ascii: "\""):
                    defer { index += 1 }
                    return start..<index
                default: index += 1
                }
            }
            return nil
        }

        /// Skips any value starting at `index`.
        mutating func skipValue() -> Bool {
            skipWhitespace()
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return skipString() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        guard skipString() != nil else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            return true
                        }
                    default: break
                    }
                    index += 1
                }
                return false
            default:
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09: return true
                    default: index += 1
                    }
                }
                return true
            }
        }

        mutating func valueRanges(of key: UnsafeRawBufferPointer) -> [Range<Int>]? {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
            index += 1
            var ranges: [Range<Int>] = []
            while true {
                skipWhitespace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: "}") { return ranges }
                guard let keyRange = skipString() else { return nil }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                skipWhitespace()
                let valueStart = index
                guard skipValue() else { return nil }
                let keyBytes = UnsafeRawBufferPointer(rebasing: bytes[keyRange])
                if keyBytes.contains(UInt8(ascii: "\\")) ? StrictJSON.unescape(keyBytes)?.elementsEqual(key) == true : keyBytes.elementsEqual(key) {
                    ranges.append(valueStart..<index)
                }
                skipWhitespace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    return ranges
                } else {
                    return nil
                }
            }
        }
    }

    /// `value` as a JSON string, quotes included.
    package static func encodedString(_ value: String) -> ByteBuffer {
        var encoded = ByteBuffer()
        encoded.writeInteger(UInt8(ascii: "\""))
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": encoded.writeString("\\\"")
            case "\\": encoded.writeString("\\\\")
            case "\n": encoded.writeString("\\n")
            case "\r": encoded.writeString("\\r")
            case "\t": encoded.writeString("\\t")
            case _ where scalar.value < 0x20: encoded.writeString(String(format: "\\u%04x", scalar.value))
            default: encoded.writeString(String(scalar))
            }
        }
        encoded.writeInteger(UInt8(ascii: "\""))
        return encoded
    }

    /// A copy of `buffer` with every top-level `name` member's value replaced by the JSON
    /// string `value`; `nil` when there is no such member or the document is not an object.
    package static func replacingStringMember(_ name: String, with value: String, in buffer: ByteBuffer) -> ByteBuffer? {
        guard let ranges = valueRanges(of: name, in: buffer), !ranges.isEmpty else { return nil }
        let encoded = encodedString(value)
        var output = ByteBuffer()
        output.reserveCapacity(buffer.readableBytes + encoded.readableBytes)
        var cursor = 0
        for range in ranges {
            if let slice = buffer.getSlice(at: buffer.readerIndex + cursor, length: range.lowerBound - cursor) {
                output.writeImmutableBuffer(slice)
            }
            output.writeImmutableBuffer(encoded)
            cursor = range.upperBound
        }
        if let rest = buffer.getSlice(at: buffer.readerIndex + cursor, length: buffer.readableBytes - cursor) {
            output.writeImmutableBuffer(rest)
        }
        return output
    }

    /// The bytes of the last top-level `name` member's value, or `nil`.
    package static func value(of name: String, in buffer: ByteBuffer) -> ByteBuffer? {
        guard let range = valueRanges(of: name, in: buffer)?.last else { return nil }
        return buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count)
    }
}
