import Foundation
public import NIOCore
import NIOFoundationCompat
import Synchronization

/// Turns an upstream's chat-completion stream into another dialect's stream, event by
/// event. A translator sees every event the relay hands on — the upstream's chunks,
/// `[DONE]`, and the relay's own `event: error` when the upstream breaks — and answers the
/// events to send instead. It never invents a successful end: without `[DONE]` it ends
/// with its dialect's error event.
public protocol ServerSentEventTranslator: Sendable {
    /// The events to send for one relayed event.
    mutating func translate(_ event: ServerSentEvent) -> [ServerSentEvent]

    /// Writes the events to send for one relayed event to `output`: what the relay calls. The
    /// default writes ``translate(_:)``'s; a translator writes its most frequent events (the
    /// deltas) straight, the same bytes without building them as JSON values first.
    mutating func translate(_ event: ServerSentEvent, into output: inout ByteBuffer)
}

extension ServerSentEventTranslator {
    public mutating func translate(_ event: ServerSentEvent, into output: inout ByteBuffer) {
        for translated in translate(event) { translated.write(to: &output) }
    }
}

extension ServerSentEventRelay {
    /// This relay with each event translated by `translator`, then handed to `afterEvent`
    /// (where a caller can act on what the translator saw, such as storing the answer) before
    /// the translated events go to the client.
    public func translating<T: ServerSentEventTranslator>(
        with translator: T, afterEvent: (@Sendable (T) async -> Void)? = nil
    ) -> ServerSentEventRelay {
        let state = Mutex((parser: ServerSentEventParser(), translator: translator))
        return mapping { chunk in
            var buffer = ByteBuffer()
            let snapshot: T? = try state.withLock { state in
                for item in try state.parser.feed(chunk) { state.translator.translate(item.event, into: &buffer) }
                return afterEvent == nil ? nil : state.translator
            }
            if let afterEvent, let snapshot { await afterEvent(snapshot) }
            return buffer
        }
    }
}

/// JSON helpers shared by the dialect translations.
enum DialectJSON {
    /// The JSON text of `value`, every object's members in order (JSONEncoder would not keep it).
    static func encode(_ value: JSONValue) -> ByteBuffer {
        value.jsonBytes
    }

    static func string(_ value: JSONValue) -> String {
        String(buffer: encode(value))
    }

    static func event(_ type: String?, _ value: JSONValue) -> ServerSentEvent {
        ServerSentEvent(event: type, data: string(value))
    }

    /// The JSON object in `data` (a chunk of a stream), or `nil`.
    static func object(in data: String) -> JSONValue? {
        guard let value = try? JSONValue(parsing: data), value.objectValue != nil else { return nil }
        return value
    }

    static func decode(_ buffer: ByteBuffer) throws(LISAError) -> JSONValue {
        let value = try RequestJSON.decode(JSONValue.self, from: buffer)
        guard value.objectValue != nil else { throw .invalidRequest("The request body must be a JSON object.") }
        return value
    }

    /// A short random id with `prefix`, such as `msg_…` or `resp_…`.
    static func id(_ prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<3).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        return prefix + hex
    }
}

/// Reads one JSON object of a request, naming the member's path in every error.
struct RequestObject {
    let members: JSONObject
    let path: String

    init(_ value: JSONValue?, path: String) throws(LISAError) {
        guard case .object(let members) = value ?? .null else {
            throw .invalidRequest("\(path.isEmpty ? "The request body" : path) must be a JSON object.", param: path.isEmpty ? nil : path)
        }
        self.members = members
        self.path = path
    }

    func param(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    subscript(key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func has(_ key: String) -> Bool { self[key] != nil }

    func string(_ key: String) throws(LISAError) -> String? {
        guard let value = self[key] else { return nil }
        guard case .string(let string) = value else { throw .invalidRequest("\(param(key)) must be a string.", param: param(key)) }
        return string
    }

    func requiredString(_ key: String) throws(LISAError) -> String {
        guard let value = try string(key) else { throw .invalidRequest("\(param(key)) is required.", param: param(key)) }
        return value
    }

    func integer(_ key: String) throws(LISAError) -> Int64? {
        guard let value = self[key] else { return nil }
        switch value {
        case .integer(let number): return number
        case .number(let number) where number == number.rounded() && abs(number) < 1e15: return Int64(number)
        default: throw .invalidRequest("\(param(key)) must be an integer.", param: param(key))
        }
    }

    func number(_ key: String) throws(LISAError) -> JSONValue? {
        guard let value = self[key] else { return nil }
        switch value {
        case .integer, .number: return value
        default: throw .invalidRequest("\(param(key)) must be a number.", param: param(key))
        }
    }

    func bool(_ key: String) throws(LISAError) -> Bool? {
        guard let value = self[key] else { return nil }
        guard case .bool(let flag) = value else { throw .invalidRequest("\(param(key)) must be true or false.", param: param(key)) }
        return flag
    }

    func array(_ key: String) throws(LISAError) -> [JSONValue]? {
        guard let value = self[key] else { return nil }
        guard case .array(let items) = value else { throw .invalidRequest("\(param(key)) must be an array.", param: param(key)) }
        return items
    }

    func object(_ key: String) throws(LISAError) -> RequestObject? {
        guard let value = self[key] else { return nil }
        return try RequestObject(value, path: param(key))
    }
}

extension JSONValue {
    /// The array's items, if this value is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var int64Value: Int64? {
        switch self {
        case .integer(let value): return value
        case .number(let value): return Int64(exactly: value)
        default: return nil
        }
    }

    /// The value as a token count from an upstream: a whole number held to
    /// `0...`\(``Usage/maximumTokenCount``), 0 for anything else. Sums of a few can't overflow.
    public var tokenCount: Int64 {
        Int64(Usage.clamped(Int(int64Value ?? 0)))
    }

    /// The text of a chat message's `content`: the string, or its text parts concatenated.
    var chatText: String? {
        switch self {
        case .string(let text): return text
        case .array(let parts):
            let texts = parts.compactMap { part -> String? in
                guard part["type"]?.stringValue == "text" || part["type"]?.stringValue == "output_text" else { return nil }
                return part["text"]?.stringValue
            }
            return texts.isEmpty ? nil : texts.joined()
        default: return nil
        }
    }
}
