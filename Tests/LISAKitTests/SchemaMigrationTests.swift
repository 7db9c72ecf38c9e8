import Crypto
import Foundation
import Logging
import NIOFoundationCompat
import Testing

@testable import LISAKit

/// One committed fixture: the database schema `version` wrote, on SQLite or PostgreSQL.
enum SchemaFixture: CustomTestStringConvertible, Sendable {
    case sqlite(Int)
    case postgres(Int)

    var version: Int {
        switch self {
        case .sqlite(let version), .postgres(let version): version
        }
    }

    var testDescription: String {
        switch self {
        case .sqlite(let version): "SQLite v\(version)"
        case .postgres(let version): "PostgreSQL v\(version)"
        }
    }

    /// Every fixture this machine can open (PostgreSQL ones when `LISA_TEST_DATABASE_URL` is set).
    static var all: [SchemaFixture] {
        SchemaFixtures.sqliteVersions.map(SchemaFixture.sqlite)
            + (StoreKind.postgresURL == nil ? [] : SchemaFixtures.postgresVersions.map(SchemaFixture.postgres))
    }

    /// The newest fixture of each engine.
    static var newest: [SchemaFixture] {
        let previous = SQLStateStore.schemaVersion - 1
        return [.sqlite(previous)] + (StoreKind.postgresURL == nil ? [] : [.postgres(previous)])
    }
}

/// A fixture copied where a test may change it: a temporary SQLite file, or a fresh PostgreSQL
/// database loaded from the dump.
struct FixtureCopy {
    let open: @Sendable () async throws -> SQLStateStore
    /// The database without the store (no migration).
    let raw: @Sendable () async throws -> any StateDatabase
    let cleanup: @Sendable () async throws -> Void
    /// The PostgreSQL copy's URL (`nil` for SQLite).
    var url: String? = nil

    static let logger: Logger = {
        var logger = Logger(label: "schema-test")
        logger.logLevel = .warning
        return logger
    }()

    static func make(_ fixture: SchemaFixture) async throws -> FixtureCopy {
        let logger = Self.logger
        switch fixture {
        case .sqlite(let version):
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-schema-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = directory.appendingPathComponent("lisa.sqlite").path
            try FileManager.default.copyItem(atPath: SchemaFixtures.sqlite(version).path, toPath: path)
            return FixtureCopy(
                open: { try await SQLStateStore.openSQLite(path: path, logger: logger) },
                raw: { try await SQLiteDatabase.open(path: path, logger: logger) },
                cleanup: { try? FileManager.default.removeItem(at: directory) }
            )
        case .postgres(let version):
            let base = try #require(StoreKind.postgresURL)
            let name = "lisa_schema_\(version)_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(10))"
            let admin = try await PostgresDatabase.connect(url: base, logger: logger)
            try await admin.query("CREATE DATABASE \(name)")
            var components = try #require(URLComponents(string: base))
            components.path = "/\(name)"
            let url = try #require(components.string)
            let loader = try await PostgresDatabase.connect(url: url, logger: logger)
            do {
                for statement in try Self.statements(ofDump: SchemaFixtures.postgres(version)) {
                    try await loader.query(statement)
                }
            } catch {
                try? await loader.close()
                throw error
            }
            try await loader.close()
            return FixtureCopy(
                open: { try await SQLStateStore.openPostgres(url: url, logger: logger) },
                raw: { try await PostgresDatabase.connect(url: url, logger: logger) },
                cleanup: {
                    try await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
                    try await admin.close()
                },
                url: url
            )
        }
    }

    /// The statements of a plain `pg_dump --inserts` (comments and psql commands left out; the
    /// fixtures hold no `;` at a line's end inside a value).
    static func statements(ofDump url: URL) throws -> [String] {
        let text = try String(contentsOf: url, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("--") && !$0.hasPrefix("\\") }
        var statements: [String] = []
        var current = ""
        for line in lines {
            current += line + "\n"
            if line.hasSuffix(";") {
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = ""
            }
        }
        return statements
    }
}

