import Foundation
package import Logging
import NIOCore
import PostgresNIO

/// Vectors in PostgreSQL with pgvector.
///
/// **One table per collection** (`lisa_vec_<name>`), so each gets a `vector(n)` column of
/// its own dimension and an HNSW index with its metric's operator class
/// (`vector_cosine_ops`, `vector_l2_ops`, `vector_ip_ops`); `lisa_vector_collections`
/// lists them. Embeddings travel in pgvector's binary format. Each table also has a
/// generated `tsvector` (GIN-indexed) for hybrid search — the vector ranking and the
/// full-text ranking fused by reciprocal rank (k = 60) — and a GIN index on the JSONB
/// metadata for filters (`metadata @> filter`).
///
/// HNSW is approximate: `efSearch` (default 40) trades recall for speed per query, `m`
/// (16) and `efConstruction` (64) apply when a collection is created. A filter is applied
/// to the index's candidates, so a very selective filter can return fewer than `topK`
/// (raise `efSearch`).
public final class PGVectorStore: VectorStore {
    public struct IndexConfiguration: Sendable, Hashable, Codable {
        public var m: Int
        public var efConstruction: Int
        public var efSearch: Int

        public init(m: Int = 16, efConstruction: Int = 64, efSearch: Int = 40) {
            self.m = m
            self.efConstruction = efConstruction
            self.efSearch = efSearch
        }
    }

    package let database: PostgresDatabase
    public let index: IndexConfiguration
    private let vectorType: PostgresDataType
    private let logger: Logger

    private init(database: PostgresDatabase, index: IndexConfiguration, vectorType: PostgresDataType, logger: Logger) {
        self.database = database
        self.index = index
        self.vectorType = vectorType
        self.logger = logger
    }

    /// Prepares pgvector on `database` (`CREATE EXTENSION IF NOT EXISTS vector`, which
    /// needs the right to create it the first time) and the collections catalog.
    package static func open(database: PostgresDatabase, index: IndexConfiguration = IndexConfiguration(), logger: Logger) async throws
        -> PGVectorStore
    {
        guard (2...100).contains(index.m), (4...1000).contains(index.efConstruction), (1...1000).contains(index.efSearch) else {
            throw LISAError.invalidRequest("pgvector index settings out of range (m 2-100, efConstruction 4-1000, efSearch 1-1000).")
        }
        try await database.transaction { db in
            try await db.query("SELECT pg_advisory_xact_lock(?)", [.integer(0x4C49_5341_0003)])
            try await db.query("CREATE EXTENSION IF NOT EXISTS vector")
            try await db.query(
                """
                CREATE TABLE IF NOT EXISTS lisa_vector_collections (
                    name TEXT PRIMARY KEY NOT NULL, dimension INTEGER NOT NULL, metric TEXT NOT NULL
                )
                """
            )
        }
        guard let oid = try await database.query("SELECT oid::int8 AS oid FROM pg_type WHERE typname = 'vector'").first?["oid"].int else {
            throw LISAError.internalError("pgvector's vector type is missing after CREATE EXTENSION.")
        }
        return PGVectorStore(database: database, index: index, vectorType: PostgresDataType(UInt32(oid)), logger: logger)
    }

    static func table(_ name: String) -> String { "\"lisa_vec_\(name)\"" }

    private static func operatorClass(_ metric: DistanceMetric) -> String {
        switch metric {
        case .cosine: "vector_cosine_ops"
        case .l2: "vector_l2_ops"
        case .innerProduct: "vector_ip_ops"
        }
    }

    /// The distance operator and the score (higher is closer) it becomes.
    private static func scoring(_ metric: DistanceMetric) -> (order: String, score: String) {
        switch metric {
        case .cosine: ("embedding <=> $1", "1 - (embedding <=> $1)")
        case .l2: ("embedding <-> $1", "-(embedding <-> $1)")
        case .innerProduct: ("embedding <#> $1", "-(embedding <#> $1)")
        }
    }

    // MARK: - VectorStore

