public import AsyncHTTPClient
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The models API behind `/models`: create, update, start, stop and delete models through
/// the lifecycle state machine, with every step persisted before it acts.
///
/// It also keeps this process's router in step with the store (on every published change
/// and every ``resyncInterval``), sends this process's heartbeat, and — on the one process
/// that holds leadership — runs the ``ModelController`` that carries workflows out. Run it
/// as a `Service` next to the HTTP server.
public final class ModelManager: Service, Sendable {
    /// The models and their replicas.
    public let store: ModelStore
    /// The change feed, leadership and heartbeats of the processes sharing the store.
    public let coordination: StateCoordination
    /// Where hosted replicas' time is recorded (cost reports).
    let usage: UsageStore
    public let registry: ModelRegistry
    public let configured: [ModelDefinition]
    /// Launches hosted models' replicas; `nil`: `lisa_hosted` models are refused.
    public let backend: (any HostingBackend)?
    public let resyncInterval: Duration
    public let heartbeatInterval: Duration
    let httpClient: HTTPClient?
    let logger: Logger
    private let usageCheck = Mutex<(@Sendable (String) async throws -> [String])?>(nil)
    /// One reload at a time: two that overlap could apply an older read after a newer one
    /// (a change-feed reload that read a model just before an API call deleted it).
    private let reloading = AsyncLock()

    /// Sets what tells whether a model is in use (by RAG repositories, as their embedding
    /// model): such a model cannot be deleted (409 `model_in_use`, LISA's ModelInUseError).
    public func setUsageCheck(_ check: @escaping @Sendable (String) async throws -> [String]) {
        usageCheck.withLock { $0 = check }
    }
    private let startedAt = Date().timeIntervalSince1970
    private let leading = Atomic(false)

    /// Whether this process runs the hosting controller now (it leads the processes
    /// sharing the store).
    public var isLeading: Bool { leading.load(ordering: .relaxed) }

    /// Checks the configured models; call ``reload()`` (or ``run()``) to load the stored ones.
    public init(
        store: ModelStore, coordination: StateCoordination, usage: UsageStore, registry: ModelRegistry, configured: [ModelDefinition] = [],
        backend: (any HostingBackend)? = nil,
        httpClient: HTTPClient? = nil, resyncInterval: Duration = .seconds(10), heartbeatInterval: Duration = .seconds(1),
        logger: Logger
    ) throws {
        var seen = Set<String>()
        for model in configured {
            try model.validate()
            if model.isHosted {
                throw LISAError.invalidRequest(
                    "The configuration declares '\(model.modelId)' as lisa_hosted; create hosted models through the models API so their lifecycle is stored."
                )
            }
            guard seen.insert(model.modelId).inserted else {
                throw LISAError.invalidRequest("The configuration declares modelId '\(model.modelId)' twice.")
            }
        }
        self.store = store
        self.coordination = coordination
        self.usage = usage
        self.registry = registry
        self.configured = configured
        self.backend = backend
        self.httpClient = httpClient
        self.resyncInterval = resyncInterval
        self.heartbeatInterval = heartbeatInterval
        self.logger = logger
    }

    /// Rebuilds the router's snapshot from the configuration and the store.
    public func reload() async throws {
        try await reloading.withLock {
            let stored = try await store.all()
            let replicas = try await store.replicas(modelId: nil)
            for id in registry.sync(configured: configured, stored: stored, replicas: replicas) {
                logger.warning("stored model shadowed by the configuration file", metadata: ["lisa.model": "\(id)"])
            }
        }
    }

    // MARK: - Records

    /// A model as the management API shows it: the definition without secrets, where it
    /// came from, its lifecycle status, its replicas (hosted models) and each endpoint's
    /// routing state.
    public struct ModelRecord: Sendable, Encodable {
        public var definition: ModelDefinition
        public var source: ModelSource
        public var status: ModelStatus
        public var statusReason: String?
        public var replicas: [ReplicaRecord]?
        public var endpointStatus: [EndpointStatus]

