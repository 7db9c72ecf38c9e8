import Foundation
import Testing

@testable import LISAKit

enum Fixture {
    static func data(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
        return try Data(contentsOf: url)
    }
}

extension JSONValue {
    /// Equality that treats `1` and `1.0` as the same number, as JSON does, and an explicit
    /// `null` member as the same as an absent one (LISA's typed schemas do not distinguish them).
    func semanticallyEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)): return Double(a) == b
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.semanticallyEquals($1) }
        case (.object(let a), .object(let b)):
            let a = a.filter { $0.value != .null }
            let b = b.filter { $0.value != .null }
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.semanticallyEquals($0) } ?? false }
        default: return self == other
        }
    }
}

/// Decodes `data` as `T`, re-encodes it, and returns both as `JSONValue`s for comparison.
func roundTrip<T: Codable>(_ type: T.Type, _ data: Data) throws -> (original: JSONValue, reencoded: JSONValue, value: T) {
    let value = try JSONDecoder().decode(T.self, from: data)
    let reencoded = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    let original = try JSONDecoder().decode(JSONValue.self, from: data)
    return (original, reencoded, value)
}