    public func createCollection(_ collection: VectorCollection) async throws {
        try collection.validate()
        guard collection.dimension <= 2000 else {
            throw LISAError.invalidRequest("pgvector indexes vectors of up to 2000 dimensions.", param: "dimension")
        }
        let table = Self.table(collection.name)
        let index = self.index
        try await database.transaction { db in
            try await db.query("SELECT pg_advisory_xact_lock(?)", [.integer(0x4C49_5341_0003)])
            if let row = try await db.query("SELECT dimension, metric FROM lisa_vector_collections WHERE name = ?", [.text(collection.name)]).first {
                let existing = VectorCollection(
                    name: collection.name, dimension: row["dimension"].int ?? 0,
                    metric: row["metric"].string.flatMap(DistanceMetric.init(rawValue:)) ?? .cosine
                )
                guard existing == collection else { throw Self.conflict(existing) }
                return
            }
            try await db.query(
                "INSERT INTO lisa_vector_collections (name, dimension, metric) VALUES (?, ?, ?)",
                [.text(collection.name), .integer(Int64(collection.dimension)), .text(collection.metric.rawValue)]
            )
            // Identifiers cannot be bound; the name is validated to [a-z0-9_-] and quoted.
            try await db.query(
                """
                CREATE TABLE \(table) (
                    id TEXT PRIMARY KEY NOT NULL, document_id TEXT NOT NULL, text TEXT NOT NULL, metadata JSONB NOT NULL,
                    embedding vector(\(collection.dimension)) NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
                )
                """
            )
            try await db.query("CREATE INDEX ON \(table) (document_id)")
            try await db.query(
                "CREATE INDEX ON \(table) USING hnsw (embedding \(Self.operatorClass(collection.metric))) WITH (m = \(index.m), ef_construction = \(index.efConstruction))"
            )
            try await db.query("CREATE INDEX ON \(table) USING gin (tsv)")
            try await db.query("CREATE INDEX ON \(table) USING gin (metadata jsonb_path_ops)")
        }
    }

    public func collections() async throws -> [VectorCollection] {
        try await database.query("SELECT name, dimension, metric FROM lisa_vector_collections ORDER BY name").compactMap { row in
            guard let name = row["name"].string, let dimension = row["dimension"].int,
                let metric = row["metric"].string.flatMap(DistanceMetric.init(rawValue:))
            else { return nil }
            return VectorCollection(name: name, dimension: dimension, metric: metric)
        }
    }

    private func collection(_ name: String) async throws -> VectorCollection {
        guard VectorCollection.isValidName(name),
            let row = try await database.query("SELECT dimension, metric FROM lisa_vector_collections WHERE name = ?", [.text(name)]).first
        else { throw Self.missing(name) }
        return VectorCollection(
            name: name, dimension: row["dimension"].int ?? 0, metric: row["metric"].string.flatMap(DistanceMetric.init(rawValue:)) ?? .cosine
        )
    }

    @discardableResult
    public func dropCollection(_ name: String) async throws -> Bool {
        guard VectorCollection.isValidName(name) else { return false }
        return try await database.transaction { db in
            let removed = try await db.query("DELETE FROM lisa_vector_collections WHERE name = ? RETURNING name", [.text(name)])
            guard !removed.isEmpty else { return false }
            try await db.query("DROP TABLE IF EXISTS \(Self.table(name))")
            return true
        }
    }

    public func upsert(_ chunks: [VectorChunk], into collection: String) async throws {
        try await write(chunks, into: collection, replacing: nil)
    }

    public func replaceDocument(_ documentId: String, with chunks: [VectorChunk], in collection: String) async throws {
        try chunks.requireAllBelong(to: documentId)
        try await write(chunks, into: collection, replacing: documentId)
    }

