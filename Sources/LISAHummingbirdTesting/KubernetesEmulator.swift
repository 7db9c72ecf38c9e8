import AsyncHTTPClient
import Foundation
import Hummingbird
public import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
public import ServiceLifecycle
import Synchronization

/// An emulation of the Kubernetes API subset LISA's hosting backend uses, with a kubelet
/// and a Deployment controller that run each pod's container **command as a local
/// process**, so a hosted model on "Kubernetes" really serves (the image is recorded, not
/// pulled). For tests where no cluster can run.
///
/// What it does as the real API server does:
/// - `POST`, `GET` (one, or a list with an equality `labelSelector`), `DELETE` of
///   `apps/v1` Deployments and `v1` Services in any namespace; `GET`, `DELETE` of pods,
///   `GET pods/{name}/log?tailLines=&container=`;
/// - `Status` bodies: 404 `NotFound`, 409 `AlreadyExists`, 422 `Invalid` (names that are
///   not DNS-1123, label values over 63 characters, a selector that does not match the
///   template, a container without name or image), 401 without the bearer token;
/// - `metadata.uid`, `resourceVersion` (one counter for every change), `creationTimestamp`,
///   `deletionTimestamp` while a pod terminates;
/// - the Deployment controller keeps `spec.replicas` pods (a deleted pod is replaced, with
///   a new IP); the scheduler leaves a pod `Pending` with `PodScheduled=False`,
///   `Unschedulable`, when its `nodeSelector` does not match the node's labels or its
///   `nvidia.com/gpu` limit exceeds the node's GPUs; the kubelet gives each pod its own
///   loopback IP (127.0.0.N), runs the container `command` with `$(VAR)` expanded from
///   its `env` (`fieldRef: status.podIP` included), restarts it when it exits
///   (`restartCount`, `lastState.terminated`), sets `Ready` from the `httpGet` readiness
///   probe, and on deletion sends SIGTERM, then SIGKILL after
///   `terminationGracePeriodSeconds`.
public final class KubernetesEmulator: Sendable {
    public let token: String?
    /// The one node's labels and GPU count (scheduling).
    public let nodeLabels: [String: String]
    public let gpus: Int

    struct Pod {
        var object: JSONValue
        var process: Process?
        var logPath: String
        var ip: String
        var restarts = 0
        var ready = false
        var deleting = false
        var deleteDeadline: Date?
        var nextStart: Date?
        var lastExit: Int32?
        var schedulable = true
        var schedulingMessage = ""
    }

    struct State {
        var objects: [String: [String: JSONValue]] = [:]  // "ns/kind" → name → object
        var pods: [String: Pod] = [:]  // "ns/name" → pod
        var version = 1
        var nextIP = 2
        var requests: [String] = []
    }

    private let state = Mutex(State())
    private let directory: String
    private let logger = Logger(label: "kubernetes-emulator")

