import Foundation

/// The author role of a chat message. Unknown roles are kept in ``other(_:)``.
public enum MessageRole: OpenStringEnum {
    case system, developer, user, assistant, tool, function
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "system": self = .system
        case "developer": self = .developer
        case "user": self = .user
        case "assistant": self = .assistant
        case "tool": self = .tool
        case "function": self = .function
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .system: "system"
        case .developer: "developer"
        case .user: "user"
        case .assistant: "assistant"
        case .tool: "tool"
        case .function: "function"
        case .other(let value): value
        }
    }
}

/// One message of a chat conversation, discriminated by its `role`.
public enum ChatMessage: Sendable, Hashable, Codable {
    case system(SystemMessage)
    case developer(DeveloperMessage)
    case user(UserMessage)
    case assistant(AssistantMessage)
    case tool(ToolMessage)
    /// A message whose role this library does not model (for example the deprecated `function`),
    /// kept as its JSON members.
    case other(role: String, fields: [String: JSONValue])

    private enum RoleKey: String, CodingKey { case role }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: RoleKey.self)
        let role = try container.decode(String.self, forKey: .role)
        switch role {
        case "system": self = .system(try SystemMessage(from: decoder))
        case "developer": self = .developer(try DeveloperMessage(from: decoder))
        case "user": self = .user(try UserMessage(from: decoder))
        case "assistant": self = .assistant(try AssistantMessage(from: decoder))
        case "tool": self = .tool(try ToolMessage(from: decoder))
        default: self = .other(role: role, fields: try [String: JSONValue](from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .system(let message): try message.encode(to: encoder)
        case .developer(let message): try message.encode(to: encoder)
        case .user(let message): try message.encode(to: encoder)
        case .assistant(let message): try message.encode(to: encoder)
        case .tool(let message): try message.encode(to: encoder)
        case .other(_, let fields): try fields.encode(to: encoder)
        }
    }

    /// The message's role.
    public var role: MessageRole {
        switch self {
        case .system: .system
        case .developer: .developer
        case .user: .user
        case .assistant: .assistant
        case .tool: .tool
        case .other(let role, _): MessageRole(rawValue: role)
        }
    }
}

/// The shape shared by `system`, `developer` and `user` messages: content and an optional name.
public protocol ContentMessage: Sendable, Hashable, Codable {
    /// The value of the `role` member.
    static var role: String { get }
    var content: MessageContent { get set }
    var name: String? { get set }
    var additionalFields: [String: JSONValue] { get set }
    init(content: MessageContent, name: String?, additionalFields: [String: JSONValue])
}

enum ContentMessageCodingKeys: String, CodingKey, CaseIterable { case role, content, name }

extension ContentMessage {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: ContentMessageCodingKeys.self)
        self.init(
            content: try c.decode(MessageContent.self, forKey: .content),
            name: try c.decodeIfPresent(String.self, forKey: .name),
            additionalFields: try decoder.additionalFields(excluding: ContentMessageCodingKeys.self)
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ContentMessageCodingKeys.self)
        try c.encode(Self.role, forKey: .role)
        try c.encode(content, forKey: .content)
        try c.encodeIfPresent(name, forKey: .name)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `system` message: instructions for the model.
public struct SystemMessage: ContentMessage {
    public static let role = "system"
    public var content: MessageContent
    public var name: String?
    public var additionalFields: [String: JSONValue]

    public init(content: MessageContent, name: String? = nil, additionalFields: [String: JSONValue] = [:]) {
        self.content = content
        self.name = name
        self.additionalFields = additionalFields
    }
}

/// A `developer` message: instructions that take precedence over user messages (newer OpenAI models).
public struct DeveloperMessage: ContentMessage {
    public static let role = "developer"
    public var content: MessageContent
    public var name: String?
    public var additionalFields: [String: JSONValue]

    public init(content: MessageContent, name: String? = nil, additionalFields: [String: JSONValue] = [:]) {
        self.content = content
        self.name = name
        self.additionalFields = additionalFields
    }
}

