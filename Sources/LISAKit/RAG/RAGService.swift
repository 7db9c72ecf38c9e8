import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Tracing

/// Retrieval-augmented generation: repositories of documents on a vector store, ingestion
/// jobs (parse → chunk → embed through the router → store, all or nothing), similarity
/// search, and grounding of chat requests.
///
/// Repositories, collections, documents and jobs are records in the state store, and an
/// upload waits in the store too until its job finishes, so jobs survive a restart and
/// belong to every replica sharing the store: a replica runs a job under a lease
/// (``IngestionLimits/leaseSeconds``), so it is ingested once, and a job whose replica died
/// is taken over by another when its lease lapses. Run the service as a `Service`: it
/// ingests queued jobs and resumes interrupted ones.
public final class RAGService: Service, Sendable {
    public let store: any StateStore
    public let gateway: Gateway
    public let embedded: EmbeddedVectorStore
    public let pgvector: PGVectorStore?
    public let uploadDirectory: String
    /// The largest file accepted. Default 20 MiB.
    public let maxUploadSize: Int
    /// The budgets of ingestion: concurrency, time, attempts, text.
    public let ingestion: IngestionLimits
    /// What each user may keep (documents, jobs waiting).
    public let quotas: StorageQuotas
    /// The client OpenSearch repositories are reached with (`nil`: none can be used).
    let httpClient: HTTPClient?
    let logger: Logger
    private let openSearchStores = Mutex<[RAGRepository.ID: OpenSearchVectorStore]>([:])
    /// pgvector stores in databases of their own (`pgvector.url`), one pool per URL.
    private let externalPGVector = Mutex<[String: Task<(PostgresDatabase, PGVectorStore), any Error>]>([:])
    private let queue: AsyncStream<WorkerEvent>
    private let enqueue: AsyncStream<WorkerEvent>.Continuation
    /// Jobs queued or running in this process (so a scan does not queue them twice).
    private let localJobs = Mutex<Set<String>>([])

    /// What the ingestion dispatcher reacts to.
    enum WorkerEvent: Sendable {
        case queued(jobId: String, user: String)
        case finished(user: String)
    }

    static let repositoryKind = "rag.repository"
    static let collectionKind = "rag.collection"
    static let documentKind = "rag.document"
    static let jobKind = "rag.job"
    /// Whose budgets a job's embeddings are charged to (the uploader), kept beside the job
    /// until it ends.
    static let payerKind = "rag.job.payer"