@Suite("Schema migrations from fixtures")
struct SchemaMigrationTests {
    typealias F = SchemaFixtures

    static func version(of database: any StateDatabase) async throws -> Int? {
        try await database.query("SELECT version FROM lisa_schema WHERE id = 1").first?["version"].int
    }

    @Test("a database every older schema wrote migrates to this one, and every row reads through today's API", arguments: SchemaFixture.all)
    func migrates(fixture: SchemaFixture) async throws {
        let copy = try await FixtureCopy.make(fixture)
        defer { Task { try? await copy.cleanup() } }
        let v = fixture.version
        let store = try await copy.open()
        #expect(try await Self.version(of: store.database) == SQLStateStore.schemaVersion)

        // v1: models (status from v3; before, every model was in service) and settings.
        let models = try await store.models.all()
        #expect(models.map(\.definition.modelId) == ["chat-a", "embed-b"])
        let chat = try #require(models.first)
        #expect(chat.definition.modelName == "llama-3" && chat.definition.inferenceContainer.rawValue == "vllm")
        #expect(chat.definition.modelUrl == "http://127.0.0.1:9/v1" && chat.definition.allowedGroups == ["team"])
        #expect(chat.definition.additionalFields["futureField"] == ["kept": true], "a field no version acted on survives")
        #expect(chat.status == .inService && chat.createdAt == F.t0 && chat.updatedAt == F.t0)
        let embed = try #require(models.last)
        #expect(embed.definition.modelType == .embedding && !embed.definition.streaming)
        #expect(embed.definition.endpoints == [EndpointDefinition(url: "http://127.0.0.1:9/v1", weight: 2, apiKey: "sk-old")])
        #expect(embed.status == (v >= 3 ? .stopped : .inService))
        #expect(embed.statusReason == (v >= 3 ? "stopped by an admin" : nil))

        // The stored admin key still verifies; no new key is generated.
        let (adminKey, generated) = try await AdminKey.bootstrap(configured: nil, settings: store.settings)
        #expect(generated == nil && adminKey.verify(F.adminKey))
        let authenticator = Authenticator(adminKey: adminKey, tokens: store.tokens)
        #expect(try await authenticator.authenticate(F.adminKey).method == .adminKey)

        // v2: API tokens still verify.
        if v >= 2 {
            let principal = try await authenticator.authenticate(F.tokenSecret)
            #expect(principal.username == "alice" && principal.groups == ["team"] && principal.tokenID == F.tokenID)
            let token = try #require(try await store.tokens.tokens(username: "alice").first)
            #expect(token.createdAt == Date(timeIntervalSince1970: F.t0) && token.name == "ci" && token.budget == nil)
        }
        await #expect(throws: LISAError.self) { try await authenticator.authenticate("lisa_notAToken") }

        // v3: replicas and instances.
        if v >= 3 {
            let replica = try #require(try await store.models.replicas(modelId: "chat-a").first)
            #expect(replica.replicaId == "r-1" && replica.state == .ready && replica.restarts == 2 && replica.url == "http://127.0.0.1:8001/v1")
            let instance = try #require(try await store.coordination.instances(heartbeatAfter: F.t0 - 1).first)
            #expect(instance.hostname == "old-host" && instance.isLeader && instance.inFlight["chat-a"]?["http://127.0.0.1:8001/v1"] == 1)
        }

        // v4: sessions (listed from their whole document when v4 wrote no summary), templates, RAG.
        if v >= 4 {
            let alice = Principal(username: "alice", groups: ["team"], method: .apiToken)
            let sessions = SessionService(store: store.records, access: AccessConfiguration())
            let summaries = try await sessions.sessions(of: alice)
            #expect(summaries.map(\.sessionId) == ["s1"] && summaries.first?.firstHumanMessage == "hello from an old schema")
            #expect(summaries.first?.lastUpdated == Date(timeIntervalSince1970: F.t0))
            let session = try await sessions.session("s1", of: alice)
            #expect(session.name == "first chat" && session.history.arrayValue?.count == 2 && session.configuration?["model"] == "chat-a")
            let template = try #require(try await store.records.get(PromptTemplate.self, kind: SessionService.templateKind, id: "tpl-1"))
            #expect(template.title == "Brief" && template.type == .persona && template.groups == [PromptTemplate.publicGroup])

            let repository = try #require(try await store.records.get(RAGRepository.self, kind: RAGService.repositoryKind, id: "docs"))
            #expect(repository.type == .embedded && repository.embeddingModelId == "embed-b" && repository.allowedGroups == ["team"])
            #expect(repository.chunkSize == 500 && repository.createdAt == Date(timeIntervalSince1970: F.t0))
            let collections = try await store.records.list(RAGCollection.self, kind: RAGService.collectionKind, parent: "docs")
            #expect(collections.map(\.collectionId) == ["default"] && collections.first?.dimension == 3)
            // The document keeps the id re-uploads of its name by its owner still replace.
            let documents = try await store.records.list(RAGDocument.self, kind: RAGService.documentKind, parent: "docs")
            #expect(documents.map(\.documentId) == [RAGService.legacyDocumentID(repository: "docs", collection: "default", name: "guide.txt")])
            #expect(documents.first?.username == "alice" && documents.first?.chunks == 2)
            let jobs = try await store.records.list(IngestionJob.self, kind: RAGService.jobKind, parent: "docs")
            #expect(jobs.map(\.status) == [.completed] && jobs.first?.documentId == F.documentID)
        }

        // v5: a stored response in the layout before lisa.response.v2.
        if v >= 5 {
            let body = try #require(try await store.records.record(kind: StoredResponse.kind, id: F.responseID))
            let stored = try StoredResponseRecord(body: body)
            #expect(stored.owner == "alice")
            let response = try JSONDecoder().decode(JSONValue.self, from: stored.responseBody)
            #expect(response["id"] == .string(F.responseID) && response["status"] == "completed")
            #expect(try stored.messages().count == 2)
        }

        // v6: the leader's lease and rate buckets (kept as written).
        if v >= 6 {
            let lease = try await store.database.query(
                "SELECT holder, confirmed_at FROM lisa_leases WHERE key = ?", [.integer(SQLStateStore.leaderLockKey)])
            #expect(lease.first?["holder"].string == "i-1" && lease.first?["confirmed_at"].double == F.t0)
            #expect(try await store.database.query("SELECT tokens FROM rate_buckets WHERE key = 'user:alice'").first?["tokens"].double == 3.5)
        }

        // v7: uploads and claims (an expired claim is taken over).
        if v >= 7 {
            #expect(try await store.records.blob(id: "upload-1") == F.blob)
            #expect(try await store.coordination.claim("job-1", holder: "i-2", seconds: 60))
        }

        // v8: usage (v9's hourly rollup back-filled from it), budgets, replica time.
        if v >= 8 {
            let hour = Int64(F.t0)
            let filter = UsageFilter(from: Date(timeIntervalSince1970: F.t0), to: Date(timeIntervalSince1970: F.t0 + 7200))
            let aggregates = try await store.usage.aggregates(filter, byUser: true, byToken: true).sorted {
                ($0.hour, $0.user ?? "", $0.model) < ($1.hour, $1.user ?? "", $1.model)
            }
            #expect(
                aggregates == [
                    UsageAggregate(
                        hour: hour, model: "chat-a", user: "alice", tokenID: F.tokenID, requests: 2, errors: 1, inputTokens: 15, outputTokens: 20,
                        estimated: 0, cost: 0.5
                    ),
                    UsageAggregate(
                        hour: hour, model: "embed-b", user: "bob", tokenID: nil, requests: 1, errors: 0, inputTokens: 7, outputTokens: 0,
                        estimated: 0,
                        cost: 0.01
                    ),
                    UsageAggregate(
                        hour: hour + 3600, model: "chat-a", user: "alice", tokenID: F.tokenID, requests: 1, errors: 0, inputTokens: 1,
                        outputTokens: 2, estimated: 0, cost: 0.25
                    ),
                ]
            )
            #expect(try await store.usage.groups(filter) == ["team"])
            #expect(try await store.usage.samples(filter, limit: 10).count == 4)
            let line = BudgetLine(key: "user:alice", periodStart: F.t0, limit: 10, amount: 0)
            if store.isShared {
                // Shared (PostgreSQL): the open reservation stays until it expires.
                #expect(try await store.usage.budgetCounters([line]).map(\.reserved) == [0.5])
                #expect(try await store.usage.releaseExpiredReservations(before: F.t0 + 61) == 1)
            }
            // Alone (SQLite), opening released it.
            #expect(try await store.usage.budgetCounters([line]).map { [$0.spent, $0.reserved] } == [[1.25, 0]])
            #expect(
                try await store.usage.replicaSeconds(fromHour: hour, toHour: hour + 1) == [ReplicaTime(model: "chat-a", hour: hour, seconds: 1800)])
        }

        // The migrated database takes this version's writes.
        try await store.models.insert(ModelDefinition(modelId: "new-c", modelName: "up", modelUrl: "http://127.0.0.1:9/v1"), status: .inService)
        try await store.records.putRecord(kind: "session", id: "alice\u{1F}s2", parent: "alice", body: "{}", summary: "{}")
        try await store.usage.insert([
            UsageRecord(
                id: "u-new", time: Date(timeIntervalSince1970: F.t0 + 300), requestId: "r", username: "carol", tokenId: nil, groups: [],
                model: "chat-a", servedBy: nil, endpoint: nil, operation: "chat", inputTokens: 3, outputTokens: 4, estimated: false, durationMs: 1,
                timeToFirstTokenMs: nil, status: "ok", cost: nil
            )
        ])
        #expect(try await store.models.all().count == 3)
        try await store.close()

        // Opening it again changes nothing.
        let again = try await copy.open()
        #expect(try await Self.version(of: again.database) == SQLStateStore.schemaVersion)
        #expect(try await again.models.all().count == 3)
        try await again.close()
    }

    /// Tables, columns and the stored version: what opening a database must not change when
    /// it refuses it.
    static func shape(of database: any StateDatabase) async throws -> [String] {
        let rows =
            database.dialect == .sqlite
            ? try await database.query(
                "SELECT m.name || '.' || p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY c")
            : try await database.query(
                "SELECT table_name || '.' || column_name AS c FROM information_schema.columns WHERE table_schema = 'public' ORDER BY c"
            )
        var shape = rows.compactMap { $0["c"].string }
        shape.append("version \(try await version(of: database) ?? -1)")
        shape.append("models \(try await database.query("SELECT count(*) AS n FROM models").first?["n"].int ?? -1)")
        return shape
    }

    @Test("a database a newer LISA wrote is refused with a clear error and left as it was", arguments: SchemaFixture.newest)
    func refusesNewerSchema(fixture: SchemaFixture) async throws {
        let copy = try await FixtureCopy.make(fixture)
        defer { Task { try? await copy.cleanup() } }
        // Migrate it to this version, then mark it as written by the next.
        try await copy.open().close()
        let newer = SQLStateStore.schemaVersion + 1
        let raw = try await copy.raw()
        try await raw.query("UPDATE lisa_schema SET version = ? WHERE id = 1", [.integer(Int64(newer))])
        let before = try await Self.shape(of: raw)
        try await raw.close()

        let error = await #expect(throws: LISAError.self) { try await copy.open() }
        #expect(
            error?.message
                == "The state database was written by a newer LISA (schema \(newer); this build knows schema \(SQLStateStore.schemaVersion) and older). "
                + "Run that LISA version or a newer one, or restore a backup taken before the upgrade (Documentation/Upgrading.md)."
        )
        let check = try await copy.raw()
        #expect(try await Self.shape(of: check) == before)
        try await check.close()
    }

    @Test(
        "a migration that fails leaves the database as it was (one transaction), and the store does not open",
        arguments: [SchemaFixture.sqlite(8)] + (StoreKind.postgresURL == nil ? [] : [.postgres(8)])
    )
    func failedMigrationRollsBack(fixture: SchemaFixture) async throws {
        let copy = try await FixtureCopy.make(fixture)
        defer { Task { try? await copy.cleanup() } }
        // A table in the way of v9: its back-fill cannot insert into it.
        let raw = try await copy.raw()
        try await raw.query("CREATE TABLE usage_hourly (hour TEXT)")
        let before = try await Self.shape(of: raw)
        #expect(before.contains("version 8"))
        try await raw.close()

        await #expect(throws: (any Error).self) { try await copy.open() }
        let check = try await copy.raw()
        #expect(try await Self.shape(of: check) == before)
        try await check.close()
    }

    @Test(
        "a replica waiting on another's migration, or migrating longer than call_timeout, is not cut off by it",
        .enabled(if: StoreKind.postgresURL != nil)
    )
    func migrationOutlastsCallTimeout() async throws {
        let copy = try await FixtureCopy.make(.postgres(8))
        defer { Task { try? await copy.cleanup() } }
        let copyURL = try #require(copy.url)
        var components = try #require(URLComponents(string: copyURL))
        components.queryItems = (components.queryItems ?? []) + [URLQueryItem(name: "call_timeout", value: "1")]
        let url = try #require(components.string)
        // Another replica migrating: it holds the migration lock.
        let other = try await PostgresDatabase.connect(url: url, logger: FixtureCopy.logger)
        try await other.query("SELECT pg_advisory_lock(?)", [.integer(SQLStateStore.migrationLockKey)])
        let opening = Task { try await SQLStateStore.openPostgres(url: url, logger: FixtureCopy.logger) }
        // Wait until this store has waited on the lock for twice its call_timeout.
        let watcher = try await PostgresDatabase.connect(url: url, logger: FixtureCopy.logger)
        var waitedLong = false
        for _ in 0..<300 where !waitedLong {
            let rows = try await watcher.query(
                "SELECT count(*) AS waiting FROM pg_stat_activity WHERE datname = current_database() "
                    + "AND wait_event_type = 'Lock' AND now() - query_start > interval '2 seconds'"
            )
            waitedLong = (rows.first?["waiting"].int ?? 0) > 0
            if !waitedLong { try await Task.sleep(for: .milliseconds(100)) }
        }
        try await watcher.close()
        #expect(waitedLong, "the opening store gave up waiting for the migration lock")
        try await other.close()  // the other replica is done: its lock goes with its connection
        let store = try await opening.value
        #expect(try await Self.version(of: store.database) == SQLStateStore.schemaVersion)
        try await store.close()
    }

    @Test("every version below this one has a committed fixture (SQLite from v1, PostgreSQL from v3)")
    func everyVersionHasAFixture() {
        for version in SchemaFixtures.sqliteVersions {
            #expect(FileManager.default.fileExists(atPath: SchemaFixtures.sqlite(version).path), "write it: scripts/schema-fixtures.sh \(version)")
        }
        for version in SchemaFixtures.postgresVersions {
            #expect(FileManager.default.fileExists(atPath: SchemaFixtures.postgres(version).path), "write it: scripts/schema-fixtures.sh \(version)")
        }
    }

    static func digest(_ migration: [String]) -> String {
        SHA256.hash(data: Data(migration.joined(separator: "\n;\n").utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test("shipped migrations are never edited: each matches its line in Tests/Fixtures/schema/migrations.sha256")
    func migrationsAreAppendOnly() throws {
        let manifest = try String(contentsOf: SchemaFixtures.manifest, encoding: .utf8)
        var recorded: [Int: String] = [:]
        for line in manifest.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            try #require(parts.count == 2, "a line is '<version> <sha256>': \(line)")
            recorded[try #require(Int(parts[0]))] = String(parts[1])
        }
        #expect(
            recorded.keys.sorted() == Array(1...SQLStateStore.schemaVersion),
            "one line per migration: a new one is appended with its line (and the fixture of the version before it)"
        )
        for (index, migration) in SQLStateStore.migrations.enumerated() {
            #expect(
                recorded[index + 1] == Self.digest(migration),
                "migration \(index + 1) is not the one that shipped (append a new migration instead); its line would be '\(index + 1) \(Self.digest(migration))'"
            )
        }
    }

    /// What keeps a replica that is already running working on a database a newer replica
    /// migrated: no migration drops, renames or retypes anything, and every column added
    /// has a default or may be null, so the older code's statements still run.
    @Test("every migration only adds: tables, indexes, columns with a default or null, rows")
    func migrationsOnlyAdd() {
        for (index, migration) in SQLStateStore.migrations.enumerated() {
            for statement in migration {
                let text = statement.uppercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
                let additive =
                    text.hasPrefix("CREATE TABLE IF NOT EXISTS ") || text.hasPrefix("CREATE INDEX IF NOT EXISTS ") || text.hasPrefix("INSERT INTO ")
                    || (text.hasPrefix("ALTER TABLE ") && text.contains(" ADD COLUMN ") && (!text.contains("NOT NULL") || text.contains(" DEFAULT ")))
                #expect(additive && !text.contains("DROP ") && !text.contains("RENAME "), "migration \(index + 1): \(statement)")
            }
        }
    }

    /// Rebuilds the hourly rollup from the hour `?` on (Documentation/Upgrading.md).
    static let rollupRebuild = [
        "DELETE FROM usage_hourly WHERE hour >= ?",
        """
        INSERT INTO usage_hourly (hour, model, username, token_id, groups, requests, errors, input_tokens, output_tokens, estimated, cost)
        SELECT hour, model, username, COALESCE(token_id, ''), groups, COUNT(*), SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END),
            SUM(input_tokens), SUM(output_tokens), SUM(estimated), SUM(COALESCE(cost, 0))
        FROM usage_records WHERE hour >= ? GROUP BY hour, model, username, COALESCE(token_id, ''), groups
        """,
    ]

    /// A v8 replica still running after a v9 replica migrated the shared database: its
    /// statements run, but what v9 added behind them is not kept (Documentation/Upgrading.md).
    @Test("v8 → v9: an old replica's writes still run; the hourly rollup misses its calls until rebuilt; it cannot read a v9 stored response")
    func oldReplicaAfterV9() async throws {
        let fixture: SchemaFixture = StoreKind.postgresURL == nil ? .sqlite(8) : .postgres(8)
        let copy = try await FixtureCopy.make(fixture)
        defer { Task { try? await copy.cleanup() } }
        let old = try await copy.raw()
        #expect(try await Self.version(of: old) == 8)
        let store = try await copy.open()
        #expect(try await Self.version(of: old) == SQLStateStore.schemaVersion)

        // The v8 code's statements, on the connection it opened before the upgrade.
        try await old.query(
            F.usageInsert,
            F.usageRow("u-old", at: F.t0 + 240, user: "alice", token: F.tokenID, model: "chat-a", input: 100, output: 100, status: "ok", cost: 9))
        try await old.query(
            "INSERT INTO models (model_id, definition, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (model_id) DO NOTHING RETURNING model_id",
            [.text("old-m"), .text(#"{"modelId":"old-m","modelName":"x"}"#), .text("InService"), .double(F.t0), .double(F.t0)]
        )
        let oldModels = try await old.query(
            "SELECT model_id, definition, status, status_reason, created_at, updated_at FROM models ORDER BY model_id")
        #expect(oldModels.count == 3)
        #expect(try await store.models.model(id: "old-m")?.definition.modelName == "x")

        // The raw records see the old replica's call; the whole-hour report reads the v9
        // rollup, which only v9 code keeps.
        let filter = UsageFilter(
            from: Date(timeIntervalSince1970: F.t0), to: Date(timeIntervalSince1970: F.t0 + 3600), user: "alice", model: "chat-a")
        #expect(try await store.usage.samples(filter, limit: 10).count == 3)
        #expect(try await store.usage.aggregates(filter, byUser: true, byToken: false).map(\.requests) == [2])
        // Once every replica runs v9, the rollup of the hours since the upgrade is rebuilt from
        // the records (the statements Documentation/Upgrading.md gives).
        try await store.database.transaction { db in
            if db.dialect == .postgres { try await db.query("LOCK TABLE usage_records IN SHARE MODE") }
            for statement in Self.rollupRebuild { try await db.query(statement, [.integer(Int64(F.t0))]) }
        }
        #expect(try await store.usage.aggregates(filter, byUser: true, byToken: false).map(\.requests) == [3])
        #expect(try await store.usage.aggregates(filter, byUser: true, byToken: false).map(\.inputTokens) == [115])

        // A response a v9 replica stores is in the lisa.response.v2 layout, which the v8 code
        // decoded as one JSON object.
        let record = try StoredResponseRecord.encode(
            StoredResponse(owner: "alice", response: ["id": "resp_new", "object": "response"], inputItems: [], messages: [], passedThrough: nil)
        )
        #expect(throws: (any Error).self) { try JSONDecoder().decode(StoredResponse.self, from: Data(record.utf8)) }
        try await old.close()
        try await store.close()
    }
}

/// How long the v9 migration (the hourly rollup back-filled from every usage record) takes on
/// a v8 database with `LISA_MEASURE_MIGRATION` usage records (Documentation/Upgrading.md):
/// `LISA_MEASURE_MIGRATION=100000 swift test --skip-build --filter SchemaMigrationTiming`.
@Suite("Schema migration timing", .enabled(if: ProcessInfo.processInfo.environment["LISA_MEASURE_MIGRATION"] != nil))
struct SchemaMigrationTiming {
    @Test("v8 → v9 with many usage records", arguments: SchemaFixture.newest)
    func measure(fixture: SchemaFixture) async throws {
        let count = Int(ProcessInfo.processInfo.environment["LISA_MEASURE_MIGRATION"] ?? "") ?? 100_000
        let base: SchemaFixture = if case .postgres = fixture { .postgres(8) } else { .sqlite(8) }
        let copy = try await FixtureCopy.make(base)
        defer { Task { try? await copy.cleanup() } }
        let raw = try await copy.raw()
        let users = ["alice", "bob", "carol", "dave"]
        // In transactions of 1000 rows, each within the database's call deadline.
        for chunk in stride(from: 0, to: count, by: 1000) {
            try await raw.transaction { db in
                for i in chunk..<min(chunk + 1000, count) {
                    try await db.query(
                        SchemaFixtures.usageInsert,
                        SchemaFixtures.usageRow(
                            "m-\(i)", at: SchemaFixtures.t0 - Double(i) * 30, user: users[i % 4], token: nil,
                            model: i % 3 == 0 ? "embed-b" : "chat-a",
                            input: 10, output: 20, status: "ok", cost: 0.001
                        )
                    )
                }
            }
        }
        try await raw.close()
        let clock = ContinuousClock()
        let start = clock.now
        let store = try await copy.open()
        let elapsed = clock.now - start
        let rows = try await store.database.query("SELECT count(*) AS n FROM usage_hourly").first?["n"].int ?? 0
        print(
            "MIGRATION \(fixture.testDescription.replacingOccurrences(of: " v\(fixture.version)", with: "")) v8→v\(SQLStateStore.schemaVersion): \(count) usage records, \(rows) rollup rows, opened in \(elapsed)"
        )
        #expect(rows > 0)
        try await store.close()
    }
}
