public import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Vectors in OpenSearch with the k-NN plugin, over its REST API.
///
/// One index per collection (`lisa-<name>`), `index.knn: true`, the embedding in a
/// `knn_vector` field with an HNSW method in the collection's space (`cosinesimil`, `l2`,
/// `innerproduct`) and engine; the dimension and metric are kept in the mapping's `_meta`.
/// Chunks go in through `_bulk` (refreshed before returning), searches are `knn` queries
/// with the metadata filter inside, documents leave through `_delete_by_query`.
///
/// Scores: OpenSearch turns distances into positive scores; they are converted back so
/// every driver reports the same numbers (cosine similarity, inner product, negated L2
/// distance). Replacing a document indexes the new chunks, then deletes the old ones
/// (OpenSearch has no transactions): a search in between may see both, never neither.
public final class OpenSearchVectorStore: VectorStore {
    public let settings: OpenSearchConfiguration
    private let httpClient: HTTPClient
    private let base: String
    private let prefix: String
    private let logger: Logger

    public init(settings: OpenSearchConfiguration, httpClient: HTTPClient, logger: Logger) throws(LISAError) {
        guard let url = URL(string: settings.url), let scheme = url.scheme, scheme == "http" || scheme == "https", url.host != nil else {
            throw .invalidRequest("opensearch.url must be an http or https URL.", param: "opensearch.url")
        }
        if let engine = settings.engine, !["lucene", "faiss", "nmslib"].contains(engine) {
            throw .invalidRequest("opensearch.engine must be lucene, faiss or nmslib.", param: "opensearch.engine")
        }
        if let caFile = settings.caFile { try UpstreamTLS(caFile: caFile).validate(param: "opensearch") }
        self.settings = settings
        self.httpClient = httpClient
        var base = settings.url
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.prefix = settings.indexPrefix ?? "lisa-"
        self.logger = logger
    }

    private func index(_ name: String) -> String { prefix + name }

    private static func space(_ metric: DistanceMetric) -> String {
        switch metric {
        case .cosine: "cosinesimil"
        case .l2: "l2"
        case .innerProduct: "innerproduct"
        }
    }

    /// OpenSearch's score back to LISA's: cosine similarity, inner product, −L2 distance.
    static func score(fromOpenSearch score: Double, metric: DistanceMetric) -> Float {
        switch metric {
        case .cosine: return Float(2 * score - 1)
        case .l2: return score > 0 ? -Float((max(1 / score - 1, 0)).squareRoot()) : -.infinity
        case .innerProduct: return score >= 1 ? Float(score - 1) : Float(1 - 1 / score)
        }
    }

    // MARK: - HTTP

    private struct Reply {
        var status: Int
        var body: JSONValue
    }

