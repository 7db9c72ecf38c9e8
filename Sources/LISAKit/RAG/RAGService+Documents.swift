import Crypto
public import Foundation

extension RAGService {
    // MARK: - Documents and jobs

    /// Queues a file for ingestion and returns its job (`PENDING`). Bad input — an unknown
    /// repository or collection, an unsupported, empty or oversized file, chunk settings
    /// out of range — is refused before anything is stored.
    public func upload(
        _ data: Data, filename: String, to repositoryId: String, collection collectionId: String?, chunkSize: Int?, chunkOverlap: Int?,
        chunkingStrategy: String? = nil, by principal: Principal
    ) async throws -> IngestionJob {
        guard chunkingStrategy == nil || chunkingStrategy == "recursive" || chunkingStrategy == "none" else {
            throw LISAError.invalidRequest("chunkingStrategy must be 'recursive' or 'none'.", param: "chunkingStrategy")
        }
        let repository = try await repository(repositoryId, for: principal)
        let collection = try await collection(repository, collectionId)
        let name = (filename as NSString).lastPathComponent
        guard !name.isEmpty, name.count <= 255 else { throw LISAError.invalidRequest("The file needs a name.", param: "file") }
        let ext = (name as NSString).pathExtension.lowercased()
        guard DocumentParser.supportedExtensions.contains(ext) else {
            throw LISAError.unsupportedFileType(
                "'\(name)': unsupported file type; LISA ingests \(DocumentParser.supportedExtensions.map { ".\($0)" }.joined(separator: ", "))"
            )
        }
        guard !data.isEmpty else { throw LISAError.invalidRequest("'\(name)' is empty.", param: "file") }
        guard data.count <= maxUploadSize else { throw LISAError.payloadTooLarge(limit: maxUploadSize) }
        // A PDF this server cannot read is refused now, not accepted and failed later.
        if ext == "pdf", let problem = DocumentParser.pdfProblem(ingestion.document) {
            throw LISAError.unsupportedFileType("'\(name)': \(problem).")
        }
        let size = chunkSize ?? collection.chunkSize ?? repository.chunkSize ?? 512
        let overlap = chunkOverlap ?? collection.chunkOverlap ?? repository.chunkOverlap ?? min(51, size / 10)
        try ChunkingStrategy.recursive(size: size, overlap: overlap).validate()

        let documentId = try await documentID(for: name, in: repository.repositoryId, collection: collection.collectionId, by: principal)
        try await checkQuotas(of: principal, adding: documentId)
        // Embedding the file spends on the uploader's budgets: none may be spent already.
        try await gateway.accountant?.checkBudgets(of: principal)

        let now = Date()
        let job = IngestionJob(
            jobId: UUID().uuidString.lowercased(), repositoryId: repository.repositoryId, collectionId: collection.collectionId,
            documentId: documentId,
            documentName: name, username: principal.username, status: .pending, chunkSize: size, chunkOverlap: overlap,
            chunkingStrategy: chunkingStrategy, createdAt: now, updatedAt: now
        )
        try await store.putBlob(id: Self.blobID(job.jobId), bytes: Array(data))
        do {
            try await store.put(principal, kind: Self.payerKind, id: job.jobId, parent: repository.repositoryId)
            try await store.put(job, kind: Self.jobKind, id: job.jobId, parent: repository.repositoryId)
        } catch {
            try? await store.deleteBlob(id: Self.blobID(job.jobId))
            _ = try? await store.deleteRecord(kind: Self.payerKind, id: job.jobId)
            throw error
        }
        queue(job)
        return job
    }

    /// Throws unless `principal` may add documents to the repository (404 when they may not
    /// see it): checked before an upload's body is read.
    public func checkCanUpload(to repositoryId: String, by principal: Principal) async throws {
        _ = try await repository(repositoryId, for: principal)
    }

