import Foundation

/// The `GET /v1/models` response: `{"object": "list", "data": [...]}`.
public struct ModelList: Sendable, Hashable, Codable {
    /// One model a client may call.
    public struct Model: Sendable, Hashable, Codable {
        public var id: String
        public var object: String
        public var created: Int64
        public var ownedBy: String

        public init(id: String, created: Int64, ownedBy: String) {
            self.id = id
            self.object = "model"
            self.created = created
            self.ownedBy = ownedBy
        }

        enum CodingKeys: String, CodingKey {
            case id, object, created
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
