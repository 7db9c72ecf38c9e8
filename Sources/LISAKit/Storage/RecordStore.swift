import Foundation

/// JSON documents of any kind (RAG repositories, documents and jobs, chat sessions, prompt
/// templates, stored responses, …) under an id and optionally a parent for listing, and
/// the uploads waiting for their ingestion job.
///
/// Writes publish nothing: the services that keep records read them when asked. Get one
/// from ``SQLStateStore/records``; it is safe to use concurrently.
public struct RecordStore: Sendable {
    let database: any StateDatabase

    // MARK: - Documents

    /// Stores a JSON document of `kind` under `id`, replacing any previous one, optionally
    /// under a `parent` id for listing, with a small `summary` of it beside for lists
    /// (``recordSummaries(kind:parent:)``); `nil` stores none.
    public func putRecord(kind: String, id: String, parent: String?, body: String, summary: String? = nil) async throws {
        let now = Date().timeIntervalSince1970
        try await database.query(
            """
            INSERT INTO records (kind, id, parent, body, summary, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (kind, id) DO UPDATE
            SET parent = excluded.parent, body = excluded.body, summary = excluded.summary, updated_at = excluded.updated_at
            """,
            [
                .text(kind), .text(id), parent.map(StateValue.text) ?? .null, .text(body), summary.map(StateValue.text) ?? .null, .double(now),
                .double(now),
            ]
        )
    }

    /// The document of `kind` with this id, or `nil`.
    public func record(kind: String, id: String) async throws -> String? {
        try await database.query("SELECT body FROM records WHERE kind = ? AND id = ?", [.text(kind), .text(id)]).first?["body"].string
    }

    /// The documents of `kind` (under `parent`, when given), oldest first.
    public func records(kind: String, parent: String?) async throws -> [String] {
        try await listRecords(column: "body", kind: kind, parent: parent)
    }

    /// For each record of `kind` (under `parent`), oldest first: its summary, or its whole
    /// document where it was stored without one.
    public func recordSummaries(kind: String, parent: String?) async throws -> [String] {
        try await listRecords(column: "COALESCE(summary, body)", kind: kind, parent: parent)
    }

    /// How many records of `kind` `parent` holds and their size (quotas).
    public func recordUsage(kind: String, parent: String) async throws -> RecordUsage {
        let row = try await database.query(
            "SELECT count(*) AS n, COALESCE(sum(length(body)), 0) AS size FROM records WHERE kind = ? AND parent = ?", [.text(kind), .text(parent)]
        ).first
        return RecordUsage(count: row?["n"].int ?? 0, characters: row?["size"].int ?? 0)
    }

    /// `column` (a fixed expression, never input) of the records of `kind` (under `parent`), oldest first.
    private func listRecords(column: String, kind: String, parent: String?) async throws -> [String] {
        let rows =
            if let parent {
                try await database.query(
                    "SELECT \(column) AS value FROM records WHERE kind = ? AND parent = ? ORDER BY created_at, id", [.text(kind), .text(parent)]
                )
            } else {
                try await database.query("SELECT \(column) AS value FROM records WHERE kind = ? ORDER BY created_at, id", [.text(kind)])
            }
        return rows.compactMap { $0["value"].string }
    }

    /// Removes a document; returns whether it existed.
    @discardableResult
    public func deleteRecord(kind: String, id: String) async throws -> Bool {
        !(try await database.query("DELETE FROM records WHERE kind = ? AND id = ? RETURNING id", [.text(kind), .text(id)])).isEmpty
    }

    /// Removes every document of `kind` under `parent`; returns how many.
    @discardableResult
    public func deleteRecords(kind: String, parent: String) async throws -> Int {
        try await database.query("DELETE FROM records WHERE kind = ? AND parent = ? RETURNING id", [.text(kind), .text(parent)]).count
    }

    // MARK: - Codable documents

    /// Stores a Codable record as JSON, with a Codable summary of it for lists.
    public func put<T: Encodable, S: Encodable>(_ value: T, summary: S, kind: String, id: String, parent: String? = nil) async throws {
        try await putRecord(
            kind: kind, id: id, parent: parent, body: try SQLStateStore.json(value), summary: try SQLStateStore.json(summary))
    }

    /// Stores a Codable record as JSON.
    public func put<T: Encodable>(_ value: T, kind: String, id: String, parent: String? = nil) async throws {
        try await putRecord(kind: kind, id: id, parent: parent, body: try SQLStateStore.json(value))
    }

    /// A Codable record, or `nil`.
    public func get<T: Decodable>(_ type: T.Type, kind: String, id: String) async throws -> T? {
        guard let body = try await record(kind: kind, id: id) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(body.utf8))
    }

    /// Every Codable record of `kind` (under `parent`).
    public func list<T: Decodable>(_ type: T.Type, kind: String, parent: String? = nil) async throws -> [T] {
        try await records(kind: kind, parent: parent).map { try JSONDecoder().decode(T.self, from: Data($0.utf8)) }
    }

    // MARK: - Uploads

    /// Stores bytes under `id` (an upload waiting for its ingestion job) in the state
    /// database itself, so whichever process runs the job can read them.
    public func putBlob(id: String, bytes: [UInt8]) async throws {
        try await database.query(
            "INSERT INTO blobs (id, data, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            [.text(id), .blob(bytes), .double(Date().timeIntervalSince1970)]
        )
    }

    /// The bytes stored under `id`, or `nil`.
    public func blob(id: String) async throws -> [UInt8]? {
        guard let row = try await database.query("SELECT data FROM blobs WHERE id = ?", [.text(id)]).first else { return nil }
        return row["data"].bytes ?? []
    }

    /// Removes the bytes stored under `id`.
    public func deleteBlob(id: String) async throws {
        try await database.query("DELETE FROM blobs WHERE id = ?", [.text(id)])
    }
}
