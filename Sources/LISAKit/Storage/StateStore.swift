import Foundation

/// Where LISA keeps what must survive a restart: registered models and settings such as
/// the admin key's hash.
///
/// Implementations: ``SQLiteStateStore`` (the default, a file in the data directory) and
/// ``MemoryStateStore`` (tests, embedding). All methods are safe to call concurrently.
public protocol StateStore: Sendable {
    /// Every model registered through the API, in no particular order.
    func models() async throws -> [ModelDefinition]

    /// The model with this id, or `nil`.
    func model(id: String) async throws -> ModelDefinition?

    /// Stores a new model; throws ``LISAError/conflict(_:code:)`` when the id is taken.
    func insertModel(_ model: ModelDefinition) async throws

    /// Removes a model; returns whether it existed.
    func deleteModel(id: String) async throws -> Bool

    /// A stored setting, or `nil`.
    func setting(_ key: String) async throws -> String?

    /// Stores a setting, replacing any previous value.
    func setSetting(_ key: String, to value: String) async throws

    /// Stores a new API token (its hash, never its secret).
    func insertToken(_ token: APIToken) async throws

    /// The token whose secret hashes to `hash`, or `nil`.
    func token(hash: String) async throws -> APIToken?

    /// The token with this public id, or `nil`.
    func token(id: String) async throws -> APIToken?

    /// Every token, or those of one user.
    func tokens(username: String?) async throws -> [APIToken]

    /// Removes a token; returns whether it existed.
    func deleteToken(id: String) async throws -> Bool

    /// Releases the store's resources. Calls after this fail.
    func close() async throws
}

/// A ``StateStore`` in memory, for tests and short-lived embedding. Nothing survives the process.
public actor MemoryStateStore: StateStore {
    private var storedModels: [String: ModelDefinition] = [:]
    private var settings: [String: String] = [:]
    private var storedTokens: [String: APIToken] = [:]

    public init() {}

    public func models() -> [ModelDefinition] { Array(storedModels.values) }

    public func model(id: String) -> ModelDefinition? { storedModels[id] }

    public func insertModel(_ model: ModelDefinition) throws {
        guard storedModels[model.modelId] == nil else {
            throw LISAError.conflict("A model with modelId '\(model.modelId)' already exists.", code: "model_exists")
        }
        storedModels[model.modelId] = model
    }

    public func deleteModel(id: String) -> Bool { storedModels.removeValue(forKey: id) != nil }

    public func setting(_ key: String) -> String? { settings[key] }

    public func setSetting(_ key: String, to value: String) { settings[key] = value }

    public func insertToken(_ token: APIToken) { storedTokens[token.id] = token }

    public func token(hash: String) -> APIToken? { storedTokens.values.first { $0.tokenHash == hash } }

    public func token(id: String) -> APIToken? { storedTokens[id] }

    public func tokens(username: String?) -> [APIToken] {
        storedTokens.values.filter { username == nil || $0.username == username }.sorted { $0.createdAt < $1.createdAt }
    }

    public func deleteToken(id: String) -> Bool { storedTokens.removeValue(forKey: id) != nil }

    public func close() {}
}