        /// Whether requests can be routed now: `healthy` (every endpoint passes its probes
        /// and its circuit is closed), `unknown` (none has failed, but not every one has
        /// answered a probe or a request yet), `degraded` (some can take requests), `down`
        /// (none can), `none` (no endpoints: a hosted model without ready replicas).
        public var health: String { Self.health(of: endpointStatus) }

        /// A model's health from its endpoints' states (see ``health``).
        public static func health(of endpoints: [EndpointStatus]) -> String {
            guard !endpoints.isEmpty else { return "none" }
            let usable = endpoints.filter { $0.healthy && $0.circuit != "open" }.count
            if usable == endpoints.count {
                guard endpoints.allSatisfy({ $0.circuit == "closed" }) else { return "degraded" }
                return endpoints.contains { $0.health == "unknown" } ? "unknown" : "healthy"
            }
            return usable == 0 ? "down" : "degraded"
        }

        /// What a user who is not an administrator may see: no endpoint URLs or keys, no
        /// launch spec or replicas, fallbacks only to models in `visible` (a hidden model is
        /// named nowhere); the status and health stay.
        public func forUsers(visible: Set<String>) -> ModelRecord {
            var copy = self
            copy.definition.fallbacks = definition.fallbacks.filter { visible.contains($0) }
            copy.definition.endpoints = []
            copy.definition.modelUrl = nil
            copy.definition.launch = nil
            copy.definition.additionalFields = [:]
            copy.replicas = nil
            copy.endpointStatus = endpointStatus.map {
                EndpointStatus(
                    url: "", weight: $0.weight, healthy: $0.healthy, circuit: $0.circuit, inFlight: $0.inFlight, ewmaLatencyMilliseconds: 0,
                    health: $0.health
                )
            }
            return copy
        }

        enum CodingKeys: String, CodingKey { case source, status, statusReason, replicas, endpointStatus, health }

        public func encode(to encoder: any Encoder) throws {
            try definition.redacted().encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(source, forKey: .source)
            try c.encode(health, forKey: .health)
            try c.encode(status, forKey: .status)
            try c.encodeIfPresent(statusReason, forKey: .statusReason)
            try c.encodeIfPresent(replicas, forKey: .replicas)
            try c.encode(endpointStatus, forKey: .endpointStatus)
        }
    }

    /// Every model, ordered by id.
    public func records() -> [ModelRecord] {
        registry.allModels().map(Self.record)
    }

    /// One model; 404 when unknown.
    public func record(id: String) throws(LISAError) -> ModelRecord {
        guard let model = registry.model(id) else { throw .modelNotFound(id) }
        return Self.record(model)
    }

    static func record(_ model: RoutableModel) -> ModelRecord {
        ModelRecord(
            definition: model.definition, source: model.source, status: model.status, statusReason: model.statusReason,
            replicas: model.definition.isHosted ? model.replicas : nil, endpointStatus: model.pool.endpoints.map(\.status)
        )
    }

    // MARK: - Actions

