import Foundation

/// How two embeddings are compared. Scores are always "higher is closer":
/// cosine similarity, the inner product, or the negated Euclidean distance.
public enum DistanceMetric: String, Sendable, Codable, CaseIterable {
    public init(from decoder: any Decoder) throws { self = try Self.decodeChoice(from: decoder) }

    case cosine
    case l2
    case innerProduct
}

/// A named set of chunks whose embeddings share a dimension and a metric.
public struct VectorCollection: Sendable, Hashable, Codable {
    public var name: String
    public var dimension: Int
    public var metric: DistanceMetric

    public init(name: String, dimension: Int, metric: DistanceMetric = .cosine) {
        self.name = name
        self.dimension = dimension
        self.metric = metric
    }

    /// Collection names: 1–64 of lowercase letters, digits, `_` and `-`, starting with a
    /// letter or digit (they become table and index names).
    public static func isValidName(_ name: String) -> Bool {
        CollectionName.isValid(name)
    }

    func validate() throws(LISAError) {
        guard Self.isValidName(name) else {
            throw .invalidRequest(
                "A collection name is 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit.", param: "collectionId"
            )
        }
        guard (1...16000).contains(dimension) else {
            throw .invalidRequest("dimension must be between 1 and 16000.", param: "dimension")
        }
    }
}

/// One piece of a document with its embedding.
extension Collection<VectorChunk> {
    /// Throws 400 unless every chunk belongs to `documentId` (what `replaceDocument` requires
    /// of every store).
    func requireAllBelong(to documentId: String) throws {
        guard allSatisfy({ $0.documentId == documentId }) else {
            throw LISAError.invalidRequest("Every chunk must belong to document '\(documentId)'.", param: "documentId")
        }
    }
}

public struct VectorChunk: Sendable, Hashable, Codable {
    /// Unique within the collection; upserting an existing id replaces it.
    public var id: String
    public var documentId: String
    public var text: String
    /// Free-form metadata; filters match its top-level members.
    public var metadata: [String: JSONValue]
    public var embedding: [Float]

    public init(id: String, documentId: String, text: String, metadata: [String: JSONValue] = [:], embedding: [Float]) {
        self.id = id
        self.documentId = documentId
        self.text = text
        self.metadata = metadata
        self.embedding = embedding
    }
}

/// A similarity search.
public struct VectorQuery: Sendable, Hashable {
    public var embedding: [Float]
    public var topK: Int
    /// Drop matches scoring below this.
    public var scoreThreshold: Float?
    /// Only chunks whose metadata has every one of these members with these values.
    public var filter: [String: JSONValue]
    /// For hybrid search (where the store supports it): the query's text, ranked by
    /// full-text search and fused with the vector ranking by reciprocal rank.
    public var text: String?

    public init(embedding: [Float], topK: Int = 3, scoreThreshold: Float? = nil, filter: [String: JSONValue] = [:], text: String? = nil) {
        self.embedding = embedding
        self.topK = topK
        self.scoreThreshold = scoreThreshold
        self.filter = filter
        self.text = text
    }
}

/// A chunk that matched (its embedding left out) and its score.
public struct VectorMatch: Sendable, Hashable, Codable {
    public var id: String
    public var documentId: String
    public var text: String
    public var metadata: [String: JSONValue]
    /// Higher is closer (see ``DistanceMetric``); for hybrid search the fused RRF score.
    public var score: Float
}

/// Where RAG keeps chunks and their embeddings. Drivers: ``EmbeddedVectorStore`` (the
/// default, in the data directory) and ``PGVectorStore`` (PostgreSQL with pgvector).
/// Every driver passes the same conformance tests.
public protocol VectorStore: Sendable {
    /// Creates a collection; creating an identical one again is a no-op, one with the same
    /// name and another dimension or metric a 409.
    func createCollection(_ collection: VectorCollection) async throws

    /// Every collection, by name.
    func collections() async throws -> [VectorCollection]

    /// Removes a collection and its chunks; returns whether it existed.
    @discardableResult
    func dropCollection(_ name: String) async throws -> Bool

    /// Inserts or replaces chunks (by id), all or none.
    func upsert(_ chunks: [VectorChunk], into collection: String) async throws

    /// Replaces every chunk of `documentId` with `chunks`, atomically: readers see the
    /// old chunks or the new ones, never a mix.
    func replaceDocument(_ documentId: String, with chunks: [VectorChunk], in collection: String) async throws

    /// Removes a document's chunks; returns how many went.
    @discardableResult
    func deleteDocument(_ documentId: String, from collection: String) async throws -> Int

    /// The `topK` closest chunks, best first.
    func search(_ query: VectorQuery, in collection: String) async throws -> [VectorMatch]

    /// How many chunks the collection holds.
    func count(in collection: String) async throws -> Int

    func close() async throws
}

extension VectorStore {
    /// Checks chunks against their collection: ids present, embedding dimension right.
    static func check(_ chunks: [VectorChunk], against collection: VectorCollection) throws(LISAError) {
        for (index, chunk) in chunks.enumerated() {
            guard !chunk.id.isEmpty, !chunk.documentId.isEmpty else {
                throw .invalidRequest("chunks[\(index)]: id and documentId must not be empty.", param: "chunks[\(index)].id")
            }
            guard chunk.embedding.count == collection.dimension else {
                throw .invalidRequest(
                    "chunks[\(index)]: the embedding has \(chunk.embedding.count) dimensions; collection '\(collection.name)' holds \(collection.dimension).",
                    param: "chunks[\(index)].embedding"
                )
            }
            guard chunk.embedding.allSatisfy(\.isFinite) else {
                throw .invalidRequest("chunks[\(index)]: the embedding has a non-finite value.", param: "chunks[\(index)].embedding")
            }
        }
    }

    static func check(_ query: VectorQuery, against collection: VectorCollection) throws(LISAError) {
        guard query.embedding.count == collection.dimension else {
            throw .invalidRequest(
                "The query embedding has \(query.embedding.count) dimensions; collection '\(collection.name)' holds \(collection.dimension).",
                param: "embedding"
            )
        }
        guard (1...1000).contains(query.topK) else { throw .invalidRequest("topK must be between 1 and 1000.", param: "topK") }
    }

    static func missing(_ name: String) -> LISAError {
        .notFound("The collection '\(name)' does not exist.", reason: "collection_not_found")
    }

    static func conflict(_ existing: VectorCollection) -> LISAError {
        .conflict(
            "The collection '\(existing.name)' exists with dimension \(existing.dimension) and metric \(existing.metric.rawValue).",
            reason: "collection_exists"
        )
    }
}

/// Metadata filtering shared by drivers that filter in Swift.
extension [String: JSONValue] {
    func matches(_ filter: [String: JSONValue]) -> Bool {
        filter.allSatisfy { key, value in self[key] == value }
    }
}
