import Crypto
import Foundation
public import Logging
import NIOHTTP1

/// Runs `lisa_hosted` replicas on Kubernetes: one **Deployment of one pod per replica**
/// (`lisa-<model>-<replica>`), a headless **Service** per model, everything labelled with
/// this LISA deployment's id, so the record ↔ pod binding is exact and Kubernetes restarts
/// and reschedules a replica's pod on its own (a node lost, a container crashed).
///
/// Why not one Deployment per model scaled through its scale subresource: on scale-in the
/// ReplicaSet picks its victim by readiness before `pod-deletion-cost`, so a drained ready
/// replica can survive while a starting one is removed. A Deployment per replica scales
/// in by deleting exactly the drained replica.
///
/// - `launch`: the Service (once per model) and the replica's Deployment, then waits for
///   its pod to get an IP (scheduled; bounded by `startupTimeoutSeconds`, at most 180 s),
///   so the record carries `http://<podIP>:<port><basePath>` — LISA balances over pods
///   itself. An unschedulable pod fails the launch with the scheduler's message.
/// - `observe`: the pod's `Ready` condition; a pod gone from its node, an image that
///   cannot be pulled, a crash loop, or a pod replaced with a new IP read as exited.
/// - `stop`: deletes the Deployment (pods get `terminationGracePeriodSeconds` =
///   `stopTimeoutSeconds`) and waits for the pod to go.
/// - `removeOrphans`: Deployments (and then Services) of this deployment id that no record
///   knows.
/// - `logs`: the pod log API.
public struct KubernetesBackend: HostingBackend {
    public var name: String { "kubernetes" }
    public let client: KubernetesClient
    /// This LISA installation's id (shared by its replicas through the store).
    public let deploymentID: String
    let logger: Logger
    /// How often `launch` and `stop` look at the pod. Default 500 ms.
    var pollInterval: Duration = .milliseconds(500)

    public init(client: KubernetesClient, deploymentID: String, logger: Logger) {
        self.client = client
        self.deploymentID = deploymentID
        self.logger = logger
    }

    // MARK: - Names and labels

