import Foundation
import Logging
import ServiceLifecycle
import Synchronization

extension RAGService {
    // MARK: - Ingestion queue

    /// Where uploads waited before they moved into the store (read for jobs queued then).
    private func uploadPath(_ jobId: String) -> String {
        URL(fileURLWithPath: uploadDirectory).appendingPathComponent(jobId).path
    }

    static func blobID(_ jobId: String) -> String { "rag.upload:\(jobId)" }
    static func claimID(_ jobId: String) -> String { "rag.job:\(jobId)" }

    /// Queues a job here unless it already is.
    func queue(_ job: IngestionJob) {
        guard localJobs.withLock({ $0.insert(job.jobId).inserted }) else { return }
        enqueue.yield(.queued(jobId: job.jobId, user: job.username))
    }

    /// The uploaded bytes of a job, and forgets them.
    private func uploadedBytes(_ jobId: String) async throws -> Data? {
        if let bytes = try await store.blob(id: Self.blobID(jobId)) { return Data(bytes) }
        return FileManager.default.contents(atPath: uploadPath(jobId))
    }

    func forgetUpload(_ jobId: String) async {
        try? await store.deleteBlob(id: Self.blobID(jobId))
        _ = try? await store.deleteRecord(kind: Self.payerKind, id: jobId)
        try? FileManager.default.removeItem(atPath: uploadPath(jobId))
    }

    /// Queues every unfinished job; a job another live replica runs is skipped when its
    /// claim is tried.
    private func queueUnfinishedJobs() async throws {
        for job in try await store.list(IngestionJob.self, kind: Self.jobKind) where job.status == .pending || job.status == .inProgress {
            queue(job)
        }
    }

    // MARK: - Ingestion worker

