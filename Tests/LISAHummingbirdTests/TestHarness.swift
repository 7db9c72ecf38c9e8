import AsyncHTTPClient
import Foundation
import Hummingbird
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import ServiceLifecycle
import Testing

let adminKey = "test-admin-key-0123456789"

/// A running LISA in front of a running fake upstream, for one test.
struct Harness: Sendable {
    let baseURL: String
    let upstreamURL: String
    let fake: FakeUpstream
    let gateway: Gateway
    let models: ModelManager
    let store: SQLStateStore

    /// Starts a fake upstream and a LISA server routed to it, runs `body`, stops both.
    /// `clock`: what routing and rate limits run on (a `ManualClock` to advance by hand).
    static func run<T: Sendable>(
        fake: FakeUpstream = FakeUpstream(),
        upstreamPort: Int = 0,
        store: SQLStateStore? = nil,
        maxRequestBodySize: Int = 1024 * 1024,
        probes: Bool = false,
        defaultHealthCheck: HealthCheckConfiguration = .reachability,
        access: AccessConfiguration = AccessConfiguration(),
        rateLimits: RateLimitConfiguration? = nil,
        quotas: StorageQuotas = StorageQuotas(),
        tokenPolicy: APITokenPolicy = APITokenPolicy(),
        clock: AnyClock = .continuous,
        models: @escaping @Sendable (String) -> [ModelDefinition] = { url in
            [
                ModelDefinition(modelId: "chat", modelName: "echo-upstream", modelUrl: url),
                ModelDefinition(modelId: "embed", modelName: "embed-upstream", modelType: .embedding, modelUrl: url),
            ]
        },
        _ body: @Sendable (Harness) async throws -> T
    ) async throws -> T {
        try await fake.withRunning(port: upstreamPort) { upstreamURL in
            var logger = Logger(label: "lisa-test")
            logger.logLevel = .critical
            let given = store
            let store: SQLStateStore
            if let given { store = given } else { store = try await SQLStateStore.inMemory() }
            // One runtime, as LISAServe builds it, from a configuration.
            var configuration = LISAConfiguration()
            configuration.adminKey = adminKey
            configuration.models = models(upstreamURL)
            configuration.access = access
            configuration.rateLimits = rateLimits ?? RateLimitConfiguration(enabled: false)
            configuration.maxRequestBodySize = maxRequestBodySize
            configuration.quotas = quotas
            configuration.tokenPolicy = tokenPolicy
            configuration.hostingBackend = "none"
            configuration.defaultHealthCheck = defaultHealthCheck
            let dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-harness-\(UUID().uuidString)").path
            configuration.dataDirectory = dataDirectory
            defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
            let prometheus = PrometheusMetrics()
            let runtime: LISARuntime
            do {
                runtime = try await LISARuntime(configuration: configuration, store: store, metrics: prometheus, clock: clock, logger: logger)
            } catch {
                if given == nil { try? await store.close() }
                throw error
            }
            let router = Router(context: LISARequestContext.self)
            LISARoutes(runtime: runtime, prometheus: prometheus).add(to: router, scope: .router)
            WebUIRoutes<LISARequestContext>(oidc: nil).add(to: router)
            let services: [any Service] = [runtime.models] + (probes ? [runtime.prober] : [])
            do {
                let result = try await withRunning(router: router, services: services, logger: logger) { port in
                    try await body(
                        Harness(
                            baseURL: "http://127.0.0.1:\(port)", upstreamURL: upstreamURL, fake: fake, gateway: runtime.gateway,
                            models: runtime.models, store: store
                        )
                    )
                }
                try await runtime.shutdown()
                if given == nil { try await store.close() }
                return result
            } catch {
                try? await runtime.shutdown()
                if given == nil { try? await store.close() }
                throw error
            }
        }
    }

    /// POSTs `json` to LISA with the admin key (unless `key` says otherwise).
    func send(
        _ path: String, json: String, key: String? = adminKey, headers: [(String, String)] = [("Content-Type", "application/json")]
    ) async throws -> (status: Int, body: String, headers: HTTPHeaders) {
        try await send(.POST, path, json: json, key: key, headers: headers)
    }

    /// Sends a request to LISA with the admin key (unless `key` says otherwise).
    func send(
        _ method: HTTPMethod, _ path: String, json: String? = nil, key: String? = adminKey,
        headers: [(String, String)] = [("Content-Type", "application/json")]
    ) async throws -> (status: Int, body: String, headers: HTTPHeaders) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let json {
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return (Int(response.status.code), String(buffer: body), response.headers)
    }
}

/// Runs a Hummingbird router on a free loopback port for the duration of `body`.
func withRunning<T: Sendable>(
    router: Router<LISARequestContext>, services: [any Service] = [], logger: Logger, _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router, server: .lisaHTTP1(), configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
        onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger
    )
    let group = ServiceGroup(configuration: .init(services: [app] + services, logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        defer { tasks.cancelAll() }
        do {
            let result = try await body(port)
            await group.triggerGracefulShutdown()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
    }
}

/// Decodes an OpenAI error envelope, failing the test when the body is not one.
func errorBody(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ErrorResponse.Body {
    try JSONDecoder().decode(ErrorResponse.self, from: Data(text.utf8)).error
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`.
func eventually(timeout: Duration = .seconds(30), _ condition: @Sendable () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A loopback port nothing listens on, for the rest of the test process: the socket stays
/// bound (never listening, so a connection is refused at once), so no server another test
/// starts meanwhile can be given the port (freeing it, as this did before, let one test's
/// "dead" endpoint become another's live server). The process closes the sockets.
func deadPort() throws -> Int {
    try ReservedPort().port
}

/// A loopback port held by a bound socket that never listens, until ``release()``: a dead
/// endpoint that a test later brings to life on the same port.
final class ReservedPort: @unchecked Sendable {
    let port: Int
    // Written once in init; release() is called once, by the test that owns it.
    private let socket: Int32

    init() throws {
        socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let socket = self.socket
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else {
            close(socket)
            throw CancellationError()
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Frees the port for a server of the test's own.
    func release() {
        close(socket)
    }
}

/// Reads one sample from Prometheus text: the value of `name{labels}` where every given label matches.
func metricValue(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        let parts = line.split(separator: " ")
        guard parts.count >= 2 else { continue }
        let series = String(parts[0])
        guard series.hasPrefix(name), series.dropFirst(name.count).first.map({ $0 == "{" || $0 == " " }) ?? true else { continue }
        if labels.allSatisfy({ series.contains("\($0.key)=\"\($0.value)\"") }) {
            return Double(parts[1])
        }
    }
    return nil
}
