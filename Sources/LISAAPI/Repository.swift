public import Foundation
import LISAOpenAI

/// Which vector store a repository lives on.
public enum RepositoryType: String, Sendable, Codable, CaseIterable {
    public init(from decoder: any Decoder) throws { self = try Self.decodeChoice(from: decoder) }

    /// The embedded store in the data directory (the default with SQLite state; refused
    /// with PostgreSQL state, where the other replicas could not read it).
    case embedded
    /// PostgreSQL with pgvector (the state database unless `pgvector.url` says otherwise).
    case pgvector
    /// OpenSearch's k-NN plugin (`opensearch.url`, credentials, CA).
    case opensearch
}

/// A RAG repository, with LISA's field names.
public struct RAGRepository: Sendable, Hashable, Codable {
    public var repositoryId: String
    public var repositoryName: String?
    public var type: RepositoryType
    /// The embedding model (a `modelId` of type `embedding`) every collection uses unless it names its own.
    public var embeddingModelId: String
    /// Groups whose members may search and add documents; empty: everyone who may call inference.
    public var allowedGroups: [String]
    /// Default chunking of the repository's collections.
    public var chunkSize: Int?
    public var chunkOverlap: Int?
    /// The cluster of an `opensearch` repository.
    public var opensearch: OpenSearchConfiguration?
    /// The database of a `pgvector` repository, when it is not the state database.
    public var pgvector: PGVectorConfiguration?
    public var createdBy: String?
    public var createdAt: Date?
    /// Whether the request left `type` out (the server picks the default store).
    package var typeIsDefault = false

    /// Which store instance serves a repository: the same id and cluster settings.
    package struct ID: Hashable, Sendable {
        package var repositoryId: String
        package var settings: OpenSearchConfiguration

        package init(repositoryId: String, settings: OpenSearchConfiguration) {
            self.repositoryId = repositoryId
            self.settings = settings
        }
    }

    /// A copy safe to show: the OpenSearch password masked.
    public func redacted() -> RAGRepository {
        var copy = self
        copy.opensearch = opensearch?.redacted()
        copy.pgvector = pgvector?.redacted()
        return copy
    }

    /// - Parameter type: `nil` lets the service pick its default store (embedded with SQLite
    ///   state, pgvector with PostgreSQL state).
    public init(repositoryId: String, type: RepositoryType? = nil, embeddingModelId: String, allowedGroups: [String] = []) {
        self.repositoryId = repositoryId
        self.type = type ?? .embedded
        self.typeIsDefault = type == nil
        self.embeddingModelId = embeddingModelId
        self.allowedGroups = allowedGroups
    }

    enum CodingKeys: String, CodingKey {
        case repositoryId, repositoryName, type, embeddingModelId, allowedGroups, chunkSize, chunkOverlap, opensearch, pgvector, createdBy,
            createdAt
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(repositoryId, forKey: .repositoryId)
        try c.encodeIfPresent(repositoryName, forKey: .repositoryName)
        // Left out when the caller left it out, so the server picks its default store.
        if !typeIsDefault { try c.encode(type, forKey: .type) }
        try c.encode(embeddingModelId, forKey: .embeddingModelId)
        try c.encode(allowedGroups, forKey: .allowedGroups)
        try c.encodeIfPresent(chunkSize, forKey: .chunkSize)
        try c.encodeIfPresent(chunkOverlap, forKey: .chunkOverlap)
        try c.encodeIfPresent(opensearch, forKey: .opensearch)
        try c.encodeIfPresent(pgvector, forKey: .pgvector)
        try c.encodeIfPresent(createdBy, forKey: .createdBy)
        try c.encodeIfPresent(createdAt, forKey: .createdAt)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        repositoryId = try c.decode(String.self, forKey: .repositoryId)
        repositoryName = try c.decodeIfPresent(String.self, forKey: .repositoryName)
        let given = try c.decodeIfPresent(RepositoryType.self, forKey: .type)
        type = given ?? .embedded
        typeIsDefault = given == nil
        embeddingModelId = try c.decode(String.self, forKey: .embeddingModelId)
        allowedGroups = try c.decodeIfPresent([String].self, forKey: .allowedGroups) ?? []
        chunkSize = try c.decodeIfPresent(Int.self, forKey: .chunkSize)
        chunkOverlap = try c.decodeIfPresent(Int.self, forKey: .chunkOverlap)
        opensearch = try c.decodeIfPresent(OpenSearchConfiguration.self, forKey: .opensearch)
        pgvector = try c.decodeIfPresent(PGVectorConfiguration.self, forKey: .pgvector)
        createdBy = try c.decodeIfPresent(String.self, forKey: .createdBy)
        createdAt = try c.decodeIfPresent(Date.self, forKey: .createdAt)
    }

