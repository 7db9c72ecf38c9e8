import Foundation

/// The content of a chat message: a plain string or an array of typed parts.
public enum MessageContent: Sendable, Hashable, Codable {
    case text(String)
    case parts([ContentPart])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
            return
        }
        guard (try? decoder.unkeyedContainer()) != nil else {
            throw DecodingError.typeMismatch(
                MessageContent.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected a string or an array of content parts")
            )
        }
        self = .parts(try container.decode([ContentPart].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let text): try container.encode(text)
        case .parts(let parts): try container.encode(parts)
        }
    }

    /// The text of the content: the string, or the text parts joined by newlines.
    public var plainText: String {
        switch self {
        case .text(let text): return text
        case .parts(let parts):
            return parts.compactMap { part in
                if case .text(let text) = part { return text.text }
                return nil
            }.joined(separator: "\n")
        }
    }
}

/// One part of a multi-part message content, discriminated by its `type`.
///
/// Part types this library does not model (for example vLLM's `video_url`) decode into
/// ``other(_:)`` and re-encode unchanged.
public enum ContentPart: Sendable, Hashable, Codable {
    case text(TextPart)
    case imageURL(ImageURLPart)
    case inputAudio(InputAudioPart)
    case file(FilePart)
    case refusal(RefusalPart)
    case other([String: JSONValue])

    private enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: TypeKey.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "text": self = .text(try TextPart(from: decoder))
        case "image_url": self = .imageURL(try ImageURLPart(from: decoder))
        case "input_audio": self = .inputAudio(try InputAudioPart(from: decoder))
        case "file": self = .file(try FilePart(from: decoder))
        case "refusal": self = .refusal(try RefusalPart(from: decoder))
        default: self = .other(try [String: JSONValue](from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .text(let part): try part.encode(to: encoder)
        case .imageURL(let part): try part.encode(to: encoder)
        case .inputAudio(let part): try part.encode(to: encoder)
        case .file(let part): try part.encode(to: encoder)
        case .refusal(let part): try part.encode(to: encoder)
        case .other(let object): try object.encode(to: encoder)
        }
    }
}

/// A `{"type": "text", "text": …}` content part.
public struct TextPart: Sendable, Hashable, Codable {
    public var text: String
    public var additionalFields: [String: JSONValue]

    public init(text: String, additionalFields: [String: JSONValue] = [:]) {
        self.text = text
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, text }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        text = try c.decode(String.self, forKey: .text)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("text", forKey: .type)
        try c.encode(text, forKey: .text)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `{"type": "refusal", "refusal": …}` content part (assistant messages).
public struct RefusalPart: Sendable, Hashable, Codable {
    public var refusal: String
    public var additionalFields: [String: JSONValue]

    public init(refusal: String, additionalFields: [String: JSONValue] = [:]) {
        self.refusal = refusal
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, refusal }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        refusal = try c.decode(String.self, forKey: .refusal)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("refusal", forKey: .type)
        try c.encode(refusal, forKey: .refusal)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `{"type": "image_url", "image_url": {"url": …, "detail": …}}` content part.
public struct ImageURLPart: Sendable, Hashable, Codable {
    /// The image reference: an `https:` URL or a `data:` URL.
    public struct ImageURL: Sendable, Hashable, Codable {
        public var url: String
        /// `auto`, `low` or `high`; kept as sent.
        public var detail: String?
        public var additionalFields: [String: JSONValue]

        public init(url: String, detail: String? = nil, additionalFields: [String: JSONValue] = [:]) {
            self.url = url
            self.detail = detail
            self.additionalFields = additionalFields
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case url, detail }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            url = try c.decode(String.self, forKey: .url)
            detail = try c.decodeIfPresent(String.self, forKey: .detail)
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(url, forKey: .url)
            try c.encodeIfPresent(detail, forKey: .detail)
            try encoder.encodeAdditionalFields(additionalFields)
        }
    }

    public var imageURL: ImageURL
    public var additionalFields: [String: JSONValue]

    public init(imageURL: ImageURL, additionalFields: [String: JSONValue] = [:]) {
        self.imageURL = imageURL
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type
        case imageURL = "image_url"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageURL = try c.decode(ImageURL.self, forKey: .imageURL)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("image_url", forKey: .type)
        try c.encode(imageURL, forKey: .imageURL)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `{"type": "input_audio", "input_audio": {"data": …, "format": …}}` content part.
public struct InputAudioPart: Sendable, Hashable, Codable {
    /// Base64-encoded audio and its format (`wav`, `mp3`, …).
    public struct InputAudio: Sendable, Hashable, Codable {
        public var data: String
        public var format: String

        public init(data: String, format: String) {
            self.data = data
            self.format = format
        }
    }

    public var inputAudio: InputAudio
    public var additionalFields: [String: JSONValue]

    public init(inputAudio: InputAudio, additionalFields: [String: JSONValue] = [:]) {
        self.inputAudio = inputAudio
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case type
        case inputAudio = "input_audio"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inputAudio = try c.decode(InputAudio.self, forKey: .inputAudio)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("input_audio", forKey: .type)
        try c.encode(inputAudio, forKey: .inputAudio)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `{"type": "file", "file": {"file_id" | "file_data", "filename"}}` content part.
public struct FilePart: Sendable, Hashable, Codable {
    /// A file given by id or inline as base64 data.
    public struct File: Sendable, Hashable, Codable {
        public var fileID: String?
        public var fileData: String?
        public var filename: String?

        public init(fileID: String? = nil, fileData: String? = nil, filename: String? = nil) {
            self.fileID = fileID
            self.fileData = fileData
            self.filename = filename
        }

        enum CodingKeys: String, CodingKey {
            case fileID = "file_id"
            case fileData = "file_data"
            case filename
        }
    }

    public var file: File
    public var additionalFields: [String: JSONValue]

    public init(file: File, additionalFields: [String: JSONValue] = [:]) {
        self.file = file
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, file }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        file = try c.decode(File.self, forKey: .file)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("file", forKey: .type)
        try c.encode(file, forKey: .file)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}
