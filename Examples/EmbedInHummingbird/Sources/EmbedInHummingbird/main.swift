// An existing Hummingbird service that adds an OpenAI-compatible gateway to its own routes.
//
//   UPSTREAM_URL=http://127.0.0.1:8000/v1 LISA_ADMIN_KEY=change-me-please-0123 swift run EmbedInHummingbird
//   curl -H "Authorization: Bearer change-me-please-0123" http://127.0.0.1:8090/v1/models
import Foundation
import Hummingbird
import LISAHummingbird
import LISAKit
import Logging
import ServiceLifecycle

let environment = ProcessInfo.processInfo.environment
let logger = Logger(label: "my-service")

// The gateway: state in memory here; `SQLStateStore.openSQLite(path:logger:)` or
// `.openPostgres(url:logger:)` keep API-registered models and tokens.
let httpClient = OpenAICompatibleProvider.makeHTTPClient()
let store = try await SQLStateStore.inMemory()
let gateway = Gateway(
    registry: ModelRegistry(),
    store: store,
    provider: OpenAICompatibleProvider(httpClient: httpClient),
    logger: logger
)
// The models API: one configured model; no hosting backend, so no lisa_hosted models.
let models = try ModelManager(
    store: store,
    registry: gateway.registry,
    configured: [
        ModelDefinition(
            modelId: "assistant",
            modelName: environment["UPSTREAM_MODEL"] ?? "Qwen/Qwen2.5-0.5B-Instruct",
            modelType: .textgen,
            inferenceContainer: .vllm,
            modelUrl: environment["UPSTREAM_URL"] ?? "http://127.0.0.1:8000/v1"
        )
    ],
    logger: logger
)
try await models.reload()

// The app's own routes, and LISA's mounted on the same router.
let router = Router(context: LISARequestContext.self)
router.get("/hello") { _, _ in "hello from my service" }
LISARoutes(gateway: gateway, models: models, adminKey: AdminKeyVerifier(key: environment["LISA_ADMIN_KEY"] ?? "change-me-please-0123"))
    .add(to: router)

let app = Application(
    router: router,
    server: .lisaHTTP1(),
    configuration: .init(address: .hostname("127.0.0.1", port: 8090)),
    logger: logger
)
// The models service keeps the router in step with the store and finishes model steps.
try await ServiceGroup(services: [app, models], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
try await httpClient.shutdown().get()
