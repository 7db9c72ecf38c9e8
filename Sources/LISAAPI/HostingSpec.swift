import Foundation
public import LISAOpenAI

/// How LISA runs a `lisa_hosted` model's replicas (LISA's `autoScalingConfig`).
public struct AutoScalingConfig: Sendable, Hashable, Codable {
    public var minCapacity: Int
    public var maxCapacity: Int
    /// Replicas wanted now. The autoscaler moves it between the bounds; an administrator
    /// may set it with `PUT /models/{id}`.
    public var desiredCapacity: Int?
    /// Seconds between two scaling actions, and how long load must stay low before scaling in.
    public var cooldown: Double
    public var metricConfig: MetricConfig
    public var additionalFields: [String: JSONValue]

    public struct MetricConfig: Sendable, Hashable, Codable {
        /// In-flight requests per replica the autoscaler aims for.
        public var targetValue: Double
        public var additionalFields: [String: JSONValue]

        public init(targetValue: Double = 30) {
            self.targetValue = targetValue
            self.additionalFields = [:]
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case targetValue }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            targetValue = try c.decodeIfPresent(Double.self, forKey: .targetValue) ?? 30
            additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(targetValue, forKey: .targetValue)
            try encoder.encodeAdditionalFields(additionalFields)
        }
    }

    public init(minCapacity: Int = 1, maxCapacity: Int = 1, desiredCapacity: Int? = nil, cooldown: Double = 60, targetValue: Double = 30) {
        self.minCapacity = minCapacity
        self.maxCapacity = maxCapacity
        self.desiredCapacity = desiredCapacity
        self.cooldown = cooldown
        self.metricConfig = MetricConfig(targetValue: targetValue)
        self.additionalFields = [:]
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case minCapacity, maxCapacity, desiredCapacity, cooldown, metricConfig }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        minCapacity = try c.decodeIfPresent(Int.self, forKey: .minCapacity) ?? 1
        maxCapacity = try c.decodeIfPresent(Int.self, forKey: .maxCapacity) ?? max(minCapacity, 1)
        desiredCapacity = try c.decodeIfPresent(Int.self, forKey: .desiredCapacity)
        cooldown = try c.decodeIfPresent(Double.self, forKey: .cooldown) ?? 60
        metricConfig = try c.decodeIfPresent(MetricConfig.self, forKey: .metricConfig) ?? MetricConfig()
        additionalFields = try decoder.additionalFields(excluding: CodingKeys.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(minCapacity, forKey: .minCapacity)
        try c.encode(maxCapacity, forKey: .maxCapacity)
        try c.encodeIfPresent(desiredCapacity, forKey: .desiredCapacity)
        try c.encode(cooldown, forKey: .cooldown)
        try c.encode(metricConfig, forKey: .metricConfig)
        try encoder.encodeAdditionalFields(additionalFields)
    }

    /// The replica count to run: `desiredCapacity` clamped to the bounds (the minimum when unset).
    public var clampedDesired: Int {
        min(max(desiredCapacity ?? minCapacity, minCapacity), maxCapacity)
    }

    package func validate() throws(LISAError) {
        guard minCapacity >= 0, maxCapacity >= 1, minCapacity <= maxCapacity, maxCapacity <= 64 else {
            throw .invalidRequest(
                "autoScalingConfig needs 0 ≤ minCapacity ≤ maxCapacity, 1 ≤ maxCapacity ≤ 64.", param: "autoScalingConfig.maxCapacity"
            )
        }
        if let desired = desiredCapacity, desired < minCapacity || desired > maxCapacity {
            throw .invalidRequest(
                "autoScalingConfig.desiredCapacity must be between minCapacity and maxCapacity.", param: "autoScalingConfig.desiredCapacity"
            )
        }
        guard (0...604_800).contains(cooldown) else {
            throw .invalidRequest("autoScalingConfig.cooldown must be 0 to 604800 seconds.", param: "autoScalingConfig.cooldown")
        }
        guard (0.01...1_000_000).contains(metricConfig.targetValue) else {
            throw .invalidRequest(
                "autoScalingConfig.metricConfig.targetValue must be 0.01 to 1000000 requests in flight per replica.",
                param: "autoScalingConfig.metricConfig.targetValue"
            )
        }
    }
}