/// A `user` message: text, images, audio or files from the end user.
public struct UserMessage: ContentMessage {
    public static let role = "user"
    public var content: MessageContent
    public var name: String?
    public var additionalFields: [String: JSONValue]

    public init(content: MessageContent, name: String? = nil, additionalFields: [String: JSONValue] = [:]) {
        self.content = content
        self.name = name
        self.additionalFields = additionalFields
    }
}

/// An `assistant` message: a previous model answer, possibly with tool calls.
///
/// The same type is the `message` of a non-streaming ``ChatCompletion`` choice.
public struct AssistantMessage: Sendable, Hashable, Codable {
    public var content: MessageContent?
    public var refusal: String?
    public var name: String?
    public var toolCalls: [ToolCall]?
    /// The deprecated `function_call` member, kept as sent.
    public var functionCall: JSONValue?
    /// Audio output of an audio-capable model, kept as sent.
    public var audio: JSONValue?
    /// Members this library does not model (for example vLLM's `reasoning_content`).
    public var additionalFields: [String: JSONValue]

    public init(
        content: MessageContent? = nil,
        refusal: String? = nil,
        name: String? = nil,
        toolCalls: [ToolCall]? = nil,
        functionCall: JSONValue? = nil,
        audio: JSONValue? = nil,
        additionalFields: [String: JSONValue] = [:]
    ) {
        self.content = content
        self.refusal = refusal
        self.name = name
        self.toolCalls = toolCalls
        self.functionCall = functionCall
        self.audio = audio
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case role, content, refusal, name, audio
        case toolCalls = "tool_calls"
        case functionCall = "function_call"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        content = try c.decodeIfPresent(MessageContent.self, forKey: .content)
        refusal = try c.decodeIfPresent(String.self, forKey: .refusal)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls)
        functionCall = try c.decodeIfPresent(JSONValue.self, forKey: .functionCall)
        audio = try c.decodeIfPresent(JSONValue.self, forKey: .audio)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("assistant", forKey: .role)
        // OpenAI sends `"content": null` on tool-call answers; keep the member present.
        try c.encode(content, forKey: .content)
        try c.encodeIfPresent(refusal, forKey: .refusal)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(toolCalls, forKey: .toolCalls)
        try c.encodeIfPresent(functionCall, forKey: .functionCall)
        try c.encodeIfPresent(audio, forKey: .audio)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A `tool` message: the result of a tool call, linked by `tool_call_id`.
public struct ToolMessage: Sendable, Hashable, Codable {
    public var content: MessageContent
    public var toolCallID: String
    public var additionalFields: [String: JSONValue]

    public init(content: MessageContent, toolCallID: String, additionalFields: [String: JSONValue] = [:]) {
        self.content = content
        self.toolCallID = toolCallID
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case role, content
        case toolCallID = "tool_call_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        content = try c.decode(MessageContent.self, forKey: .content)
        toolCallID = try c.decode(String.self, forKey: .toolCallID)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("tool", forKey: .role)
        try c.encode(content, forKey: .content)
        try c.encode(toolCallID, forKey: .toolCallID)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}

/// A tool call made by the model: `{"id", "type": "function", "function": {"name", "arguments"}}`.
public struct ToolCall: Sendable, Hashable, Codable {
    /// The function to call and its arguments as a JSON-encoded string.
    public struct Function: Sendable, Hashable, Codable {
        public var name: String
        public var arguments: String

        public init(name: String, arguments: String) {
            self.name = name
            self.arguments = arguments
        }
    }

    public var id: String
    /// `function` for every tool call OpenAI documents; kept open.
    public var type: String
    public var function: Function?
    public var additionalFields: [String: JSONValue]

    public init(id: String, type: String = "function", function: Function?, additionalFields: [String: JSONValue] = [:]) {
        self.id = id
        self.type = type
        self.function = function
        self.additionalFields = additionalFields
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case id, type, function }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "function"
        function = try c.decodeIfPresent(Function.self, forKey: .function)
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(function, forKey: .function)
        try encoder.encodeAdditionalFields(additionalFields)
    }
}
