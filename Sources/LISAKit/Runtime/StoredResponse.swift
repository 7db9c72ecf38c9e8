import Foundation
import NIOCore

/// A stored response: the object `GET /v1/responses/{id}` answers, its input items, and the
/// whole conversation as chat messages (what `previous_response_id` continues).
struct StoredResponse: Codable, Sendable {
    static let kind = "response"
    var owner: String
    var response: JSONValue
    var inputItems: [JSONValue]
    var messages: [JSONValue]
    /// Whether the upstream made (and keeps) this response: only then does a continuation
    /// pass `previous_response_id` through.
    var passedThrough: Bool?
}

/// A stored response as the state store keeps it (kind `response`, parent: its owner), laid
/// out so that each route reads only what it needs, without decoding the rest:
///
/// 1. a header: `{"format":"lisa.response.v2","owner":…,"passedThrough":…}`;
/// 2. the response object, the bytes `GET /v1/responses/{id}` answers as they are;
/// 3. the conversation as a JSON array of chat messages, decoded only to continue it;
/// 4. one line per input item, oldest first: its id (a JSON string, or `null`), a tab, the
///    item, spliced as they are into `input_items` pages.
///
/// Compact JSON holds no raw line break or tab (both are escaped inside strings), so lines
/// and tabs frame it. Records written before this layout (one JSON object) are read too.
struct StoredResponseRecord: Sendable {
    static let format = "lisa.response.v2"

    private struct Header: Codable {
        var format: String
        var owner: String
        var passedThrough: Bool?
    }

    let owner: String
    let passedThrough: Bool?
    private let text: String
    /// Where the response, the messages and the items start in `text`'s UTF-8.
    private let responseRange: Range<String.Index>
    private let messagesRange: Range<String.Index>
    private let itemsStart: String.Index

    /// Reads a stored body. A record in the earlier layout is decoded whole: run this off the
    /// event loops (``offEventLoops(_:)``).
    init(body: String) throws {
        var body = body
        if !body.hasPrefix("{\"format\":\"\(Self.format)\"") {
            body = try Self.encode(try JSONDecoder().decode(StoredResponse.self, from: Data(body.utf8)))
        }
        let utf8 = body.utf8
        guard let first = utf8.firstIndex(of: UInt8(ascii: "\n")),
            let second = utf8[utf8.index(after: first)...].firstIndex(of: UInt8(ascii: "\n")),
            let third = utf8[utf8.index(after: second)...].firstIndex(of: UInt8(ascii: "\n"))
        else { throw LISAError.internalError("A stored response is cut short.") }
        let header = try JSONDecoder().decode(Header.self, from: Data(body[..<first].utf8))
        owner = header.owner
        passedThrough = header.passedThrough
        text = body
        responseRange = utf8.index(after: first)..<second
        messagesRange = utf8.index(after: second)..<third
        itemsStart = utf8.index(after: third)
    }

    /// The response object's JSON, as it was stored.
    var responseBody: ByteBuffer { ByteBuffer(substring: text[responseRange]) }

    /// Size of the stored body in UTF-8 bytes.
    var byteCount: Int { text.utf8.count }

    /// The conversation as chat messages (decoded: run it off the event loops when large).
    func messages() throws -> [JSONValue] {
        try JSONDecoder().decode([JSONValue].self, from: Data(text[messagesRange].utf8))
    }

    /// One page of `GET /v1/responses/{id}/input_items`, newest first unless `ascending`,
    /// after the item `after`, built from the stored lines without decoding them.
    func inputItemsPage(limit: Int, ascending: Bool, after: String?) throws(LISAError) -> ByteBuffer {
        var lines = text[itemsStart...].split(separator: "\n", omittingEmptySubsequences: true)
        if !ascending { lines.reverse() }
        var start = lines.startIndex
        if let after {
            let wanted = Self.jsonString(after)
            guard let position = lines.firstIndex(where: { $0.prefix(while: { $0 != "\t" }) == wanted }) else {
                throw .invalidRequest("No input item with id '\(after)' in this response.", param: "after")
            }
            start = position + 1
        }
        let page = lines[start..<min(start + limit, lines.endIndex)]
        let ids = page.map { $0.prefix(while: { $0 != "\t" }) }
        var out = "{\"object\":\"list\",\"data\":["
        for (index, line) in page.enumerated() {
            if index > 0 { out += "," }
            out += line[line.index(after: ids[index].endIndex)...]
        }
        out += "],\"first_id\":\(ids.first ?? "null"),\"last_id\":\(ids.last ?? "null"),\"has_more\":\(lines.endIndex - start > limit)}"
        return ByteBuffer(string: out)
    }

    /// The stored body of `stored`, in the layout above.
    static func encode(_ stored: StoredResponse) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let headerEncoder = JSONEncoder()
        headerEncoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = String(
            decoding: try headerEncoder.encode(Header(format: format, owner: stored.owner, passedThrough: stored.passedThrough)), as: UTF8.self)
        out += "\n" + String(decoding: try encoder.encode(stored.response), as: UTF8.self)
        out += "\n" + String(decoding: try encoder.encode(stored.messages), as: UTF8.self) + "\n"
        // The items encoded at once, then cut at the array's own commas.
        let items = try encoder.encode(stored.inputItems)
        for (item, range) in zip(stored.inputItems, elementRanges(ofArray: items)) {
            out += item["id"]?.stringValue.map(jsonString) ?? "null"
            out += "\t" + String(decoding: items[range], as: UTF8.self) + "\n"
        }
        return out
    }

    /// The byte ranges of the elements of a compact JSON array.
    static func elementRanges(ofArray bytes: Data) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var depth = 0
        var inString = false
        var escaped = false
        var start = bytes.startIndex + 1
        for index in bytes.indices {
            let byte = bytes[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0, index > start { ranges.append(start..<index) }
            case UInt8(ascii: ",") where depth == 1:
                ranges.append(start..<index)
                start = index + 1
            default: break
            }
        }
        return ranges
    }

    /// `value` as a JSON string: quotes, backslashes and control characters escaped.
    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