    public init(token: String? = nil, nodeLabels: [String: String] = ["kubernetes.io/hostname": "emulated-node"], gpus: Int = 0) {
        self.token = token
        self.nodeLabels = nodeLabels
        self.gpus = gpus
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-k8s-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    // MARK: - What tests look at

    /// The stored objects of `kind` (`deployments`, `services`, `pods`) in `namespace`.
    public func objects(_ kind: String, namespace: String = "default") -> [JSONValue] {
        state.withLock { state in
            if kind == "pods" {
                return state.pods.filter { $0.key.hasPrefix(namespace + "/") }.map { Self.render($0.value) }
            }
            return Array((state.objects["\(namespace)/\(kind)"] ?? [:]).values)
        }
    }

    /// Requests served, as `METHOD path` (tests check what the backend called).
    public var requests: [String] { state.withLock { $0.requests } }

    /// Kills a pod's container as a crash would (the kubelet restarts it).
    public func crashContainer(pod name: String, namespace: String = "default") {
        let process = state.withLock { $0.pods["\(namespace)/\(name)"]?.process }
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Stops every container (end of a test).
    public func shutdown() {
        let processes = state.withLock { state in state.pods.values.compactMap(\.process) }
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    // MARK: - Serving

    public func makeApplication(host: String = "127.0.0.1", port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> some Service {
        let router = Router()
        router.add(middleware: Authorization(token: token))
        addRoutes(to: router)
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { onRunning($0.localAddress?.port ?? 0) }, logger: logger
        )
        return Emulation(app: app, emulator: self)
    }

    /// Runs the server and the controllers side by side.
    struct Emulation<App: Service>: Service {
        let app: App
        let emulator: KubernetesEmulator

        func run() async throws {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await app.run() }
                group.addTask {
                    try await cancelWhenGracefulShutdown {
                        while !Task.isCancelled {
                            await emulator.tick()
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
            emulator.shutdown()
        }
    }

    struct Authorization<Context: RequestContext>: RouterMiddleware {
        let token: String?
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            if let token, request.headers[.authorization] != "Bearer \(token)" {
                return KubernetesEmulator.status(401, reason: "Unauthorized", message: "Unauthorized")
            }
            return try await next(request, context)
        }
    }

    private func addRoutes(to router: Router<BasicRequestContext>) {
        for (group, kind) in [("/apis/apps/v1", "deployments"), ("/api/v1", "services")] {
            router.post("\(group)/namespaces/:ns/\(kind)") { request, context in
                let body = try await request.body.collect(upTo: 4 * 1024 * 1024)
                return self.create(kind, namespace: try context.parameters.require("ns"), body: body, path: "POST \(request.uri.path)")
            }
            router.get("\(group)/namespaces/:ns/\(kind)") { request, context in
                self.list(
                    kind, namespace: try context.parameters.require("ns"), selector: request.uri.queryParameters["labelSelector"].map(String.init))
            }
            router.get("\(group)/namespaces/:ns/\(kind)/:name") { _, context in
                self.get(kind, namespace: try context.parameters.require("ns"), name: try context.parameters.require("name"))
            }
            router.delete("\(group)/namespaces/:ns/\(kind)/:name") { request, context in
                self.delete(
                    kind, namespace: try context.parameters.require("ns"), name: try context.parameters.require("name"),
                    path: "DELETE \(request.uri.path)")
            }
        }
        router.get("/api/v1/namespaces/:ns/pods") { request, context in
            self.list(
                "pods", namespace: try context.parameters.require("ns"), selector: request.uri.queryParameters["labelSelector"].map(String.init))
        }
        router.get("/api/v1/namespaces/:ns/pods/:name") { _, context in
            self.get("pods", namespace: try context.parameters.require("ns"), name: try context.parameters.require("name"))
        }
        router.delete("/api/v1/namespaces/:ns/pods/:name") { request, context in
            self.delete(
                "pods", namespace: try context.parameters.require("ns"), name: try context.parameters.require("name"),
                path: "DELETE \(request.uri.path)")
        }
        router.get("/api/v1/namespaces/:ns/pods/:name/log") { request, context in
            let key = "\(try context.parameters.require("ns"))/\(try context.parameters.require("name"))"
            guard let path = self.state.withLock({ $0.pods[key]?.logPath }) else {
                return Self.status(404, reason: "NotFound", message: "pods \"\(key)\" not found")
            }
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            let tail = request.uri.queryParameters["tailLines"].flatMap { Int($0) } ?? Int.max
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let kept = lines.suffix(min(tail + (text.hasSuffix("\n") ? 1 : 0), lines.count)).joined(separator: "\n")
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: kept)))
        }
    }

    // MARK: - Resources

    static func status(_ code: Int, reason: String, message: String, details: JSONValue? = nil) -> Response {
        var body: [String: JSONValue] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "message": .string(message), "reason": .string(reason),
            "code": .integer(Int64(code)),
        ]
        if let details { body["details"] = details }
        return json(.object(body), status: .init(code: code))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONEncoder().encode(value)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func isDNSLabel(_ name: String, max: Int = 63) -> Bool {
        guard !name.isEmpty, name.count <= max, name.first!.isLetter || name.first!.isNumber, name.last!.isLetter || name.last!.isNumber else {
            return false
        }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
    }

    static func isLabelValue(_ value: String) -> Bool {
        value.isEmpty
            || (value.count <= 63 && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
                && value.first!.isASCII && (value.first!.isLetter || value.first!.isNumber) && (value.last!.isLetter || value.last!.isNumber))
    }

    private func create(_ kind: String, namespace: String, body: ByteBuffer, path: String) -> Response {
        guard var object = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body)), case .object(var members) = object else {
            return Self.status(400, reason: "BadRequest", message: "the body of the request was in an unknown format")
        }
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        let singular = kind == "deployments" ? "Deployment.apps" : "Service"
        func invalid(_ field: String, _ message: String) -> Response {
            Self.status(
                422, reason: "Invalid", message: "\(singular) \"\(name)\" is invalid: \(field): \(message)",
                details: ["name": .string(name), "kind": .string(kind), "causes": [["field": .string(field), "message": .string(message)]]]
            )
        }
        guard Self.isDNSLabel(name, max: kind == "services" ? 63 : 253) else {
            return invalid(
                "metadata.name", "Invalid value: \"\(name)\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")
        }
        for (key, value) in object["metadata"]?["labels"]?.objectValue ?? [:] {
            guard let text = value.stringValue, Self.isLabelValue(text) else {
                return invalid("metadata.labels", "Invalid value: \"\(key)\": must be 63 characters or less and alphanumeric, '-', '_' or '.'")
            }
        }
        if kind == "deployments" {
            let selector = object["spec"]?["selector"]?["matchLabels"]?.objectValue ?? [:]
            let labels = object["spec"]?["template"]?["metadata"]?["labels"]?.objectValue ?? [:]
            guard !selector.isEmpty, selector.allSatisfy({ labels[$0.key] == $0.value }) else {
                return invalid("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")
            }
            let containers = object["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []
            guard !containers.isEmpty,
                containers.allSatisfy({ $0["name"]?.stringValue?.isEmpty == false && $0["image"]?.stringValue?.isEmpty == false })
            else { return invalid("spec.template.spec.containers", "Required value: a container needs a name and an image") }
        }
        return state.withLock { state in
            state.requests.append(path)
            let key = "\(namespace)/\(kind)"
            if state.objects[key]?[name] != nil {
                return Self.status(
                    409, reason: "AlreadyExists",
                    message: "\(kind).\(kind == "deployments" ? "apps" : "") \"\(name)\" already exists"
                        .replacingOccurrences(of: ". \"", with: " \""),
                    details: ["name": .string(name), "kind": .string(kind)]
                )
            }
            state.version += 1
            var metadata = object["metadata"]?.objectValue ?? [:]
            metadata["namespace"] = .string(namespace)
            metadata["uid"] = .string(UUID().uuidString.lowercased())
            metadata["resourceVersion"] = .string(String(state.version))
            metadata["creationTimestamp"] = .string(ISO8601DateFormatter().string(from: Date()))
            members["metadata"] = .object(metadata)
            object = .object(members)
            state.objects[key, default: [:]][name] = object
            return Self.json(object, status: .created)
        }
    }

