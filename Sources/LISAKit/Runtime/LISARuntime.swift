public import AsyncHTTPClient
public import CoreMetrics
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization
public import Tracing

/// Everything LISA is, built once from a ``LISAConfiguration``: the state store, the admin
/// key, the model registry and gateway, the models API and its controller, RAG, sessions,
/// access control (authenticator, API tokens, rate limits, OIDC) and the health prober.
///
/// The bundled server, the tests and embedding apps all start from one of these, so no one
/// wires the parts by hand. The runtime is a `Service`: run it in a `ServiceGroup` before
/// your HTTP server, and ``streamDrain`` after it; when the group ends, the runtime closes
/// what it opened. In process, ``withRuntime(configuration:store:provider:metrics:tracer:logger:_:)``
/// does all of it around a closure.
///
/// ```swift
/// let runtime = try await LISARuntime(configuration: try .load(file: "lisa.yaml"), logger: logger)
/// try await ServiceGroup(services: [runtime, myApp, runtime.streamDrain], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public final class LISARuntime: Sendable {
    public let configuration: LISAConfiguration
    /// The state this runtime was built on; its parts each hold the small store they need.
    public let store: SQLStateStore
    /// The one outbound HTTP client (upstreams, OIDC, OpenSearch, probes): no redirects.
    public let httpClient: HTTPClient
    /// The HTTP/1.1 client of upstream inference calls (a pool per event loop).
    public let upstreamClient: UpstreamHTTPClient
    public let gateway: Gateway
    /// The models API: lifecycle, hosting, the controller on the leading replica.
    public let models: ModelManager
    /// Repositories, ingestion and grounding.
    public let rag: RAGService
    public let sessions: SessionService
    public let adminKeys: AdminKeyring
    /// The admin key when this start generated it; show it once, then forget it.
    public let generatedAdminKey: String?
    public let authenticator: Authenticator
    public let tokens: APITokenService
    public let rateLimiter: RateLimiter
    /// OIDC sign-in, when `auth.authority` is configured (also a `Service`: key refresh).
    public let oidc: OIDCVerifier?
    /// Active health checks of the models' endpoints.
    public let prober: HealthProber
    /// Budgets, usage records and the request log.
    public let usage: UsageAccountant
    /// Where LISA's spans go: the tracer given to `init`, else an ``OTLPTracer`` when
    /// `tracing.endpoint` is configured, else one bootstrapped in `InstrumentationSystem`;
    /// `nil`: no spans are made.
    public let tracer: (any Tracer)?
    /// The OTLP exporter of the built-in tracer (a service in ``services``).
    public let traceExporter: OTLPExporter?
    private let vectors: EmbeddedVectorStore
    private let ownsStore: Bool
    let logger: Logger
    /// Set once ``shutdown()`` has closed everything: a second call does nothing.
    private let closed = Mutex(false)

    /// The long-lived work to run in a `ServiceGroup`: health probes, the models service,
    /// the ingestion worker and, with OIDC, the key refresher.
    public var services: [any Service] {
        [prober, models, rag, authenticator.tokenCache, usage.recorder] + (oidc.map { [$0] } ?? []) + (traceExporter.map { [$0] } ?? [])
    }

    /// Builds every part from `configuration`: state from `configuration.databaseURL`
    /// (PostgreSQL) or SQLite in the data directory — or `store`, when an embedder hands
    /// one over (it is then the caller's to close); upstream calls over HTTP to
    /// OpenAI-compatible servers — or through `provider` (an in-memory one in tests);
    /// metrics into `metrics`, or the process's `MetricsSystem` (swift-metrics) by default;
    /// spans into `tracer` (swift-distributed-tracing), else as ``tracer`` says. Circuit
    /// breakers, retry budgets, health probes and rate buckets run on `clock` (a manual
    /// clock in tests).
    public init(
        configuration: LISAConfiguration, store given: SQLStateStore? = nil, provider: (any InferenceProvider)? = nil,
        metrics: (any MetricsFactory)? = nil, tracer givenTracer: (any Tracer)? = nil, clock: AnyClock = .continuous, logger: Logger
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        let store: SQLStateStore
        if let given { store = given } else { store = try await Self.openStore(configuration, logger: logger) }
        self.store = store
        self.ownsStore = given == nil
        let httpClient = AsyncHTTPClientProvider.makeHTTPClient(timeouts: configuration.upstreamTimeouts)
        self.httpClient = httpClient
        var clientConfiguration = UpstreamHTTPClient.Configuration()
        clientConfiguration.connectTimeout = configuration.upstreamTimeouts.connect
        let upstreamClient = UpstreamHTTPClient(configuration: clientConfiguration)
        self.upstreamClient = upstreamClient
        let tracer: (any Tracer)?
        if let givenTracer {
            (tracer, traceExporter) = (givenTracer, nil)
        } else if configuration.tracing.isEnabled {
            let exporter = OTLPExporter(settings: configuration.tracing, httpClient: httpClient, logger: logger)
            (tracer, traceExporter) = (OTLPTracer(exporter: exporter, sampleRatio: configuration.tracing.sampleRatio), exporter)
            logger.info("exporting traces over OTLP/HTTP", metadata: ["lisa.collector": "\(exporter.settings.tracesURL ?? "")"])
        } else {
            (tracer, traceExporter) = (InstrumentationSystem.tracer is NoOpTracer ? nil : InstrumentationSystem.tracer, nil)
        }
        self.tracer = tracer
        do {
            let (keyring, generated) = try await AdminKeyring.load(configured: configuration.adminKey, settings: store.settings)
            adminKeys = keyring
            generatedAdminKey = generated
            rateLimiter = RateLimiter(configuration: configuration.rateLimits, coordination: store.coordination, clock: clock)
            let oidc = configuration.oidc.map { OIDCVerifier(configuration: $0, httpClient: httpClient, logger: logger) }
            self.oidc = oidc
            let tokenCache = TokenCache(settings: configuration.tokenCache, following: store.tokens)
            var authenticator = Authenticator(
                adminKeys: keyring, tokens: store.tokens, access: configuration.access, oidc: oidc, tokenCache: tokenCache)
            authenticator.tracer = tracer
            self.authenticator = authenticator
            tokens = APITokenService(
                tokens: store.tokens, access: configuration.access, policy: configuration.tokenPolicy, tokenCache: tokenCache, logger: logger
            )
            sessions = SessionService(store: store.records, access: configuration.access, quotas: configuration.quotas)
            let usage = UsageAccountant(
                settings: configuration.usage, budgets: configuration.budgets, store: store.usage,
                requestTimeout: configuration.upstreamTimeouts.request,
                logger: logger
            )
            self.usage = usage
            let gateway = Gateway(
                registry: ModelRegistry(defaultPolicy: configuration.loadBalancing, clock: clock),
                provider: provider
                    ?? (configuration.upstreamClient == .lean
                        ? OpenAICompatibleProvider(
                            client: upstreamClient, timeouts: configuration.upstreamTimeouts, defaultTLS: configuration.upstreamTLS)
                            as any InferenceProvider
                        : AsyncHTTPClientProvider(
                            httpClient: httpClient, timeouts: configuration.upstreamTimeouts, defaultTLS: configuration.upstreamTLS)),
                metrics: GatewayMetrics(factory: metrics), access: configuration.access, accountant: usage, tracer: tracer,
                answerMemory: AnswerMemoryBudget(limits: configuration.answerMemory), logger: logger
            )
            self.gateway = gateway
            prober = HealthProber(
                registry: gateway.registry, httpClient: httpClient, defaultTLS: configuration.upstreamTLS,
                defaultCheck: configuration.defaultHealthCheck, logger: logger
            )
            let backend = try await Self.makeBackend(configuration, settings: store.settings, httpClient: httpClient, logger: logger)
            models = try ModelManager(
                store: store.models, coordination: store.coordination, usage: store.usage, registry: gateway.registry,
                configured: configuration.models, backend: backend, httpClient: httpClient,
                logger: logger
            )
            try await models.reload()
            let directory = URL(fileURLWithPath: configuration.dataDirectory)
            let embedded = try await EmbeddedVectorStore.open(directory: directory.appendingPathComponent("vectors").path, logger: logger)
            vectors = embedded
            var pgvector: PGVectorStore?
            if store.isShared {
                do {
                    pgvector = try await store.openPGVector(logger: logger)
                } catch {
                    logger.warning(
                        "pgvector is not available on the state database; pgvector repositories are off", metadata: ["lisa.error": "\(error)"])
                }
            }
            if let problem = DocumentParser.pdfProblem(configuration.ragIngestion.document) {
                logger.warning("PDF ingestion is off", metadata: ["lisa.reason": "\(problem)"])
            }
            let rag = try RAGService(
                store: store.records, coordination: store.coordination, gateway: gateway, embedded: embedded, pgvector: pgvector,
                uploadDirectory: directory.appendingPathComponent("uploads").path, maxUploadSize: configuration.ragMaxUploadSize,
                ingestion: configuration.ragIngestion, quotas: configuration.quotas, httpClient: httpClient, logger: logger
            )
            self.rag = rag
            models.setUsageCheck { modelId in try await rag.repositories(usingEmbeddingModel: modelId) }
        } catch {
            await upstreamClient.shutdown()
            try? await httpClient.shutdown()
            if given == nil { try? await store.close() }
            throw error
        }
    }

    /// Closes the vector store, the HTTP clients and (when the runtime opened it) the state
    /// store. ``run()`` calls it when it ends; call it yourself only for a runtime you never
    /// ran. A second call does nothing.
    public func shutdown() async throws {
        guard
            !closed.withLock({
                let was = $0; $0 = true; return was
            })
        else { return }
        await rag.close()
        try? await vectors.close()
        await upstreamClient.shutdown()
        try? await httpClient.shutdown()
        if ownsStore { try await store.close() }
    }

    /// The state store `configuration` names: PostgreSQL, or SQLite in the data directory.
    public static func openStore(_ configuration: LISAConfiguration, logger: Logger) async throws -> SQLStateStore {
        if let url = configuration.databaseURL {
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
                throw ConfigurationError("LISA_DATABASE_URL must be a postgres:// URL")
            }
            do {
                return try await SQLStateStore.openPostgres(url: url, logger: logger)
            } catch let error as PostgresDatabase.ConnectionError {
                throw ConfigurationError(error.description)
            }
        }
        let directory = URL(fileURLWithPath: configuration.dataDirectory, isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ConfigurationError("cannot create the data directory '\(configuration.dataDirectory)': \(error.localizedDescription)")
        }
        return try await SQLStateStore.openSQLite(path: directory.appendingPathComponent("lisa.sqlite").path, logger: logger)
    }

    /// The local-process backend, its replicas' logs under the data directory and tagged
    /// with this deployment's id (kept in the store, so every LISAServe sharing it agrees).
    static func makeBackend(
        _ configuration: LISAConfiguration, settings: SettingStore, httpClient: HTTPClient, logger: Logger
    ) async throws -> (any HostingBackend)? {
        guard configuration.hostingBackend != "none" else { return nil }
        let deploymentID: String
        if let stored = try await settings.value(for: "deployment_id") {
            deploymentID = stored
        } else {
            deploymentID = UUID().uuidString.lowercased()
            try await settings.setValue(deploymentID, for: "deployment_id")
        }
        if configuration.hostingBackend == "kubernetes" {
            let client = try KubernetesClient.load(
                kubeconfig: configuration.kubernetes.kubeconfig, namespace: configuration.kubernetes.namespace, httpClient: httpClient
            )
            logger.info("hosting on Kubernetes", metadata: ["lisa.api_server": "\(client.server)", "lisa.namespace": "\(client.namespace)"])
            return KubernetesBackend(client: client, deploymentID: deploymentID, logger: logger)
        }
        try FileManager.default.createDirectory(
            atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
        )
        let directory = URL(fileURLWithPath: configuration.dataDirectory).standardizedFileURL.path
        return LocalProcessBackend(directory: directory, deploymentID: deploymentID, httpClient: httpClient, logger: logger)
    }
}
