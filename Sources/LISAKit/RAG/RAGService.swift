public import AsyncHTTPClient
import Crypto
import Foundation
public import Logging
import NIOCore
public import ServiceLifecycle
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
    /// Where repositories, collections, documents, jobs and uploads are kept.
    public let store: RecordStore
    /// Leases on ingestion jobs among the processes sharing the store.
    public let coordination: StateCoordination
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
    let openSearchStores = Mutex<[RAGRepository.ID: OpenSearchVectorStore]>([:])
    /// pgvector stores in databases of their own (`pgvector.url`), one pool per URL.
    private let externalPGVector = Mutex<[String: Task<(PostgresDatabase, PGVectorStore), any Error>]>([:])
    let queue: AsyncStream<WorkerEvent>
    let enqueue: AsyncStream<WorkerEvent>.Continuation
    /// Jobs queued or running in this process (so a scan does not queue them twice).
    let localJobs = Mutex<Set<String>>([])

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
        store: RecordStore, coordination: StateCoordination, gateway: Gateway, embedded: EmbeddedVectorStore, pgvector: PGVectorStore?,
        uploadDirectory: String,
        maxUploadSize: Int = 20 * 1024 * 1024, ingestion: IngestionLimits = IngestionLimits(), quotas: StorageQuotas = StorageQuotas(),
        httpClient: HTTPClient? = nil, logger: Logger
    ) throws {
        self.httpClient = httpClient
        self.ingestion = ingestion
        self.quotas = quotas
        self.store = store
        self.coordination = coordination
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

    func vectors(for repository: RAGRepository) async throws -> any VectorStore {
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
}
