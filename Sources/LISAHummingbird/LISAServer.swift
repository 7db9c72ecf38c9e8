import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import LISAKit
import LISAWebUI
import Logging
import NIOCore
import ServiceLifecycle

/// The bundled server: a ``Gateway`` with its state store and HTTP client, served by
/// Hummingbird with LISA's routes. LISAServe is this type plus argument parsing.
public final class LISAServer: Sendable {
    public let configuration: LISAConfiguration
    public let gateway: Gateway
    public let models: ModelManager
    /// Repositories, ingestion and grounding.
    public let rag: RAGService
    private let vectors: EmbeddedVectorStore
    public let adminKeys: AdminKeyring
    /// The admin key when this start generated it; show it once, then forget it.
    public let generatedAdminKey: String?
    private let httpClient: HTTPClient
    private let store: any StateStore
    private let rateLimiter: RateLimiter
    private let oidc: OIDCVerifier?
    private let webAssets: WebAssets
    private let logger: Logger

    /// Opens the state store, loads the admin key and the models. Call ``run(onServerRunning:)``
    /// next, or ``shutdown()`` to release what this opened.
    public init(configuration: LISAConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        let store = try await Self.openStore(configuration, logger: logger)
        do {
            let (keyring, generated) = try await AdminKeyring.load(configured: configuration.adminKey, store: store)
            self.adminKeys = keyring
            self.generatedAdminKey = generated
        } catch {
            try? await store.close()
            throw error
        }
        let httpClient = OpenAICompatibleProvider.makeHTTPClient(timeouts: configuration.upstreamTimeouts)
        self.httpClient = httpClient
        self.store = store
        self.rateLimiter = RateLimiter(configuration: configuration.rateLimits)
        self.oidc = configuration.oidc.map { OIDCVerifier(configuration: $0, httpClient: httpClient, logger: logger) }
        if let directory = configuration.ui.directory {
            do {
                webAssets = try WebAssets.directory(directory)
            } catch {
                try? await httpClient.shutdown()
                try? await store.close()
                throw ConfigurationError("cannot read the UI folder '\(directory)' (LISA_UI_DIRECTORY): \(error.localizedDescription)")
            }
        } else {
            webAssets = .embedded
        }
        let gateway = Gateway(
            registry: ModelRegistry(defaultPolicy: configuration.loadBalancing), store: store,
            provider: OpenAICompatibleProvider(
                httpClient: httpClient, timeouts: configuration.upstreamTimeouts, defaultTLS: configuration.upstreamTLS
            ),
            access: configuration.access, logger: logger
        )
        self.gateway = gateway
        do {
            let backend = try await Self.makeBackend(configuration, store: store, httpClient: httpClient, logger: logger)
            self.models = try ModelManager(
                store: store, registry: gateway.registry, configured: configuration.models, backend: backend, httpClient: httpClient,
                logger: logger
            )
            try await models.reload()
            let directory = URL(fileURLWithPath: configuration.dataDirectory)
            let embedded = try await EmbeddedVectorStore.open(directory: directory.appendingPathComponent("vectors").path, logger: logger)
            self.vectors = embedded
            var pgvector: PGVectorStore?
            if let postgres = (store as? SQLStateStore)?.database as? PostgresDatabase {
                do {
                    pgvector = try await PGVectorStore.open(database: postgres, logger: logger)
                } catch {
                    logger.warning("pgvector is not available on the state database; pgvector repositories are off", metadata: ["lisa.error": "\(error)"])
                }
            }
            self.rag = try RAGService(
                store: store, gateway: gateway, embedded: embedded, pgvector: pgvector,
                uploadDirectory: directory.appendingPathComponent("uploads").path, maxUploadSize: configuration.ragMaxUploadSize,
                ingestion: configuration.ragIngestion, quotas: configuration.quotas, logger: logger
            )
            let rag = self.rag
            models.setUsageCheck { modelId in try await rag.repositories(usingEmbeddingModel: modelId) }
        } catch {
            try? await httpClient.shutdown()
            try? await store.close()
            throw error
        }
    }