    /// Repository and collection ids: 1–30 of lowercase letters, digits, `_` and `-`
    /// (no `--`), starting with a letter or digit.
    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count <= 30 && !id.contains("--") && CollectionName.isValid(id)
    }

    package func validate() throws(LISAError) {
        guard Self.isValidID(repositoryId) else {
            throw .invalidRequest(
                "repositoryId must be 1-30 lowercase letters, digits, '_' or '-' (no '--'), starting with a letter or digit.",
                param: "repositoryId"
            )
        }
        if let pgvector {
            guard type == .pgvector || typeIsDefault else {
                throw .invalidRequest("pgvector settings belong to a repository of type pgvector.", param: "pgvector")
            }
            guard pgvector.url.hasPrefix("postgres://") || pgvector.url.hasPrefix("postgresql://") else {
                throw .invalidRequest("pgvector.url must be a postgres:// URL.", param: "pgvector.url")
            }
        }
        if type == .opensearch && opensearch == nil {
            throw .invalidRequest("An opensearch repository needs opensearch.url (and credentials if the cluster wants them).", param: "opensearch")
        }
        try chunking.validate()
    }

    /// The chunking of this repository's collections unless they set their own.
    public var chunking: ChunkingStrategy {
        .recursive(size: chunkSize ?? 512, overlap: chunkOverlap ?? (chunkSize.map { $0 / 10 } ?? 51))
    }
}

/// Where a `pgvector` repository keeps its vectors when it is not the state database: a
/// `postgres://` URL whose `sslmode` and `sslrootcert` work as for the state database.
public struct PGVectorConfiguration: Sendable, Hashable, Codable {
    public var url: String

    public init(url: String) { self.url = url }

    /// A copy with the URL's password masked, for the API.
    public func redacted() -> PGVectorConfiguration {
        guard var components = URLComponents(string: url), components.password != nil else { return self }
        components.password = "***"
        return PGVectorConfiguration(url: components.string ?? "(invalid URL)")
    }
}

/// A collection of a repository: its own embedding model and chunking, if it sets them.
public struct RAGCollection: Sendable, Hashable, Codable {
    public var collectionId: String
    public var repositoryId: String
    public var name: String?
    public var embeddingModelId: String?
    public var chunkSize: Int?
    public var chunkOverlap: Int?
    /// Fixed by the first embedding (the model's dimension).
    public var dimension: Int?
    public var createdBy: String?
    public var createdAt: Date?

    public init(collectionId: String, repositoryId: String) {
        self.collectionId = collectionId
        self.repositoryId = repositoryId
    }

    /// The vector store collection behind it.
    package var storeName: String { "\(repositoryId)--\(collectionId)" }
}

/// A document ingested into a collection.
public struct RAGDocument: Sendable, Hashable, Codable {
    public var documentId: String
    public var repositoryId: String
    public var collectionId: String
    public var documentName: String
    public var username: String
    public var chunks: Int
    public var chunkSize: Int?
    public var chunkOverlap: Int?
    public var createdAt: Date

    public init(
        documentId: String, repositoryId: String, collectionId: String, documentName: String, username: String, chunks: Int, chunkSize: Int? = nil,
        chunkOverlap: Int? = nil, createdAt: Date
    ) {
        self.documentId = documentId
        self.repositoryId = repositoryId
        self.collectionId = collectionId
        self.documentName = documentName
        self.username = username
        self.chunks = chunks
        self.chunkSize = chunkSize
        self.chunkOverlap = chunkOverlap
        self.createdAt = createdAt
    }
}

/// An ingestion job's status, with LISA's names.
public enum IngestionStatus: String, Sendable, Codable {
    case pending = "PENDING"
    case inProgress = "IN_PROGRESS"
    case completed = "COMPLETED"
    case failed = "FAILED"
}

/// A background ingestion: parse, chunk, embed, store — all or nothing.
public struct IngestionJob: Sendable, Hashable, Codable {
    public var jobId: String
    public var repositoryId: String
    public var collectionId: String
    public var documentId: String
    public var documentName: String
    public var username: String
    public var status: IngestionStatus
    public var reason: String?
    public var chunkSize: Int?
    public var chunkOverlap: Int?
    /// `recursive` (the default) or `none` (the whole document is one chunk).
    public var chunkingStrategy: String?
    public var chunks: Int?
    /// How many times ingestion has started (restarts included); bounded by `rag.ingestion.maxAttempts`.
    public var attempts: Int? = nil
    public var createdAt: Date
    public var updatedAt: Date

    package var chunking: ChunkingStrategy {
        chunkingStrategy == "none" ? .none : .recursive(size: chunkSize ?? 512, overlap: chunkOverlap ?? 51)
    }

    public init(
        jobId: String, repositoryId: String, collectionId: String, documentId: String, documentName: String, username: String,
        status: IngestionStatus, reason: String? = nil, chunkSize: Int? = nil, chunkOverlap: Int? = nil, chunkingStrategy: String? = nil,
        chunks: Int? = nil, attempts: Int? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.jobId = jobId
        self.repositoryId = repositoryId
        self.collectionId = collectionId
        self.documentId = documentId
        self.documentName = documentName
        self.username = username
        self.status = status
        self.reason = reason
        self.chunkSize = chunkSize
        self.chunkOverlap = chunkOverlap
        self.chunkingStrategy = chunkingStrategy
        self.chunks = chunks
        self.attempts = attempts
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A retrieved chunk as the API returns it.
public struct RAGSource: Sendable, Hashable, Codable {
    public var documentId: String
    public var documentName: String
    public var repositoryId: String
    public var collectionId: String
    public var chunkId: String
    public var text: String
    public var score: Float

    public init(documentId: String, documentName: String, repositoryId: String, collectionId: String, chunkId: String, text: String, score: Float) {
        self.documentId = documentId
        self.documentName = documentName
        self.repositoryId = repositoryId
        self.collectionId = collectionId
        self.chunkId = chunkId
        self.text = text
        self.score = score
    }
}
