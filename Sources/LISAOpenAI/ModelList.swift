import Foundation

/// The `GET /v1/models` response: `{"object": "list", "data": [...]}`.
public struct ModelList: Sendable, Hashable, Codable {
    /// One model a client may call.
    public struct Model: Sendable, Hashable, Codable {
        public var id: String
        public var object: String
        public var created: Int64
        public var ownedBy: String
        /// LISA's additions (absent from other servers' lists): what kind of model it is.
        public var lisa: Details?

        /// LISA's description of a listed model.
        public struct Details: Sendable, Hashable, Codable {
            /// `textgen`, `embedding` or `imagegen`.
            public var modelType: String
            /// Whether it answers `stream: true`.
            public var streaming: Bool
            /// Whether it can take requests now: `healthy`, `unknown` (not answered yet),
            /// `degraded` or `down` (no endpoint can); `nil` from servers that predate it.
            public var health: String?

            public init(modelType: String, streaming: Bool, health: String? = nil) {
                self.modelType = modelType
                self.streaming = streaming
                self.health = health
            }
        }

        public init(id: String, created: Int64, ownedBy: String, lisa: Details? = nil) {
            self.id = id
            self.object = "model"
            self.created = created
            self.ownedBy = ownedBy
            self.lisa = lisa
        }

        enum CodingKeys: String, CodingKey {
            case id, object, created, lisa
            case ownedBy = "owned_by"
        }
    }

    public var object: String
    public var data: [Model]

    public init(data: [Model]) {
        self.object = "list"
        self.data = data
    }
}
