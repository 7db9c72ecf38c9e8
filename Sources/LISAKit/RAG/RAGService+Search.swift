import Foundation
import Tracing

extension RAGService {
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
}