    public init(
        store: any StateStore, gateway: Gateway, embedded: EmbeddedVectorStore, pgvector: PGVectorStore?, uploadDirectory: String,
        maxUploadSize: Int = 20 * 1024 * 1024, ingestion: IngestionLimits = IngestionLimits(), quotas: StorageQuotas = StorageQuotas(),
        httpClient: HTTPClient? = nil, logger: Logger
    ) throws {
        self.httpClient = httpClient
        self.ingestion = ingestion
        self.quotas = quotas
        self.store = store
        self.gateway = gateway
        self.embedded = embedded
        self.pgvector = pgvector
        self.uploadDirectory = uploadDirectory
        self.maxUploadSize = maxUploadSize
        self.logger = logger
        (queue, enqueue) = AsyncStream.makeStream(of: WorkerEvent.self)
        try FileManager.default.createDirectory(atPath: uploadDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    var access: AccessConfiguration { gateway.access }

    private func vectors(for repository: RAGRepository) async throws -> any VectorStore {
        switch repository.type {
        case .embedded: return embedded
        case .pgvector:
            if let url = repository.pgvector?.url { return try await externalPGVector(url: url) }
            guard let pgvector else {
                throw LISAError.invalidRequest(
                    "pgvector repositories need pgvector.url or PostgreSQL state with the vector extension (LISA_DATABASE_URL).", param: "type"
                )
            }
            return pgvector
        case .opensearch:
            guard let settings = repository.opensearch else {
                throw LISAError.invalidRequest("An opensearch repository needs opensearch.url.", param: "opensearch")
            }
            let key = RAGRepository.ID(repositoryId: repository.repositoryId, settings: settings)
            if let store = openSearchStores.withLock({ $0[key] }) { return store }
            guard let httpClient else {
                throw LISAError.invalidRequest("This LISA has no HTTP client for OpenSearch repositories.", param: "type")
            }
            let store = try OpenSearchVectorStore(settings: settings, httpClient: httpClient, logger: logger)
            openSearchStores.withLock { $0[key] = store }
            return store
        }
    }

    /// The pgvector store at `url`, connected once and shared by every repository naming it.
    private func externalPGVector(url: String) async throws -> PGVectorStore {
        let logger = self.logger
        let task = externalPGVector.withLock { stores in
            if let task = stores[url] { return task }
            let task = Task {
                let database = try await PostgresDatabase.connect(url: url, logger: logger)
                do {
                    return (database, try await PGVectorStore.open(database: database, logger: logger))
                } catch {
                    try? await database.close()
                    throw error
                }
            }
            stores[url] = task
            return task
        }
        do {
            return try await task.value.1
        } catch {
            // The next use tries again.
            externalPGVector.withLock { stores in
                if stores[url] == task { stores[url] = nil }
            }
            let reason = (error as? PostgresDatabase.ConnectionError)?.description ?? String(describing: error).prefix(300).description
            throw LISAError.invalidRequest("The repository's pgvector database cannot be used: \(reason)", param: "pgvector.url")
        }
    }

    /// Closes the connections of repositories with a pgvector database of their own.
    public func close() async {
        let tasks = externalPGVector.withLock { stores in
            defer { stores = [:] }
            return Array(stores.values)
        }
        for task in tasks {
            try? await task.value.0.close()
        }
    }

    // MARK: - Repositories

    public func createRepository(_ repository: RAGRepository, by principal: Principal) async throws -> RAGRepository {
        guard access.isAdmin(principal) else { throw LISAError.forbidden("Creating a repository needs an administrator.") }
        var repository = repository
        if repository.typeIsDefault {
            // One replica's data directory cannot serve the others: with shared state the
            // default store is the shared one.
            repository.type = store.isShared || repository.pgvector != nil ? .pgvector : .embedded
            if store.isShared, repository.pgvector == nil, pgvector == nil {
                throw LISAError.invalidRequest(
                    "With PostgreSQL state repositories default to pgvector, and the state database has no vector extension: "
                        + "install pgvector there (CREATE EXTENSION vector), or give pgvector.url or type opensearch.",
                    param: "type"
                )
            }
            repository.typeIsDefault = false
        }
        if repository.type == .embedded, store.isShared {
            throw LISAError.invalidRequest(
                "type embedded keeps vectors in one replica's data directory, which the other LISAServe replicas sharing this "
                    + "PostgreSQL state cannot read; use pgvector (the default with PostgreSQL state) or opensearch.",
                param: "type"
            )
        }
        try repository.validate()
        _ = try await vectors(for: repository)
        try checkEmbeddingModel(repository.embeddingModelId, param: "embeddingModelId")
        if try await store.record(kind: Self.repositoryKind, id: repository.repositoryId) != nil {
            throw LISAError.conflict("A repository '\(repository.repositoryId)' already exists.", reason: "repository_exists")
        }
        repository.createdBy = principal.username
        repository.createdAt = Date()
        try await store.put(repository, kind: Self.repositoryKind, id: repository.repositoryId)
        // Every repository starts with its default collection.
        var collection = RAGCollection(collectionId: "default", repositoryId: repository.repositoryId)
        collection.createdBy = principal.username
        collection.createdAt = Date()
        try await store.put(collection, kind: Self.collectionKind, id: collection.storeName, parent: repository.repositoryId)
        logger.notice("repository created", metadata: ["lisa.repository": "\(repository.repositoryId)", "lisa.principal": "\(principal.username)"])
        return repository
    }

    private func checkEmbeddingModel(_ id: String, param: String) throws(LISAError) {
        guard let model = gateway.registry.model(id) else {
            throw .invalidRequest("The embedding model '\(id)' does not exist.", param: param)
        }
        guard model.definition.modelType == .embedding else {
            throw .invalidRequest("The model '\(id)' is a \(model.definition.modelType.rawValue) model, not an embedding model.", param: param)
        }
    }

    public func repositories(for principal: Principal) async throws -> [RAGRepository] {
        try await store.list(RAGRepository.self, kind: Self.repositoryKind).filter { access.mayUse($0, principal) }
    }

    /// The repository, or 404 (also when the caller may not use it, so its name does not leak).
    public func repository(_ id: String, for principal: Principal) async throws -> RAGRepository {
        guard let repository = try await store.get(RAGRepository.self, kind: Self.repositoryKind, id: id), access.mayUse(repository, principal)
        else { throw LISAError.notFound("The repository '\(id)' does not exist.", reason: "repository_not_found") }
        return repository
    }

    /// Changes a repository's name, groups and default chunking (a JSON merge patch);
    /// its id, type and embedding model stay.
    public func updateRepository(_ id: String, patch: JSONValue, by principal: Principal) async throws -> RAGRepository {
        guard access.isRAGAdmin(principal) else { throw LISAError.forbidden("Changing a repository needs a RAG administrator.") }
        let current = try await repository(id, for: principal)
        guard case .object(let members) = patch else { throw LISAError.invalidRequest("The update must be a JSON object.") }
        let original = try JSONValue(encoding: current)
        for fixed in ["repositoryId", "type", "embeddingModelId", "pgvector"] where members[fixed] != nil && members[fixed] != original.member(fixed) {
            throw LISAError.invalidRequest("\(fixed) cannot change; create a new repository.", param: fixed)
        }
        let updated: RAGRepository
        do {
            updated = try original.merging(patch: patch).decode(RAGRepository.self)
        } catch let error as DecodingError {
            throw LISAError.invalidRequest("The update does not give a valid repository: \(error.lisaDescription)")
        }
        var checked = updated
        // Where a repository connects is an administrator's decision (it is where LISA sends
        // the stored credentials and every document's text).
        let endpointChanged =
            checked.opensearch?.url != current.opensearch?.url || checked.opensearch?.username != current.opensearch?.username
            || checked.opensearch?.caFile != current.opensearch?.caFile
        if endpointChanged, !access.isAdmin(principal) {
            throw LISAError.forbidden("Changing a repository's OpenSearch connection needs an administrator.")
        }
        // A masked password sent back from a GET keeps the stored one, but only for the
        // endpoint it was given for: a new URL gets no old secret.
        if checked.opensearch?.password == "***" {
            checked.opensearch?.password = endpointChanged ? nil : current.opensearch?.password
            if endpointChanged {
                logger.notice("opensearch endpoint changed: stored password dropped", metadata: ["lisa.repository": "\(id)"])
            }
        }
        try checked.validate()
        try await store.put(checked, kind: Self.repositoryKind, id: id)
        openSearchStores.withLock { $0 = $0.filter { $0.key.repositoryId != id } }
        return checked
    }

    /// Removes a repository, its collections' vectors, documents and jobs.
    public func deleteRepository(_ id: String, by principal: Principal) async throws {
        guard access.isAdmin(principal) else { throw LISAError.forbidden("Deleting a repository needs an administrator.") }
        let repository = try await repository(id, for: principal)
        let vectors = try await vectors(for: repository)
        for collection in try await store.list(RAGCollection.self, kind: Self.collectionKind, parent: id) {
            try await vectors.dropCollection(collection.storeName)
        }
        for job in try await store.list(IngestionJob.self, kind: Self.jobKind, parent: id) where job.status == .pending || job.status == .inProgress {
            await forgetUpload(job.jobId)
        }
        for kind in [Self.collectionKind, Self.documentKind, Self.jobKind, Self.payerKind] {
            try await store.deleteRecords(kind: kind, parent: id)
        }
        try await store.deleteRecord(kind: Self.repositoryKind, id: id)
        logger.notice("repository deleted", metadata: ["lisa.repository": "\(id)", "lisa.principal": "\(principal.username)"])
    }

    /// Repositories whose embedding model is `modelId` (a model in use cannot be deleted).
    public func repositories(usingEmbeddingModel modelId: String) async throws -> [String] {
        var ids: [String] = []
        for repository in try await store.list(RAGRepository.self, kind: Self.repositoryKind) {
            let collections = try await store.list(RAGCollection.self, kind: Self.collectionKind, parent: repository.repositoryId)
            if repository.embeddingModelId == modelId || collections.contains(where: { $0.embeddingModelId == modelId }) {
                ids.append(repository.repositoryId)
            }
        }
        return ids
    }

    // MARK: - Collections

    public func createCollection(_ collection: RAGCollection, by principal: Principal) async throws -> RAGCollection {
        guard access.isRAGAdmin(principal) else { throw LISAError.forbidden("Creating a collection needs a RAG administrator.") }
        let repository = try await repository(collection.repositoryId, for: principal)
        guard RAGRepository.isValidID(collection.collectionId) else {
            throw LISAError.invalidRequest("collectionId must be 1-30 lowercase letters, digits, '_' or '-' (no '--').", param: "collectionId")
        }
        if let model = collection.embeddingModelId { try checkEmbeddingModel(model, param: "embeddingModelId") }
        let chunking = ChunkingStrategy.recursive(
            size: collection.chunkSize ?? repository.chunkSize ?? 512,
            overlap: collection.chunkOverlap ?? repository.chunkOverlap ?? 51
        )
        try chunking.validate()
        if try await store.record(kind: Self.collectionKind, id: collection.storeName) != nil {
            throw LISAError.conflict("The collection '\(collection.collectionId)' already exists.", reason: "collection_exists")
        }
        var stored = collection
        stored.createdBy = principal.username
        stored.createdAt = Date()
        stored.dimension = nil
        try await store.put(stored, kind: Self.collectionKind, id: stored.storeName, parent: repository.repositoryId)
        return stored
    }

    public func collections(of repositoryId: String, for principal: Principal) async throws -> [RAGCollection] {
        _ = try await repository(repositoryId, for: principal)
        return try await store.list(RAGCollection.self, kind: Self.collectionKind, parent: repositoryId)
    }

    private func collection(_ repository: RAGRepository, _ collectionId: String?) async throws -> RAGCollection {
        let id = collectionId ?? "default"
        guard let collection = try await store.get(RAGCollection.self, kind: Self.collectionKind, id: "\(repository.repositoryId)--\(id)") else {
            throw LISAError.notFound("The repository '\(repository.repositoryId)' has no collection '\(id)'.", reason: "collection_not_found")
        }
        return collection
    }

    // MARK: - Documents and ingestion

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

    /// Where uploads waited before they moved into the store (read for jobs queued then).
    private func uploadPath(_ jobId: String) -> String {
        URL(fileURLWithPath: uploadDirectory).appendingPathComponent(jobId).path
    }

    static func blobID(_ jobId: String) -> String { "rag.upload:\(jobId)" }
    static func claimID(_ jobId: String) -> String { "rag.job:\(jobId)" }

    /// Queues a job here unless it already is.
    private func queue(_ job: IngestionJob) {
        guard localJobs.withLock({ $0.insert(job.jobId).inserted }) else { return }
        enqueue.yield(.queued(jobId: job.jobId, user: job.username))
    }

    /// The uploaded bytes of a job, and forgets them.
    private func uploadedBytes(_ jobId: String) async throws -> Data? {
        if let bytes = try await store.blob(id: Self.blobID(jobId)) { return Data(bytes) }
        return FileManager.default.contents(atPath: uploadPath(jobId))
    }

    private func forgetUpload(_ jobId: String) async {
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

    // MARK: - Search

    /// The `topK` chunks closest to `query` in a collection of a repository.
    public func search(
        _ query: String, in repositoryId: String, collection collectionId: String?, topK: Int, for principal: Principal, hybrid: Bool = false
    ) async throws -> [RAGSource] {
        guard !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw LISAError.invalidRequest("query must not be empty.", param: "query")
        }
        guard (1...100).contains(topK) else { throw LISAError.invalidRequest("topK must be between 1 and 100.", param: "topK") }
        var attributes = SpanAttributes()
        attributes["lisa.rag.repository_id"] = repositoryId
        attributes["lisa.rag.top_k"] = topK
        attributes["lisa.rag.hybrid"] = hybrid
        return try await Traces.within(gateway.tracer, "retrieval \(repositoryId)", attributes: attributes) { span in
            let sources = try await searchUntraced(query, in: repositoryId, collection: collectionId, topK: topK, for: principal, hybrid: hybrid)
            span?.attributes["lisa.rag.results"] = sources.count
            return sources
        }
    }

    private func searchUntraced(
        _ query: String, in repositoryId: String, collection collectionId: String?, topK: Int, for principal: Principal, hybrid: Bool
    ) async throws -> [RAGSource] {
        let repository = try await repository(repositoryId, for: principal)
        let collection = try await collection(repository, collectionId)
        guard collection.dimension != nil else { return [] }  // nothing ingested yet
        let model = collection.embeddingModelId ?? repository.embeddingModelId
        let embedding = try await gateway.embed(
            [query], model: model, billedTo: principal.username, budgetedAs: principal, operation: "rag.retrieval", logger: logger
        )[0]
        let matches = try await vectors(for: repository).search(
            VectorQuery(embedding: embedding, topK: topK, text: hybrid ? query : nil), in: collection.storeName
        )
        return matches.map { match in
            RAGSource(
                documentId: match.documentId, documentName: match.metadata["documentName"]?.stringValue ?? match.documentId,
                repositoryId: repositoryId, collectionId: collection.collectionId, chunkId: match.id, text: match.text, score: match.score
            )
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
                if self.store.isShared {
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
        let holder = store.instanceID
        let lease = ingestion.leaseSeconds
        guard (try? await store.claim(claim, holder: holder, seconds: lease)) == true else { return }
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
                    if (try? await self.store.claim(claim, holder: holder, seconds: lease)) != true {
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
        let store = self.store
        await Task { try? await store.releaseClaim(claim, holder: holder) }.value
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
            logger.info("document ingested", metadata: ["lisa.repository": "\(job.repositoryId)", "lisa.document": "\(job.documentName)", "lisa.chunks": "\(chunks.count)"])
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

extension JSONValue {
    /// The member `key` of an object; `nil` for other values.
    public func member(_ key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

extension Gateway {
    /// Embeddings of `texts` from `model`, through the router (balancing, retries,
    /// fail-over) like any client's request.
    ///
    /// - Parameters:
    ///   - billedTo: whose usage this is when `principal` is LISA itself (ingestion of a
    ///     user's upload, a user's retrieval query): recorded as `operation` under that name.
    ///   - budgetedAs: whose budgets such a call is reserved on and charged to (it throws
    ///     `budget_exceeded` when one is spent); `nil`: none.
    public func embed(
        _ texts: [String], model: String, principal: Principal = .admin, billedTo: String? = nil, budgetedAs: Principal? = nil,
        operation: String = "rag.ingestion", logger: Logger
    ) async throws
        -> [[Float]]
    {
        let request = EmbeddingRequest(model: model, input: .texts(texts))
        let body = try JSONEncoder().encodeAsByteBuffer(request, allocator: ByteBufferAllocator())
        var context = InferenceContext(requestID: "rag-\(UUID().uuidString.prefix(8))", principal: principal, logger: logger)
        if let billedTo {
            context.billedUser = billedTo
            context.budgetedAs = budgetedAs
            context.usageLabel = operation
        }
        let response = try await embeddings(body: body, context: context)
        guard case .buffer(let buffer) = response.body else { throw LISAError.badGateway("The embedding model streamed its answer.") }
        let decoded = try JSONDecoder().decode(EmbeddingResponse.self, from: buffer)
        let vectors = decoded.data.sorted { $0.index < $1.index }.compactMap { $0.embedding.floatValues }
        guard vectors.count == texts.count else {
            throw LISAError.badGateway("The embedding model '\(model)' returned \(vectors.count) embeddings for \(texts.count) inputs.")
        }
        return vectors
    }
}
