import Foundation

/// A coding key for any member name, used to keep the members a type does not model.
public struct AnyCodingKey: CodingKey, Hashable, Sendable {
    public var stringValue: String
    public var intValue: Int?

    public init(_ string: String) {
        self.stringValue = string
        self.intValue = nil
    }

    public init?(stringValue: String) { self.init(stringValue) }

    public init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// The members of the current JSON object whose names are not in `Known`, decoded as `JSONValue`.
    ///
    /// This is how the OpenAI types stay lossless: vendor extensions (`top_k`,
    /// `repetition_penalty`, `chat_template_kwargs`, …) survive decode → encode.
    package func additionalFields<Known: CodingKey & CaseIterable>(excluding _: Known.Type) throws -> [String: JSONValue] {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        var fields: [String: JSONValue] = [:]
        // `Known(stringValue:)` is a synthesized switch: no allocation per key.
        for key in container.allKeys where Known(stringValue: key.stringValue) == nil {
            fields[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
        }
        return fields
    }
}

extension Encoder {
    /// Writes members kept by ``Decoder/additionalFields(excluding:)`` back into the current object.
    package func encodeAdditionalFields(_ fields: [String: JSONValue]) throws {
        guard !fields.isEmpty else { return }
        var container = self.container(keyedBy: AnyCodingKey.self)
        for (name, value) in fields {
            try container.encode(value, forKey: AnyCodingKey(name))
        }
    }
}

/// Decodes a string-backed enumeration that keeps values it does not know.
package protocol OpenStringEnum: RawRepresentable, Codable, Hashable, Sendable where RawValue == String {
    init(rawValue: String)
}

extension OpenStringEnum {
    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