    private func list(_ kind: String, namespace: String, selector: String?) -> Response {
        let wanted = Self.parse(selector: selector)
        let items = objects(kind, namespace: namespace).filter { object in
            let labels = object["metadata"]?["labels"]?.objectValue ?? [:]
            return wanted.allSatisfy { labels[$0.key]?.stringValue == $0.value }
        }.sorted { ($0["metadata"]?["name"]?.stringValue ?? "") < ($1["metadata"]?["name"]?.stringValue ?? "") }
        let version = state.withLock { String($0.version) }
        return Self.json(["kind": .string("List"), "apiVersion": "v1", "metadata": ["resourceVersion": .string(version)], "items": .array(items)])
    }

    static func parse(selector: String?) -> [String: String] {
        var wanted: [String: String] = [:]
        for term in (selector ?? "").split(separator: ",") {
            let parts = term.replacingOccurrences(of: "==", with: "=").split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { wanted[parts[0]] = parts[1] }
        }
        return wanted
    }

    private func get(_ kind: String, namespace: String, name: String) -> Response {
        if let object = objects(kind, namespace: namespace).first(where: { $0["metadata"]?["name"]?.stringValue == name }) {
            return Self.json(object)
        }
        return Self.status(
            404, reason: "NotFound", message: "\(kind) \"\(name)\" not found", details: ["name": .string(name), "kind": .string(kind)])
    }

