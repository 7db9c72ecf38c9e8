public import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle

/// Probes the endpoints of every model on its `healthCheck`'s interval — or, for a model
/// without one, on `defaultCheck` (by default a reachability probe) — and marks them healthy
/// or unhealthy after the configured number of consecutive results. Unhealthy endpoints get
/// no traffic. Run it in the server's `ServiceGroup`; it stops on graceful
/// shutdown. Its time is the registry's clock.
public struct HealthProber: Service {
    let registry: ModelRegistry
    let httpClient: HTTPClient
    let logger: Logger
    /// TLS for `https` endpoints without settings of their own (`upstream.tls`), as for requests.
    let defaultTLS: UpstreamTLS?
    /// How often due probes are looked for. Default 100 ms.
    var tick: Duration = .milliseconds(100)
    /// The probe of models that set no `healthCheck` (`routing.defaultHealthCheck`); `nil`: none.
    let defaultCheck: HealthCheckConfiguration?

    public init(
        registry: ModelRegistry, httpClient: HTTPClient, defaultTLS: UpstreamTLS? = nil,
        defaultCheck: HealthCheckConfiguration? = .reachability, logger: Logger
    ) {
        self.defaultCheck = defaultCheck.flatMap { $0.enabled ? $0 : nil }
        self.registry = registry
        self.httpClient = httpClient
        self.defaultTLS = defaultTLS
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    let now = registry.clock.seconds
                    for model in registry.allModels() {
                        guard let check = model.definition.healthCheck.map({ $0.enabled ? $0 : nil }) ?? defaultCheck else { continue }
                        for endpoint in model.pool.endpoints where endpoint.claimProbe(at: now, interval: check.intervalSeconds) {
                            group.addTask { await probe(endpoint, model: model.definition.modelId, check: check) }
                        }
                    }
                    try? await registry.clock.sleep(for: tick)
                }
            }
        }
    }

    /// Probes one endpoint once and records the result.
    func probe(_ endpoint: Endpoint, model: String, check: HealthCheckConfiguration) async {
        let success: Bool
        if let url = Self.probeURL(endpoint.definition.url, path: check.path) {
            var request = HTTPClientRequest(url: url)
            if url.hasPrefix("https:") {
                request.tlsConfiguration = (endpoint.definition.tls ?? UpstreamTLS()).over(defaultTLS).configuration()
            }
            // The key goes only where it was configured for: under the endpoint's base URL,
            // and never with the reachability probe (any answer, 401 included, is "up").
            if !check.reachabilityOnly, let apiKey = endpoint.definition.apiKey, !apiKey.isEmpty,
                Self.isUnderBase(url, base: endpoint.definition.url)
            {
                request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
            }
            do {
                let response = try await httpClient.execute(request, deadline: .now() + .init(.seconds(clamping: check.timeoutSeconds)))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                success = check.reachabilityOnly ? ![502, 503, 504].contains(response.status.code) : (200..<300).contains(response.status.code)
            } catch {
                success = false
            }
        } else {
            success = false
        }
        if endpoint.recordProbe(success: success) {
            let metadata: Logger.Metadata = ["lisa.model": "\(model)", "lisa.endpoint": "\(endpoint.index):\(endpoint.label)"]
            if success {
                logger.info("endpoint healthy again", metadata: metadata)
            } else {
                logger.warning("endpoint unhealthy: probes failing", metadata: metadata)
            }
        }
    }

    /// Whether `url` lies under the configured `base` URL: same scheme, host and port, and a
    /// path inside the base path (`https://h/tenant-a/v1` covers `https://h/tenant-a/v1/models`,
    /// not `https://h/` or `https://h/tenant-b/`). Credentials are sent only there.
    static func isUnderBase(_ url: String, base: String) -> Bool {
        guard let target = URLComponents(string: url), let configured = URLComponents(string: base),
            let host = target.host, let configuredHost = configured.host
        else { return false }
        func port(_ c: URLComponents) -> Int? { c.port ?? (c.scheme?.lowercased() == "https" ? 443 : c.scheme?.lowercased() == "http" ? 80 : nil) }
        guard target.scheme?.lowercased() == configured.scheme?.lowercased(), host.lowercased() == configuredHost.lowercased(),
            port(target) == port(configured)
        else { return false }
        let segments = { (path: String) in path.split(separator: "/", omittingEmptySubsequences: true) }
        let targetPath = segments(target.percentEncodedPath)
        let basePath = segments(configured.percentEncodedPath)
        guard !targetPath.contains(where: { $0 == ".." || $0 == "." }) else { return false }
        return targetPath.count >= basePath.count && zip(targetPath, basePath).allSatisfy { $0 == $1 }
    }

    /// The probe URL: the endpoint URL's scheme, host and port with the check's path.
    static func probeURL(_ endpointURL: String, path: String) -> String? {
        guard var components = URLComponents(string: endpointURL), components.host != nil else { return nil }
        components.path = path
        components.query = nil
        components.user = nil
        components.password = nil
        return components.string
    }
}
