// An existing Hummingbird service that adds LISA's gateway to its own routes.
//
//   UPSTREAM_URL=http://127.0.0.1:8000/v1 LISA_ADMIN_KEY=change-me-please-0123 swift run EmbedInHummingbird
//   curl -H "Authorization: Bearer change-me-please-0123" http://127.0.0.1:8090/v1/models
import Foundation
import Hummingbird
import LISAHummingbird
import LISAKit
import Logging
import ServiceLifecycle
import UnixSignals

let environment = ProcessInfo.processInfo.environment
let logger = Logger(label: "my-service")

// LISA's configuration: defaults, then LISA_* variables (LISA_ADMIN_KEY, LISA_DATABASE_URL, …),
// then one model of our own. State lives in ./.my-service-lisa (SQLite) unless LISA_DATABASE_URL says otherwise.
var configuration = try LISAConfiguration.load(file: nil)
configuration.dataDirectory = environment["LISA_DATA_DIR"] ?? ".my-service-lisa"
configuration.adminKey = configuration.adminKey ?? "change-me-please-0123"
configuration.hostingBackend = "none"
configuration.models = [
    ModelDefinition(
        modelId: "assistant", modelName: environment["UPSTREAM_MODEL"] ?? "Qwen/Qwen2.5-0.5B-Instruct", modelType: .textgen,
        inferenceContainer: .vllm, modelUrl: environment["UPSTREAM_URL"] ?? "http://127.0.0.1:8000/v1"
    )
]
let runtime = try await LISARuntime(configuration: configuration, logger: logger)

// The app's own routes, and LISA's mounted on the same router.
let router = Router(context: LISARequestContext.self)
router.get("/hello") { _, _ in "hello from my service" }
LISARoutes(runtime: runtime).add(to: router)

let port = Int(environment["PORT"] ?? "") ?? 8090
let app = Application(
    router: router,
    server: .lisaHTTP1(limits: configuration.connections),
    configuration: .init(address: .hostname("127.0.0.1", port: port)),
    logger: logger
)
// LISA's services (models, health probes, ingestion) run beside the app.
// The runtime first (it stops last, after the app's requests), its stream drain last (it
// begins first, so open streams end cleanly within the grace period).
try await ServiceGroup(services: [runtime, app, runtime.streamDrain], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
try await runtime.shutdown()  // after a cancelled group; a graceful one closed it already
