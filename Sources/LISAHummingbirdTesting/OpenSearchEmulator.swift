import Foundation
import Hummingbird
import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
public import ServiceLifecycle
import Synchronization

/// An in-process emulation of the OpenSearch REST API subset LISA's OpenSearch driver uses,
/// with the k-NN plugin's behaviour, for tests where no cluster can run:
///
/// - `PUT /{index}` with `settings.index.knn` and `knn_vector` mappings (HNSW method,
///   `cosinesimil` / `l2` / `innerproduct`); `resource_already_exists_exception` (400);
/// - `DELETE /{index}`, `GET /{index or pattern*}/_mapping` (with `_meta`),
///   `GET /{index}/_count`; `index_not_found_exception` (404);
/// - `POST /_bulk` (NDJSON `index` actions, per-item results and `errors`, dimension checks);
/// - `POST /{index}/_search` with a `knn` query (`vector`, `k`, a `bool.must` of `term`
///   filters), `size` and `_source.excludes`, scored with the plugin's formulas
///   (cosine `(1 + cos) / 2`, L2 `1 / (1 + d²)`, inner product `ip + 1` or `1 / (1 − ip)`);
/// - `POST /{index}/_delete_by_query` with `term`, `ids` and `bool` (`filter`, `must_not`);
/// - HTTP basic authentication (401 with `WWW-Authenticate`) when credentials are set.
///
/// Search is exact (a real cluster's HNSW is approximate).
public final class OpenSearchEmulator: Sendable {
    struct Index {
        var mapping: JSONValue
        var dimension: Int
        var space: String
        var documents: [String: JSONValue] = [:]
        var order: [String] = []
    }

    private let indexes = Mutex<[String: Index]>([:])
    public let username: String?
    public let password: String?

    public init(username: String? = nil, password: String? = nil) {
        self.username = username
        self.password = password
    }

    /// The emulator as a Hummingbird application (run it as a `Service`).
    public func makeApplication(host: String = "127.0.0.1", port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service {
        let router = Router()
        addRoutes(to: router)
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { onRunning($0.localAddress?.port ?? 0) }, logger: Logger(label: "opensearch-emulator")
        )
    }

    /// Starts the emulator on a free port of 127.0.0.1; returns its base URL and a function that stops it.
    public func start() async throws -> (url: String, stop: @Sendable () async -> Void) {
        await runOnFreePort(label: "opensearch-emulator") { makeApplication(port: 0, onRunning: $0) }
    }

    // MARK: - Routes

    private func addRoutes(to router: Router<BasicRequestContext>) {
        router.put("/{index}") { request, context in
            try await self.guarded(request) { try self.createIndex(context.parameters.require("index"), try await Self.json(request)) }
        }
        router.delete("/{index}") { request, context in
            try await self.guarded(request) { try self.deleteIndex(context.parameters.require("index")) }
        }
        router.get("/{index}/_mapping") { request, context in
            try await self.guarded(request) { try self.mapping(context.parameters.require("index")) }
        }
        router.get("/{index}/_count") { request, context in
            try await self.guarded(request) { try self.count(context.parameters.require("index")) }
        }
        router.post("/_bulk") { request, _ in
            try await self.guarded(request) { try self.bulk(String(buffer: try await request.body.collect(upTo: 64 * 1024 * 1024))) }
        }
        router.post("/{index}/_search") { request, context in
            try await self.guarded(request) { try self.search(context.parameters.require("index"), try await Self.json(request)) }
        }
        router.post("/{index}/_delete_by_query") { request, context in
            try await self.guarded(request) { try self.deleteByQuery(context.parameters.require("index"), try await Self.json(request)) }
        }
    }