    /// The local-process backend, its replicas' logs under the data directory and tagged
    /// with this deployment's id (kept in the store, so every LISAServe sharing it agrees).
    static func makeBackend(
        _ configuration: LISAConfiguration, store: any StateStore, httpClient: HTTPClient, logger: Logger
    ) async throws -> (any HostingBackend)? {
        guard configuration.hostingBackend == "local" else { return nil }
        let deploymentID: String
        if let stored = try await store.setting("deployment_id") {
            deploymentID = stored
        } else {
            deploymentID = UUID().uuidString.lowercased()
            try await store.setSetting("deployment_id", to: deploymentID)
        }
        try FileManager.default.createDirectory(
            atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
        )
        let directory = URL(fileURLWithPath: configuration.dataDirectory).standardizedFileURL.path
        return LocalProcessBackend(directory: directory, deploymentID: deploymentID, httpClient: httpClient, logger: logger)
    }

    static func openStore(_ configuration: LISAConfiguration, logger: Logger) async throws -> any StateStore {
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

    /// The router with LISA's routes, for embedding or tests.
    public func makeRouter() -> Router<LISARequestContext> {
        let router = Router(context: LISARequestContext.self)
        var routes = LISARoutes(
            gateway: gateway, models: models, authenticator: Authenticator(adminKeys: adminKeys, store: store, access: configuration.access, oidc: oidc),
            tokens: APITokenService(store: store, access: configuration.access, policy: configuration.tokenPolicy, logger: logger),
            rateLimiter: rateLimiter, maxRequestBodySize: configuration.maxRequestBodySize
        )
        routes.acceptsClientCertificates = configuration.serverTLS?.clientCA != nil
        routes.rag = rag
        routes.quotas = configuration.quotas
        routes.add(to: router)
        if configuration.ui.enabled {
            WebUIRoutes<LISARequestContext>(assets: webAssets, oidc: oidc, scopes: configuration.ui.scopes).add(to: router)
        }
        return router
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish (up to the
    /// configured grace period) and releases every resource.
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let logger = self.logger
        var serverBuilder = HTTPServerBuilder.lisaHTTP1(limits: configuration.connections)
        var tlsServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tls = configuration.serverTLS {
            let certificate = try ReloadingServerCertificate(settings: tls, logger: logger)
            serverBuilder = try .lisaHTTPS(tlsConfiguration: try certificate.configuration(), limits: configuration.connections)
            tlsServices.append(.init(service: certificate))
            logger.info(
                "serving HTTPS (HTTP/2 and HTTP/1.1)",
                metadata: ["lisa.certificate": "\(tls.certificate)", "lisa.client_ca": "\(tls.clientCA ?? "none")"]
            )
        }
        warnAboutInsecureUpstreams()
        let app = Application(
            router: makeRouter(),
            server: serverBuilder,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.connections.maxConnections, logger: logger)
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("LISAServe listening", metadata: ["lisa.address": "\(channel.localAddress?.description ?? "?")"])
                await onServerRunning(port)
            },
            logger: logger
        )
        let prober = HealthProber(registry: gateway.registry, httpClient: httpClient, defaultTLS: configuration.upstreamTLS, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: prober), .init(service: models), .init(service: rag)] + tlsServices + (oidc.map { [.init(service: $0)] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGracePeriod
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch {
            try? await shutdown()
            throw error
        }
        try await shutdown()
    }

    /// `insecureSkipVerify` is for labs: say so loudly, once per place it is set.
    private func warnAboutInsecureUpstreams() {
        if configuration.upstreamTLS?.insecureSkipVerify == true {
            logger.critical("upstream.tls.insecureSkipVerify is on: upstream certificates are NOT verified. Use it in a lab only.")
        }
        for model in gateway.registry.allModels() {
            for endpoint in model.routing.resolvedEndpoints where endpoint.tls?.insecureSkipVerify == true {
                logger.critical(
                    "insecureSkipVerify is on for an endpoint: its certificate is NOT verified. Use it in a lab only.",
                    metadata: ["lisa.model": "\(model.definition.modelId)", "lisa.endpoint": "\(Endpoint.label(for: endpoint.url))"]
                )
            }
        }
    }

    /// Closes the HTTP client and the state store.
    public func shutdown() async throws {
        try? await vectors.close()
        try? await httpClient.shutdown()
        try await store.close()
    }
}