    /// `POST /models`: validates and stores a new model. Models with endpoints are
    /// `InService` at once; `lisa_hosted` ones start `Creating` and the controller launches
    /// their replicas.
    public func create(_ definition: ModelDefinition) async throws -> ModelRecord {
        try definition.validate()
        // Fallbacks name models that exist now, of the same type.
        if let problem = definition.fallbackProblems(resolve: { registry.model($0)?.definition }).first { throw problem }
        if definition.isHosted && backend == nil {
            throw LISAError.invalidRequest("This server has no hosting backend; lisa_hosted models are not available.", param: "hostingType")
        }
        try checkBackendCanRun(definition)
        if let existing = registry.model(definition.modelId) {
            throw LISAError.conflict(
                "A model with modelId '\(definition.modelId)' already exists (\(existing.source.rawValue), \(existing.status.rawValue)).",
                reason: "model_exists"
            )
        }
        var status = try Self.next(.create, from: nil)
        if !definition.isHosted { status = ModelLifecycle.status(after: .ready, from: status) ?? status }
        for endpoint in definition.resolvedEndpoints where endpoint.tls?.insecureSkipVerify == true {
            logger.critical(
                "insecureSkipVerify is on for an endpoint: its certificate is NOT verified. Use it in a lab only.",
                metadata: ["lisa.model": "\(definition.modelId)", "lisa.endpoint": "\(Endpoint.label(for: endpoint.url))"]
            )
        }
        try await store.insert(definition, status: status)
        try await reload()
        logger.info("model created", metadata: ["lisa.model": "\(definition.modelId)", "lisa.status": "\(status.rawValue)"])
        return try record(id: definition.modelId)
    }

    /// What the hosting backend needs of a hosted model beyond the launch command.
    private func checkBackendCanRun(_ definition: ModelDefinition) throws(LISAError) {
        guard definition.isHosted, backend?.name == "kubernetes", definition.launch?.kubernetes == nil else { return }
        throw .invalidRequest(
            "Models hosted on Kubernetes need launch.kubernetes with the image (and the port, resources, node selector, tolerations).",
            param: "launch.kubernetes"
        )
    }

    /// `PUT /models/{id}`: `{"enabled": false}` stops the model, `{"enabled": true}` starts
    /// it; any other members are a JSON merge patch (RFC 7386) of the definition. Starting
    /// or stopping cannot be combined with other changes, and `modelId` and `hostingType`
    /// cannot change; a hosted model's `launch` changes only while it is stopped.
    public func update(id: String, patch: JSONValue) async throws -> ModelRecord {
        guard case .object(var members) = patch else {
            throw LISAError.invalidRequest("The update must be a JSON object.")
        }
        let current = try await storedModel(id)
        if let enabled = members.removeValue(forKey: "enabled") {
            guard case .bool(let enable) = enabled else {
                throw LISAError.invalidRequest("enabled must be true or false.", param: "enabled")
            }
            guard members.isEmpty else {
                throw LISAError.invalidRequest(
                    "Start or stop a model in a request of its own, without other changes.", param: "enabled"
                )
            }
            return enable ? try await start(id: id) : try await stop(id: id)
        }
        guard !members.isEmpty else { throw LISAError.invalidRequest("The update changes nothing.") }
        if let newID = members["modelId"], newID != .string(id) {
            throw LISAError.invalidRequest("modelId cannot change.", param: "modelId")
        }
        let original = try JSONValue(encoding: current.definition)
        let merged = original.merging(patch: .object(members))
        let definition: ModelDefinition
        do {
            definition = try merged.decode(ModelDefinition.self)
        } catch let error as DecodingError {
            throw LISAError.invalidRequest("The update does not give a valid model: \(error.lisaDescription)")
        }
        try definition.validate()
        if definition.fallbacks != current.definition.fallbacks || definition.modelType != current.definition.modelType,
            let problem = definition.fallbackProblems(resolve: { registry.model($0)?.definition }).first
        {
            throw problem
        }
        try checkBackendCanRun(definition)
        if definition.hostingType != current.definition.hostingType {
            throw LISAError.invalidRequest("hostingType cannot change; create a new model.", param: "hostingType")
        }
        let next = try Self.next(.update, from: current.status)
        if definition.launch != current.definition.launch && ![.stopped, .failed].contains(current.status) {
            throw LISAError.conflict(
                "A hosted model's launch spec changes only while it is Stopped (it is \(current.status.rawValue)); stop it first.",
                reason: "model_status_conflict"
            )
        }
        // Models with endpoints apply the change at once; hosted ones go through Updating
        // until the controller has the replica count right.
        let status = definition.isHosted ? next : (ModelLifecycle.status(after: .ready, from: next) ?? next)
        let updated = try await store.update(id: id, expecting: [current.status]) { model in
            model.definition = definition
            model.status = status
            model.statusReason = nil
        }
        guard updated != nil else { throw try await raced(id, action: .update) }
        try await reload()
        logger.info("model updated", metadata: ["lisa.model": "\(id)", "lisa.status": "\(status.rawValue)"])
        return try record(id: id)
    }

