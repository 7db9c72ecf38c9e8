import Foundation
import LISAKit
import NIOCore
import Testing

/// JSON that LISA re-encodes keeps its members in the order they came in (Foundation's
/// coders on Linux do not: they follow the process's hash seed).
@Suite("JSON member order")
struct JSONOrderTests {
    /// A random document in compact form: objects of random keys in random order, nested,
    /// with every kind of scalar (escapes, non-ASCII, integers, fractions, exponents).
    static func document(depth: Int, using generator: inout some RandomNumberGenerator) -> String {
        let scalars = [
            "null", "true", "false", "0", "-7", "9007199254740993", "1.5", "-0.25", "1e+300", #""plain""#, #""tab\tquote\"slash\\ \u0001""#,
            #""ünïcødé ✓ 🚀""#, #""a/b""#, "3.141592653589793",
        ]
        switch depth > 2 ? 0 : Int.random(in: 0..<4, using: &generator) {
        case 0, 1:
            return scalars.randomElement(using: &generator)!
        case 2:
            let count = Int.random(in: 0..<4, using: &generator)
            return "[" + (0..<count).map { _ in document(depth: depth + 1, using: &generator) }.joined(separator: ",") + "]"
        default:
            let keys = (0..<Int.random(in: 1..<20, using: &generator)).map { "k\($0)_\(Int.random(in: 0..<1000, using: &generator))" }
            let unique = Array(Set(keys)).shuffled(using: &generator)
            return "{" + unique.map { "\"\($0)\":\(document(depth: depth + 1, using: &generator))" }.joined(separator: ",") + "}"
        }
    }

    @Test("parse and write give back the same bytes for many random documents and key orders")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let keys = (0..<Int.random(in: 2..<16, using: &generator)).map { "key\($0)" }.shuffled(using: &generator)
            let text = "{" + keys.map { "\"\($0)\":\(Self.document(depth: 1, using: &generator))" }.joined(separator: ",") + "}"
            let value = try JSONValue(parsing: text)
            #expect(value.jsonString == text)
            #expect(value.objectValue?.keys == keys)
            // And the same value as Foundation reads it: equal whatever the order.
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) == value)
        }
    }

    @Test("numbers read as JSONDecoder reads them into a JSONValue, and write as JSONEncoder writes them")
    func numbers() throws {
        for text in ["1.0", "1e2", "-0", "1.5", "12345678901234567890", "-0.0", "0.1", "100000000000000000000.0", "9007199254740993", "2.5e-8"] {
            let ours = try JSONValue(parsing: "[\(text)]")
            let foundation = try JSONDecoder().decode(JSONValue.self, from: Data("[\(text)]".utf8))
            #expect(ours == foundation, "\(text)")
            #expect(ours.jsonString == String(decoding: try JSONEncoder().encode(foundation), as: UTF8.self), "\(text)")
        }
    }

    @Test(
        "what is not one JSON value is refused, without trapping",
        arguments: [
            "", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "1e", "tru", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"", "[1] 2", "NaN",
            "1e400", "\"abc", String(repeating: "[", count: 200) + String(repeating: "]", count: 200),
        ])
    func refusals(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: text) }
    }

    @Test("invalid UTF-8 in a string is refused")
    func invalidUTF8() {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: [UInt8(ascii: "\""), 0xFF, UInt8(ascii: "\"")]) }
    }

    @Test("objects are equal and hash alike whatever their order; setting keeps a member's place")
    func objectSemantics() throws {
        let a = try JSONValue(parsing: #"{"x":1,"y":{"p":[1,2],"q":null}}"#)
        let b = try JSONValue(parsing: #"{"y":{"q":null,"p":[1,2]},"x":1}"#)
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        var members = try #require(a.objectValue)
        members["x"] = "changed"
        members["z"] = true
        members["y"] = nil
        #expect(JSONValue.object(members).jsonString == #"{"x":"changed","z":true}"#)
        // Large objects (indexed lookups) keep order through removals too.
        var large = JSONObject()
        for index in (0..<40).reversed() { large["m\(index)"] = .integer(Int64(index)) }
        large["m20"] = nil
        large["m39"] = "first"
        #expect(large.keys == (0..<40).reversed().filter { $0 != 20 }.map { "m\($0)" })
        #expect(large["m39"] == "first" && large["m0"] == 0 && large["m20"] == nil)
    }

    @Test("a value read through Foundation's decoder has its members sorted: the same in every process")
    func foundationDecodeIsDeterministic() throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"b":1,"c":{"z":1,"y":2},"a":2}"#.utf8))
        #expect(value.jsonString == #"{"a":2,"b":1,"c":{"y":2,"z":1}}"#)
    }
}
