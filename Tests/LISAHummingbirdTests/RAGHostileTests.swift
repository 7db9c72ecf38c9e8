import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import Logging
import ServiceLifecycle
import Testing

@testable import LISAKit

/// Attacks on RAG's stored data and its ingestion worker.
@Suite("RAG under attack: take-overs, secrets, runaway jobs")
struct RAGHostileTests {
    static let alice = Principal(username: "alice", groups: [], method: .apiToken)
    static let bob = Principal(username: "bob", groups: [], method: .apiToken)

    @Test("uploading another user's file name stores a second document; the first keeps its owner and chunks")
    func noDocumentTakeOver() async throws {
        try await RAGServiceTests.withService { rag, _, _ in
            let first = try await rag.upload(
                Data("Alice's real findings.".utf8), filename: "report.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            await rag.ingest(first.jobId)
            let second = try await rag.upload(
                Data("Bob's forged findings.".utf8), filename: "report.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.bob)
            await rag.ingest(second.jobId)
            #expect(first.documentId != second.documentId)
            let documents = try await rag.documents(of: "docs", collection: nil, for: .admin)
            #expect(Set(documents.map(\.username)) == ["alice", "bob"])
            let hits = try await rag.search("findings", in: "docs", collection: nil, topK: 5, for: Self.alice)
            #expect(hits.contains { $0.text.contains("Alice's real findings") })
            // Bob cannot delete Alice's document either.
            await #expect { _ = try await rag.deleteDocument(first.documentId, of: "docs", by: Self.bob) } throws: {
                ($0 as? LISAError)?.code == .permissionDenied
            }
            // Re-uploading her own name replaces her own document.
            let again = try await rag.upload(
                Data("Alice's revised findings.".utf8), filename: "report.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            #expect(again.documentId == first.documentId)
        }
    }

    @Test("changing a repository's OpenSearch URL is for administrators and drops the stored password")
    func openSearchSecretStaysWithItsEndpoint() async throws {
        try await RAGServiceTests.withService { rag, store, _ in
            var repository = RAGRepository(repositoryId: "os", embeddingModelId: "embed")
            repository.type = .opensearch
            repository.opensearch = OpenSearchConfiguration(url: "https://search.internal:9200", username: "lisa", password: "s3cret")
            _ = try await rag.createRepository(repository, by: .admin)
            let ragAdmin = Principal(username: "rita", groups: ["rag-admins"], method: .apiToken)
            let moved: JSONValue = ["opensearch": ["url": "https://attacker.example:9200", "username": "lisa", "password": "***"]]
            let refused = await #expect(throws: LISAError.self) { _ = try await rag.updateRepository("os", patch: moved, by: ragAdmin) }
            #expect(refused?.code == .permissionDenied, "a RAG administrator may rename, not re-point")
            let renamed: JSONValue = [
                "repositoryName": "Search", "opensearch": ["url": "https://search.internal:9200", "username": "lisa", "password": "***"],
            ]
            _ = try await rag.updateRepository("os", patch: renamed, by: .admin)
            #expect(
                try await store.records.get(RAGRepository.self, kind: "rag.repository", id: "os")?.opensearch?.password == "s3cret",
                "same endpoint keeps it")
            _ = try await rag.updateRepository("os", patch: moved, by: .admin)
            let stored = try await store.records.get(RAGRepository.self, kind: "rag.repository", id: "os")
            #expect(stored?.opensearch?.url == "https://attacker.example:9200")
            #expect(stored?.opensearch?.password == nil, "the old secret is not sent to the new URL")
        }
    }

    @Test("a job past its time budget is FAILED with the reason; a job that keeps dying is not resumed forever")
    func jobBudgets() async throws {
        var limits = IngestionLimits()
        limits.timeoutSeconds = 1
        limits.maxAttempts = 2
        try await RAGServiceTests.withService(ingestion: limits) { rag, store, _ in
            _ = try await rag.createRepository(RAGRepository(repositoryId: "slow", embeddingModelId: "slow-embed"), by: .admin)
            let slow = try await rag.upload(
                Data("Embedding this never ends.".utf8), filename: "slow.txt", to: "slow", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            await rag.ingestWithinBudget(slow.jobId)
            let failed = try #require(try await rag.waitForJob(slow.jobId, timeout: .seconds(10)))
            #expect(failed.status == .failed)
            #expect(failed.reason?.contains("longer than 1 s") == true, "\(failed.reason ?? "")")

            // A job that was IN_PROGRESS at its last two starts (it took LISA down each time).
            var stuck = try await rag.upload(
                Data("Poison.".utf8), filename: "poison.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            stuck.status = .inProgress
            stuck.attempts = 2
            try await store.records.put(stuck, kind: "rag.job", id: stuck.jobId, parent: "docs")
            await rag.ingest(stuck.jobId)
            let gaveUp = try #require(try await rag.waitForJob(stuck.jobId, timeout: .seconds(10)))
            #expect(gaveUp.status == .failed && gaveUp.reason?.contains("maxAttempts") == true)
        }
    }

    @Test("while one user's slow job runs, another user's upload is ingested; shutdown does not wait for the slow one")
    func fairnessAndShutdown() async throws {
        var limits = IngestionLimits()
        limits.concurrency = 2
        try await RAGServiceTests.withService(ingestion: limits) { rag, store, lisa in
            _ = try await rag.createRepository(RAGRepository(repositoryId: "slow", embeddingModelId: "slow-embed"), by: .admin)
            let group = ServiceGroup(configuration: .init(services: [rag], logger: Logger(label: "rag-test")))
            var slowJobs: [IngestionJob] = []
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                for index in 0..<5 {
                    slowJobs.append(
                        try await rag.upload(
                            Data("Slow \(index).".utf8), filename: "slow\(index).txt", to: "slow", collection: nil,
                            chunkSize: nil, chunkOverlap: nil, by: Self.bob)
                    )
                }
                let quick = try await rag.upload(
                    Data("Alice's quick note.".utf8), filename: "quick.txt", to: "docs", collection: nil,
                    chunkSize: nil, chunkOverlap: nil, by: Self.alice)
                let done = try #require(try await rag.waitForJob(quick.jobId, timeout: .seconds(20)))
                #expect(done.status == .completed, "Alice is not queued behind Bob's five slow jobs")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                // The slow upstream answers after 30 s; shutdown hung up on it instead of waiting.
                #expect(
                    await eventually(timeout: .seconds(15)) { lisa.fake.observations.cancelled >= 1 },
                    "shutdown cancels the slow embedding instead of waiting 30 s"
                )
            }
            for job in slowJobs {
                let stored = try #require(try await store.records.get(IngestionJob.self, kind: "rag.job", id: job.jobId))
                #expect(stored.status == .pending, "interrupted jobs stay queued for the next start")
                #expect((stored.attempts ?? 0) == 0, "a shutdown is not the file's fault: the start does not count")
            }
        }
    }

    @Test("a user's waiting jobs and documents are capped")
    func ingestionQuotas() async throws {
        var quotas = StorageQuotas()
        quotas.maxPendingJobsPerUser = 3
        try await RAGServiceTests.withService(quotas: quotas) { rag, _, _ in
            for index in 0..<3 {
                _ = try await rag.upload(
                    Data("Doc \(index).".utf8), filename: "d\(index).txt", to: "docs", collection: nil,
                    chunkSize: nil, chunkOverlap: nil, by: Self.bob)
            }
            let error = await #expect(throws: LISAError.self) {
                _ = try await rag.upload(
                    Data("One more.".utf8), filename: "d3.txt", to: "docs", collection: nil,
                    chunkSize: nil, chunkOverlap: nil, by: Self.bob)
            }
            #expect(error?.code == .quotaExceeded && error?.reason == "quota_exceeded")
            _ = try await rag.upload(
                Data("Alice is not affected.".utf8), filename: "a.txt", to: "docs", collection: nil,
                chunkSize: nil, chunkOverlap: nil, by: Self.alice)
        }
    }
}
