/// A JSON object's members in order, with dictionary-like lookup.
///
/// Order is the order members were added (a parsed document's order); setting an existing
/// member keeps its place; removing one closes the gap. Two objects are equal when they have
/// the same members, whatever their order (as JSON objects are).
public struct JSONObject: Sendable {
    public typealias Element = (key: String, value: JSONValue)

    private var entries: [Element] = []
    /// Positions by key, kept once an object is large enough that scanning costs more.
    private var positions: [String: Int]?
    private static let indexedCount = 12

    public init() {}

    /// The members of a dictionary, sorted by key (a dictionary has no order to keep).
    public init(_ members: [String: JSONValue]) {
        for key in members.keys.sorted() { self[key] = members[key] }
    }

    /// The members of `pairs`, in order; a later duplicate replaces the earlier one's value.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, JSONValue) {
        for (key, value) in pairs { self[key] = value }
    }

    private func position(of key: String) -> Int? {
        if let positions { return positions[key] }
        return entries.firstIndex { $0.key == key }
    }

    private mutating func reindex() {
        guard entries.count > Self.indexedCount else {
            positions = nil
            return
        }
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        for (offset, entry) in entries.enumerated() { index[entry.key] = offset }
        positions = index
    }

    /// The member's value; setting `nil` removes it, setting a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { entries[$0].value } }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    public subscript(key: String, default defaultValue: @autoclosure () -> JSONValue) -> JSONValue {
        get { self[key] ?? defaultValue() }
        set { self[key] = newValue }
    }

    /// Sets a member's value (in place if it exists, else at the end); returns the old value.
    @discardableResult
    public mutating func updateValue(_ value: JSONValue, forKey key: String) -> JSONValue? {
        if let at = position(of: key) {
            let old = entries[at].value
            entries[at].value = value
            return old
        }
        entries.append((key, value))
        if positions != nil {
            positions?[key] = entries.count - 1
        } else if entries.count > Self.indexedCount {
            reindex()
        }
        return nil
    }

    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let at = position(of: key) else { return nil }
        let old = entries.remove(at: at).value
        if positions != nil { reindex() }
        return old
    }

    public mutating func removeAll() {
        entries.removeAll()
        positions = nil
    }

    /// The keys, in order.
    public var keys: [String] { entries.map(\.key) }
    /// The values, in order.
    public var values: [JSONValue] { entries.map(\.value) }
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// The members with each value transformed, in the same order.
    public func mapValues(_ transform: (JSONValue) throws -> JSONValue) rethrows -> JSONObject {
        var copy = self
        for offset in copy.entries.indices { copy.entries[offset].value = try transform(copy.entries[offset].value) }
        return copy
    }

    /// The members with each value transformed, those transformed to `nil` left out.
    public func compactMapValues(_ transform: (JSONValue) throws -> JSONValue?) rethrows -> JSONObject {
        var result = JSONObject()
        for (key, value) in entries { if let mapped = try transform(value) { result[key] = mapped } }
        return result
    }

    /// The members for which `isIncluded` holds, in order.
    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> JSONObject {
        var result = JSONObject()
        for entry in entries where try isIncluded(entry) { result[entry.key] = entry.value }
        return result
    }

    /// Adds `other`'s members in its order; for a key in both, `combine` decides the value.
    public mutating func merge(_ other: JSONObject, uniquingKeysWith combine: (JSONValue, JSONValue) throws -> JSONValue) rethrows {
        for (key, value) in other { self[key] = try self[key].map { try combine($0, value) } ?? value }
    }

    public func merging(_ other: JSONObject, uniquingKeysWith combine: (JSONValue, JSONValue) throws -> JSONValue) rethrows -> JSONObject {
        var copy = self
        try copy.merge(other, uniquingKeysWith: combine)
        return copy
    }

    /// The members as a dictionary (their order lost).
    public var dictionary: [String: JSONValue] {
        Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}

extension JSONObject: RandomAccessCollection {
    public var startIndex: Int { entries.startIndex }
    public var endIndex: Int { entries.endIndex }
    public subscript(position: Int) -> Element { entries[position] }
}

extension JSONObject: Hashable {
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.entries.allSatisfy { rhs[$0.key] == $0.value }
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent: the members' own hashes combined commutatively.
        var combined = 0
        for (key, value) in entries {
            var member = Hasher()
            member.combine(key)
            member.combine(value)
            combined ^= member.finalize()
        }
        hasher.combine(count)
        hasher.combine(combined)
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }
}

extension JSONObject: CustomStringConvertible {
    public var description: String {
        "[" + entries.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "]"
    }
}
