import Foundation

/// The `input` of an embeddings request: text, texts, tokens or token lists.
public typealias EmbeddingInput = PromptInput

/// `encoding_format`: `float` or `base64`; other values are kept.
public enum EmbeddingEncodingFormat: OpenStringEnum {
    case float, base64
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "float": self = .float
        case "base64": self = .base64
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .float: "float"
        case .base64: "base64"
        case .other(let value): value
        }
    }
}

/// A `POST /v1/embeddings` request body.
public struct EmbeddingRequest: Sendable, Hashable, Codable {
    public var model: String
    public var input: EmbeddingInput
    public var encodingFormat: EmbeddingEncodingFormat?
    public var dimensions: Int?
    public var user: String?
    public var additionalFields: [String: JSONValue]

    public init(model: String, input: EmbeddingInput, encodingFormat: EmbeddingEncodingFormat? = nil, dimensions: Int? = nil) {
        self.model = model
        self.input = input
        self.encodingFormat = encodingFormat
        self.dimensions = dimensions
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, input, dimensions, user
        case encodingFormat = "encoding_format"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        input = try c.decode(EmbeddingInput.self, forKey: .input)
        encodingFormat = try c.decodeIfPresent(EmbeddingEncodingFormat.self, forKey: .encodingFormat)
        dimensions = try c.decodeIfPresent(Int.self, forKey: .dimensions)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(input, forKey: .input)
        try c.encodeIfPresent(encodingFormat, forKey: .encodingFormat)
        try c.encodeIfPresent(dimensions, forKey: .dimensions)
        try c.encodeIfPresent(user, forKey: .user)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// An embedding vector as sent: floats, or little-endian float32s in base64.
public enum EmbeddingVector: Sendable, Hashable, Codable {
    case floats([Double])
    case base64(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(String.self) {
            self = .base64(value)
        } else {
            self = .floats(try container.decode([Double].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .floats(let value): try container.encode(value)
        case .base64(let value): try container.encode(value)
        }
    }

    /// The vector as `Float`s, decoding base64 when needed; `nil` for malformed base64.
    public var floatValues: [Float]? {
        switch self {
        case .floats(let values): return values.map(Float.init)
        case .base64(let text):
            guard let data = Data(base64Encoded: text), data.count % 4 == 0 else { return nil }
            return stride(from: 0, to: data.count, by: 4).map { offset in
                let bits =
                    UInt32(data[data.startIndex + offset])
                    | UInt32(data[data.startIndex + offset + 1]) << 8
                    | UInt32(data[data.startIndex + offset + 2]) << 16
                    | UInt32(data[data.startIndex + offset + 3]) << 24
                return Float(bitPattern: bits)
            }
        }
    }
}

/// A `POST /v1/embeddings` response.
public struct EmbeddingResponse: Sendable, Hashable, Codable {
    /// One input's embedding.
    public struct Embedding: Sendable, Hashable, Codable {
        public var object: String
        public var index: Int
        public var embedding: EmbeddingVector

        public init(index: Int, embedding: EmbeddingVector) {
            self.object = "embedding"
            self.index = index
            self.embedding = embedding
        }
    }

    public var object: String
    public var data: [Embedding]
    public var model: String
    public var usage: Usage?
    public var additionalFields: [String: JSONValue]

    public init(data: [Embedding], model: String, usage: Usage? = nil) {
        self.object = "list"
        self.data = data
        self.model = model
        self.usage = usage
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case object, data, model, usage }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        object = try c.decode(String.self, forKey: .object)
        data = try c.decode([Embedding].self, forKey: .data)
        model = try c.decode(String.self, forKey: .model)
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(object, forKey: .object)
        try c.encode(data, forKey: .data)
        try c.encode(model, forKey: .model)
        try c.encodeIfPresent(usage, forKey: .usage)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}