    private func delete(_ kind: String, namespace: String, name: String, path: String) -> Response {
        state.withLock { state in
            state.requests.append(path)
            if kind == "pods" {
                guard state.pods["\(namespace)/\(name)"] != nil else {
                    return Self.status(404, reason: "NotFound", message: "pods \"\(name)\" not found")
                }
                state.version += 1
                Self.terminate(&state.pods["\(namespace)/\(name)"]!)
                return Self.json(Self.render(state.pods["\(namespace)/\(name)"]!))
            }
            let key = "\(namespace)/\(kind)"
            guard let object = state.objects[key]?.removeValue(forKey: name) else {
                return Self.status(
                    404, reason: "NotFound", message: "\(kind) \"\(name)\" not found", details: ["name": .string(name), "kind": .string(kind)])
            }
            state.version += 1
            return Self.json([
                "kind": "Status", "apiVersion": "v1", "status": "Success",
                "details": ["name": .string(name), "uid": object["metadata"]?["uid"] ?? .null],
            ])
        }
    }

    // MARK: - Controllers and kubelet

    /// One pass of the Deployment controller, the scheduler and the kubelet.
    func tick() async {
        var probes: [(key: String, url: String)] = []
        state.withLock { state in
            // Deployment controller: `spec.replicas` live pods per Deployment, owned by label.
            for (key, deployments) in state.objects where key.hasSuffix("/deployments") {
                let namespace = String(key.dropLast("/deployments".count))
                for (name, deployment) in deployments {
                    let wanted = Int(deployment["spec"]?["replicas"].flatMap { if case .integer(let n) = $0 { Int(n) } else { nil } } ?? 1)
                    let live = state.pods.filter { $0.value.owner == "\(namespace)/\(name)" && !$0.value.deleting }
                    if live.count < wanted {
                        for _ in live.count..<wanted { createPod(for: deployment, named: name, namespace: namespace, state: &state) }
                    }
                }
                // Pods whose Deployment is gone terminate (garbage collection).
                for (podKey, pod) in state.pods where podKey.hasPrefix(namespace + "/") && !pod.deleting {
                    if let owner = pod.owner, deployments[String(owner.dropFirst(namespace.count + 1))] == nil {
                        Self.terminate(&state.pods[podKey]!)
                    }
                }
            }
            for (key, var pod) in state.pods {
                if pod.deleting {
                    if pod.process?.isRunning != true {
                        state.pods[key] = nil
                        state.version += 1
                        continue
                    }
                    if let deadline = pod.deleteDeadline, Date() > deadline, let process = pod.process { kill(process.processIdentifier, SIGKILL) }
                    continue
                }
                guard pod.schedulable else { continue }
                if pod.process?.isRunning != true {
                    if let process = pod.process {
                        // The container exited: restart it after a back-off, as the kubelet does.
                        pod.lastExit = process.terminationStatus
                        pod.restarts += 1
                        pod.process = nil
                        pod.ready = false
                        pod.nextStart = Date().addingTimeInterval(min(10, pow(2, Double(pod.restarts - 1))))
                        state.version += 1
                    }
                    if pod.nextStart.map({ Date() >= $0 }) ?? true {
                        pod.process = start(pod)
                        pod.nextStart = nil
                        state.version += 1
                    }
                }
                state.pods[key] = pod
                if pod.process?.isRunning == true, let url = Self.probeURL(pod) { probes.append((key, url)) }
            }
        }
        for probe in probes {
            var request = HTTPClientRequest(url: probe.url)
            request.method = .GET
            let ok = (try? await HTTPClient.shared.execute(request, timeout: .seconds(1)).status.code) == 200
            state.withLock { state in
                if state.pods[probe.key]?.ready != ok, state.pods[probe.key]?.deleting == false {
                    state.pods[probe.key]?.ready = ok
                    state.version += 1
                }
            }
        }
    }

