import Foundation
import HTTPTypes
import Hummingbird
import LISAKit
import NIOCore
import NIOFoundationCompat

/// The repositories API (LISA's paths), mounted by ``LISARoutes`` behind authentication.
/// Who may do what is decided by ``RAGService``: administrators create and delete
/// repositories, RAG administrators manage collections, members of a repository's
/// `allowedGroups` search it and add documents, and only a document's owner or a RAG
/// administrator deletes it.
struct RAGRoutes<Context: LISARoutesContext> {
    let rag: RAGService
    let maxRequestBodySize: Int

    /// Whether `modelId` may be named to `principal`: a model they may use (or one that no
    /// longer exists, which names nothing hidden).
    static func mayNameModel(_ modelId: String, to principal: Principal, rag: RAGService) -> Bool {
        guard let model = rag.gateway.registry.model(modelId) else { return true }
        return rag.gateway.access.mayUse(model.definition, principal)
    }

    /// `repository` as `principal` sees it: its embedding model blanked when hidden from them.
    static func shown(_ repository: RAGRepository, to principal: Principal, rag: RAGService) -> RAGRepository {
        var shown = repository
        if !mayNameModel(repository.embeddingModelId, to: principal, rag: rag) { shown.embeddingModelId = "" }
        return shown
    }