    private func write(_ chunks: [VectorChunk], into name: String, replacing documentId: String?) async throws {
        let collection = try await collection(name)
        try Self.check(chunks, against: collection)
        let table = Self.table(name)
        let vectorType = self.vectorType
        let logger = self.logger
        // A large document's rows and index updates take longer than one statement.
        let database = self.database
        try await database.bounded(atLeast: .seconds(120)) {
            try await database.client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                do {
                    if let documentId {
                        var bindings = PostgresBindings()
                        bindings.append(documentId)
                        try await connection.query(
                            PostgresQuery(unsafeSQL: "DELETE FROM \(table) WHERE document_id = $1", binds: bindings), logger: logger)
                    }
                    // Up to 200 rows per statement: one round trip per batch, not per chunk.
                    for batch in stride(from: 0, to: chunks.count, by: 200).map({ chunks[$0..<min($0 + 200, chunks.count)] }) {
                        var bindings = PostgresBindings(capacity: batch.count * 5)
                        var tuples: [String] = []
                        for (offset, chunk) in batch.enumerated() {
                            let base = offset * 5
                            tuples.append("($\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4)::jsonb, $\(base + 5))")
                            bindings.append(chunk.id)
                            bindings.append(chunk.documentId)
                            bindings.append(chunk.text)
                            bindings.append(String(decoding: try JSONEncoder().encode(chunk.metadata), as: UTF8.self))
                            bindings.append(PGVector(type: vectorType, values: chunk.embedding))
                        }
                        try await connection.query(
                            PostgresQuery(
                                unsafeSQL: """
                                    INSERT INTO \(table) (id, document_id, text, metadata, embedding) VALUES \(tuples.joined(separator: ", "))
                                    ON CONFLICT (id) DO UPDATE SET document_id = excluded.document_id, text = excluded.text,
                                        metadata = excluded.metadata, embedding = excluded.embedding
                                    """,
                                binds: bindings
                            ),
                            logger: logger
                        )
                    }
                    try await connection.query("COMMIT", logger: logger)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    @discardableResult
    public func deleteDocument(_ documentId: String, from name: String) async throws -> Int {
        _ = try await collection(name)
        return try await database.query("DELETE FROM \(Self.table(name)) WHERE document_id = ? RETURNING id", [.text(documentId)]).count
    }

    public func count(in name: String) async throws -> Int {
        _ = try await collection(name)
        return try await database.query("SELECT count(*)::int8 AS n FROM \(Self.table(name))").first?["n"].int ?? 0
    }

    public func search(_ query: VectorQuery, in name: String) async throws -> [VectorMatch] {
        let collection = try await collection(name)
        try Self.check(query, against: collection)
        let table = Self.table(name)
        let (order, score) = Self.scoring(collection.metric)
        var bindings = PostgresBindings()
        bindings.append(PGVector(type: vectorType, values: query.embedding))
        var filter = "TRUE"
        if !query.filter.isEmpty {
            bindings.append(String(decoding: try JSONEncoder().encode(query.filter), as: UTF8.self))
            filter = "metadata @> $2::jsonb"
        }
        let sql: String
        if let text = query.text, !text.trimmingCharacters(in: .whitespaces).isEmpty {
            bindings.append(text)
            let textParameter = "$\(bindings.count)"
            let depth = max(query.topK * 4, 60)
            sql = """
                WITH v AS (
                    SELECT id, row_number() OVER (ORDER BY \(order)) AS r FROM \(table) WHERE \(filter) ORDER BY \(order) LIMIT \(depth)
                ), q AS (SELECT plainto_tsquery('simple', \(textParameter)) AS q),
                f AS (
                    SELECT id, row_number() OVER (ORDER BY ts_rank(tsv, q.q) DESC) AS r FROM \(table), q
                    WHERE tsv @@ q.q AND \(filter) ORDER BY ts_rank(tsv, q.q) DESC LIMIT \(depth)
                )
                SELECT t.id, t.document_id, t.text, t.metadata::text AS metadata,
                    (COALESCE(1.0 / (60 + v.r), 0) + COALESCE(1.0 / (60 + f.r), 0))::float8 AS score
                FROM (SELECT id FROM v UNION SELECT id FROM f) ids
                JOIN \(table) t USING (id) LEFT JOIN v USING (id) LEFT JOIN f USING (id)
                ORDER BY score DESC, t.id LIMIT \(query.topK)
                """
        } else {
            sql = """
                SELECT id, document_id, text, metadata::text AS metadata, (\(score))::float8 AS score
                FROM \(table) WHERE \(filter) ORDER BY \(order) LIMIT \(query.topK)
                """
        }
        let efSearch = max(index.efSearch, query.topK)
        let logger = self.logger
        let database = self.database
        let statement = PostgresQuery(unsafeSQL: sql, binds: bindings)
        let rows = try await database.bounded {
            try await database.client.withConnection { connection in
                // SET LOCAL needs a transaction; it ends with it, so the pooled connection is clean.
                try await connection.query("BEGIN", logger: logger)
                do {
                    try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL hnsw.ef_search = \(efSearch)"), logger: logger)
                    let rows = try await PostgresDatabase.collect(
                        try await connection.query(statement, logger: logger)
                    )
                    try await connection.query("COMMIT", logger: logger)
                    return rows
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
        return try rows.compactMap { row in
            guard let id = row["id"].string, let documentId = row["document_id"].string, let text = row["text"].string,
                let metadata = row["metadata"].string, let value = row["score"].double
            else { return nil }
            let score = Float(value)
            if let threshold = query.scoreThreshold, score < threshold { return nil }
            return VectorMatch(
                id: id, documentId: documentId, text: text,
                metadata: try JSONDecoder().decode([String: JSONValue].self, from: Data(metadata.utf8)), score: score
            )
        }
    }

    public func close() async throws {}
}

/// A pgvector `vector` in its binary wire format: dimension (int16), unused (int16), then
/// each value as a big-endian float4.
struct PGVector: PostgresDynamicTypeEncodable {
    let type: PostgresDataType
    let values: [Float]

    var psqlType: PostgresDataType { type }
    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(Int16(values.count))
        buffer.writeInteger(Int16(0))
        for value in values { buffer.writeInteger(value.bitPattern) }
    }
}
