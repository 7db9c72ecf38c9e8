/// How much each user may keep in LISA's state (`quotas:` in the configuration file). A
/// save or upload past a quota is refused (413 for bytes, 429 for counts) and nothing stored
/// is touched. Administrators are held to them too; raise them for everyone instead.
///
/// The checks read the user's current usage before writing, so concurrent writes by one
/// user can pass a quota by at most the writes in flight.
public struct StorageQuotas: Sendable, Hashable, Codable {
    /// Chat sessions per user. Default 1000.
    public var maxSessionsPerUser: Int = 1000
    /// Characters of all of a user's sessions together. Default 256 Mi.
    public var maxSessionBytesPerUser: Int = 256 * 1024 * 1024
    /// Prompt templates a user owns. Default 500.
    public var maxTemplatesPerUser: Int = 500
    /// RAG documents a user owns, across repositories. Default 10000.
    public var maxDocumentsPerUser: Int = 10_000
    /// Ingestion jobs of one user waiting or running at once. Default 20.
    public var maxPendingJobsPerUser: Int = 20
    /// Stored Responses API responses per user; past it the oldest make room. Default 10000.
    public var maxStoredResponsesPerUser: Int = 10_000
    /// Characters of a user's stored responses together (each holds its conversation);
    /// past it the oldest make room. Default 256 Mi.
    public var maxStoredResponseBytesPerUser: Int = 256 * 1024 * 1024
    /// Bytes of one stored response with its input items and conversation: a request whose
    /// input and conversation alone pass it is refused (413 `stored_response_too_large`)
    /// before it is sent; one whose answer takes it past is answered but not stored.
    /// Default 8 Mi.
    public var maxStoredResponseBytes: Int = 8 * 1024 * 1024

    public init() {}

    enum CodingKeys: String, CodingKey {
        case maxSessionsPerUser, maxSessionBytesPerUser, maxTemplatesPerUser, maxDocumentsPerUser, maxPendingJobsPerUser
        case maxStoredResponsesPerUser, maxStoredResponseBytesPerUser, maxStoredResponseBytes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = StorageQuotas()
        maxSessionsPerUser = try c.decodeIfPresent(Int.self, forKey: .maxSessionsPerUser) ?? defaults.maxSessionsPerUser
        maxSessionBytesPerUser = try c.decodeIfPresent(Int.self, forKey: .maxSessionBytesPerUser) ?? defaults.maxSessionBytesPerUser
        maxTemplatesPerUser = try c.decodeIfPresent(Int.self, forKey: .maxTemplatesPerUser) ?? defaults.maxTemplatesPerUser
        maxDocumentsPerUser = try c.decodeIfPresent(Int.self, forKey: .maxDocumentsPerUser) ?? defaults.maxDocumentsPerUser
        maxPendingJobsPerUser = try c.decodeIfPresent(Int.self, forKey: .maxPendingJobsPerUser) ?? defaults.maxPendingJobsPerUser
        maxStoredResponsesPerUser = try c.decodeIfPresent(Int.self, forKey: .maxStoredResponsesPerUser) ?? defaults.maxStoredResponsesPerUser
        maxStoredResponseBytesPerUser =
            try c.decodeIfPresent(Int.self, forKey: .maxStoredResponseBytesPerUser) ?? defaults.maxStoredResponseBytesPerUser
        maxStoredResponseBytes = try c.decodeIfPresent(Int.self, forKey: .maxStoredResponseBytes) ?? defaults.maxStoredResponseBytes
    }

    /// Checks every limit is positive.
    public func validate() throws(ConfigurationError) {
        for (name, value) in [
            ("maxSessionsPerUser", maxSessionsPerUser), ("maxSessionBytesPerUser", maxSessionBytesPerUser),
            ("maxTemplatesPerUser", maxTemplatesPerUser), ("maxDocumentsPerUser", maxDocumentsPerUser),
            ("maxPendingJobsPerUser", maxPendingJobsPerUser), ("maxStoredResponsesPerUser", maxStoredResponsesPerUser),
            ("maxStoredResponseBytesPerUser", maxStoredResponseBytesPerUser), ("maxStoredResponseBytes", maxStoredResponseBytes),
        ] where value < 1 {
            throw ConfigurationError("quotas.\(name) must be at least 1")
        }
    }
}

/// How many records of a kind a parent holds and their size in characters.
public struct RecordUsage: Sendable, Hashable {
    public var count: Int
    public var characters: Int

    public init(count: Int, characters: Int) {
        self.count = count
        self.characters = characters
    }
}
