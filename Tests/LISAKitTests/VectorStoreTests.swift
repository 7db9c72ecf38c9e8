import AsyncHTTPClient
import Foundation
import LISAHummingbirdTesting
import Logging
import Testing

@testable import LISAKit

/// Every vector store driver this machine can run, through one conformance suite.
enum VectorStoreKind: String, CaseIterable, CustomTestStringConvertible {
    case embeddedMemory, embeddedFile, pgvector, opensearchEmulator, opensearch

    var testDescription: String { rawValue }

    /// The embedded store and the OpenSearch emulator always; pgvector with
    /// `LISA_TEST_DATABASE_URL`; a real OpenSearch cluster with `OPENSEARCH_URL`
    /// (`OPENSEARCH_USERNAME`, `OPENSEARCH_PASSWORD`, `OPENSEARCH_CA_FILE` optional).
    static var available: [VectorStoreKind] {
        [.embeddedMemory, .embeddedFile, .opensearchEmulator] + (StoreKind.postgresURL == nil ? [] : [.pgvector])
            + (openSearchURL == nil ? [] : [.opensearch])
    }

    static var openSearchURL: String? {
        ProcessInfo.processInfo.environment["OPENSEARCH_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// A store for one test, a way to reopen it on the same data, and cleanup.
struct TestVectorStore {
    let store: any VectorStore
    let reopen: (@Sendable () async throws -> any VectorStore)?
    let cleanup: @Sendable () async throws -> Void

    static func make(_ kind: VectorStoreKind) async throws -> TestVectorStore {
        let logger = Logger(label: "vector-test")
        switch kind {
        case .embeddedMemory:
            return TestVectorStore(store: try await EmbeddedVectorStore.inMemory(), reopen: nil, cleanup: {})
        case .embeddedFile:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-vectors-\(UUID().uuidString)").path
            return TestVectorStore(
                store: try await EmbeddedVectorStore.open(directory: directory, logger: logger),
                reopen: { try await EmbeddedVectorStore.open(directory: directory, logger: logger) },
                cleanup: { try? FileManager.default.removeItem(atPath: directory) }
            )
        case .opensearchEmulator:
            // With basic auth on, as a secured cluster has it.
            let emulator = OpenSearchEmulator(username: "lisa", password: "s3cret")
            let (url, stop) = try await emulator.start()
            let prefix = "t\(UUID().uuidString.lowercased().prefix(6))-"
            var settings = OpenSearchConfiguration(url: url, username: "lisa", password: "s3cret")
            settings.indexPrefix = prefix
            let fixed = settings
            return TestVectorStore(
                store: try OpenSearchVectorStore(settings: fixed, httpClient: .shared, logger: logger),
                reopen: { try OpenSearchVectorStore(settings: fixed, httpClient: .shared, logger: logger) },
                cleanup: stop
            )
        case .opensearch:
            let environment = ProcessInfo.processInfo.environment
            var settings = OpenSearchConfiguration(
                url: try #require(VectorStoreKind.openSearchURL), username: environment["OPENSEARCH_USERNAME"],
                password: environment["OPENSEARCH_PASSWORD"], caFile: environment["OPENSEARCH_CA_FILE"]
            )
            settings.indexPrefix = "lisa-test-\(UUID().uuidString.lowercased().prefix(6))-"
            let fixed = settings
            let store = try OpenSearchVectorStore(settings: fixed, httpClient: .shared, logger: logger)
            return TestVectorStore(
                store: store, reopen: { try OpenSearchVectorStore(settings: fixed, httpClient: .shared, logger: logger) },
                cleanup: { for collection in (try? await store.collections()) ?? [] { _ = try? await store.dropCollection(collection.name) } }
            )
        case .pgvector:
            let base = try #require(StoreKind.postgresURL)
            let name = "lisa_vec_test_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(10))"
            let admin = try await PostgresDatabase.connect(url: base, logger: logger)
            try await admin.query("CREATE DATABASE \(name)")
            var components = try #require(URLComponents(string: base))
            components.path = "/\(name)"
            let url = try #require(components.string)
            let database = try await PostgresDatabase.connect(url: url, logger: logger)
            return TestVectorStore(
                store: try await PGVectorStore.open(database: database, logger: logger),
                reopen: {
                    try await PGVectorStore.open(database: try await PostgresDatabase.connect(url: url, logger: logger), logger: logger)
                },
                cleanup: {
                    try? await database.close()
                    try await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
                    try await admin.close()
                }
            )
        }
    }
}

@Suite("Vector store conformance")
struct VectorStoreTests {
    static func chunk(_ id: String, document: String, _ embedding: [Float], text: String? = nil, metadata: [String: JSONValue] = [:]) -> VectorChunk {
        VectorChunk(id: id, documentId: document, text: text ?? "chunk \(id)", metadata: metadata, embedding: embedding)
    }

    @Test("collections: create (idempotent), conflicting shapes, bad names, list, drop", arguments: VectorStoreKind.available)
    func collections(kind: VectorStoreKind) async throws {
        let test = try await TestVectorStore.make(kind)
        let store = test.store
        try await store.createCollection(VectorCollection(name: "docs", dimension: 3))
        try await store.createCollection(VectorCollection(name: "docs", dimension: 3))
        await #expect { try await store.createCollection(VectorCollection(name: "docs", dimension: 4)) } throws: {
            ($0 as? LISAError)?.code == .conflict
        }
        await #expect { try await store.createCollection(VectorCollection(name: "Bad Name", dimension: 3)) } throws: {
            ($0 as? LISAError)?.code == .invalidRequest
        }
        try await store.createCollection(VectorCollection(name: "l2-set", dimension: 2, metric: .l2))
        #expect(
            try await store.collections() == [
                VectorCollection(name: "docs", dimension: 3), VectorCollection(name: "l2-set", dimension: 2, metric: .l2),
            ])
        #expect(try await store.dropCollection("docs"))
        #expect(try await !store.dropCollection("docs"))
        await #expect { try await store.count(in: "docs") } throws: { ($0 as? LISAError)?.code == .notFound }
        try await store.close()
        try await test.cleanup()
    }

