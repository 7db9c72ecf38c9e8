import AsyncHTTPClient
import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import Logging
import ServiceLifecycle
import Testing

@testable import LISAKit

@Suite("RAG service")
struct RAGServiceTests {
    /// A RAG service over the harness's gateway (the fake upstream serves embeddings).
    static func withService(
        maxUploadSize: Int = 1024 * 1024, ingestion: IngestionLimits = IngestionLimits(), quotas: StorageQuotas = StorageQuotas(),
        _ body: @Sendable (RAGService, SQLStateStore, Harness) async throws -> Void
    ) async throws {
        let store = try await SQLStateStore.inMemory()
        var fake = FakeUpstream.Configuration()
        fake.slowDelay = .seconds(30)
        try await Harness.run(
            fake: FakeUpstream(configuration: fake), store: store, access: AccessConfiguration(ragAdminGroup: "rag-admins"),
            models: { url in
                [
                    ModelDefinition(modelId: "chat", modelName: "echo-upstream", modelUrl: url),
                    ModelDefinition(modelId: "embed", modelName: "embed-upstream", modelType: .embedding, modelUrl: url),
                    ModelDefinition(modelId: "slow-embed", modelName: "slow", modelType: .embedding, modelUrl: url),
                ]
            }
        ) { lisa in
            let vectors = try await EmbeddedVectorStore.inMemory()
            let uploads = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-uploads-\(UUID().uuidString)").path
            let rag = try RAGService(
                store: store.records, coordination: store.coordination, gateway: lisa.gateway, embedded: vectors, pgvector: nil,
                uploadDirectory: uploads, maxUploadSize: maxUploadSize,
                ingestion: ingestion, quotas: quotas, httpClient: HTTPClient.shared,
                logger: Logger(label: "rag-test")
            )
            _ = try await rag.createRepository(RAGRepository(repositoryId: "docs", embeddingModelId: "embed"), by: .admin)
            try await body(rag, store, lisa)
            try await vectors.close()
            try? FileManager.default.removeItem(atPath: uploads)
        }
        try await store.close()
    }

    @Test("jobs a previous run left PENDING or IN_PROGRESS are ingested when the service starts")
    func resumesJobs() async throws {
        try await Self.withService { rag, store, _ in
            // Queue two uploads without a running service, as if the process died before ingesting them.
            let first = try await rag.upload(
                Data("The first document.".utf8), filename: "a.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: .admin)
            var second = try await rag.upload(
                Data("The second document.".utf8), filename: "b.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: .admin)
            second.status = .inProgress
            try await store.records.put(second, kind: "rag.job", id: second.jobId, parent: "docs")

            // A fresh service on the same store and uploads picks them up.
            let restarted = try RAGService(
                store: store.records, coordination: store.coordination, gateway: rag.gateway, embedded: rag.embedded, pgvector: nil,
                uploadDirectory: rag.uploadDirectory,
                logger: Logger(label: "rag-test")
            )
            let group = ServiceGroup(configuration: .init(services: [restarted], logger: Logger(label: "rag-test")))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                for job in [first, second] {
                    let done = try #require(try await restarted.waitForJob(job.jobId, timeout: .seconds(20)))
                    #expect(done.status == .completed && done.chunks == 1)
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(try await rag.documents(of: "docs", collection: nil, for: .admin).map(\.documentName).sorted() == ["a.txt", "b.txt"])
        }
    }

    @Test("oversized uploads are refused with 413; chunkingStrategy none keeps the document whole")
    func limitsAndStrategies() async throws {
        try await Self.withService(maxUploadSize: 2000) { rag, _, _ in
            await #expect {
                _ = try await rag.upload(
                    Data(repeating: 65, count: 2001), filename: "big.txt", to: "docs", collection: nil,
                    chunkSize: nil, chunkOverlap: nil, by: .admin)
            } throws: { ($0 as? LISAError)?.code == .tooLarge }
            await #expect {
                _ = try await rag.upload(
                    Data("x".utf8), filename: "a.txt", to: "docs", collection: nil, chunkSize: nil, chunkOverlap: nil,
                    chunkingStrategy: "semantic", by: .admin)
            } throws: { ($0 as? LISAError)?.param == "chunkingStrategy" }
            let text = String(repeating: "A sentence that repeats. ", count: 60)
            let job = try await rag.upload(
                Data(text.utf8), filename: "whole.txt", to: "docs", collection: nil, chunkSize: 100,
                chunkOverlap: 0, chunkingStrategy: "none", by: .admin)
            await rag.ingest(job.jobId)
            #expect(try await rag.waitForJob(job.jobId)?.chunks == 1)
            let split = try await rag.upload(
                Data(text.utf8), filename: "split.txt", to: "docs", collection: nil, chunkSize: 100,
                chunkOverlap: 0, by: .admin)
            await rag.ingest(split.jobId)
            #expect((try await rag.waitForJob(split.jobId)?.chunks ?? 0) > 10)
        }
    }
}