    private static func json(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 64 * 1024 * 1024)
        guard buffer.readableBytes > 0 else { return .object([:]) }
        return try JSONDecoder().decode(JSONValue.self, from: buffer)
    }

    private struct Failure: Error {
        var status: Int
        var type: String
        var reason: String
    }

    private func guarded(_ request: Request, _ body: () async throws -> (Int, JSONValue)) async throws -> Response {
        if let username {
            let expected = "Basic " + Data("\(username):\(password ?? "")".utf8).base64EncodedString()
            guard request.headers[.authorization] == expected else {
                return try Self.response(
                    401, Self.error("security_exception", "missing authentication credentials for REST request", 401),
                    extra: [.wwwAuthenticate: "Basic realm=\"OpenSearch Security\""])
            }
        }
        do {
            let (status, body) = try await body()
            return try Self.response(status, body)
        } catch let failure as Failure {
            return try Self.response(failure.status, Self.error(failure.type, failure.reason, failure.status))
        } catch {
            return try Self.response(400, Self.error("parse_exception", "\(error)", 400))
        }
    }

    private static func error(_ type: String, _ reason: String, _ status: Int) -> JSONValue {
        [
            "error": ["root_cause": [["type": .string(type), "reason": .string(reason)]], "type": .string(type), "reason": .string(reason)],
            "status": .integer(Int64(status)),
        ]
    }

    private static func response(_ status: Int, _ body: JSONValue, extra: HTTPFields = [:]) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=UTF-8"]
        headers.append(contentsOf: extra)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(body))))
    }

    private func missing(_ name: String) -> Failure {
        Failure(status: 404, type: "index_not_found_exception", reason: "no such index [\(name)]")
    }

    // MARK: - Operations

    private func createIndex(_ name: String, _ body: JSONValue) throws -> (Int, JSONValue) {
        let knnEnabled =
            body.member("settings")?.member("index")?.member("knn") == .bool(true)
            || body.member("settings")?.member("index.knn") == .bool(true)
        guard let field = body.member("mappings")?.member("properties")?.member("embedding"), field.member("type") == .string("knn_vector"),
            case .integer(let dimension)? = field.member("dimension")
        else { throw Failure(status: 400, type: "mapper_parsing_exception", reason: "the emulator needs a knn_vector field 'embedding'") }
        guard knnEnabled else {
            throw Failure(status: 400, type: "illegal_argument_exception", reason: "To create a knn_vector field, index.knn must be true")
        }
        guard (1...16000).contains(dimension) else {
            throw Failure(status: 400, type: "mapper_parsing_exception", reason: "Dimension value must be between 1 and 16000")
        }
        let space = field.member("method")?.member("space_type")?.stringValue ?? "l2"
        guard ["cosinesimil", "l2", "innerproduct"].contains(space) else {
            throw Failure(status: 400, type: "mapper_parsing_exception", reason: "Unable to parse the space type [\(space)]")
        }
        return try indexes.withLock { indexes in
            guard indexes[name] == nil else {
                throw Failure(status: 400, type: "resource_already_exists_exception", reason: "index [\(name)/emulated] already exists")
            }
            indexes[name] = Index(mapping: body.member("mappings") ?? .null, dimension: Int(dimension), space: space)
            return (200, ["acknowledged": true, "shards_acknowledged": true, "index": .string(name)])
        }
    }

    private func deleteIndex(_ name: String) throws -> (Int, JSONValue) {
        try indexes.withLock { indexes in
            guard indexes.removeValue(forKey: name) != nil else { throw missing(name) }
            return (200, ["acknowledged": true])
        }
    }

    private func mapping(_ pattern: String) throws -> (Int, JSONValue) {
        try indexes.withLock { indexes in
            var result: [String: JSONValue] = [:]
            if pattern.hasSuffix("*") {
                let stem = pattern.dropLast()
                for (name, index) in indexes where name.hasPrefix(stem) { result[name] = ["mappings": index.mapping] }
            } else {
                guard let index = indexes[pattern] else { throw missing(pattern) }
                result[pattern] = ["mappings": index.mapping]
            }
            return (200, .object(result))
        }
    }

    private func count(_ name: String) throws -> (Int, JSONValue) {
        try indexes.withLock { indexes in
            guard let index = indexes[name] else { throw missing(name) }
            return (200, ["count": .integer(Int64(index.documents.count))])
        }
    }

    private func bulk(_ body: String) throws -> (Int, JSONValue) {
        let lines = body.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard lines.count % 2 == 0 else {
            throw Failure(status: 400, type: "illegal_argument_exception", reason: "The bulk request must be terminated by a newline")
        }
        var items: [JSONValue] = []
        var errors = false
        try indexes.withLock { indexes in
            for pair in stride(from: 0, to: lines.count, by: 2) {
                let action = try JSONDecoder().decode(JSONValue.self, from: Data(lines[pair].utf8))
                let document = try JSONDecoder().decode(JSONValue.self, from: Data(lines[pair + 1].utf8))
                guard let meta = action.member("index"), let name = meta.member("_index")?.stringValue, let id = meta.member("_id")?.stringValue
                else { throw Failure(status: 400, type: "illegal_argument_exception", reason: "only index actions with _index and _id") }
                guard var index = indexes[name] else {
                    errors = true
                    items.append([
                        "index": [
                            "_index": .string(name), "_id": .string(id), "status": 404,
                            "error": ["type": "index_not_found_exception", "reason": .string("no such index [\(name)]")],
                        ]
                    ])
                    continue
                }
                guard case .array(let vector)? = document.member("embedding"), vector.count == index.dimension else {
                    errors = true
                    items.append([
                        "index": [
                            "_index": .string(name), "_id": .string(id), "status": 400,
                            "error": [
                                "type": "mapper_parsing_exception",
                                "reason": .string("Vector dimension mismatch. Expected: \(index.dimension)"),
                            ],
                        ]
                    ])
                    continue
                }
                let created = index.documents[id] == nil
                if created { index.order.append(id) }
                index.documents[id] = document
                indexes[name] = index
                items.append([
                    "index": [
                        "_index": .string(name), "_id": .string(id), "result": .string(created ? "created" : "updated"),
                        "status": .integer(created ? 201 : 200),
                    ]
                ])
            }
        }
        return (200, ["took": 1, "errors": .bool(errors), "items": .array(items)])
    }

    private static func vector(_ value: JSONValue?) -> [Double]? {
        guard case .array(let items)? = value else { return nil }
        return items.compactMap { item in
            switch item {
            case .number(let number): number
            case .integer(let number): Double(number)
            default: nil
            }
        }
    }

    /// The k-NN plugin's score for `space`.
    static func score(_ a: [Double], _ b: [Double], space: String) -> Double {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        switch space {
        case "cosinesimil":
            let norms = (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
            return (1 + (norms > 0 ? dot / norms : 0)) / 2
        case "innerproduct":
            return dot >= 0 ? dot + 1 : 1 / (1 - dot)
        default:
            return 1 / (1 + zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) })
        }
    }

    private static func matches(_ document: JSONValue, id: String, query: JSONValue?) -> Bool {
        guard let query else { return true }
        if let term = query.member("term"), case .object(let fields) = term {
            return fields.allSatisfy { path, expected in
                let wanted = expected.member("value") ?? expected
                var value: JSONValue? = document
                for part in path.split(separator: ".") { value = value?.member(String(part)) }
                return value == wanted
            }
        }
        if let ids = query.member("ids"), case .array(let values)? = ids.member("values") {
            return values.contains(.string(id))
        }
        if let bool = query.member("bool") {
            for key in ["must", "filter"] {
                if case .array(let clauses)? = bool.member(key), !clauses.allSatisfy({ matches(document, id: id, query: $0) }) { return false }
                if let clause = bool.member(key), case .object = clause, !matches(document, id: id, query: clause) { return false }
            }
            if case .array(let clauses)? = bool.member("must_not"), clauses.contains(where: { matches(document, id: id, query: $0) }) { return false }
            return true
        }
        if query.member("match_all") != nil { return true }
        return false
    }

    private func search(_ name: String, _ body: JSONValue) throws -> (Int, JSONValue) {
        try indexes.withLock { indexes in
            guard let index = indexes[name] else { throw missing(name) }
            guard let knn = body.member("query")?.member("knn")?.member("embedding"), let probe = Self.vector(knn.member("vector")) else {
                throw Failure(status: 400, type: "parsing_exception", reason: "the emulator supports knn queries on 'embedding'")
            }
            guard probe.count == index.dimension else {
                throw Failure(
                    status: 400, type: "illegal_argument_exception",
                    reason: "Query vector has invalid dimension: \(probe.count). Dimension should be: \(index.dimension)")
            }
            guard case .integer(let k)? = knn.member("k"), k > 0 else {
                throw Failure(status: 400, type: "illegal_argument_exception", reason: "[knn] requires k > 0")
            }
            var size = Int(k)
            if case .integer(let requested)? = body.member("size") { size = min(size, Int(requested)) }
            let filter = knn.member("filter")
            var excluded = Set<String>()
            if case .array(let names)? = body.member("_source")?.member("excludes") {
                excluded = Set(names.compactMap(\.stringValue))
            }
            let scored = index.order.compactMap { id -> (String, Double, JSONValue)? in
                guard let document = index.documents[id], Self.matches(document, id: id, query: filter),
                    let vector = Self.vector(document.member("embedding"))
                else { return nil }
                return (id, Self.score(vector, probe, space: index.space), document)
            }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(size)
            let hits: [JSONValue] = scored.map { id, score, document in
                var source = document
                if case .object(var members) = source {
                    for key in excluded { members[key] = nil }
                    source = .object(members)
                }
                return ["_index": .string(name), "_id": .string(id), "_score": .number(score), "_source": source]
            }
            return (
                200,
                [
                    "took": 1, "timed_out": false,
                    "hits": [
                        "total": ["value": .integer(Int64(hits.count)), "relation": "eq"],
                        "max_score": scored.first.map { .number($0.1) } ?? .null, "hits": .array(hits),
                    ],
                ]
            )
        }
    }

    private func deleteByQuery(_ name: String, _ body: JSONValue) throws -> (Int, JSONValue) {
        try indexes.withLock { indexes in
            guard var index = indexes[name] else { throw missing(name) }
            let doomed = index.order.filter { id in index.documents[id].map { Self.matches($0, id: id, query: body.member("query")) } ?? false }
            for id in doomed { index.documents[id] = nil }
            index.order.removeAll { doomed.contains($0) }
            indexes[name] = index
            return (
                200,
                [
                    "took": 1, "timed_out": false, "total": .integer(Int64(doomed.count)), "deleted": .integer(Int64(doomed.count)),
                    "failures": [],
                ]
            )
        }
    }
}
