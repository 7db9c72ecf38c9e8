import Foundation
import Logging
import Synchronization

extension RAGService {
    // MARK: - Repositories

    public func createRepository(_ repository: RAGRepository, by principal: Principal) async throws -> RAGRepository {
        guard access.isAdmin(principal) else { throw LISAError.forbidden("Creating a repository needs an administrator.") }
        var repository = repository
        if repository.typeIsDefault {
            // One replica's data directory cannot serve the others: with shared state the
            // default store is the shared one.
            repository.type = coordination.isShared || repository.pgvector != nil ? .pgvector : .embedded
            if coordination.isShared, repository.pgvector == nil, pgvector == nil {
                throw LISAError.invalidRequest(
                    "With PostgreSQL state repositories default to pgvector, and the state database has no vector extension: "
                        + "install pgvector there (CREATE EXTENSION vector), or give pgvector.url or type opensearch.",
                    param: "type"
                )
            }
            repository.typeIsDefault = false
        }
        if repository.type == .embedded, coordination.isShared {
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
        for fixed in ["repositoryId", "type", "embeddingModelId", "pgvector"] where members[fixed] != nil && members[fixed] != original.member(fixed)
        {
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

    func collection(_ repository: RAGRepository, _ collectionId: String?) async throws -> RAGCollection {
        let id = collectionId ?? "default"
        guard let collection = try await store.get(RAGCollection.self, kind: Self.collectionKind, id: "\(repository.repositoryId)--\(id)") else {
            throw LISAError.notFound("The repository '\(repository.repositoryId)' has no collection '\(id)'.", reason: "collection_not_found")
        }
        return collection
    }
}