    /// The same file name in the same collection from the same user is the same document:
    /// ingesting it again replaces it. Another user's file of that name is another document,
    /// so no upload can replace (or take over) what someone else stored.
    static func documentID(repository: String, collection: String, name: String, owner: String) -> String {
        let digest = SHA256.hash(data: Data("\(repository)/\(collection)/\(owner)\u{1F}\(name)".utf8))
        return digest.prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// Before owners were part of a document's id, it came from the name alone.
    static func legacyDocumentID(repository: String, collection: String, name: String) -> String {
        let digest = SHA256.hash(data: Data("\(repository)/\(collection)/\(name)".utf8))
        return digest.prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    /// The id an upload of `name` by `principal` stores under: a document the caller stored
    /// before owner-scoped ids keeps its id (re-uploading replaces it, as it always did).
    private func documentID(for name: String, in repository: String, collection: String, by principal: Principal) async throws -> String {
        let legacy = Self.legacyDocumentID(repository: repository, collection: collection, name: name)
        if let document = try await store.get(RAGDocument.self, kind: Self.documentKind, id: legacy), document.username == principal.username {
            return legacy
        }
        return Self.documentID(repository: repository, collection: collection, name: name, owner: principal.username)
    }

    /// Refuses an upload past the user's document or waiting-job quota.
    private func checkQuotas(of principal: Principal, adding documentId: String) async throws {
        let jobs = try await store.list(IngestionJob.self, kind: Self.jobKind)
        let waiting = jobs.filter { $0.username == principal.username && ($0.status == .pending || $0.status == .inProgress) }.count
        guard waiting < quotas.maxPendingJobsPerUser else {
            throw LISAError.quotaExceeded(
                "You have \(waiting) documents waiting to be ingested, the most LISA queues per user (quotas.maxPendingJobsPerUser); retry when they finish."
            )
        }
        let documents = try await store.list(RAGDocument.self, kind: Self.documentKind)
        let owned = documents.filter { $0.username == principal.username }
        guard owned.count < quotas.maxDocumentsPerUser || owned.contains(where: { $0.documentId == documentId }) else {
            throw LISAError.quotaExceeded(
                "You own \(owned.count) documents, the most LISA keeps per user (quotas.maxDocumentsPerUser); delete some first."
            )
        }
    }

    public func jobs(of repositoryId: String, for principal: Principal) async throws -> [IngestionJob] {
        _ = try await repository(repositoryId, for: principal)
        return try await store.list(IngestionJob.self, kind: Self.jobKind, parent: repositoryId)
    }

    public func job(_ jobId: String, of repositoryId: String, for principal: Principal) async throws -> IngestionJob {
        _ = try await repository(repositoryId, for: principal)
        guard let job = try await store.get(IngestionJob.self, kind: Self.jobKind, id: jobId), job.repositoryId == repositoryId else {
            throw LISAError.notFound("No job '\(jobId)' in repository '\(repositoryId)'.", reason: "job_not_found")
        }
        return job
    }

    public func documents(of repositoryId: String, collection collectionId: String?, for principal: Principal) async throws -> [RAGDocument] {
        _ = try await repository(repositoryId, for: principal)
        return try await store.list(RAGDocument.self, kind: Self.documentKind, parent: repositoryId)
            .filter { collectionId == nil || $0.collectionId == collectionId }
    }

    /// Removes a document and its chunks: its uploader, or a RAG administrator.
    public func deleteDocument(_ documentId: String, of repositoryId: String, by principal: Principal) async throws -> RAGDocument {
        let repository = try await repository(repositoryId, for: principal)
        guard let document = try await store.get(RAGDocument.self, kind: Self.documentKind, id: documentId), document.repositoryId == repositoryId
        else { throw LISAError.notFound("No document '\(documentId)' in repository '\(repositoryId)'.", reason: "document_not_found") }
        guard document.username == principal.username || access.isRAGAdmin(principal) else {
            throw LISAError.forbidden("Only the document's owner or a RAG administrator may delete it.")
        }
        let collection = try await collection(repository, document.collectionId)
        try await vectors(for: repository).deleteDocument(documentId, from: collection.storeName)
        try await store.deleteRecord(kind: Self.documentKind, id: documentId)
        return document
    }
}
