import Foundation
public import Logging

/// Whether a state database (a restored one, typically) is complete for this build:
/// `LISAServe --check-database`.
///
/// Opens the configured database without migrating it, and checks that its schema version
/// is this build's, that every table LISA's migrations create exists (row counts are
/// reported), and that the vectors can be read: on PostgreSQL every pgvector collection
/// listed in `lisa_vector_collections` has its `lisa_vec_<name>` table and one of its
/// embeddings decodes (so the `vector` extension is there); on SQLite the embedded vector
/// store in the data directory opens and its collections' chunks are counted.
public struct StateDatabaseCheck: Sendable, Encodable {
    /// One table and its rows.
    public struct Table: Sendable, Encodable {
        public var name: String
        /// `nil` when the table is missing.
        public var rows: Int?
    }

    /// One vector collection and its rows.
    public struct Collection: Sendable, Encodable {
        public var name: String
        public var dimension: Int
        public var rows: Int?
    }

    /// `sqlite` or `postgres`.
    public var database: String
    public var schemaVersion: Int?
    public var expectedSchemaVersion: Int
    public var tables: [Table]
    public var vectorCollections: [Collection]
    /// What is wrong; empty when the database is complete.
    public var problems: [String]

    public var isComplete: Bool { problems.isEmpty }

    /// The tables this build's migrations create, and `lisa_schema`.
    static var expectedTables: [String] {
        var names = ["lisa_schema"]
        for statement in SQLStateStore.migrations.joined() {
            guard let range = statement.range(of: "CREATE TABLE IF NOT EXISTS ") else { continue }
            let name = statement[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            if !names.contains(String(name)) { names.append(String(name)) }
        }
        return names
    }

    /// Checks the database `configuration` names (PostgreSQL, or `lisa.sqlite` in the data directory).
    public static func run(_ configuration: LISAConfiguration, logger: Logger) async throws -> StateDatabaseCheck {
        if let url = configuration.databaseURL {
            let database = try await PostgresDatabase.connect(url: url, logger: logger)
            do {
                let check = try await run(database, dataDirectory: nil)
                try? await database.close()
                return check
            } catch {
                try? await database.close()
                throw error
            }
        }
        let directory = URL(fileURLWithPath: configuration.dataDirectory)
        let path = directory.appendingPathComponent("lisa.sqlite").path
        guard FileManager.default.fileExists(atPath: path) else {
            return StateDatabaseCheck(
                database: "sqlite", schemaVersion: nil, expectedSchemaVersion: SQLStateStore.schemaVersion, tables: [], vectorCollections: [],
                problems: ["\(path) does not exist"]
            )
        }
        let database = try await SQLiteDatabase.open(path: path, logger: logger)
        do {
            let check = try await run(database, dataDirectory: directory)
            try? await database.close()
            return check
        } catch {
            try? await database.close()
            throw error
        }
    }

    static func run(_ database: any StateDatabase, dataDirectory: URL?) async throws -> StateDatabaseCheck {
        let dialect = database.dialect
        let existing: Set<String> = Set(
            try await database.query(
                dialect == .postgres
                    ? "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
                    : "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).compactMap { $0["name"].string }
        )
        var check = StateDatabaseCheck(
            database: dialect == .postgres ? "postgres" : "sqlite", schemaVersion: nil, expectedSchemaVersion: SQLStateStore.schemaVersion,
            tables: [], vectorCollections: [], problems: []
        )
        for name in expectedTables {
            guard existing.contains(name) else {
                check.tables.append(Table(name: name, rows: nil))
                check.problems.append("table \(name) is missing")
                continue
            }
            let rows = try await database.query("SELECT count(*) AS n FROM \(name)").first?["n"].int
            check.tables.append(Table(name: name, rows: rows))
        }
        if existing.contains("lisa_schema") {
            check.schemaVersion = try await database.query("SELECT version FROM lisa_schema WHERE id = 1").first?["version"].int
        }
        if check.schemaVersion != SQLStateStore.schemaVersion {
            check.problems.append(
                "schema version \(check.schemaVersion.map(String.init) ?? "none"); this build's is \(SQLStateStore.schemaVersion)"
            )
        }
        if dialect == .postgres {
            try await checkPGVector(database, existing: existing, into: &check)
        } else if let dataDirectory {
            try await checkEmbeddedVectors(dataDirectory, into: &check)
        }
        return check
    }

    private static func checkPGVector(_ database: any StateDatabase, existing: Set<String>, into check: inout StateDatabaseCheck) async throws {
        guard existing.contains("lisa_vector_collections") else { return }
        if try await database.query("SELECT extversion FROM pg_extension WHERE extname = 'vector'").isEmpty {
            check.problems.append("the pgvector extension ('vector') is not installed, but lisa_vector_collections exists")
            return
        }
        for row in try await database.query("SELECT name, dimension FROM lisa_vector_collections ORDER BY name") {
            guard let name = row["name"].string else { continue }
            var collection = Collection(name: name, dimension: row["dimension"].int ?? 0, rows: nil)
            if existing.contains("lisa_vec_\(name)") {
                let table = PGVectorStore.table(name)
                collection.rows = try await database.query("SELECT count(*) AS n FROM \(table)").first?["n"].int
                do {
                    if let sample = try await database.query("SELECT vector_dims(embedding) AS d FROM \(table) LIMIT 1").first,
                        sample["d"].int != collection.dimension
                    {
                        check.problems.append(
                            "pgvector table lisa_vec_\(name) holds vectors of \(sample["d"].int ?? 0) dimensions, not \(collection.dimension)"
                        )
                    }
                } catch {
                    check.problems.append("pgvector table lisa_vec_\(name) cannot be read: \(error)")
                }
            } else {
                check.problems.append("pgvector table lisa_vec_\(name) is missing")
            }
            check.vectorCollections.append(collection)
        }
    }

    private static func checkEmbeddedVectors(_ directory: URL, into check: inout StateDatabaseCheck) async throws {
        let path = directory.appendingPathComponent("vectors/vectors.sqlite").path
        guard FileManager.default.fileExists(atPath: path) else { return }
        let vectors = try await SQLiteDatabase.open(path: path, logger: Logger(label: "lisa.check"))
        do {
            for row in try await vectors.query("SELECT name, dimension FROM collections ORDER BY name") {
                guard let name = row["name"].string else { continue }
                let rows = try await vectors.query("SELECT count(*) AS n FROM chunks WHERE collection = ?", [.text(name)]).first?["n"].int
                check.vectorCollections.append(Collection(name: name, dimension: row["dimension"].int ?? 0, rows: rows))
            }
            try? await vectors.close()
        } catch {
            try? await vectors.close()
            check.problems.append("the embedded vector store \(path) cannot be read: \(error)")
        }
    }

    /// The report as lines of text.
    public var text: String {
        var lines = ["database: \(database), schema version \(schemaVersion.map(String.init) ?? "none") (this build: \(expectedSchemaVersion))"]
        for table in tables { lines.append("  table \(table.name): \(table.rows.map { "\($0) rows" } ?? "MISSING")") }
        for collection in vectorCollections {
            lines.append("  vectors \(collection.name) (\(collection.dimension) dims): \(collection.rows.map { "\($0) rows" } ?? "MISSING")")
        }
        lines.append(problems.isEmpty ? "complete" : "INCOMPLETE:\n" + problems.map { "  - \($0)" }.joined(separator: "\n"))
        return lines.joined(separator: "\n")
    }
}