    @Test("upsert and search: ordering, topK, threshold, metadata filter, bad input", arguments: VectorStoreKind.available)
    func search(kind: VectorStoreKind) async throws {
        let test = try await TestVectorStore.make(kind)
        let store = test.store
        try await store.createCollection(VectorCollection(name: "docs", dimension: 3))
        try await store.upsert(
            [
                Self.chunk("a", document: "d1", [1, 0, 0], metadata: ["lang": "en"]),
                Self.chunk("b", document: "d1", [0.9, 0.1, 0], metadata: ["lang": "de"]),
                Self.chunk("c", document: "d2", [0, 1, 0], metadata: ["lang": "en"]),
                Self.chunk("d", document: "d3", [0, 0, 1], metadata: ["lang": "en", "year": 2024]),
            ],
            into: "docs"
        )
        let top = try await store.search(VectorQuery(embedding: [1, 0, 0], topK: 2), in: "docs")
        #expect(top.map(\.id) == ["a", "b"])
        #expect(abs(top[0].score - 1) < 1e-4, "cosine similarity of identical directions")
        #expect(top[0].text == "chunk a" && top[0].documentId == "d1" && top[0].metadata == ["lang": "en"])

        let filtered = try await store.search(VectorQuery(embedding: [1, 0, 0], topK: 3, filter: ["lang": "en"]), in: "docs")
        #expect(filtered.map(\.id) == ["a", "c", "d"] || filtered.map(\.id) == ["a", "d", "c"])
        #expect(try await store.search(VectorQuery(embedding: [1, 0, 0], topK: 3, filter: ["year": 2024]), in: "docs").map(\.id) == ["d"])
        let thresholded = try await store.search(VectorQuery(embedding: [1, 0, 0], topK: 4, scoreThreshold: 0.5), in: "docs")
        #expect(thresholded.map(\.id) == ["a", "b"])

        // Upserting an existing id replaces it.
        try await store.upsert([Self.chunk("c", document: "d2", [1, 0, 0.01], text: "moved")], into: "docs")
        #expect(try await store.search(VectorQuery(embedding: [1, 0, 0.01], topK: 1), in: "docs").first?.text == "moved")
        #expect(try await store.count(in: "docs") == 4)

        await #expect { try await store.upsert([Self.chunk("x", document: "d", [1, 0])], into: "docs") } throws: {
            ($0 as? LISAError)?.code == .invalidRequest
        }
        await #expect { try await store.search(VectorQuery(embedding: [1, 0]), in: "docs") } throws: { ($0 as? LISAError)?.code == .invalidRequest }
        await #expect { try await store.search(VectorQuery(embedding: [1, 0, 0]), in: "nope") } throws: { ($0 as? LISAError)?.code == .notFound }
        #expect(try await store.count(in: "docs") == 4, "a refused batch stores nothing")
        try await store.close()
        try await test.cleanup()
    }

    @Test("documents: replace atomically, delete, and what is stored survives reopening", arguments: VectorStoreKind.available)
    func documents(kind: VectorStoreKind) async throws {
        let test = try await TestVectorStore.make(kind)
        let store = test.store
        try await store.createCollection(VectorCollection(name: "docs", dimension: 2))
        try await store.upsert(
            [
                Self.chunk("d1-0", document: "d1", [1, 0]), Self.chunk("d1-1", document: "d1", [0.8, 0.2]),
                Self.chunk("d2-0", document: "d2", [0, 1]),
            ], into: "docs")
        try await store.replaceDocument("d1", with: [Self.chunk("d1-new", document: "d1", [0.7, 0.3])], in: "docs")
        #expect(try await store.count(in: "docs") == 2)
        #expect(try await store.search(VectorQuery(embedding: [1, 0], topK: 5), in: "docs").map(\.id) == ["d1-new", "d2-0"])
        await #expect { try await store.replaceDocument("d1", with: [Self.chunk("z", document: "other", [1, 0])], in: "docs") } throws: {
            ($0 as? LISAError)?.code == .invalidRequest
        }
        #expect(try await store.deleteDocument("d2", from: "docs") == 1)
        #expect(try await store.deleteDocument("d2", from: "docs") == 0)
        try await store.close()
        if let reopen = test.reopen {
            let again = try await reopen()
            #expect(try await again.collections().map(\.name) == ["docs"])
            #expect(try await again.search(VectorQuery(embedding: [1, 0], topK: 5), in: "docs").map(\.id) == ["d1-new"])
            try await again.close()
        }
        try await test.cleanup()
    }

    @Test("every metric agrees with a brute-force ranking on random data", arguments: VectorStoreKind.available)
    func bruteForce(kind: VectorStoreKind) async throws {
        let test = try await TestVectorStore.make(kind)
        let store = test.store
        var generator = SeededGenerator(state: 42)
        let dimension = 24
        let vectors = (0..<300).map { _ in (0..<dimension).map { _ in Float.random(in: -1...1, using: &generator) } }
        for metric in DistanceMetric.allCases {
            let name = "m-\(metric.rawValue.lowercased())"
            try await store.createCollection(VectorCollection(name: name, dimension: dimension, metric: metric))
            try await store.upsert(vectors.enumerated().map { Self.chunk("v\($0)", document: "doc\($0 % 7)", $1) }, into: name)
            for probe in vectors.prefix(5) {
                let query = probe.map { $0 + Float.random(in: -0.05...0.05, using: &generator) }
                let expected = vectors.indices.max { Self.score(vectors[$0], query, metric) < Self.score(vectors[$1], query, metric) }!
                let found = try await store.search(VectorQuery(embedding: query, topK: 5), in: name)
                #expect(found.first?.id == "v\(expected)", "\(metric) top-1")
                #expect(abs((found.first?.score ?? 0) - Self.score(vectors[expected], query, metric)) < 1e-3, "\(metric) score")
                #expect(found.map(\.score) == found.map(\.score).sorted(by: >), "best first")
            }
        }
        try await store.close()
        try await test.cleanup()
    }

    @Test("hybrid search fuses full-text and vector rankings (pgvector)", .enabled(if: StoreKind.postgresURL != nil))
    func hybrid() async throws {
        let test = try await TestVectorStore.make(.pgvector)
        let store = test.store
        try await store.createCollection(VectorCollection(name: "docs", dimension: 2))
        try await store.upsert(
            [
                Self.chunk("near", document: "a", [1, 0], text: "the quarterly report on revenue"),
                Self.chunk("far", document: "b", [0, 1], text: "the zebrafish genome annotation"),
            ], into: "docs")
        let vectorOnly = try await store.search(VectorQuery(embedding: [1, 0], topK: 2), in: "docs")
        #expect(vectorOnly.first?.id == "near")
        let hybrid = try await store.search(VectorQuery(embedding: [0.6, 0.4], topK: 2, text: "zebrafish"), in: "docs")
        #expect(hybrid.first?.id == "far", "the only full-text match wins the fused ranking")
        try await store.close()
        try await test.cleanup()
    }

    static func score(_ a: [Float], _ b: [Float], _ metric: DistanceMetric) -> Float {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        switch metric {
        case .innerProduct: return dot
        case .cosine: return dot / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
        case .l2: return -zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        }
    }
}