    /// Starts a stopped (or failed) model.
    public func start(id: String) async throws -> ModelRecord {
        try await transition(id, .start)
    }

    /// Stops a model: no new requests, in-flight ones drain, then replicas stop.
    public func stop(id: String) async throws -> ModelRecord {
        let record = try await transition(id, .stop)
        if !record.definition.isHosted {
            await finishWithoutReplicas(id: id, status: .stopping)
        }
        return try self.record(id: id)
    }

    /// `DELETE /models/{id}`: drains and removes the model. Models with endpoints are gone
    /// when this returns; hosted ones are `Deleting` until their replicas have stopped.
    public func delete(id: String) async throws -> ModelRecord {
        if let check = usageCheck.withLock({ $0 }) {
            let users = try await check(id)
            if !users.isEmpty {
                throw LISAError.conflict(
                    "The model '\(id)' is the embedding model of repositories \(users.joined(separator: ", ")); delete or change those first.",
                    reason: "model_in_use"
                )
            }
        }
        let record = try await transition(id, .delete)
        if !record.definition.isHosted {
            await finishWithoutReplicas(id: id, status: .deleting)
        }
        return record
    }

    /// Replica logs of a hosted model: the last `tail` lines of each replica.
    public func logs(id: String, tail: Int) async throws -> String {
        let model = try await storedModel(id)
        guard model.definition.isHosted, let backend else {
            throw LISAError.invalidRequest("The model '\(id)' is not hosted by LISA; it has no replica logs.")
        }
        var output = ""
        for replica in try await store.replicas(modelId: id) {
            output += "==> replica \(replica.replicaId) (\(replica.state.rawValue)) <==\n"
            output += (try? await backend.logs(of: replica, tail: tail)) ?? "(no log)\n"
        }
        return output
    }

    private func transition(_ id: String, _ action: ModelAction) async throws -> ModelRecord {
        let current = try await storedModel(id)
        let next = try Self.next(action, from: current.status)
        let updated = try await store.update(id: id, expecting: [current.status]) { model in
            model.status = next
            model.statusReason = nil
        }
        guard updated != nil else { throw try await raced(id, action: action) }
        try await reload()
        logger.info("model \(action.rawValue) requested", metadata: ["lisa.model": "\(id)", "lisa.status": "\(next.rawValue)"])
        return try record(id: id)
    }

    /// Drains a model without replicas and moves it on: Stopping → Stopped, Deleting → gone.
    /// Should this process die half-way, the controller finishes the step.
    func finishWithoutReplicas(id: String, status: ModelStatus) async {
        await drain(model: id, urls: nil, timeout: .seconds(30))
        do {
            if status == .deleting {
                _ = try await store.delete(id: id, expecting: [.deleting])
            } else if let next = ModelLifecycle.status(after: .stopped, from: status) {
                _ = try await store.update(id: id, expecting: [status]) { $0.status = next }
            }
        } catch {
            logger.warning("could not finish a model step; the controller will", metadata: ["lisa.model": "\(id)", "lisa.error": "\(error)"])
        }
        // Whoever finished the step (this call, or the controller meanwhile), the routes show the store.
        do {
            try await reload()
        } catch {
            logger.warning("could not reload the models", metadata: ["lisa.model": "\(id)", "lisa.error": "\(error)"])
        }
    }

    private func storedModel(_ id: String) async throws -> StoredModel {
        if let model = try await store.model(id: id) { return model }
        if configured.contains(where: { $0.modelId == id }) {
            throw LISAError.conflict("The model '\(id)' is declared in the configuration file; change it there.", reason: "model_in_configuration")
        }
        throw LISAError.modelNotFound(id)
    }

