import Foundation

/// OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`.
public struct ErrorResponse: Sendable, Hashable, Codable {
    /// The error itself.
    public struct Body: Sendable, Hashable, Codable {
        public var message: String
        public var type: String
        public var param: String?
        /// A machine-readable code; some servers send numbers, which decode as their decimal text.
        public var code: String?

        public init(message: String, type: String, param: String? = nil, code: String? = nil) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
            type = try c.decodeIfPresent(String.self, forKey: .type) ?? "error"
            param = try? c.decodeIfPresent(String.self, forKey: .param)
            if let text = try? c.decodeIfPresent(String.self, forKey: .code) {
                code = text
            } else if let number = try? c.decodeIfPresent(Int.self, forKey: .code) {
                code = String(number)
            } else {
                code = nil
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            // OpenAI always sends these two members, null when unset; clients rely on it.
            try c.encode(param, forKey: .param)
            try c.encode(code, forKey: .code)
        }
    }

    public var error: Body

    public init(error: Body) {
        self.error = error
    }
}