    /// A DNS-1123 label for `modelId`: lowercase letters, digits and `-`, at most `limit`
    /// characters, with a short hash so two ids that read alike stay apart.
    static func modelLabel(_ modelId: String, limit: Int = 40) -> String {
        let hash = SHA256.hash(data: Data(modelId.utf8)).prefix(3).map { String(format: "%02x", $0) }.joined()
        var cleaned = String(modelId.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" })
        while cleaned.contains("--") { cleaned = cleaned.replacingOccurrences(of: "--", with: "-") }
        cleaned = String(cleaned.trimmingCharacters(in: CharacterSet(charactersIn: "-")).prefix(limit - 7))
        cleaned = cleaned.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return cleaned.isEmpty ? hash : "\(cleaned)-\(hash)"
    }

    static func deploymentName(model modelId: String, replica replicaId: String) -> String {
        let short = String(replicaId.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(8))
        return "lisa-\(modelLabel(modelId))-\(short)"
    }

    static func serviceName(model modelId: String) -> String { "lisa-\(modelLabel(modelId))" }

    func labels(model modelId: String, replica replicaId: String? = nil) -> [String: JSONValue] {
        var labels: [String: JSONValue] = [
            "app.kubernetes.io/managed-by": "lisa", "app.kubernetes.io/name": "lisa-model",
            "lisa.deployment-id": .string(deploymentID), "lisa.model": .string(Self.modelLabel(modelId)),
        ]
        if let replicaId { labels["lisa.replica-id"] = .string(replicaId) }
        return labels
    }

    static func selector(_ labels: [String: String]) -> String {
        let text = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        return "labelSelector="
            + (text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "=,&+"))) ?? text)
    }

    // MARK: - Objects

    /// The Deployment of one replica.
    func deployment(replica: ReplicaRecord, model: ModelDefinition) throws(LISAError) -> JSONValue {
        guard let spec = model.launch, let kubernetes = spec.kubernetes else {
            throw .invalidRequest(
                "The Kubernetes backend needs launch.kubernetes.image (and the command to run in it).", param: "launch.kubernetes"
            )
        }
        let arguments = try spec.arguments(port: kubernetes.port, modelName: model.modelName)
        var environment: [JSONValue] = [
            ["name": "POD_IP", "valueFrom": ["fieldRef": ["fieldPath": "status.podIP"]]],
            ["name": "LISA_MODEL_ID", "value": .string(model.modelId)],
            ["name": "LISA_REPLICA_ID", "value": .string(replica.replicaId)],
        ]
        for (key, value) in spec.environment.sorted(by: { $0.key < $1.key }) {
            environment.append(["name": .string(key), "value": .string(value)])
        }
        var container: [String: JSONValue] = [
            "name": "model", "image": .string(kubernetes.image), "command": .array(arguments.map { .string($0) }),
            "ports": [["name": "http", "containerPort": .integer(Int64(kubernetes.port)), "protocol": "TCP"]],
            "env": .array(environment),
            "readinessProbe": [
                "httpGet": ["path": .string(spec.healthCheckPath), "port": .integer(Int64(kubernetes.port))],
                "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 3,
            ],
        ]
        if let resources = kubernetes.resources { container["resources"] = resources }
        if let policy = kubernetes.imagePullPolicy { container["imagePullPolicy"] = .string(policy) }
        if let secret = kubernetes.envFromSecret { container["envFrom"] = [["secretRef": ["name": .string(secret)]]] }
        var podSpec: [String: JSONValue] = [
            "containers": [.object(container)],
            "terminationGracePeriodSeconds": .integer(Int64(max(1, spec.stopTimeoutSeconds.rounded(.up)))),
            "enableServiceLinks": false, "automountServiceAccountToken": false, "restartPolicy": "Always",
        ]
        if let selector = kubernetes.nodeSelector { podSpec["nodeSelector"] = .object(selector.mapValues { .string($0) }) }
        if let tolerations = kubernetes.tolerations { podSpec["tolerations"] = tolerations }
        if let account = kubernetes.serviceAccountName { podSpec["serviceAccountName"] = .string(account) }
        let labels = labels(model: model.modelId, replica: replica.replicaId)
        return [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": [
                "name": .string(Self.deploymentName(model: model.modelId, replica: replica.replicaId)), "labels": .object(labels),
                "annotations": ["lisa.model-id": .string(model.modelId)],
            ],
            "spec": [
                "replicas": 1, "strategy": ["type": "Recreate"],
                "selector": ["matchLabels": ["lisa.deployment-id": .string(deploymentID), "lisa.replica-id": .string(replica.replicaId)]],
                "template": [
                    "metadata": ["labels": .object(labels), "annotations": ["lisa.model-id": .string(model.modelId)]], "spec": .object(podSpec),
                ],
            ],
        ]
    }

    /// The headless Service of a model (DNS for its pods; LISA routes to pod IPs itself).
    func service(model: ModelDefinition) -> JSONValue {
        let port = Int64(model.launch?.kubernetes?.port ?? 8000)
        return [
            "apiVersion": "v1", "kind": "Service",
            "metadata": [
                "name": .string(Self.serviceName(model: model.modelId)), "labels": .object(labels(model: model.modelId)),
                "annotations": ["lisa.model-id": .string(model.modelId)],
            ],
            "spec": [
                "clusterIP": "None",
                "selector": ["lisa.deployment-id": .string(deploymentID), "lisa.model": .string(Self.modelLabel(model.modelId))],
                "ports": [["name": "http", "port": .integer(port), "targetPort": .integer(port), "protocol": "TCP"]],
            ],
        ]
    }

    // MARK: - HostingBackend

    public func launch(_ replica: ReplicaRecord, of model: ModelDefinition) async throws -> ReplicaRecord {
        let deployment = try deployment(replica: replica, model: model)
        let spec = model.launch!
        try await create(service(model: model), in: "services", group: "")
        try await create(deployment, in: "deployments", group: "apps/v1")
        // Wait for the pod's IP: it comes with scheduling, before the image is pulled.
        let deadline = ContinuousClock.now + .seconds(min(spec.startupTimeoutSeconds, 180))
        var waitingFor = "a pod"
        while ContinuousClock.now < deadline {
            if let pod = try await pods(replica: replica.replicaId).first(where: { $0.member("metadata")?.member("deletionTimestamp") == nil }) {
                if let ip = pod.member("status")?.member("podIP")?.stringValue, !ip.isEmpty {
                    var launched = replica
                    launched.state = .starting
                    launched.handle = pod.member("metadata")?.member("name")?.stringValue
                    launched.url = "http://\(ip.contains(":") ? "[\(ip)]" : ip):\(spec.kubernetes!.port)\(spec.basePath)"
                    launched.logPath = nil
                    launched.startedAt = Date().timeIntervalSince1970
                    launched.detail = nil
                    logger.info(
                        "replica pod scheduled",
                        metadata: ["lisa.model": "\(model.modelId)", "lisa.replica": "\(replica.replicaId)", "lisa.pod": "\(launched.handle ?? "")"]
                    )
                    return launched
                }
                waitingFor = Self.schedulingProblem(pod) ?? "the pod to be scheduled"
            }
            try await Task.sleep(for: pollInterval)
        }
        throw LISAError.serviceUnavailable(
            "The replica's pod got no IP within \(Int(min(spec.startupTimeoutSeconds, 180))) s: waiting for \(waitingFor)."
        )
    }

    public func observe(_ replica: ReplicaRecord, of model: ModelDefinition) async -> ReplicaObservation {
        let pods: [JSONValue]
        do {
            pods = try await self.pods(replica: replica.replicaId)
        } catch {
            // The API server unreachable says nothing about the pod: keep the last state.
            return replica.state == .ready ? .ready : .starting
        }
        guard let pod = pods.first(where: { $0.member("metadata")?.member("deletionTimestamp") == nil }) else {
            return (try? await exists("deployments", group: "apps/v1", name: Self.deploymentName(model: model.modelId, replica: replica.replicaId)))
                == false
                ? .exited("its Deployment is gone") : .starting
        }
        let status = pod.member("status")
        if let ip = status?.member("podIP")?.stringValue, let url = replica.url, !url.contains("//\(ip):"), !url.contains("//[\(ip)]:") {
            return .exited("its pod was replaced (new IP \(ip))")
        }
        switch status?.member("phase")?.stringValue {
        case "Failed", "Succeeded":
            return .exited(
                "its pod \(status?.member("phase")?.stringValue?.lowercased() ?? "ended"): \(status?.member("reason")?.stringValue ?? "no reason given")"
            )
        default: break
        }
        if let container = status?.member("containerStatuses")?.arrayValue?.first,
            let waiting = container.member("state")?.member("waiting"), let reason = waiting.member("reason")?.stringValue,
            ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CrashLoopBackOff"].contains(reason)
        {
            let message = waiting.member("message")?.stringValue.map { ": \($0.prefix(300))" } ?? ""
            return .exited("\(reason)\(message)")
        }
        let ready =
            status?.member("conditions")?.arrayValue?.contains {
                $0.member("type")?.stringValue == "Ready" && $0.member("status")?.stringValue == "True"
            } ?? false
        return ready ? .ready : .starting
    }

    public func stop(_ replica: ReplicaRecord, timeout: Duration) async {
        let name = Self.deploymentName(model: replica.modelId, replica: replica.replicaId)
        do {
            let reply = try await client.call(
                .DELETE, client.path("apps/v1", "deployments", name),
                json: ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"]
            )
            guard (200..<300).contains(reply.status) || reply.status == 404 else {
                logger.warning("could not delete a replica's Deployment", metadata: ["lisa.deployment": "\(name)", "lisa.error": "\(reply.message)"])
                return
            }
            // The pod goes after its grace period.
            let deadline = ContinuousClock.now + timeout + .seconds(10)
            while ContinuousClock.now < deadline, !(try await pods(replica: replica.replicaId).isEmpty) {
                try await Task.sleep(for: pollInterval)
            }
        } catch {
            logger.warning("stopping a replica on Kubernetes failed", metadata: ["lisa.deployment": "\(name)", "lisa.error": "\(error)"])
        }
    }

    public func removeOrphans(known: Set<String>) async -> [String] {
        var removed: [String] = []
        do {
            let ours = Self.selector(["lisa.deployment-id": deploymentID])
            let deployments = try await list("deployments", group: "apps/v1", query: ours)
            var liveModels: Set<String> = []
            for deployment in deployments {
                let labels = deployment.member("metadata")?.member("labels")
                guard let replica = labels?.member("lisa.replica-id")?.stringValue,
                    let name = deployment.member("metadata")?.member("name")?.stringValue
                else { continue }
                if known.contains(replica) {
                    if let model = labels?.member("lisa.model")?.stringValue { liveModels.insert(model) }
                    continue
                }
                _ = try await client.call(
                    .DELETE, client.path("apps/v1", "deployments", name),
                    json: ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"]
                )
                removed.append(replica)
                logger.notice("orphan replica removed", metadata: ["lisa.deployment": "\(name)", "lisa.replica": "\(replica)"])
            }
            for service in try await list("services", group: "", query: ours) {
                guard let model = service.member("metadata")?.member("labels")?.member("lisa.model")?.stringValue, !liveModels.contains(model),
                    let name = service.member("metadata")?.member("name")?.stringValue
                else { continue }
                _ = try await client.call(.DELETE, client.path("", "services", name))
            }
        } catch {
            logger.warning("orphan clean-up on Kubernetes failed", metadata: ["lisa.error": "\(error)"])
        }
        return removed
    }

    public func logs(of replica: ReplicaRecord, tail: Int) async throws -> String {
        guard let pod = try await pods(replica: replica.replicaId).first, let name = pod.member("metadata")?.member("name")?.stringValue else {
            return ""
        }
        let reply = try await client.call(
            .GET, client.path("", "pods", "\(name)/log", query: "container=model&tailLines=\(max(1, min(tail, 10_000)))"))
        guard reply.status == 200 else { return "" }
        return reply.body.stringValue ?? ""
    }

    // MARK: - Helpers

    /// Creates `object`; one that exists already (a relaunch, a second replica) is fine.
    private func create(_ object: JSONValue, in resource: String, group: String) async throws {
        let reply = try await client.call(.POST, client.path(group, resource), json: object)
        guard (200..<300).contains(reply.status) || reply.status == 409 else {
            throw LISAError.badGateway("Kubernetes refused the replica's \(resource.dropLast()) (\(reply.status)): \(reply.message)")
        }
    }

    private func exists(_ resource: String, group: String, name: String) async throws -> Bool {
        let reply = try await client.call(.GET, client.path(group, resource, name))
        if reply.status == 404 { return false }
        guard reply.status == 200 else { throw LISAError.badGateway("Kubernetes: \(reply.message)") }
        return true
    }

    private func list(_ resource: String, group: String, query: String) async throws -> [JSONValue] {
        let reply = try await client.call(.GET, client.path(group, resource, query: query))
        guard reply.status == 200 else { throw LISAError.badGateway("Kubernetes could not list \(resource): \(reply.message)") }
        return reply.body.member("items")?.arrayValue ?? []
    }

    private func pods(replica replicaId: String) async throws -> [JSONValue] {
        try await list("pods", group: "", query: Self.selector(["lisa.deployment-id": deploymentID, "lisa.replica-id": replicaId]))
    }

    /// Why a pod is not scheduled yet, from its `PodScheduled` condition.
    static func schedulingProblem(_ pod: JSONValue) -> String? {
        guard
            let condition = pod.member("status")?.member("conditions")?.arrayValue?.first(where: { $0.member("type")?.stringValue == "PodScheduled" }
            ),
            condition.member("status")?.stringValue == "False"
        else { return nil }
        return "scheduling (\(condition.member("reason")?.stringValue ?? "pending")): \(condition.member("message")?.stringValue ?? "")"
    }
}