    static func next(_ action: ModelAction, from status: ModelStatus?) throws(LISAError) -> ModelStatus {
        switch ModelLifecycle.status(after: action, from: status) {
        case .success(let next): return next
        case .failure(let refusal): throw .conflict(refusal.message, reason: "model_status_conflict")
        }
    }

    /// The error for a compare-and-set that lost: the model moved (or went) meanwhile.
    private func raced(_ id: String, action: ModelAction) async throws -> LISAError {
        guard let now = try await store.model(id: id) else { return .modelNotFound(id) }
        return .conflict(LifecycleRefusal(action: action, current: now.status).message, reason: "model_status_conflict")
    }

    // MARK: - Draining

    /// Waits until no process sharing the store has requests in flight on `model` (on
    /// `urls` only, when given), or `timeout`. Other processes' counts come from their
    /// heartbeats, so with a shared store it first waits one heartbeat for them to see the
    /// change that stopped their routing.
    func drain(model: String, urls: Set<String>?, timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        if coordination.isShared {
            try? await Task.sleep(for: heartbeatInterval * 1.5)
        }
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let inFlight = await inFlight(model: model, urls: urls)
            if inFlight == 0 { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if ContinuousClock.now >= deadline {
            logger.warning("drain timed out; stopping with requests in flight", metadata: ["lisa.model": "\(model)"])
        }
    }

    /// Requests in flight on `model` (on `urls` only, when given) in every live process
    /// sharing the store: this one's counters plus the others' last heartbeats.
    func inFlight(model: String, urls: Set<String>?) async -> Int {
        var total = 0
        for (url, count) in registry.inFlight.snapshot()[model] ?? [:] where urls?.contains(url) ?? true {
            total += count
        }
        if coordination.isShared, let others = try? await coordination.instances(heartbeatAfter: Date().timeIntervalSince1970 - 5) {
            for instance in others where instance.instanceId != coordination.instanceID {
                for (url, count) in instance.inFlight[model] ?? [:] where urls?.contains(url) ?? true {
                    total += count
                }
            }
        }
        return total
    }

    // MARK: - Service

    /// Follows the store's changes, heartbeats, and runs the controller while leader.
    public func run() async throws {
        try await reload()
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.followChanges() }
                group.addTask { await self.heartbeat() }
                group.addTask {
                    try? await self.coordination.runAsLeader {
                        self.leading.store(true, ordering: .relaxed)
                        defer { self.leading.store(false, ordering: .relaxed) }
                        try await ModelController(manager: self, backend: self.backend).run()
                    }
                }
            }
        }
        try? await coordination.deleteInstance(id: coordination.instanceID)
    }

    private func followChanges() async {
        let changes = coordination.changes()
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in changes {
                    try? await self.reload()
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.resyncInterval)
                    guard !Task.isCancelled else { return }
                    do {
                        try await self.reload()
                    } catch is CancellationError {
                        return  // shutting down: nothing failed
                    } catch {
                        if Task.isCancelled { return }
                        self.logger.warning("periodic resync failed", metadata: ["lisa.error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Only processes sharing the store need each other's load.
    private func heartbeat() async {
        guard coordination.isShared else { return }
        let hostname = ProcessInfo.processInfo.hostName
        while !Task.isCancelled {
            let record = InstanceRecord(
                instanceId: coordination.instanceID, hostname: hostname, startedAt: startedAt, heartbeatAt: Date().timeIntervalSince1970,
                isLeader: isLeading, inFlight: registry.inFlight.snapshot()
            )
            do {
                try await coordination.saveInstance(record)
            } catch {
                logger.debug("heartbeat failed", metadata: ["lisa.error": "\(error)"])
            }
            try? await Task.sleep(for: heartbeatInterval)
        }
    }
}