    private func createPod(for deployment: JSONValue, named name: String, namespace: String, state: inout State) {
        let suffix = String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(5))
        let podName = "\(name)-\(suffix)"
        let template = deployment["spec"]?["template"] ?? [:]
        let ip = "127.0.0.\(state.nextIP)"
        state.nextIP = state.nextIP >= 250 ? 2 : state.nextIP + 1
        let spec = template["spec"] ?? [:]
        var labels = template["metadata"]?["labels"]?.objectValue ?? [:]
        labels["pod-template-hash"] = "emulated"
        let object: JSONValue = [
            "apiVersion": "v1", "kind": "Pod",
            "metadata": [
                "name": .string(podName), "namespace": .string(namespace), "uid": .string(UUID().uuidString.lowercased()),
                "labels": .object(labels), "annotations": template["metadata"]?["annotations"] ?? [:],
                "creationTimestamp": .string(ISO8601DateFormatter().string(from: Date())),
                "ownerReferences": [["kind": "ReplicaSet", "name": .string("\(name)-emulated"), "controller": true]],
            ],
            "spec": spec,
        ]
        var pod = Pod(object: object, logPath: "\(directory)/\(podName).log", ip: ip)
        FileManager.default.createFile(atPath: pod.logPath, contents: nil)
        // The scheduler: the node's labels and GPUs.
        for (key, value) in spec["nodeSelector"]?.objectValue ?? [:] where nodeLabels[key] != value.stringValue {
            pod.schedulable = false
            pod.schedulingMessage = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        }
        let gpuLimit =
            spec["containers"]?.arrayValue?.compactMap { container -> Int? in
                guard let value = container["resources"]?["limits"]?["nvidia.com/gpu"] else { return nil }
                switch value {
                case .integer(let count): return Int(count)
                case .string(let text): return Int(text)
                default: return nil
                }
            }.reduce(0, +) ?? 0
        if gpuLimit > gpus {
            pod.schedulable = false
            pod.schedulingMessage = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        }
        state.pods["\(namespace)/\(podName)"] = pod
        state.version += 1
    }

    private func start(_ pod: Pod) -> Process? {
        guard let container = pod.object["spec"]?["containers"]?.arrayValue?.first,
            let command = container["command"]?.arrayValue?.compactMap(\.stringValue), let executable = command.first
        else {
            FileHandle(forWritingAtPath: pod.logPath)?.write(Data("emulator: the container has no command to run\n".utf8))
            return nil
        }
        var environment: [String: String] = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        for variable in container["env"]?.arrayValue ?? [] {
            guard let name = variable["name"]?.stringValue else { continue }
            if let value = variable["value"]?.stringValue {
                environment[name] = value
            } else if variable["valueFrom"]?["fieldRef"]?["fieldPath"]?.stringValue == "status.podIP" {
                environment[name] = pod.ip
            }
        }
        let expanded = command.map { argument in
            environment.reduce(argument) { $0.replacingOccurrences(of: "$(\($1.key))", with: $1.value) }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? Array(expanded.dropFirst()) : expanded
        process.environment = environment
        if let log = FileHandle(forWritingAtPath: pod.logPath) {
            log.seekToEndOfFile()
            process.standardOutput = log
            process.standardError = log
        }
        do {
            try process.run()
            return process
        } catch {
            FileHandle(forWritingAtPath: pod.logPath)?.write(Data("emulator: cannot start \(executable): \(error)\n".utf8))
            return nil
        }
    }

    private static func probeURL(_ pod: Pod) -> String? {
        guard let probe = pod.object["spec"]?["containers"]?.arrayValue?.first?["readinessProbe"]?["httpGet"],
            let path = probe["path"]?.stringValue, case .integer(let port) = probe["port"] ?? .null
        else { return nil }
        return "http://\(pod.ip):\(port)\(path)"
    }

    private static func terminate(_ pod: inout Pod) {
        guard !pod.deleting else { return }
        pod.deleting = true
        pod.ready = false
        let grace: Double =
            if case .integer(let seconds) = pod.object["spec"]?["terminationGracePeriodSeconds"] ?? .null { Double(seconds) } else { 30 }
        pod.deleteDeadline = Date().addingTimeInterval(grace)
        if let process = pod.process, process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    /// A pod as the API shows it: its spec and the status the kubelet keeps.
    static func render(_ pod: Pod) -> JSONValue {
        guard case .object(var object) = pod.object, case .object(var metadata) = object["metadata"] ?? .null else { return pod.object }
        if pod.deleting { metadata["deletionTimestamp"] = .string(ISO8601DateFormatter().string(from: Date())) }
        object["metadata"] = .object(metadata)
        var containerState: JSONValue = ["waiting": ["reason": "ContainerCreating"]]
        if pod.process?.isRunning == true {
            containerState = ["running": ["startedAt": .string(ISO8601DateFormatter().string(from: Date()))]]
        } else if pod.restarts > 0 {
            containerState = [
                "waiting": [
                    "reason": pod.restarts >= 3 ? "CrashLoopBackOff" : "ContainerCreating", "message": "back-off restarting failed container",
                ]
            ]
        }
        var container: [String: JSONValue] = [
            "name": "model", "ready": .bool(pod.ready), "restartCount": .integer(Int64(pod.restarts)), "state": containerState,
        ]
        if let exit = pod.lastExit { container["lastState"] = ["terminated": ["exitCode": .integer(Int64(exit)), "reason": "Error"]] }
        var scheduled: [String: JSONValue] = ["type": "PodScheduled", "status": .string(pod.schedulable ? "True" : "False")]
        if !pod.schedulable {
            scheduled["reason"] = "Unschedulable"
            scheduled["message"] = .string(pod.schedulingMessage)
        }
        let ready: JSONValue = ["type": "Ready", "status": .string(pod.ready ? "True" : "False")]
        var status: [String: JSONValue] = [
            "phase": .string(pod.schedulable && pod.process?.isRunning == true ? "Running" : "Pending"),
            "conditions": [.object(scheduled), ready],
        ]
        if pod.schedulable {
            status["podIP"] = .string(pod.ip)
            status["podIPs"] = [["ip": .string(pod.ip)]]
            status["containerStatuses"] = [.object(container)]
        }
        object["status"] = .object(status)
        return .object(object)
    }

    /// Starts the emulator on a free port of 127.0.0.1; returns its URL and a function that stops it.
    public func start() async throws -> (url: String, stop: @Sendable () async -> Void) {
        await runOnFreePort(label: "kubernetes-emulator", { makeApplication(port: 0, onRunning: $0) }, afterStop: { self.shutdown() })
    }
}

extension KubernetesEmulator.Pod {
    /// `namespace/deployment` this pod belongs to.
    var owner: String? {
        guard let namespace = object["metadata"]?["namespace"]?.stringValue,
            let replicaSet = object["metadata"]?["ownerReferences"]?.arrayValue?.first?["name"]?.stringValue,
            replicaSet.hasSuffix("-emulated")
        else { return nil }
        return "\(namespace)/\(replicaSet.dropLast("-emulated".count))"
    }
}