    /// Ingests queued jobs until graceful shutdown: ``IngestionLimits/concurrency`` at a
    /// time, fairly between users, each within its time budget.
    ///
    /// Jobs a previous run left behind start again from the beginning (ingestion replaces
    /// the document's chunks at the very end, so a half-done job left nothing) — at most
    /// ``IngestionLimits/maxAttempts`` times in all, so a file that stops LISA every time
    /// it is read fails instead of coming back at every start. At shutdown, running jobs
    /// are cancelled (their subprocesses killed) and go back to PENDING for the next start,
    /// without counting as an attempt.
    public func run() async throws {
        try await queueUnfinishedJobs()
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                if self.coordination.isShared {
                    // Jobs uploaded through a replica that died, once their lease lapses.
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(clamping: self.ingestion.scanIntervalSeconds))
                            guard !Task.isCancelled else { return }
                            try? await self.queueUnfinishedJobs()
                        }
                    }
                }
                var scheduler = IngestionScheduler(concurrency: self.ingestion.concurrency)
                for await event in self.queue {
                    switch event {
                    case .queued(let jobId, let user): scheduler.add(jobId, user: user)
                    case .finished(let user): scheduler.finished(user: user)
                    }
                    while let next = scheduler.next() {
                        group.addTask {
                            await self.ingestWithinBudget(next.jobId)
                            self.enqueue.yield(.finished(user: next.user))
                        }
                    }
                }
            }
        }
    }

    /// Runs one job with its deadline, under this process's claim on it (renewed while it
    /// runs); a job another process holds is left to it. A job past its deadline is
    /// cancelled and FAILED with the reason.
    func ingestWithinBudget(_ jobId: String) async {
        defer { _ = localJobs.withLock { $0.remove(jobId) } }
        let claim = Self.claimID(jobId)
        let holder = coordination.instanceID
        let lease = ingestion.leaseSeconds
        guard (try? await coordination.claim(claim, holder: holder, seconds: lease)) == true else { return }
        let timeout = ingestion.timeoutSeconds
        let finished = await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await self.ingest(jobId)
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(timeout))
                return Task.isCancelled ? nil : false
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(lease / 3))
                    guard !Task.isCancelled else { break }
                    if (try? await self.coordination.claim(claim, holder: holder, seconds: lease)) != true {
                        self.logger.warning("could not renew the claim on an ingestion job", metadata: ["lisa.job": "\(jobId)"])
                    }
                }
                return nil
            }
            var first: Bool?
            while first == nil, let next = await group.next() {
                first = next
            }
            group.cancelAll()
            return first ?? true
        }
        if !finished, !Task.isCancelled {
            await fail(jobId, reason: "Ingestion took longer than \(Int(timeout)) s (rag.ingestion.timeoutSeconds) and was stopped.")
        }
        // Given back at once (done, failed, or put back by a shutdown): another replica may
        // take a job this one did not finish without waiting for the lease.
        let coordination = self.coordination
        await Task { try? await coordination.releaseClaim(claim, holder: holder) }.value
    }

    private func fail(_ jobId: String, reason: String) async {
        guard var job = try? await store.get(IngestionJob.self, kind: Self.jobKind, id: jobId) else { return }
        job.status = .failed
        job.reason = reason
        job.updatedAt = Date()
        logger.warning("ingestion failed", metadata: ["lisa.job": "\(job.jobId)", "lisa.reason": "\(reason)"])
        try? await store.put(job, kind: Self.jobKind, id: job.jobId, parent: job.repositoryId)
        await forgetUpload(job.jobId)
    }

    /// Runs one job: parse, chunk, embed in batches through the router, then replace the
    /// document's chunks in one step. Any failure leaves the previous chunks (if any) and
    /// marks the job FAILED with the reason; cancellation (shutdown, deadline) leaves it
    /// for the caller to decide.
    func ingest(_ jobId: String) async {
        guard var job = try? await store.get(IngestionJob.self, kind: Self.jobKind, id: jobId),
            job.status == .pending || job.status == .inProgress
        else { return }
        let attempts = (job.attempts ?? 0) + 1
        guard attempts <= ingestion.maxAttempts else {
            await fail(
                jobId,
                reason: "Ingestion was started \(ingestion.maxAttempts) times without finishing (rag.ingestion.maxAttempts); it is not tried again."
            )
            return
        }
        job.attempts = attempts
        job.status = .inProgress
        job.updatedAt = Date()
        try? await store.put(job, kind: Self.jobKind, id: job.jobId, parent: job.repositoryId)
        do {
            guard let repository = try await store.get(RAGRepository.self, kind: Self.repositoryKind, id: job.repositoryId) else {
                throw LISAError.notFound("The repository was deleted.")
            }
            let collection = try await collection(repository, job.collectionId)
            guard let data = try await uploadedBytes(job.jobId) else {
                throw LISAError.internalError("The uploaded file is gone.")
            }
            let text = try await DocumentParser.text(of: data, filename: job.documentName, limits: ingestion.document)
            try Task.checkCancellation()
            let pieces = job.chunking.split(text)
            try Task.checkCancellation()
            guard !pieces.isEmpty else { throw LISAError.invalidRequest("'\(job.documentName)' has no text to ingest.") }
            let model = collection.embeddingModelId ?? repository.embeddingModelId
            // Each batch is reserved on and charged to the uploader's budgets (a job queued
            // before they were kept has its user's); one refused fails the job with the reason.
            let payer =
                try await store.get(Principal.self, kind: Self.payerKind, id: job.jobId)
                ?? Principal(username: job.username, groups: [], method: .apiToken)
            var embeddings: [[Float]] = []
            for start in stride(from: 0, to: pieces.count, by: 32) {
                embeddings += try await gateway.embed(
                    Array(pieces[start..<min(start + 32, pieces.count)]), model: model, billedTo: job.username, budgetedAs: payer,
                    operation: "rag.ingestion", logger: logger
                )
            }
            guard let dimension = embeddings.first?.count, embeddings.allSatisfy({ $0.count == dimension }) else {
                throw LISAError.badGateway("The embedding model returned vectors of different sizes.")
            }
            let vectors = try await vectors(for: repository)
            var stored = collection
            if let fixed = collection.dimension, fixed != dimension {
                throw LISAError.invalidRequest(
                    "The embedding model now returns \(dimension) dimensions; the collection holds \(fixed)."
                )
            }
            if collection.dimension == nil {
                try await vectors.createCollection(VectorCollection(name: collection.storeName, dimension: dimension, metric: .cosine))
                stored.dimension = dimension
                try await store.put(stored, kind: Self.collectionKind, id: stored.storeName, parent: repository.repositoryId)
            }
            let chunks = zip(pieces, embeddings).enumerated().map { index, pair in
                VectorChunk(
                    id: "\(job.documentId)-\(index)", documentId: job.documentId, text: pair.0,
                    metadata: ["documentName": .string(job.documentName), "chunk": .integer(Int64(index)), "username": .string(job.username)],
                    embedding: pair.1
                )
            }
            try await vectors.replaceDocument(job.documentId, with: chunks, in: collection.storeName)
            let document = RAGDocument(
                documentId: job.documentId, repositoryId: job.repositoryId, collectionId: job.collectionId, documentName: job.documentName,
                username: job.username, chunks: chunks.count, chunkSize: job.chunkSize, chunkOverlap: job.chunkOverlap, createdAt: Date()
            )
            try await store.put(document, kind: Self.documentKind, id: document.documentId, parent: job.repositoryId)
            job.status = .completed
            job.chunks = chunks.count
            logger.info(
                "document ingested",
                metadata: ["lisa.repository": "\(job.repositoryId)", "lisa.document": "\(job.documentName)", "lisa.chunks": "\(chunks.count)"])
        } catch {
            if Task.isCancelled || error is CancellationError {
                // Stopped from outside (shutdown, the deadline): not the file's fault, so the
                // start does not count; a deadline marks the job FAILED right after this. The
                // write runs in a task of its own, as this one is cancelled.
                logger.info("ingestion stopped", metadata: ["lisa.job": "\(job.jobId)"])
                job.attempts = attempts - 1
                job.status = .pending
                job.updatedAt = Date()
                let requeued = job
                let store = self.store
                await Task { try? await store.put(requeued, kind: Self.jobKind, id: requeued.jobId, parent: requeued.repositoryId) }.value
                return
            }
            job.status = .failed
            job.reason = (error as? LISAError)?.message ?? String(describing: error)
            logger.warning("ingestion failed", metadata: ["lisa.job": "\(job.jobId)", "lisa.reason": "\(job.reason ?? "")"])
        }
        job.updatedAt = Date()
        try? await store.put(job, kind: Self.jobKind, id: job.jobId, parent: job.repositoryId)
        await forgetUpload(job.jobId)
    }

    /// Waits until a job has finished (tests, `lisactl --wait`).
    public func waitForJob(_ jobId: String, timeout: Duration = .seconds(60)) async throws -> IngestionJob? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let job = try await store.get(IngestionJob.self, kind: Self.jobKind, id: jobId), job.status == .completed || job.status == .failed {
                return job
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}
