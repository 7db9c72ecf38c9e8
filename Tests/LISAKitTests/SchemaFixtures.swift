import Foundation
import Logging
import Testing

@testable import LISAKit

/// The committed databases each schema version wrote (`Tests/Fixtures/schema`), and how they
/// were written.
///
/// A fixture is written once, by the schema it stands for, and never again: when a migration
/// is appended (version N+1), write the fixture of version N with
/// `scripts/schema-fixtures.sh N` — after adding to ``writeRows(version:into:)`` rows for what
/// version N brought, in the SQL that version accepts — and commit it. The migration tests
/// then open every fixture with this build.
///
/// SQLite fixtures exist from version 1 (versions 1 and 2 kept their number in
/// `PRAGMA user_version`, before `lisa_schema`); PostgreSQL ones from version 3, the first
/// that ran on PostgreSQL.
enum SchemaFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schema")
    static let firstPostgresVersion = 3

    static var sqliteVersions: [Int] { Array(1..<SQLStateStore.schemaVersion) }
    static var postgresVersions: [Int] { Array(firstPostgresVersion..<SQLStateStore.schemaVersion) }

    static func sqlite(_ version: Int) -> URL { directory.appendingPathComponent("sqlite/v\(version).sqlite") }
    static func postgres(_ version: Int) -> URL { directory.appendingPathComponent("postgres/v\(version).sql") }
    static let manifest = directory.appendingPathComponent("migrations.sha256")

    // MARK: - What the fixtures hold

    /// 2025-11-29 08:00 UTC, a whole hour.
    static let t0: Double = 1_764_403_200
    /// `t0` as Foundation's default JSON encoding of a `Date` wrote it (since 2001).
    static let t0Reference: Double = t0 - 978_307_200
    static let adminKey = "lisa-admin-fixture-key"
    static let adminKeyHash = "0ccd79c8737c9c10cbbda2370b694faa3d637449c8dca4ef2bccddb44182a7da"
    static let tokenSecret = "lisa_fixtureTokenSecretOfSchemaFixtures0000000"
    static let tokenHash = "b9a779f42b92f896352d550272de66837e0c39546fb73d39f71a3ab988755b40"
    static let tokenID = "tok_00112233445566778899aabb"
    /// 2099-01-01, so the token has not expired when the tests run.
    static let tokenExpiresReference: Double = 4_070_908_800 - 978_307_200
    static let sessionKey = "alice\u{1F}s1"
    static let responseID = "resp_fixture1"
    static let blob: [UInt8] = [0, 1, 2, 0xFF]

    // The documents as the code of their time encoded them (sorted keys, dates since 2001,
    // absent optionals left out).
    static let chatModel = """
        {"allowedGroups":["team"],"endpoints":[],"futureField":{"kept":true},"inferenceContainer":"vllm","modelId":"chat-a",\
        "modelName":"llama-3","modelType":"textgen","modelUrl":"http://127.0.0.1:9/v1","streaming":true}
        """
    static let embedModel = """
        {"allowedGroups":[],"endpoints":[{"apiKey":"sk-old","url":"http://127.0.0.1:9/v1","weight":2}],"inferenceContainer":"tei",\
        "modelId":"embed-b","modelName":"bge","modelType":"embedding","streaming":false}
        """
    static let token = """
        {"createdAt":\(t0Reference),"createdBy":"admin","expiresAt":\(tokenExpiresReference),"groups":["team"],"id":"\(tokenID)",\
        "isSystemToken":false,"name":"ci","tokenHash":"\(tokenHash)","username":"alice"}
        """
    static let replica = """
        {"backend":"local","modelId":"chat-a","replicaId":"r-1","restarts":2,"startedAt":\(t0),"state":"ready","url":"http://127.0.0.1:8001/v1"}
        """
    static let instance = """
        {"heartbeatAt":\(t0),"hostname":"old-host","inFlight":{"chat-a":{"http://127.0.0.1:8001/v1":1}},"instanceId":"i-1","isLeader":true,\
        "startedAt":\(t0)}
        """
    static let session = """
        {"configuration":{"model":"chat-a"},"history":[{"content":"hello from an old schema","type":"human"},{"content":"hi","type":"ai"}],\
        "lastUpdated":\(t0Reference),"name":"first chat","sessionId":"s1","startTime":\(t0Reference),"userId":"alice"}
        """
    static let sessionSummary = """
        {"firstHumanMessage":"hello from an old schema","lastUpdated":\(t0Reference),"name":"first chat","sessionId":"s1",\
        "startTime":\(t0Reference)}
        """
    static let template = """
        {"body":"Be brief.","created":\(t0Reference),"groups":["lisa:public"],"id":"tpl-1","owner":"alice","revision":1,"title":"Brief",\
        "type":"persona","updated":\(t0Reference)}
        """
    /// A RAG repository with a collection, a document under its id from before owners were
    /// part of it (`RAGService.legacyDocumentID`), and the job that ingested it.
    static let documentID = "6b5a2ae18fa0c7ce6fd2c6a0"
    static let ragRecords: [(kind: String, id: String, parent: String?, body: String)] = [
        (
            "rag.repository", "docs", nil,
            """
            {"allowedGroups":["team"],"chunkOverlap":50,"chunkSize":500,"createdAt":\(t0Reference),"createdBy":"alice",\
            "embeddingModelId":"embed-b","repositoryId":"docs","repositoryName":"Docs","type":"embedded"}
            """
        ),
        (
            "rag.collection", "docs--default", "docs",
            """
            {"collectionId":"default","createdAt":\(t0Reference),"createdBy":"alice","dimension":3,"embeddingModelId":"embed-b",\
            "name":"Default","repositoryId":"docs"}
            """
        ),
        (
            "rag.document", documentID, "docs",
            """
            {"chunks":2,"collectionId":"default","createdAt":\(t0Reference),"documentId":"\(documentID)","documentName":"guide.txt",\
            "repositoryId":"docs","username":"alice"}
            """
        ),
        (
            "rag.job", "job-1", "docs",
            """
            {"chunks":2,"collectionId":"default","createdAt":\(t0Reference),"documentId":"\(documentID)","documentName":"guide.txt",\
            "jobId":"job-1","repositoryId":"docs","status":"COMPLETED","updatedAt":\(t0Reference),"username":"alice"}
            """
        ),
    ]

    /// A stored response in the layout before `lisa.response.v2`: one JSON object.
    static let storedResponse = """
        {"inputItems":[{"content":"hello","id":"msg_1","role":"user","type":"message"}],"messages":[{"content":"hello","role":"user"},\
        {"content":"hi there","role":"assistant"}],"owner":"alice","response":{"created_at":1764403200,"id":"\(responseID)",\
        "model":"chat-a","object":"response","output":[],"status":"completed"}}
        """
    static let storedResponseSummary = #"{"created_at":1764403200,"id":"resp_fixture1","model":"chat-a"}"#
    static let reservationLines = #"[{"amount":0.5,"key":"user:alice","limit":10,"periodStart":1764403200}]"#

    /// Usage records: alice's two calls (one failed) and bob's one in the hour `t0`, alice's
    /// one in the next hour.
    static let usage: [[StateValue]] = [
        usageRow("u-1", at: t0 + 60, user: "alice", token: tokenID, model: "chat-a", input: 10, output: 20, status: "ok", cost: 0.5),
        usageRow("u-2", at: t0 + 120, user: "alice", token: tokenID, model: "chat-a", input: 5, output: 0, status: "error", cost: nil),
        usageRow("u-3", at: t0 + 180, user: "bob", token: nil, model: "embed-b", input: 7, output: 0, status: "ok", cost: 0.01),
        usageRow("u-4", at: t0 + 3600 + 60, user: "alice", token: tokenID, model: "chat-a", input: 1, output: 2, status: "ok", cost: 0.25),
    ]

    static func usageRow(
        _ id: String, at: Double, user: String, token: String?, model: String, input: Int64, output: Int64, status: String, cost: Double?
    ) -> [StateValue] {
        [
            .text(id), .double(at), .integer(Int64(at / 3600) * 3600), .text("req-\(id)"), .text(user), token.map { .text($0) } ?? .null,
            .text(",team,"), .text(model), .text("http://127.0.0.1:9/v1"), .text("http://127.0.0.1:9/v1"), .text("chat"), .integer(input),
            .integer(output), .integer(0), .double(120), status == "ok" ? .double(30) : .null, .text(status), cost.map { .double($0) } ?? .null,
        ]
    }

    /// The v8 code's usage insert (37eb525), which an old replica still sends.
    static let usageInsert = """
        INSERT INTO usage_records (id, at, hour, request_id, username, token_id, groups, model, served_by, endpoint, operation, input_tokens, \
        output_tokens, estimated, duration_ms, ttft_ms, status, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
        ON CONFLICT (id) DO NOTHING
        """

    // MARK: - Writing

    /// Versions 1 and 2 as the SQLite-only store wrote them (7047a1e): REAL timestamps, the
    /// version in `PRAGMA user_version`.
    static let userVersionMigrations: [[String]] = [
        [
            """
            CREATE TABLE IF NOT EXISTS models (
                model_id TEXT PRIMARY KEY NOT NULL,
                definition TEXT NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )
            """,
            "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
        ],
        [
            """
            CREATE TABLE IF NOT EXISTS api_tokens (
                id TEXT PRIMARY KEY NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                username TEXT NOT NULL,
                record TEXT NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS api_tokens_username ON api_tokens (username)",
        ],
    ]

    /// The schema of `version` with the rows it could hold, as that version wrote them.
    static func write(version: Int, into db: any StateDatabase) async throws {
        if version <= 2 {
            precondition(db.dialect == .sqlite, "versions 1 and 2 ran on SQLite only")
            for statement in userVersionMigrations[0..<version].joined() { try await db.query(statement) }
            try await db.query("PRAGMA user_version = \(version)")
        } else {
            try await db.query("CREATE TABLE IF NOT EXISTS lisa_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
            try await db.query("INSERT INTO lisa_schema (id, version) VALUES (1, ?)", [.integer(Int64(version))])
            for statement in SQLStateStore.migrations[0..<version].joined() {
                try await db.query(statement.replacingOccurrences(of: "{BLOB}", with: db.dialect == .postgres ? "BYTEA" : "BLOB"))
            }
        }
        try await writeRows(version: version, into: db)
    }

    /// Rows in every table `version` has, with the columns it had.
    static func writeRows(version v: Int, into db: any StateDatabase) async throws {
        // v1: models and settings.
        if v < 3 {
            for (id, body) in [("chat-a", chatModel), ("embed-b", embedModel)] {
                try await db.query(
                    "INSERT INTO models (model_id, definition, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    [.text(id), .text(body), .double(t0), .double(t0)]
                )
            }
        } else {
            try await db.query(
                "INSERT INTO models (model_id, definition, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [.text("chat-a"), .text(chatModel), .text("InService"), .double(t0), .double(t0)]
            )
            try await db.query(
                "INSERT INTO models (model_id, definition, status, status_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text("embed-b"), .text(embedModel), .text("Stopped"), .text("stopped by an admin"), .double(t0), .double(t0)]
            )
        }
        try await db.query("INSERT INTO settings (key, value) VALUES (?, ?)", [.text("admin_key_sha256"), .text(adminKeyHash)])
        // v2: API tokens (v3: their creation time in a column).
        if v >= 2 {
            if v < 3 {
                try await db.query(
                    "INSERT INTO api_tokens (id, token_hash, username, record) VALUES (?, ?, ?, ?)",
                    [.text(tokenID), .text(tokenHash), .text("alice"), .text(token)]
                )
            } else {
                try await db.query(
                    "INSERT INTO api_tokens (id, token_hash, username, record, created_at) VALUES (?, ?, ?, ?, ?)",
                    [.text(tokenID), .text(tokenHash), .text("alice"), .text(token), .double(t0)]
                )
            }
        }
        // v3: replicas of hosted models, instances.
        if v >= 3 {
            try await db.query(
                "INSERT INTO model_replicas (replica_id, model_id, record, updated_at) VALUES (?, ?, ?, ?)",
                [.text("r-1"), .text("chat-a"), .text(replica), .double(t0)]
            )
            try await db.query(
                "INSERT INTO instances (instance_id, heartbeat_at, record) VALUES (?, ?, ?)", [.text("i-1"), .double(t0), .text(instance)]
            )
        }
        // v4: records (sessions, prompt templates, RAG); v5: summaries, stored responses.
        if v == 4 {
            try await db.query(
                "INSERT INTO records (kind, id, parent, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text("session"), .text(sessionKey), .text("alice"), .text(session), .double(t0), .double(t0)]
            )
        } else if v >= 5 {
            let records: [(String, String, String, String)] = [
                ("session", sessionKey, session, sessionSummary), ("response", responseID, storedResponse, storedResponseSummary),
            ]
            for (kind, id, body, summary) in records {
                try await db.query(
                    "INSERT INTO records (kind, id, parent, body, summary, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [.text(kind), .text(id), .text("alice"), .text(body), .text(summary), .double(t0), .double(t0)]
                )
            }
        }
        if v >= 4 {
            for (kind, id, parent, body) in [("prompt-template", "tpl-1", nil, template)] + ragRecords {
                try await db.query(
                    "INSERT INTO records (kind, id, parent, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [.text(kind), .text(id), parent.map(StateValue.text) ?? .null, .text(body), .double(t0), .double(t0)]
                )
            }
        }
        // v6: the leader's lease, rate buckets.
        if v >= 6 {
            try await db.query(
                "INSERT INTO lisa_leases (key, holder, confirmed_at) VALUES (?, ?, ?)",
                [.integer(SQLStateStore.leaderLockKey), .text("i-1"), .double(t0)]
            )
            try await db.query(
                "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?)", [.text("user:alice"), .double(3.5), .double(t0)]
            )
        }
        // v7: uploads and claims.
        if v >= 7 {
            try await db.query("INSERT INTO blobs (id, data, created_at) VALUES (?, ?, ?)", [.text("upload-1"), .blob(blob), .double(t0)])
            try await db.query("INSERT INTO claims (id, holder, expires_at) VALUES (?, ?, ?)", [.text("job-1"), .text("i-1"), .double(t0 + 60)])
        }
        // v8: usage, budgets and their reservations, replica time.
        if v >= 8 {
            for row in usage { try await db.query(usageInsert, row) }
            try await db.query(
                "INSERT INTO budget_counters (key, period_start, spent, reserved) VALUES (?, ?, ?, ?)",
                [.text("user:alice"), .double(t0), .double(1.25), .double(0.5)]
            )
            try await db.query(
                "INSERT INTO budget_reservations (id, lines, expires_at) VALUES (?, ?, ?)",
                [.text("res-1"), .text(reservationLines), .double(t0 + 60)]
            )
            try await db.query(
                "INSERT INTO replica_seconds (model, hour, seconds) VALUES (?, ?, ?)", [.text("chat-a"), .integer(Int64(t0)), .double(1800)])
        }
    }
}

/// Writes the fixtures of the versions in `LISA_WRITE_SCHEMA_FIXTURES` (`3`, `3,4`, or
/// `all`): run through `scripts/schema-fixtures.sh`, which dumps the PostgreSQL ones.
@Suite("Schema fixture writer", .enabled(if: ProcessInfo.processInfo.environment["LISA_WRITE_SCHEMA_FIXTURES"] != nil))
struct SchemaFixtureWriter {
    @Test("writes the requested fixtures")
    func write() async throws {
        let request = ProcessInfo.processInfo.environment["LISA_WRITE_SCHEMA_FIXTURES"] ?? ""
        let versions = request == "all" ? SchemaFixtures.sqliteVersions : request.split(separator: ",").compactMap { Int($0) }
        let logger = Logger(label: "schema-fixtures")
        for version in versions {
            let url = SchemaFixtures.sqlite(version)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: url.path + suffix) }
            let sqlite = try await SQLiteDatabase.open(path: url.path, logger: logger)
            try await sqlite.transaction { try await SchemaFixtures.write(version: version, into: $0) }
            try await sqlite.close()
            #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"))

            guard version >= SchemaFixtures.firstPostgresVersion, let base = StoreKind.postgresURL else { continue }
            let name = "lisa_fixture_v\(version)"
            let admin = try await PostgresDatabase.connect(url: base, logger: logger)
            try await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            try await admin.query("CREATE DATABASE \(name)")
            try await admin.close()
            var components = try #require(URLComponents(string: base))
            components.path = "/\(name)"
            let postgres = try await PostgresDatabase.connect(url: try #require(components.string), logger: logger)
            try await postgres.transaction { try await SchemaFixtures.write(version: version, into: $0) }
            try await postgres.close()
        }
    }
}