/// How a hosting backend starts one replica of a `lisa_hosted` model.
///
/// `command` is split into arguments like a shell would (quotes and backslashes) and run
/// without a shell; `{port}` and `{modelName}` are replaced inside each argument, so a
/// model name can never inject a command.
public struct LaunchSpec: Sendable, Hashable, Codable {
    public var command: String
    public var environment: [String: String]
    public var workingDirectory: String?
    /// Path answering 200 once the replica is ready (on the replica's origin). Default `/health`.
    public var healthCheckPath: String
    /// The OpenAI-compatible API's path on the replica. Default `/v1`.
    public var basePath: String
    /// How long a replica may take to become ready before the start fails. Default 600.
    public var startupTimeoutSeconds: Double
    /// How long in-flight requests may take to finish before a replica is stopped anyway. Default 30.
    public var drainTimeoutSeconds: Double
    /// Seconds between SIGTERM and SIGKILL. Default 10.
    public var stopTimeoutSeconds: Double
    /// What the Kubernetes backend needs besides the command: the image, the container
    /// port, resources, scheduling. Ignored by the local backend.
    public var kubernetes: KubernetesLaunch?

    public init(
        command: String, environment: [String: String] = [:], workingDirectory: String? = nil, healthCheckPath: String = "/health",
        basePath: String = "/v1", startupTimeoutSeconds: Double = 600, drainTimeoutSeconds: Double = 30, stopTimeoutSeconds: Double = 10
    ) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.healthCheckPath = healthCheckPath
        self.basePath = basePath
        self.startupTimeoutSeconds = startupTimeoutSeconds
        self.drainTimeoutSeconds = drainTimeoutSeconds
        self.stopTimeoutSeconds = stopTimeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case command, environment, workingDirectory, healthCheckPath, basePath, startupTimeoutSeconds, drainTimeoutSeconds, stopTimeoutSeconds,
            kubernetes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode(String.self, forKey: .command)
        environment = try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
        workingDirectory = try c.decodeIfPresent(String.self, forKey: .workingDirectory)
        healthCheckPath = try c.decodeIfPresent(String.self, forKey: .healthCheckPath) ?? "/health"
        basePath = try c.decodeIfPresent(String.self, forKey: .basePath) ?? "/v1"
        startupTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .startupTimeoutSeconds) ?? 600
        drainTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .drainTimeoutSeconds) ?? 30
        stopTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .stopTimeoutSeconds) ?? 10
        kubernetes = try c.decodeIfPresent(KubernetesLaunch.self, forKey: .kubernetes)
    }

    /// The command's arguments with the placeholders replaced.
    public func arguments(port: Int, modelName: String) throws(LISAError) -> [String] {
        try Self.split(command).map {
            $0.replacingOccurrences(of: "{port}", with: String(port)).replacingOccurrences(of: "{modelName}", with: modelName)
        }
    }

    package func validate() throws(LISAError) {
        let arguments = try Self.split(command)
        guard !arguments.isEmpty else { throw .invalidRequest("launch.command must not be empty.", param: "launch.command") }
        guard command.contains("{port}") else {
            throw .invalidRequest("launch.command must contain {port}: LISA picks each replica's port.", param: "launch.command")
        }
        guard healthCheckPath.hasPrefix("/"), basePath.isEmpty || basePath.hasPrefix("/") else {
            throw .invalidRequest("launch.healthCheckPath and launch.basePath must start with '/'.", param: "launch.healthCheckPath")
        }
        // A week at most: a timeout past any real one is a typo, and huge values trap when made durations.
        let week = 604_800.0
        guard (0...week).contains(startupTimeoutSeconds), startupTimeoutSeconds > 0, (0...week).contains(drainTimeoutSeconds),
            (0...week).contains(stopTimeoutSeconds)
        else {
            throw .invalidRequest("launch timeouts must be positive and at most 604800 (a week).", param: "launch.startupTimeoutSeconds")
        }
        try kubernetes?.validate()
    }

    /// Splits a command line into arguments: whitespace separates, single quotes keep
    /// everything literally, double quotes keep spaces, a backslash escapes one character.
    package static func split(_ line: String) throws(LISAError) -> [String] {
        var arguments: [String] = []
        var current = ""
        var inArgument = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else {
                    current.append(character)
                }
                continue
            }
            switch character {
            case "'", "\"":
                quote = character
                inArgument = true
            case "\\":
                escaped = true
                inArgument = true
            case " ", "\t", "\n":
                if inArgument {
                    arguments.append(current)
                    current = ""
                    inArgument = false
                }
            default:
                current.append(character)
                inArgument = true
            }
        }
        guard quote == nil, !escaped else {
            throw .invalidRequest("launch.command has an unterminated quote or escape.", param: "launch.command")
        }
        if inArgument { arguments.append(current) }
        return arguments
    }
}

