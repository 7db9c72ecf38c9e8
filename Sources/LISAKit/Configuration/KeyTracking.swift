import Foundation
import LISAOpenAI
import Synchronization

/// Finds the keys of a document that no `Decodable` type asked for, at any depth, by
/// wrapping the real decoder (YAML or JSON) and noting, per object, which keys the types
/// decoding it asked about (present or not) and which keys it holds.
///
/// An object decoded only through ``AnyCodingKey`` (members a type keeps as they are, like
/// a model's `additionalFields`) does not make its keys known; a dictionary's keys are all
/// known. So `auth: {userGrop: …}` and a model's `modelTyp` are found, and the keys asked
/// about at the same place are the candidates for "did you mean".
final class KeyRecorder: Sendable {
    struct Place: Sendable {
        var present: Set<String> = []
        var known: Set<String> = []
        var typed = false
    }

    private let places = Mutex<[String: Place]>([:])

    /// The components of a coding path, joined by U+001F (keys may hold dots); an array
    /// index is `[n]`.
    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: separator)
    }

    static let separator = "\u{1F}"

    /// `models[0].launch` for people.
    static func display(_ path: String) -> String {
        path.split(separator: Character(separator), omittingEmptySubsequences: true).reduce(into: "") { text, component in
            if component.hasPrefix("[") { text += component } else { text += (text.isEmpty ? "" : ".") + component }
        }
    }

    func present(_ keys: [String], at path: String) {
        places.withLock { $0[path, default: Place()].present.formUnion(keys) }
    }

    func asked(_ key: String, at path: String) {
        places.withLock { places in
            places[path, default: Place()].known.insert(key)
            places[path, default: Place()].typed = true
        }
    }

    func typed(at path: String) {
        places.withLock { $0[path, default: Place()].typed = true }
    }

    /// Every key no type asked for: its dotted path and the known keys beside it.
    func unknown() -> [(path: String, key: String, known: Set<String>)] {
        places.withLock { places in
            places.flatMap { path, place -> [(path: String, key: String, known: Set<String>)] in
                guard place.typed else { return [] }
                return place.present.subtracting(place.known).sorted().map { (path, $0, place.known) }
            }
        }.sorted { ($0.path, $0.key) < ($1.path, $1.key) }
    }

    static let userInfoKey = CodingUserInfoKey(rawValue: "lisa.keyRecorder")!
}

/// Decodes `T` through a ``KeyRecorder`` from inside a real decoder.
struct Tracked<T: Decodable>: Decodable {
    var value: T

    init(from decoder: any Decoder) throws {
        guard let recorder = decoder.userInfo[KeyRecorder.userInfoKey] as? KeyRecorder else {
            value = try T(from: decoder)
            return
        }
        value = try T(from: TrackingDecoder(base: decoder, recorder: recorder))
    }
}

struct TrackingDecoder: Decoder {
    let base: any Decoder
    let recorder: KeyRecorder
    var codingPath: [any CodingKey] { base.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { base.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let path = KeyRecorder.path(codingPath)
        if let all = try? base.container(keyedBy: AnyCodingKey.self) {
            recorder.present(all.allKeys.map(\.stringValue), at: path)
        }
        let container = try base.container(keyedBy: type)
        return KeyedDecodingContainer(TrackingKeyed(base: container, recorder: recorder, path: path, records: type != AnyCodingKey.self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        TrackingUnkeyed(base: try base.unkeyedContainer(), recorder: recorder)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        TrackingSingle(base: try base.singleValueContainer(), decoder: self)
    }

    /// `T` decoded through the recorder; scalars straight from the base container.
    static func isScalar<T>(_ type: T.Type) -> Bool {
        type == String.self || type == Bool.self || type == Int.self || type == Int64.self || type == Int32.self || type == Double.self
            || type == Float.self || type == UInt.self || type == UInt64.self || type == Date.self || type == Data.self || type == URL.self
            || type == Decimal.self
    }
}

struct TrackingKeyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let base: KeyedDecodingContainer<Key>
    let recorder: KeyRecorder
    let path: String
    let records: Bool
    var codingPath: [any CodingKey] { base.codingPath }
    var allKeys: [Key] { base.allKeys }

    private func ask(_ key: Key) {
        if records { recorder.asked(key.stringValue, at: path) }
    }

    func contains(_ key: Key) -> Bool {
        ask(key)
        return base.contains(key)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        ask(key)
        return try base.decodeNil(forKey: key)
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        ask(key)
        if TrackingDecoder.isScalar(type) { return try base.decode(type, forKey: key) }
        return try T(from: TrackingDecoder(base: try base.superDecoder(forKey: key), recorder: recorder))
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        ask(key)
        guard base.contains(key), !(try base.decodeNil(forKey: key)) else { return nil }
        return try decode(type, forKey: key)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { ask(key); return try base.decode(type, forKey: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { ask(key); return try base.decode(type, forKey: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        ask(key)
        return try TrackingDecoder(base: try base.superDecoder(forKey: key), recorder: recorder).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        ask(key)
        return TrackingUnkeyed(base: try base.nestedUnkeyedContainer(forKey: key), recorder: recorder)
    }

    func superDecoder() throws -> any Decoder { TrackingDecoder(base: try base.superDecoder(), recorder: recorder) }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ask(key)
        return TrackingDecoder(base: try base.superDecoder(forKey: key), recorder: recorder)
    }
}

struct TrackingUnkeyed: UnkeyedDecodingContainer {
    var base: any UnkeyedDecodingContainer
    let recorder: KeyRecorder
    var codingPath: [any CodingKey] { base.codingPath }
    var count: Int? { base.count }
    var isAtEnd: Bool { base.isAtEnd }
    var currentIndex: Int { base.currentIndex }

    mutating func decodeNil() throws -> Bool { try base.decodeNil() }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if TrackingDecoder.isScalar(type) { return try base.decode(type) }
        return try T(from: TrackingDecoder(base: try base.superDecoder(), recorder: recorder))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try TrackingDecoder(base: try base.superDecoder(), recorder: recorder).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        TrackingUnkeyed(base: try base.nestedUnkeyedContainer(), recorder: recorder)
    }

    mutating func superDecoder() throws -> any Decoder { TrackingDecoder(base: try base.superDecoder(), recorder: recorder) }
}

struct TrackingSingle: SingleValueDecodingContainer {
    let base: any SingleValueDecodingContainer
    let decoder: TrackingDecoder
    var codingPath: [any CodingKey] { base.codingPath }

    func decodeNil() -> Bool { base.decodeNil() }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if TrackingDecoder.isScalar(type) { return try base.decode(type) }
        return try T(from: decoder)
    }
}

extension KeyRecorder {
    /// The closest known key, for "did you mean": equal ignoring case, or at most a third
    /// of the key's length (at least 2, at most 3) edits away.
    static func suggestion(for key: String, among known: Set<String>) -> String? {
        let lowered = key.lowercased()
        if let same = known.first(where: { $0.lowercased() == lowered }) { return same }
        let best = known.map { ($0, distance(lowered, $0.lowercased())) }.min { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let best, best.1 <= min(3, max(2, key.count / 3)) else { return nil }
        return best.0
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8.prefix(64))
        let b = Array(b.utf8.prefix(64))
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