    func add(to group: RouterGroup<Context>) {
        let rag = self.rag
        group.post("/repository") { request, context in
            let repository = try RequestJSON.decode(RAGRepository.self, from: try await json(request))
            return try LISARoutes.encode(try await rag.createRepository(repository, by: try context.requirePrincipal()).redacted(), status: .created)
        }
        // A repository's embedding model is named only to callers who may use it themselves
        // (hidden models are named nowhere); the repository works for them either way.
        group.get("/repository") { _, context in
            let principal = try context.requirePrincipal()
            return try LISARoutes.encode(try await rag.repositories(for: principal).map { Self.shown($0.redacted(), to: principal, rag: rag) })
        }
        group.get("/repository/{id}") { _, context in
            let principal = try context.requirePrincipal()
            let repository = try await rag.repository(try context.parameters.require("id"), for: principal)
            return try LISARoutes.encode(Self.shown(repository.redacted(), to: principal, rag: rag))
        }
        group.put("/repository/{id}") { request, context in
            let patch = try RequestJSON.decode(JSONValue.self, from: try await json(request))
            return try LISARoutes.encode(
                try await rag.updateRepository(try context.parameters.require("id"), patch: patch, by: try context.requirePrincipal()).redacted()
            )
        }
        group.delete("/repository/{id}") { _, context in
            let id = try context.parameters.require("id")
            try await rag.deleteRepository(id, by: try context.requirePrincipal())
            return try LISARoutes.encode(["repositoryId": id, "status": "deleted"])
        }
        group.get("/repository/{id}/collection") { _, context in
            let principal = try context.requirePrincipal()
            let collections = try await rag.collections(of: try context.parameters.require("id"), for: principal).map { collection in
                var shown = collection
                if let id = collection.embeddingModelId, !Self.mayNameModel(id, to: principal, rag: rag) { shown.embeddingModelId = nil }
                return shown
            }
            return try LISARoutes.encode(collections)
        }
        group.post("/repository/{id}/collection") { request, context in
            var collection = try RequestJSON.decode(CollectionRequest.self, from: try await json(request))
            collection.repositoryId = try context.parameters.require("id")
            return try LISARoutes.encode(try await rag.createCollection(collection.collection, by: try context.requirePrincipal()), status: .created)
        }
        group.post("/repository/{id}/upload") { request, context in
            let id = try context.parameters.require("id")
            guard let contentType = request.headers[.contentType], let boundary = MultipartForm.boundary(of: contentType) else {
                throw LISAError.invalidRequest(
                    "Send the document as multipart/form-data (a boundary of 1-70 characters) with a 'file' field.", param: "file"
                )
            }
            // Who may add documents is decided before a byte of the body is read or parsed.
            try await rag.checkCanUpload(to: id, by: try context.requirePrincipal())
            let body: ByteBuffer
            do {
                body = try await LISARoutes.collect(request, limit: rag.maxUploadSize + 64 * 1024)
            } catch let error as LISAError where error.code == .tooLarge {
                throw LISAError.payloadTooLarge(limit: rag.maxUploadSize)
            }
            let form: MultipartForm
            do {
                form = try MultipartForm(body: body, boundary: boundary)
            } catch {
                throw LISAError.invalidRequest("The multipart body is malformed.", param: "file")
            }
            guard let file = form.parts.first(where: { $0.name == "file" && $0.filename != nil }), let filename = file.filename else {
                throw LISAError.invalidRequest("The form has no 'file' field with a file name.", param: "file")
            }
            let job = try await rag.upload(
                file.data, filename: filename, to: id, collection: form.field("collectionId").flatMap { $0.isEmpty ? nil : $0 },
                chunkSize: try integer(form.field("chunkSize"), "chunkSize"), chunkOverlap: try integer(form.field("chunkOverlap"), "chunkOverlap"),
                chunkingStrategy: form.field("chunkingStrategy").flatMap { $0.isEmpty ? nil : $0 }, by: try context.requirePrincipal()
            )
            return try LISARoutes.encode(job, status: .accepted)
        }
        group.post("/repository/{id}/bulk") { request, context in
            let id = try context.parameters.require("id")
            let bulk = try RequestJSON.decode(BulkRequest.self, from: try await json(request))
            guard !bulk.documents.isEmpty, bulk.documents.count <= 100 else {
                throw LISAError.invalidRequest("documents must hold 1 to 100 documents.", param: "documents")
            }
            var jobs: [IngestionJob] = []
            for (index, document) in bulk.documents.enumerated() {
                let data: Data
                if let base64 = document.contentBase64 {
                    guard let decoded = Data(base64Encoded: base64) else {
                        throw LISAError.invalidRequest("documents[\(index)].contentBase64 is not base64.", param: "documents[\(index)].contentBase64")
                    }
                    data = decoded
                } else {
                    data = Data((document.content ?? "").utf8)
                }
                jobs.append(
                    try await rag.upload(
                        data, filename: document.name, to: id, collection: bulk.collectionId, chunkSize: bulk.chunkSize,
                        chunkOverlap: bulk.chunkOverlap, chunkingStrategy: bulk.chunkingStrategy, by: try context.requirePrincipal()
                    )
                )
            }
            return try LISARoutes.encode(["jobs": jobs], status: .accepted)
        }
        group.get("/repository/{id}/document") { request, context in
            try LISARoutes.encode(
                try await rag.documents(
                    of: try context.parameters.require("id"), collection: request.uri.queryParameters["collectionId"].map(String.init),
                    for: try context.requirePrincipal()
                )
            )
        }
        group.delete("/repository/{id}/document/{documentId}") { _, context in
            try LISARoutes.encode(
                try await rag.deleteDocument(
                    try context.parameters.require("documentId"), of: try context.parameters.require("id"), by: try context.requirePrincipal()
                )
            )
        }
        group.delete("/repository/{id}/document") { request, context in
            guard let documentId = request.uri.queryParameters["documentId"].map(String.init) else {
                throw LISAError.invalidRequest("Name the document: ?documentId=…", param: "documentId")
            }
            return try LISARoutes.encode(
                try await rag.deleteDocument(documentId, of: try context.parameters.require("id"), by: try context.requirePrincipal())
            )
        }
        group.get("/repository/{id}/jobs") { _, context in
            try LISARoutes.encode(try await rag.jobs(of: try context.parameters.require("id"), for: try context.requirePrincipal()))
        }
        group.get("/repository/{id}/jobs/{jobId}") { _, context in
            try LISARoutes.encode(
                try await rag.job(
                    try context.parameters.require("jobId"), of: try context.parameters.require("id"), for: try context.requirePrincipal())
            )
        }
        group.get("/repository/{id}/similaritySearch") { request, context in
            let query = request.uri.queryParameters
            guard let text = query["query"].map(String.init) else {
                throw LISAError.invalidRequest("similaritySearch needs ?query=…", param: "query")
            }
            let topK = try integer(query["topK"].map(String.init), "topK") ?? 3
            let sources = try await rag.search(
                text, in: try context.parameters.require("id"), collection: query["collectionId"].map(String.init), topK: topK,
                for: try context.requirePrincipal(), hybrid: query["hybrid"] == "true"
            )
            return try LISARoutes.encode(["docs": sources])
        }
    }

    private func json(_ request: Request) async throws -> ByteBuffer {
        try await LISARoutes.collectJSON(request, limit: maxRequestBodySize)
    }

    private func integer(_ text: String?, _ name: String) throws -> Int? {
        guard let text, !text.isEmpty else { return nil }
        guard let value = Int(text) else { throw LISAError.invalidRequest("\(name) must be a whole number.", param: name) }
        return value
    }
}

struct CollectionRequest: Decodable {
    var collectionId: String
    var repositoryId: String?
    var name: String?
    var embeddingModelId: String?
    var chunkSize: Int?
    var chunkOverlap: Int?

    var collection: RAGCollection {
        var collection = RAGCollection(collectionId: collectionId, repositoryId: repositoryId ?? "")
        collection.name = name
        collection.embeddingModelId = embeddingModelId
        collection.chunkSize = chunkSize
        collection.chunkOverlap = chunkOverlap
        return collection
    }
}

struct BulkRequest: Decodable {
    struct Document: Decodable {
        var name: String
        var content: String?
        var contentBase64: String?
    }

    var collectionId: String?
    var chunkSize: Int?
    var chunkOverlap: Int?
    var chunkingStrategy: String?
    var documents: [Document]
}
