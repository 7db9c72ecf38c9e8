import AsyncHTTPClient
import Foundation
public import Hummingbird
import HummingbirdCore
public import LISAKit
import LISAWebUI
public import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// The bundled server: a ``LISARuntime`` served by Hummingbird with LISA's routes and LISA
/// Chat. LISAServe is this type plus argument parsing.
public final class LISAServer: Sendable {
    /// Every part of LISA, built from the configuration.
    public let runtime: LISARuntime
    public var configuration: LISAConfiguration { runtime.configuration }
    public var gateway: Gateway { runtime.gateway }
    public var models: ModelManager { runtime.models }
    /// Repositories, ingestion and grounding.
    public var rag: RAGService { runtime.rag }
    public var adminKeys: AdminKeyring { runtime.adminKeys }
    /// The admin key when this start generated it; show it once, then forget it.
    public var generatedAdminKey: String? { runtime.generatedAdminKey }
    /// The Prometheus backend of `/metrics`, which the runtime records into.
    public let prometheus: PrometheusMetrics
    private let webAssets: WebAssets
    private let logger: Logger

    /// Builds the runtime (state store, admin key, models, RAG, access control) and reads the
    /// UI's files. Call ``run(onServerRunning:)`` next, or ``shutdown()`` to release what this opened.
    ///
    /// - Parameter prometheus: where metrics are recorded and `/metrics` reads them (LISAServe
    ///   passes the backend it bootstrapped `MetricsSystem` with); a new one by default.
    public init(configuration: LISAConfiguration, prometheus: PrometheusMetrics = PrometheusMetrics(), logger: Logger) async throws {
        self.logger = logger
        self.prometheus = prometheus
        let runtime = try await LISARuntime(configuration: configuration, metrics: prometheus, logger: logger)
        self.runtime = runtime
        if let directory = configuration.ui.directory {
            do {
                webAssets = try WebAssets.directory(directory)
            } catch {
                try? await runtime.shutdown()
                throw ConfigurationError("cannot read the UI folder '\(directory)' (LISA_UI_DIRECTORY): \(error.localizedDescription)")
            }
        } else {
            webAssets = .embedded
        }
    }

    /// The router with LISA's routes, for embedding or tests.
    public func makeRouter() -> Router<LISARequestContext> {
        let router = Router(context: LISARequestContext.self)
        LISARoutes(runtime: runtime, prometheus: prometheus).add(to: router, scope: .router)
        if configuration.ui.enabled {
            WebUIRoutes<LISARequestContext>(assets: webAssets, oidc: runtime.oidc, scopes: configuration.ui.scopes).add(to: router)
        }
        return router
    }

    /// Serves until SIGTERM or SIGINT, then lets in-flight requests finish (up to the
    /// configured grace period) and releases every resource.
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let logger = self.logger
        let configuration = self.configuration
        let modelCount = runtime.gateway.registry.allModels().count
        var serverBuilder = HTTPServerBuilder.lisaHTTP1(limits: configuration.connections, runOnEventLoops: configuration.runOnEventLoops)
        var tlsServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tls = configuration.serverTLS {
            let certificate = try ReloadingServerCertificate(settings: tls, logger: logger)
            serverBuilder = try .lisaHTTPS(
                tlsConfiguration: try certificate.configuration(), limits: configuration.connections, runOnEventLoops: configuration.runOnEventLoops
            )
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
                let scheme = configuration.serverTLS == nil ? "http" : "https"
                let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
                let url = "\(scheme)://\(host):\(port)"
                logger.info(
                    "LISAServe listening",
                    metadata: [
                        "lisa.address": "\(channel.localAddress?.description ?? "?")", "lisa.url": "\(url)",
                        "lisa.ui": "\(configuration.ui.enabled ? url + "/" : "off")",
                        "lisa.state": "\(configuration.databaseURL.map(PostgresDatabase.redacted) ?? "SQLite in " + configuration.dataDirectory)",
                        "lisa.models": "\(modelCount)",
                    ]
                )
                await onServerRunning(port)
            },
            logger: logger
        )
        // Services shut down last to first: the drain begins (open streams end with an error
        // event before the grace period is over), the server waits for its requests, and the
        // runtime, first, stops its parts and closes what it opened after everyone else.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [.init(service: runtime), .init(service: app)] + tlsServices
                + [.init(service: runtime.streamDrain, successTerminationBehavior: .ignore)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGracePeriod
        // After the grace period services are cancelled; one that still does not return
        // within this ends the process, so SIGTERM always stops LISAServe.
        groupConfiguration.maximumCancellationDuration = .seconds(15)
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch {
            // The runtime closes itself when it ends; this covers a group that never ran it.
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

    /// Closes the HTTP clients and the state store (a second call does nothing): for a server
    /// built but never run; ``run(onServerRunning:)`` closes them itself.
    public func shutdown() async throws {
        try await runtime.shutdown()
    }
}
