import Foundation
public import Logging
import NIOCore
import NIOFoundationCompat

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
