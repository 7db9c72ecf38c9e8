import AsyncHTTPClient
import Foundation
import Hummingbird
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Hidden means hidden everywhere; a key goes only where it was configured; health is
/// unknown until an endpoint has answered (issue 31, items 9, 10, 13, 14).
@Suite("Model visibility, probe credentials and endpoint health")
struct VisibilityAndHealthTests {
    static let access = AccessConfiguration(adminGroup: "lisa-admins", userGroup: nil, apiGroup: "lisa-api")

    static func models(_ url: String) -> [ModelDefinition] {
        var open = ModelDefinition(modelId: "open", modelName: "open", modelUrl: url)
        open.fallbacks = ["secret", "open-2"]
        var secret = ModelDefinition(modelId: "secret", modelName: "secret", modelUrl: url)
        secret.allowedGroups = ["special"]
        return [open, secret, ModelDefinition(modelId: "open-2", modelName: "open-2", modelUrl: url)]
    }

    func userToken(_ lisa: Harness, groups: [String]) async throws -> String {
        let groupsJSON = String(decoding: try JSONEncoder().encode(groups), as: UTF8.self)
        let (status, body, _) = try await lisa.send("/api-tokens/alice", json: #"{"name":"laptop","groups":\#(groupsJSON)}"#)
        #expect(status == 201, "\(body)")
        struct Created: Decodable { var token: String }
        return try JSONDecoder().decode(Created.self, from: Data(body.utf8)).token
    }

    @Test("GET /models names no hidden model: fallbacks are filtered to the models the caller may see")
    func fallbacksHidden() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let alice = try await userToken(lisa, groups: [])
            let listed = try await lisa.send(.GET, "/models", key: alice)
            #expect(listed.status == 200)
            #expect(!listed.body.contains("secret"), "\(listed.body)")
            let records = try #require(try JSONSerialization.jsonObject(with: Data(listed.body.utf8)) as? [String: Any])["models"] as? [[String: Any]]
            let open = try #require(records?.first { $0["modelId"] as? String == "open" })
            #expect(open["fallbacks"] as? [String] == ["open-2"])
            // A member of the group sees it; an administrator sees the definition as stored.
            let member = try await userToken(lisa, groups: ["special"])
            #expect(try await lisa.send(.GET, "/models", key: member).body.contains(#"["secret","open-2"]"#))
            #expect(try await lisa.send(.GET, "/models").body.contains(#"["secret","open-2"]"#))
        }
    }

    @Test("a repository open to a user does not name its hidden embedding model")
    func repositoryHidesItsEmbeddingModel() async throws {
        try await Harness.run(
            access: Self.access,
            models: { url in
                var hidden = ModelDefinition(modelId: "secret-embed", modelName: "e", modelType: .embedding, modelUrl: url)
                hidden.allowedGroups = ["special"]
                return [hidden]
            }
        ) { lisa in
            let created = try await lisa.send("/repository", json: #"{"repositoryId":"handbook","embeddingModelId":"secret-embed"}"#)
            #expect(created.status == 201, "\(created.body)")
            let alice = try await userToken(lisa, groups: [])
            for path in ["/repository", "/repository/handbook", "/repository/handbook/collection"] {
                let seen = try await lisa.send(.GET, path, key: alice)
                #expect(seen.status == 200, "\(path): \(seen.body)")
                #expect(!seen.body.contains("secret-embed"), "\(path): \(seen.body)")
            }
            #expect(try await lisa.send(.GET, "/repository/handbook").body.contains("secret-embed"), "the administrator sees it")
        }
    }

    @Test("GET /v1/models/{id} (and under /v2/serve): the listed model; 404 in OpenAI's shape for an unknown or hidden one")
    func retrieveModel() async throws {
        try await Harness.run(access: Self.access, models: Self.models) { lisa in
            let alice = try await userToken(lisa, groups: [])
            for prefix in ["/v1", "/v2/serve"] {
                let found = try await lisa.send(.GET, "\(prefix)/models/open", key: alice)
                #expect(found.status == 200, "\(found.body)")
                let model = try JSONDecoder().decode(ModelList.Model.self, from: Data(found.body.utf8))
                #expect(model.id == "open" && model.object == "model" && model.ownedBy == "lisa")
                for id in ["secret", "nope"] {
                    let missing = try await lisa.send(.GET, "\(prefix)/models/\(id)", key: alice)
                    #expect(missing.status == 404)
                    #expect(try errorBody(missing.body).code == "model_not_found", "hidden reads as unknown")
                }
                #expect(try await lisa.send(.GET, "\(prefix)/models/secret").status == 200, "the administrator sees it")
            }
            #expect(try await lisa.send(.GET, "/v1/models/open", key: nil).status == 401)
        }
    }

    @Test("an endpoint nothing listens on is unknown (never healthy) until probes find it unhealthy, and /v1/models says so")
    func unknownThenDown() async throws {
        let deadPort = try deadPort()
        var fast = HealthCheckConfiguration.reachability
        fast.intervalSeconds = 0.1
        // The dead port refuses at once; a long timeout keeps a busy machine from failing the live one's probe.
        fast.timeoutSeconds = 10
        try await Harness.run(
            probes: true, defaultHealthCheck: fast,
            models: { url in
                var dead = ModelDefinition(modelId: "dead", modelName: "dead", modelUrl: "http://127.0.0.1:\(deadPort)/v1")
                var unprobed = ModelDefinition(modelId: "unprobed", modelName: "u", modelUrl: "http://127.0.0.1:\(deadPort)/v1")
                var off = HealthCheckConfiguration()
                off.enabled = false
                unprobed.healthCheck = off
                dead.healthCheck = nil
                return [dead, unprobed, ModelDefinition(modelId: "live", modelName: "echo", modelUrl: url)]
            }
        ) { lisa in
            func health(_ id: String) async throws -> String? {
                let list = try JSONDecoder().decode(ModelList.self, from: Data(try await lisa.send(.GET, "/v1/models").body.utf8))
                return list.data.first { $0.id == id }?.lisa?.health
            }
            #expect(try await health("unprobed") == "unknown", "not reported healthy before anything answered")
            let dead = try #require(lisa.gateway.registry.model("dead"))
            #expect(dead.pool.endpoints[0].status.health != "healthy")
            #expect(await eventually { dead.pool.endpoints[0].status.health != "unknown" })
            #expect(dead.pool.endpoints[0].status.health == "unhealthy", "from unknown straight to unhealthy")
            #expect(try await health("dead") == "down")
            #expect(try await lisa.send(.GET, "/models").body.contains(#""health":"down""#))
            #expect(await eventually { lisa.gateway.registry.model("live")?.pool.endpoints[0].status.health == "healthy" })
            #expect(try await health("live") == "healthy")
        }
    }

    /// Records each request's path and Authorization header.
    final class Recorder: Sendable {
        let seen = Mutex<[(path: String, authorization: String?)]>([])
        func paths() -> [String] { seen.withLock { $0.map(\.path) } }
        func authorizations(at path: String) -> [String?] { seen.withLock { $0.filter { $0.path == path }.map(\.authorization) } }
    }

    struct RecordingMiddleware: RouterMiddleware {
        let recorder: Recorder
        func handle(
            _ request: Request, context: LISARequestContext, next: (Request, LISARequestContext) async throws -> Response
        ) async throws -> Response {
            recorder.seen.withLock { $0.append((request.uri.path, request.headers[.authorization])) }
            return Response(status: .ok)
        }
    }

    @Test("probes send the endpoint key only under its configured base URL; the reachability probe sends none")
    func probeCredentials() async throws {
        let recorder = Recorder()
        let router = Router(context: LISARequestContext.self)
        router.middlewares.add(RecordingMiddleware(recorder: recorder))
        let logger = Logger(label: "recorder", factory: { _ in SwiftLogNoOpLogHandler() })
        try await withRunning(router: router, logger: logger) { port in
            let base = "http://127.0.0.1:\(port)/tenant-a/v1"
            var fast = HealthCheckConfiguration.reachability
            fast.intervalSeconds = 0.1
            try await Harness.run(
                probes: true, defaultHealthCheck: fast,
                models: { _ in
                    let endpoint = EndpointDefinition(url: base, apiKey: "sk-endpoint-secret")
                    let reach = ModelDefinition(modelId: "reach", modelName: "m", endpoints: [endpoint])
                    var inside = ModelDefinition(modelId: "inside", modelName: "m", endpoints: [endpoint])
                    inside.healthCheck = HealthCheckConfiguration(path: "/tenant-a/v1/models", intervalSeconds: 0.1, timeoutSeconds: 1)
                    var outside = ModelDefinition(modelId: "outside", modelName: "m", endpoints: [endpoint])
                    outside.healthCheck = HealthCheckConfiguration(path: "/health", intervalSeconds: 0.1, timeoutSeconds: 1)
                    var sibling = ModelDefinition(modelId: "sibling", modelName: "m", endpoints: [endpoint])
                    sibling.healthCheck = HealthCheckConfiguration(path: "/tenant-a/v1-other/models", intervalSeconds: 0.1, timeoutSeconds: 1)
                    return [reach, inside, outside, sibling]
                }
            ) { _ in
                let wanted: Set = ["/", "/tenant-a/v1/models", "/health", "/tenant-a/v1-other/models"]
                #expect(await eventually { wanted.isSubset(of: Set(recorder.paths())) }, "\(recorder.paths())")
                #expect(recorder.authorizations(at: "/").allSatisfy { $0 == nil }, "the origin's / is outside /tenant-a/v1")
                #expect(recorder.authorizations(at: "/health").allSatisfy { $0 == nil })
                #expect(recorder.authorizations(at: "/tenant-a/v1-other/models").allSatisfy { $0 == nil }, "a prefix of a segment is not inside")
                #expect(recorder.authorizations(at: "/tenant-a/v1/models").allSatisfy { $0 == "Bearer sk-endpoint-secret" })
            }
        }
    }
}