    private func call(_ method: HTTPMethod, _ path: String, json: JSONValue? = nil, ndjson: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let username = settings.username {
            let credentials = Data("\(username):\(settings.password ?? "")".utf8).base64EncodedString()
            request.headers.add(name: "Authorization", value: "Basic \(credentials)")
        }
        if base.hasPrefix("https:"), settings.caFile != nil {
            request.tlsConfiguration = UpstreamTLS(caFile: settings.caFile).configuration()
        }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
        } else if let ndjson {
            request.headers.add(name: "Content-Type", value: "application/x-ndjson")
            request.body = .bytes(ByteBuffer(string: ndjson))
        }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .seconds(60))
        } catch {
            throw LISAError.badGateway("OpenSearch at \(Endpoint.label(for: base)) cannot be reached: \(UpstreamFailure(classifying: error)).")
        }
        let data = try await response.body.collect(upTo: 64 * 1024 * 1024)
        let body = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
        let status = Int(response.status.code)
        if status == 401 || status == 403 {
            throw LISAError.badGateway("OpenSearch refused LISA's credentials (\(status)).")
        }
        return Reply(status: status, body: body)
    }

    private func failure(_ reply: Reply, _ what: String) -> LISAError {
        let reason = reply.body.member("error")?.member("reason")?.stringValue ?? reply.body.member("error")?.stringValue ?? "status \(reply.status)"
        return .badGateway("OpenSearch could not \(what): \(reason)")
    }

    // MARK: - VectorStore

    public func createCollection(_ collection: VectorCollection) async throws {
        try collection.validate()
        let mapping: JSONValue = [
            "settings": ["index": ["knn": true]],
            "mappings": [
                "_meta": ["lisa_dimension": .integer(Int64(collection.dimension)), "lisa_metric": .string(collection.metric.rawValue)],
                "properties": [
                    "embedding": [
                        "type": "knn_vector", "dimension": .integer(Int64(collection.dimension)),
                        "method": [
                            "name": "hnsw", "space_type": .string(Self.space(collection.metric)), "engine": .string(settings.engine ?? "lucene"),
                        ],
                    ],
                    "document_id": ["type": "keyword"],
                    "text": ["type": "text"],
                    "metadata": ["type": "object", "dynamic": true],
                ],
            ],
        ]
        let reply = try await call(.PUT, "/\(index(collection.name))", json: mapping)
        if (200..<300).contains(reply.status) { return }
        let type = reply.body.member("error")?.member("type")?.stringValue
        if type == "resource_already_exists_exception", let existing = try await describe(collection.name) {
            guard existing == collection else { throw Self.conflict(existing) }
            return
        }
        throw failure(reply, "create the index for '\(collection.name)'")
    }

    private func describe(_ name: String) async throws -> VectorCollection? {
        let reply = try await call(.GET, "/\(index(name))/_mapping")
        guard reply.status == 200 else { return nil }
        return Self.collection(named: name, from: reply.body.member(index(name)))
    }

    private static func collection(named name: String, from index: JSONValue?) -> VectorCollection? {
        guard let meta = index?.member("mappings")?.member("_meta"), case .integer(let dimension)? = meta.member("lisa_dimension"),
            let metric = meta.member("lisa_metric")?.stringValue.flatMap(DistanceMetric.init(rawValue:))
        else { return nil }
        return VectorCollection(name: name, dimension: Int(dimension), metric: metric)
    }

    public func collections() async throws -> [VectorCollection] {
        let reply = try await call(.GET, "/\(prefix)*/_mapping")
        guard reply.status == 200, case .object(let indexes) = reply.body else {
            if reply.status == 404 { return [] }
            throw failure(reply, "list the indexes")
        }
        return indexes.compactMap { key, value in
            key.hasPrefix(prefix) ? Self.collection(named: String(key.dropFirst(prefix.count)), from: value) : nil
        }.sorted { $0.name < $1.name }
    }

    private func collection(_ name: String) async throws -> VectorCollection {
        guard VectorCollection.isValidName(name), let collection = try await describe(name) else { throw Self.missing(name) }
        return collection
    }

    @discardableResult
    public func dropCollection(_ name: String) async throws -> Bool {
        guard VectorCollection.isValidName(name) else { return false }
        let reply = try await call(.DELETE, "/\(index(name))")
        if reply.status == 404 { return false }
        guard (200..<300).contains(reply.status) else { throw failure(reply, "delete the index of '\(name)'") }
        return true
    }

    public func upsert(_ chunks: [VectorChunk], into name: String) async throws {
        let collection = try await collection(name)
        try Self.check(chunks, against: collection)
        try await bulk(chunks, into: name)
    }

    private func bulk(_ chunks: [VectorChunk], into name: String) async throws {
        guard !chunks.isEmpty else { return }
        let encoder = JSONEncoder()
        for start in stride(from: 0, to: chunks.count, by: 500) {
            var lines = ""
            for chunk in chunks[start..<min(start + 500, chunks.count)] {
                let action: JSONValue = ["index": ["_index": .string(index(name)), "_id": .string(chunk.id)]]
                let document: JSONValue = [
                    "document_id": .string(chunk.documentId), "text": .string(chunk.text), "metadata": .object(chunk.metadata),
                    "embedding": .array(chunk.embedding.map { .number(Double($0)) }),
                ]
                lines += String(decoding: try encoder.encode(action), as: UTF8.self) + "\n"
                lines += String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
            }
            let reply = try await call(.POST, "/_bulk?refresh=true", ndjson: lines)
            guard reply.status == 200 else { throw failure(reply, "index the chunks") }
            if reply.body.member("errors") == .bool(true) {
                throw LISAError.badGateway("OpenSearch rejected some chunks of the batch; see its _bulk response.")
            }
        }
    }

    public func replaceDocument(_ documentId: String, with chunks: [VectorChunk], in name: String) async throws {
        let collection = try await collection(name)
        try chunks.requireAllBelong(to: documentId)
        try Self.check(chunks, against: collection)
        // New chunks first (ids are per chunk, so overwritten ones are replaced in place),
        // then the old ones no longer in the set.
        try await bulk(chunks, into: name)
        let keep: [JSONValue] = chunks.map { .string($0.id) }
        let query: JSONValue = [
            "query": ["bool": ["filter": [["term": ["document_id": .string(documentId)]]], "must_not": [["ids": ["values": .array(keep)]]]]]
        ]
        let reply = try await call(.POST, "/\(index(name))/_delete_by_query?refresh=true", json: query)
        guard reply.status == 200 else { throw failure(reply, "remove the document's old chunks") }
    }

    @discardableResult
    public func deleteDocument(_ documentId: String, from name: String) async throws -> Int {
        _ = try await collection(name)
        let query: JSONValue = ["query": ["term": ["document_id": .string(documentId)]]]
        let reply = try await call(.POST, "/\(index(name))/_delete_by_query?refresh=true", json: query)
        guard reply.status == 200 else { throw failure(reply, "delete the document") }
        if case .integer(let deleted)? = reply.body.member("deleted") { return Int(deleted) }
        return 0
    }

    public func count(in name: String) async throws -> Int {
        _ = try await collection(name)
        let reply = try await call(.GET, "/\(index(name))/_count")
        guard reply.status == 200, case .integer(let count)? = reply.body.member("count") else { throw failure(reply, "count") }
        return Int(count)
    }

    public func search(_ query: VectorQuery, in name: String) async throws -> [VectorMatch] {
        let collection = try await collection(name)
        try Self.check(query, against: collection)
        var knn: [String: JSONValue] = ["vector": .array(query.embedding.map { .number(Double($0)) }), "k": .integer(Int64(query.topK))]
        if !query.filter.isEmpty {
            knn["filter"] = [
                "bool": ["must": .array(query.filter.sorted { $0.key < $1.key }.map { ["term": .object(["metadata.\($0.key)": $0.value])] })]
            ]
        }
        let body: JSONValue = [
            "size": .integer(Int64(query.topK)), "query": ["knn": ["embedding": .object(knn)]], "_source": ["excludes": ["embedding"]],
        ]
        let reply = try await call(.POST, "/\(index(name))/_search", json: body)
        guard reply.status == 200, case .array(let hits)? = reply.body.member("hits")?.member("hits") else {
            throw failure(reply, "search '\(name)'")
        }
        return hits.compactMap { hit -> VectorMatch? in
            guard let id = hit.member("_id")?.stringValue, let source = hit.member("_source"),
                let documentId = source.member("document_id")?.stringValue, let text = source.member("text")?.stringValue
            else { return nil }
            let raw: Double
            switch hit.member("_score") {
            case .number(let value)?: raw = value
            case .integer(let value)?: raw = Double(value)
            default: return nil
            }
            let score = Self.score(fromOpenSearch: raw, metric: collection.metric)
            if let threshold = query.scoreThreshold, score < threshold { return nil }
            var metadata: [String: JSONValue] = [:]
            if case .object(let members)? = source.member("metadata") { metadata = members.dictionary }
            return VectorMatch(id: id, documentId: documentId, text: text, metadata: metadata, score: score)
        }
    }

    public func close() async throws {}
}