/// A hosted model's container on Kubernetes (`launch.kubernetes`): the container runs
/// `launch.command` (split like the local backend splits it, `{port}` → ``port``,
/// `{modelName}` → the model name) in place of the image's entrypoint, with
/// `launch.environment`, `POD_IP` (the downward API; `$(POD_IP)` works in the command) and
/// the secret ``envFromSecret`` as its environment.
public struct KubernetesLaunch: Sendable, Hashable, Codable {
    /// The container image, e.g. `vllm/vllm-openai:v0.6.3`.
    public var image: String
    /// The port the server listens on in the container. Default 8000.
    public var port: Int
    /// The container's `resources`, as Kubernetes takes them:
    /// `{"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "4", "memory": "16Gi"}}`.
    public var resources: JSONValue?
    public var nodeSelector: [String: String]?
    /// The pod's `tolerations`, as Kubernetes takes them.
    public var tolerations: JSONValue?
    /// A Secret whose keys become environment variables (tokens for model downloads).
    public var envFromSecret: String?
    public var imagePullPolicy: String?
    public var serviceAccountName: String?

    public init(image: String, port: Int = 8000) {
        self.image = image
        self.port = port
    }

    enum CodingKeys: String, CodingKey {
        case image, port, resources, nodeSelector, tolerations, envFromSecret, imagePullPolicy, serviceAccountName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        image = try c.decode(String.self, forKey: .image)
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 8000
        resources = try c.decodeIfPresent(JSONValue.self, forKey: .resources)
        nodeSelector = try c.decodeIfPresent([String: String].self, forKey: .nodeSelector)
        tolerations = try c.decodeIfPresent(JSONValue.self, forKey: .tolerations)
        envFromSecret = try c.decodeIfPresent(String.self, forKey: .envFromSecret)
        imagePullPolicy = try c.decodeIfPresent(String.self, forKey: .imagePullPolicy)
        serviceAccountName = try c.decodeIfPresent(String.self, forKey: .serviceAccountName)
    }

    package func validate() throws(LISAError) {
        guard !image.isEmpty, !image.contains(where: \.isWhitespace) else {
            throw .invalidRequest("launch.kubernetes.image must be an image reference.", param: "launch.kubernetes.image")
        }
        guard (1...65535).contains(port) else { throw .invalidRequest("launch.kubernetes.port must be 1-65535.", param: "launch.kubernetes.port") }
        if let resources {
            guard case .object(let members) = resources, Set(members.keys).isSubset(of: ["limits", "requests", "claims"]) else {
                throw .invalidRequest(
                    "launch.kubernetes.resources takes limits and requests, as Kubernetes does.", param: "launch.kubernetes.resources"
                )
            }
        }
        if let tolerations, case .array = tolerations {
        } else if tolerations != nil {
            throw .invalidRequest("launch.kubernetes.tolerations must be a list.", param: "launch.kubernetes.tolerations")
        }
        if let policy = imagePullPolicy, !["Always", "IfNotPresent", "Never"].contains(policy) {
            throw .invalidRequest(
                "launch.kubernetes.imagePullPolicy must be Always, IfNotPresent or Never.", param: "launch.kubernetes.imagePullPolicy"
            )
        }
    }
}

/// The hosting type, with LISA's names.
public enum HostingType: String, Sendable {
    /// Endpoints given; LISA only routes (an external provider).
    case thirdParty = "third_party"
    /// Endpoints given; hosted by the team elsewhere.
    case internalHosted = "internal_hosted"
    /// LISA launches and scales the replicas.
    case lisaHosted = "lisa_hosted"
}
