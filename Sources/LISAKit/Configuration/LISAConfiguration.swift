public import Foundation
public import Logging
import Yams

/// Where the Kubernetes hosting backend runs replicas (`hosting.kubernetes`).
public struct KubernetesConfiguration: Sendable, Hashable, Decodable {
    /// The namespace; default: the pod's own (in a cluster), the kubeconfig context's, or `default`.
    public var namespace: String?
    /// A kubeconfig file; default: the service account when in a cluster, else `$KUBECONFIG`
    /// or `~/.kube/config`.
    public var kubeconfig: String?

    public init(namespace: String? = nil, kubeconfig: String? = nil) {
        self.namespace = namespace
        self.kubeconfig = kubeconfig
    }
}

/// Everything LISAServe needs to start, from defaults, a file, the environment and flags
/// (later sources win). Every key, variable and flag is listed in
/// `Documentation/Configuration.md`.
public struct LISAConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`; `LISA_HOST`, `--host`, `server.host`.
    public var host: String = "127.0.0.1"
    /// Port to listen on. Default 8080; `LISA_PORT`, `--port`, `server.port`.
    public var port: Int = 8080
    /// Where state lives (SQLite database). Default `./.lisa`; `LISA_DATA_DIR`, `--data-dir`, `dataDir`.
    public var dataDirectory: String = ".lisa"
    /// The admin key. Default: generated on first start, only its hash stored. `LISA_ADMIN_KEY`, `adminKey`.
    public var adminKey: String?
    /// State database URL; `nil` selects SQLite in the data directory. `LISA_DATABASE_URL`, `state.url`.
    public var databaseURL: String?
    /// Largest accepted request body in bytes. Default 10 MiB; `LISA_MAX_BODY_SIZE`, `server.maxRequestBodySize`.
    public var maxRequestBodySize: Int = 10 * 1024 * 1024
    /// Upstream timeouts. `upstream.connectTimeoutSeconds` (10), `upstream.requestTimeoutSeconds` (600),
    /// `upstream.streamFirstByteTimeoutSeconds` (15), `upstream.streamIdleTimeoutSeconds` (60).
    public var upstreamTimeouts = UpstreamTimeouts()
    /// The client of upstream inference calls (`upstream.client`): `lean`, LISA's HTTP/1.1
    /// client with a pool per event loop (the default), or `asyncHTTPClient`, which also speaks
    /// HTTP/2 to `https` upstreams and costs more per call.
    public var upstreamClient: UpstreamClientKind = .lean
    /// What buffered upstream answers may hold in memory: per call
    /// (`upstream.maxAnswerMemoryBytes`, 64 MiB) and all calls together
    /// (`upstream.answersInFlightMemoryBytes`, 1 GiB). A translated answer counts
    /// more than its size (``AnswerMemoryBudget/Factor``).
    public var answerMemory = AnswerMemoryBudget.Limits()
    /// Whether each HTTP connection's task runs on its channel's event loop (`server.runOnEventLoops`,
    /// default `true`), so a call does not hop between threads; `false` runs them on the Swift
    /// concurrency pool.
    public var runOnEventLoops = true
    /// How long in-flight requests may finish after SIGTERM/SIGINT. Default 30 s; `server.shutdownGracePeriodSeconds`.
    public var shutdownGracePeriod: Duration = .seconds(30)
    /// Balancing policy of models that name none. Default `powerOfTwoChoices`; `routing.loadBalancing`.
    public var loadBalancing: LoadBalancingPolicy = .powerOfTwoChoices
    /// How models without a `healthCheck` are probed (`routing.defaultHealthCheck`): can
    /// their endpoints be reached, every 15 s. `enabled: false` turns it off.
    public var defaultHealthCheck: HealthCheckConfiguration = .reachability
    /// Log level. Default `info`; `LISA_LOG_LEVEL`, `--log-level`, `logLevel`.
    public var logLevel: Logger.Level = .info
    /// Group names that grant roles (`auth.adminGroup`, `auth.userGroup`, `auth.apiGroup`, `auth.ragAdminGroup`).
    public var access = AccessConfiguration()
    /// Per-principal request rates (`rateLimits`): LISA's 60 a minute, bursts of 10, by default.
    public var rateLimits = RateLimitConfiguration()
    /// OIDC sign-in (`auth.authority`, `auth.clientId`, `auth.jwtGroupsProperty`, `auth.jwtUsernameProperty`,
    /// `auth.leewaySeconds`); `nil` without `auth.authority`.
    public var oidc: OIDCConfiguration?
    /// HTTPS: certificate, key, optional client CA (`server.tls.*`; `LISA_TLS_CERTIFICATE`,
    /// `LISA_TLS_PRIVATE_KEY`, `LISA_TLS_CLIENT_CA`; `--tls-certificate`, `--tls-private-key`).
    /// `nil`: plain HTTP (behind a TLS-terminating load balancer).
    public var serverTLS: ServerTLSConfiguration?
    /// TLS for `https` upstreams without settings of their own (`upstream.tls`).
    public var upstreamTLS: UpstreamTLS?
    /// Largest document accepted for RAG ingestion, in bytes. Default 20 MiB;
    /// `LISA_RAG_MAX_UPLOAD_SIZE`, `rag.maxUploadSize`.
    public var ragMaxUploadSize: Int = 20 * 1024 * 1024
    /// The budgets of RAG ingestion (`rag.ingestion.*`): concurrency, time, attempts, text.
    public var ragIngestion = IngestionLimits()
    /// What each user may store (`quotas.*`).
    public var quotas = StorageQuotas()
    /// API tokens users may mint (`auth.maxTokenLifetimeDays`, `auth.maxTokensPerUser`).
    public var tokenPolicy = APITokenPolicy()
    /// How long verified API tokens are kept, and honoured through a state store outage
    /// (`auth.tokenCacheSeconds` 30, `auth.tokenOutageGraceSeconds` 900).
    public var tokenCache = TokenCache.Configuration()
    /// Timeouts and the connection cap of the HTTP server (`server.*`).
    public var connections = ConnectionLimits()
    /// Where `lisa_hosted` models run: `local` (child processes, the default) or `none`.
    /// `LISA_HOSTING_BACKEND`, `hosting.backend`.
    public var hostingBackend: String = "local"
    /// The Kubernetes backend's cluster (`hosting.kubernetes.namespace`, `.kubeconfig`).
    public var kubernetes = KubernetesConfiguration()
    /// LISA Chat, the web UI at `/` (`ui.*`, `LISA_UI_ENABLED`, `LISA_UI_DIRECTORY`).
    public var ui = UIConfiguration()
    /// Usage records and the request log (`usage:`).
    public var usage = UsageConfiguration()
    /// Distributed traces exported over OTLP/HTTP (`tracing:`); off unless an endpoint is set.
    public var tracing = TracingConfiguration()
    /// Spending limits per user and group (`budgets:`); a token may carry its own.
    public var budgets = BudgetConfiguration()
    /// Models declared statically.
    public var models: [ModelDefinition] = []

    public init() {}

    /// The configuration from a file (YAML, or JSON when the name ends in `.json`) and the
    /// environment, on top of the defaults.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LISAConfiguration {
        var configuration = LISAConfiguration()
        if let path = file ?? environment["LISA_CONFIG"], !path.isEmpty {
            try configuration.apply(file: path)
        }
        try configuration.apply(environment: environment)
        return configuration
    }

    /// Applies a configuration file.
    public mutating func apply(file path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read configuration file '\(path)': \(error.localizedDescription)")
        }
        let file: ConfigurationFile
        let recorder = KeyRecorder()
        let isJSON = path.lowercased().hasSuffix(".json")
        let text = String(decoding: data, as: UTF8.self)
        do {
            if isJSON {
                let decoder = JSONDecoder()
                decoder.userInfo = [KeyRecorder.userInfoKey: recorder]
                file = try decoder.decode(Tracked<ConfigurationFile>.self, from: data).value
            } else {
                file = try YAMLDecoder().decode(Tracked<ConfigurationFile>.self, from: text, userInfo: [KeyRecorder.userInfoKey: recorder]).value
            }
        } catch let error as DecodingError {
            // A syntax error comes wrapped: say which language and where.
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let underlying = context.underlyingError {
                let reason = (underlying as? YamlError).map { "\($0)" } ?? (underlying as NSError).localizedDescription
                throw ConfigurationError("configuration file '\(path)' is not valid \(isJSON ? "JSON" : "YAML"): \(reason)")
            }
            let root = isJSON ? nil : (try? Yams.compose(yaml: text)) ?? nil
            throw ConfigurationError("\(path)\(Self.place(of: error, in: root)): \(Self.describe(error))")
        } catch let error as YamlError {
            throw ConfigurationError("configuration file '\(path)' is not valid YAML: \(error)")
        } catch {
            throw ConfigurationError("configuration file '\(path)' is not valid \(isJSON ? "JSON" : "YAML"): \(error)")
        }
        // A misspelled key is an error, at any depth: `auth: {userGrop: …}` would otherwise
        // leave inference open to everyone without a word.
        let unknown = recorder.unknown()
        if !unknown.isEmpty {
            let root = isJSON ? nil : (try? Yams.compose(yaml: text)) ?? nil
            // In the order they appear in the file (by line, then column), not by path.
            let located = unknown.map { entry in (entry, root.flatMap { Self.mark(of: entry.key, at: entry.path, in: $0) }) }
                .sorted { a, b in
                    switch (a.1, b.1) {
                    case (let x?, let y?): return (x.line, x.column) < (y.line, y.column)
                    case (.some, nil): return true
                    case (nil, .some): return false
                    case (nil, nil): return (a.0.path, a.0.key) < (b.0.path, b.0.key)
                    }
                }
            let lines = located.prefix(10).map { entry, mark -> String in
                let full = entry.path.isEmpty ? entry.key : "\(KeyRecorder.display(entry.path)).\(entry.key)"
                let place = mark.map { ":\($0.line):\($0.column)" } ?? ""
                let hint = KeyRecorder.suggestion(for: entry.key, among: entry.known).map { " (did you mean '\($0)'?)" } ?? ""
                return "\(path)\(place): unknown key '\(full)'\(hint)"
            }
            let more = unknown.count > 10 ? "\n… and \(unknown.count - 10) more" : ""
            throw ConfigurationError(lines.joined(separator: "\n") + more)
        }
        try apply(file)
    }

    /// `:line:column` of the value a decoding error is about, when the YAML document has it.
    static func place(of error: DecodingError, in root: Node?) -> String {
        let codingPath: [any CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): codingPath = context.codingPath
        case .keyNotFound(_, let context): codingPath = context.codingPath
        @unknown default: return ""
        }
        guard let root, let last = codingPath.last else { return "" }
        if last.intValue != nil {
            return ""  // an element of a sequence: the path names it
        }
        let parent = KeyRecorder.path(Array(codingPath.dropLast()))
        return mark(of: last.stringValue, at: parent, in: root).map { ":\($0.line):\($0.column)" } ?? ""
    }

    /// A decoding error in LISA's words: the path, and for a value a type does not take,
    /// the values it does (never the decoder's "Cannot initialize … from invalid String value").
    static func describe(_ error: DecodingError) -> String {
        if case .dataCorrupted(let context) = error,
            let match = context.debugDescription.firstMatch(of: #/^Cannot initialize (\w+) from invalid \w+ value (.*)$/#)
        {
            let path = DecodingError.path(context.codingPath)
            let value = String(match.2)
            guard let choices = choices[String(match.1)] else { return "\(path): '\(value)' is not a valid value" }
            return "\(path): '\(value)' is not one of \(choices.joined(separator: ", "))"
        }
        return error.lisaDescription
    }

    /// The values of the closed enumerations a configuration file may set, by type name.
    static let choices: [String: [String]] = [
        String(describing: BudgetLimit.Period.self): BudgetLimit.Period.allCases.map(\.rawValue),
        String(describing: LoadBalancingPolicy.self): LoadBalancingPolicy.allCases.map(\.rawValue),
        String(describing: UsageQuery.Bucket.self): UsageQuery.Bucket.allCases.map(\.rawValue),
        String(describing: DistanceMetric.self): DistanceMetric.allCases.map(\.rawValue),
    ]

    /// Where the key `key` of the mapping at `path` (a ``KeyRecorder`` path) is in the YAML document.
    static func mark(of key: String, at path: String, in root: Node) -> Yams.Mark? {
        var node = root
        for component in path.split(separator: Character(KeyRecorder.separator), omittingEmptySubsequences: true) {
            if component.hasPrefix("["), component.hasSuffix("]"), let index = Int(component.dropFirst().dropLast()) {
                guard let sequence = node.sequence, index < sequence.count else { return nil }
                node = sequence[index]
            } else {
                guard let next = node.mapping?.first(where: { $0.key.string == String(component) })?.value else { return nil }
                node = next
            }
        }
        return node.mapping?.first(where: { $0.key.string == key })?.key.mark
    }

    mutating func setHostingBackend(_ value: String) throws {
        guard ["local", "kubernetes", "none"].contains(value) else {
            throw ConfigurationError("hosting.backend '\(value)' is not one of local, kubernetes, none")
        }
        hostingBackend = value
    }

    mutating func apply(_ file: ConfigurationFile) throws {
        if let value = file.server?.host { host = value }
        if let value = file.server?.port { port = value }
        if let value = file.server?.maxRequestBodySize { maxRequestBodySize = value }
        if let value = file.server?.shutdownGracePeriodSeconds { shutdownGracePeriod = .seconds(clamping: value) }
        if let value = file.dataDir { dataDirectory = value }
        if let value = file.adminKey { adminKey = value }
        if let value = file.state?.url { databaseURL = value }
        if let value = file.upstream?.connectTimeoutSeconds { upstreamTimeouts.connect = .seconds(clamping: value) }
        if let value = file.upstream?.requestTimeoutSeconds { upstreamTimeouts.request = .seconds(clamping: value) }
        if let value = file.upstream?.streamFirstByteTimeoutSeconds { upstreamTimeouts.streamFirstByte = .seconds(clamping: value) }
        if let value = file.upstream?.streamIdleTimeoutSeconds { upstreamTimeouts.streamIdle = .seconds(clamping: value) }
        if let value = file.upstream?.tls { upstreamTLS = value }
        if let value = file.upstream?.maxAnswerMemoryBytes {
            guard value >= 1 << 20 else { throw ConfigurationError("upstream.maxAnswerMemoryBytes must be at least 1048576 (1 MiB)") }
            answerMemory.perCallBytes = value
        }
        if let value = file.upstream?.answersInFlightMemoryBytes { answerMemory.inFlightBytes = value }
        guard answerMemory.inFlightBytes >= answerMemory.perCallBytes else {
            throw ConfigurationError(
                "upstream.answersInFlightMemoryBytes (\(answerMemory.inFlightBytes)) must be at least upstream.maxAnswerMemoryBytes (\(answerMemory.perCallBytes))"
            )
        }
        if let value = file.upstream?.client {
            guard let kind = UpstreamClientKind(rawValue: value) else {
                let valid = UpstreamClientKind.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigurationError("upstream.client: '\(value)' is not one of \(valid)")
            }
            upstreamClient = kind
        }
        if let value = file.server?.runOnEventLoops { runOnEventLoops = value }
        if let tls = file.server?.tls {
            serverTLS = ServerTLSConfiguration(
                certificate: tls.certificate ?? "", privateKey: tls.privateKey ?? "", clientCA: tls.clientCA,
                requireClientCertificate: tls.requireClientCertificate
            )
            serverTLS?.reloadIntervalSeconds = tls.reloadIntervalSeconds
        }
        if let value = file.routing?.loadBalancing { loadBalancing = value }
        if let value = file.routing?.defaultHealthCheck { defaultHealthCheck = value }
        if let value = file.hosting?.backend { try setHostingBackend(value) }
        if let value = file.hosting?.kubernetes { kubernetes = value }
        if let value = file.rag?.maxUploadSize { ragMaxUploadSize = value }
        if let value = file.rag?.ingestion { ragIngestion = value }
        if let value = file.quotas { quotas = value }
        if let value = file.auth?.maxTokenLifetimeDays { tokenPolicy.maxLifetimeDays = value }
        if let value = file.auth?.maxTokensPerUser { tokenPolicy.maxTokensPerUser = value }
        if let value = file.auth?.tokenCacheSeconds { tokenCache.freshSeconds = value }
        if let value = file.auth?.tokenOutageGraceSeconds { tokenCache.outageSeconds = value }
        if let value = file.server?.headerReadTimeoutSeconds { connections.headerReadTimeout = .seconds(clamping: value) }
        if let value = file.server?.idleTimeoutSeconds { connections.idleTimeout = .seconds(clamping: value) }
        if let value = file.server?.bodyReadTimeoutSeconds { connections.bodyReadTimeout = .seconds(clamping: value) }
        if let value = file.server?.maxConnections { connections.maxConnections = value }
        if let value = file.rateLimits { rateLimits = value }
        if let value = file.usage { usage = value }
        if let value = file.tracing { tracing = value }
        if let value = file.budgets { budgets = value }
        if let value = file.ui?.enabled { ui.enabled = value }
        if let value = file.ui?.scopes { ui.scopes = value }
        if let auth = file.auth {
            access = AccessConfiguration(
                adminGroup: auth.adminGroup, userGroup: auth.userGroup, apiGroup: auth.apiGroup, ragAdminGroup: auth.ragAdminGroup
            )
            if let authority = auth.authority {
                guard let clientId = auth.clientId, !clientId.isEmpty else {
                    throw ConfigurationError("auth.clientId is required with auth.authority")
                }
                guard let url = URL(string: authority), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                    throw ConfigurationError("auth.authority '\(authority)' is not an http(s) URL")
                }
                var oidc = OIDCConfiguration(authority: authority, clientId: clientId, groupsClaim: auth.jwtGroupsProperty)
                oidc.usernameClaim = auth.jwtUsernameProperty
                if let leeway = auth.leewaySeconds { oidc.leeway = leeway }
                if let seconds = auth.jwksMinimumRefetchSeconds { oidc.minimumRefetchInterval = .seconds(clamping: seconds) }
                oidc.caFile = auth.caFile
                self.oidc = oidc
            }
        }
        if let value = file.logLevel {
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigurationError("logLevel '\(value)' is not one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = level
        }
        if let value = file.models { models = value }
        try validate()
    }

    /// Applies `LISA_*` environment variables.
    public mutating func apply(environment: [String: String]) throws {
        // A set, non-empty variable; an integer one, or a clear error naming it.
        func text(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        func integer(_ name: String) throws -> Int? {
            guard let value = text(name) else { return nil }
            guard let number = Int(value) else { throw ConfigurationError("\(name) '\(value)' is not a number") }
            return number
        }
        if let value = text("LISA_HOST") { host = value }
        if let value = try integer("LISA_PORT") { port = value }
        if let value = text("LISA_DATA_DIR") { dataDirectory = value }
        if let value = text("LISA_ADMIN_KEY") { adminKey = value }
        if let value = text("LISA_DATABASE_URL") { databaseURL = value }
        if let value = text("LISA_HOSTING_BACKEND") { try setHostingBackend(value) }
        if let value = try integer("LISA_RAG_MAX_UPLOAD_SIZE") { ragMaxUploadSize = value }
        if let value = text("LISA_UI_ENABLED") {
            switch value.lowercased() {
            case "true", "1", "yes", "on": ui.enabled = true
            case "false", "0", "no", "off": ui.enabled = false
            default: throw ConfigurationError("LISA_UI_ENABLED '\(value)' is not true or false")
            }
        }
        if let value = text("LISA_UI_DIRECTORY") { ui.directory = value }
        if let value = text("LISA_PDFTOTEXT") { ragIngestion.document.pdftotextPath = value }
        let certificate = text("LISA_TLS_CERTIFICATE")
        let privateKey = text("LISA_TLS_PRIVATE_KEY")
        if certificate != nil || privateKey != nil {
            var tls = serverTLS ?? ServerTLSConfiguration(certificate: "", privateKey: "")
            if let certificate { tls.certificate = certificate }
            if let privateKey { tls.privateKey = privateKey }
            serverTLS = tls
        }
        if let value = text("LISA_TLS_CLIENT_CA") { serverTLS?.clientCA = value }
        if let value = try integer("LISA_MAX_BODY_SIZE") { maxRequestBodySize = value }
        try tracing.apply(environment: environment)
        if let value = text("LISA_LOG_LEVEL") {
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw ConfigurationError("LISA_LOG_LEVEL '\(value)' is not a log level")
            }
            logLevel = level
        }
        try validate()
    }

    /// Checks values that have a valid range, and the models: each one's own checks and
    /// their cross-references (``modelProblems()``), every problem at once, in file order.
    public func validate() throws {
        let problems = modelProblems()
        if !problems.isEmpty { throw ConfigurationError(problems.joined(separator: "\n")) }
        guard (0...65535).contains(port) else { throw ConfigurationError("port \(port) is out of range 0-65535") }
        guard maxRequestBodySize > 0 else { throw ConfigurationError("maxRequestBodySize must be positive") }
        guard ragMaxUploadSize > 0 else { throw ConfigurationError("rag.maxUploadSize must be positive") }
        try ragIngestion.validate()
        try quotas.validate()
        guard (1...3650).contains(tokenPolicy.maxLifetimeDays) else { throw ConfigurationError("auth.maxTokenLifetimeDays must be 1-3650") }
        guard tokenPolicy.maxTokensPerUser >= 1 else { throw ConfigurationError("auth.maxTokensPerUser must be at least 1") }
        guard (0...3600).contains(tokenCache.freshSeconds) else { throw ConfigurationError("auth.tokenCacheSeconds must be 0-3600") }
        guard (0...86400).contains(tokenCache.outageSeconds) else {
            throw ConfigurationError("auth.tokenOutageGraceSeconds must be 0-86400")
        }
        try connections.validate()
        guard defaultHealthCheck.path.hasPrefix("/"), (0.001...86_400).contains(defaultHealthCheck.intervalSeconds),
            (0.001...86_400).contains(defaultHealthCheck.timeoutSeconds)
        else {
            throw ConfigurationError(
                "routing.defaultHealthCheck needs a path starting with '/' and intervalSeconds and timeoutSeconds of 0.001 to 86400")
        }
        for (name, limit) in [("rateLimits.default", rateLimits.default)]
            + rateLimits.groups.sorted(by: { $0.key < $1.key }).map({ ("rateLimits.groups.\($0.key)", $0.value) })
        {
            guard (0.001...1_000_000_000).contains(limit.requestsPerMinute), (1...1_000_000_000).contains(limit.burst) else {
                throw ConfigurationError("\(name) needs requestsPerMinute of 0.001 to 10⁹ and a burst of 1 to 10⁹")
            }
        }
        // Every timeout given in seconds: finite, and at most a week (they become durations).
        let timeouts: [(String, Duration)] = [
            ("upstream.connectTimeoutSeconds", upstreamTimeouts.connect), ("upstream.requestTimeoutSeconds", upstreamTimeouts.request),
            ("upstream.streamFirstByteTimeoutSeconds", upstreamTimeouts.streamFirstByte),
            ("upstream.streamIdleTimeoutSeconds", upstreamTimeouts.streamIdle), ("server.shutdownGracePeriodSeconds", shutdownGracePeriod),
            ("server.headerReadTimeoutSeconds", connections.headerReadTimeout), ("server.idleTimeoutSeconds", connections.idleTimeout),
            ("server.bodyReadTimeoutSeconds", connections.bodyReadTimeout),
        ]
        for (name, value) in timeouts where value > .seconds(604_800) {
            throw ConfigurationError("\(name) must be at most 604800 (a week)")
        }
        guard (1...3650).contains(usage.retentionDays) else { throw ConfigurationError("usage.retentionDays must be 1-3650") }
        guard usage.flushIntervalSeconds > 0 && usage.flushIntervalSeconds <= 60 else {
            throw ConfigurationError("usage.flushIntervalSeconds must be more than 0 and at most 60")
        }
        guard usage.maxBuffered >= 1000 else { throw ConfigurationError("usage.maxBuffered must be at least 1000") }
        try tracing.validate()
        guard (0...10_000_000).contains(budgets.defaultReservationTokens) else {
            throw ConfigurationError("budgets.defaultReservationTokens must be 0 to 10000000")
        }
        do {
            try budgets.user?.validate(param: "budgets.user")
            for (name, limit) in budgets.users { try limit.validate(param: "budgets.users.\(name)") }
            for (name, limit) in budgets.groups { try limit.validate(param: "budgets.groups.\(name)") }
        } catch {
            throw ConfigurationError(error.message)
        }
        guard upstreamTimeouts.connect > .zero, upstreamTimeouts.request > .zero, upstreamTimeouts.streamFirstByte > .zero,
            upstreamTimeouts.streamIdle > .zero
        else {
            throw ConfigurationError("upstream timeouts must be positive")
        }
        if let adminKey, adminKey.count < 16 {
            throw ConfigurationError("the admin key must be at least 16 characters")
        }
        if let serverTLS {
            guard !serverTLS.certificate.isEmpty, !serverTLS.privateKey.isEmpty else {
                throw ConfigurationError("server.tls needs both certificate and privateKey (LISA_TLS_CERTIFICATE, LISA_TLS_PRIVATE_KEY)")
            }
            if serverTLS.requireClientCertificate == true && serverTLS.clientCA == nil {
                throw ConfigurationError("server.tls.requireClientCertificate needs server.tls.clientCA")
            }
        }
        if let upstreamTLS {
            do {
                try upstreamTLS.validate(param: "upstream.tls")
            } catch {
                throw ConfigurationError(error.message)
            }
        }
    }
}

/// The file's shape. Every member is optional: what is absent keeps its default.
struct ConfigurationFile: Decodable {
    struct Server: Decodable {
        var host: String?
        var port: Int?
        var maxRequestBodySize: Int?
        var shutdownGracePeriodSeconds: Double?
        var headerReadTimeoutSeconds: Double?
        var idleTimeoutSeconds: Double?
        var bodyReadTimeoutSeconds: Double?
        var maxConnections: Int?
        var runOnEventLoops: Bool?
        var tls: TLS?
    }

    struct TLS: Decodable {
        var certificate: String?
        var privateKey: String?
        var clientCA: String?
        var requireClientCertificate: Bool?
        var reloadIntervalSeconds: Double?
    }

    struct State: Decodable {
        var url: String?
    }

    struct Auth: Decodable {
        var caFile: String?
        var authority: String?
        var clientId: String?
        var jwtGroupsProperty: String?
        var jwtUsernameProperty: String?
        var leewaySeconds: Double?
        var jwksMinimumRefetchSeconds: Double?
        var adminGroup: String?
        var userGroup: String?
        var apiGroup: String?
        var ragAdminGroup: String?
        var maxTokenLifetimeDays: Int?
        var maxTokensPerUser: Int?
        var tokenCacheSeconds: Double?
        var tokenOutageGraceSeconds: Double?
    }

    struct Routing: Decodable {
        var loadBalancing: LoadBalancingPolicy?
        var defaultHealthCheck: HealthCheckConfiguration?
    }

    struct Hosting: Decodable {
        var backend: String?
        var kubernetes: KubernetesConfiguration?
    }

    struct RAG: Decodable {
        var maxUploadSize: Int?
        var ingestion: IngestionLimits?
    }

    struct UI: Decodable {
        var enabled: Bool?
        var scopes: String?
    }

    struct Upstream: Decodable {
        var connectTimeoutSeconds: Double?
        var requestTimeoutSeconds: Double?
        var streamFirstByteTimeoutSeconds: Double?
        var streamIdleTimeoutSeconds: Double?
        var tls: UpstreamTLS?
        var client: String?
        var maxAnswerMemoryBytes: Int?
        var answersInFlightMemoryBytes: Int?
    }

    var server: Server?
    var dataDir: String?
    var adminKey: String?
    var state: State?
    var upstream: Upstream?
    var routing: Routing?
    var hosting: Hosting?
    var rag: RAG?
    var ui: UI?
    var auth: Auth?
    var rateLimits: RateLimitConfiguration?
    var quotas: StorageQuotas?
    var usage: UsageConfiguration?
    var tracing: TracingConfiguration?
    var budgets: BudgetConfiguration?
    var logLevel: String?
    var models: [ModelDefinition]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case server, dataDir, adminKey, state, upstream, routing, hosting, rag, ui, auth, rateLimits, quotas, usage, tracing, budgets, logLevel,
            models
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        server = try c.decodeIfPresent(Server.self, forKey: .server)
        dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir)
        adminKey = try c.decodeIfPresent(String.self, forKey: .adminKey)
        state = try c.decodeIfPresent(State.self, forKey: .state)
        upstream = try c.decodeIfPresent(Upstream.self, forKey: .upstream)
        routing = try c.decodeIfPresent(Routing.self, forKey: .routing)
        hosting = try c.decodeIfPresent(Hosting.self, forKey: .hosting)
        rag = try c.decodeIfPresent(RAG.self, forKey: .rag)
        ui = try c.decodeIfPresent(UI.self, forKey: .ui)
        auth = try c.decodeIfPresent(Auth.self, forKey: .auth)
        rateLimits = try c.decodeIfPresent(RateLimitConfiguration.self, forKey: .rateLimits)
        quotas = try c.decodeIfPresent(StorageQuotas.self, forKey: .quotas)
        usage = try c.decodeIfPresent(UsageConfiguration.self, forKey: .usage)
        tracing = try c.decodeIfPresent(TracingConfiguration.self, forKey: .tracing)
        budgets = try c.decodeIfPresent(BudgetConfiguration.self, forKey: .budgets)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel)
        models = try c.decodeIfPresent([ModelDefinition].self, forKey: .models)
    }
}

/// LISA Chat's settings.
public struct UIConfiguration: Sendable, Hashable {
    /// Whether LISAServe serves the UI at `/`. Default `true`; `ui.enabled`, `LISA_UI_ENABLED`.
    public var enabled = true
    /// Scopes the UI requests at OIDC sign-in. Default `openid profile email`; `ui.scopes`.
    public var scopes = "openid profile email"
    /// Serve the UI's files from this folder instead of the binary, re-read at start: for
    /// working on the UI (`LISA_UI_DIRECTORY`). `nil`: the files built in.
    public var directory: String?

    public init() {}
}

/// Which HTTP client carries upstream inference calls (`upstream.client`).
public enum UpstreamClientKind: String, Sendable, CaseIterable {
    /// ``UpstreamHTTPClient``: HTTP/1.1, a connection pool per event loop, no task hops.
    case lean
    /// AsyncHTTPClient: HTTP/1.1 and HTTP/2 (negotiated with `https` upstreams).
    case asyncHTTPClient
}
