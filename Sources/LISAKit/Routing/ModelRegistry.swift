import Atomics
public import Foundation
import Synchronization

/// Where a registered model came from.
public enum ModelSource: String, Sendable, Codable {
    /// Declared in the configuration file; changed only by editing the file.
    case configuration
    /// Registered through the models API and kept in the state store.
    case api
}

/// A model the router can send requests to, with its endpoint pool and retry budget.
public final class RoutableModel: Sendable {
    /// The definition as stored (for hosted models, without endpoints).
    public let definition: ModelDefinition
    /// The definition routed to: for hosted models, the ready replicas as endpoints.
    public let routing: ModelDefinition
    public let source: ModelSource
    public let status: ModelStatus
    public let statusReason: String?
    /// Hosted models' replicas, as the hosting backend recorded them.
    public let replicas: [ReplicaRecord]
    /// When the model was registered (Unix seconds), shown as `created`.
    public let created: Int64
    public let pool: EndpointPool
    public let retry: RetryConfiguration
    private let budget: Mutex<RetryBudget>

    init(
        definition: ModelDefinition, source: ModelSource, status: ModelStatus = .inService, statusReason: String? = nil,
        replicas: [ReplicaRecord] = [], created: Int64, defaultPolicy: LoadBalancingPolicy,
        previous: RoutableModel? = nil, tracker: InFlightTracker? = nil, clock: AnyClock = .continuous
    ) {
        self.definition = definition
        self.source = source
        self.status = status
        self.statusReason = statusReason
        self.replicas = replicas
        self.created = created
        var routing = definition
        if definition.isHosted {
            routing.endpoints = replicas.filter { $0.state == .ready && $0.url != nil }
                .sorted { ($0.startedAt, $0.replicaId) < ($1.startedAt, $1.replicaId) }
                .map { EndpointDefinition(url: $0.url!) }
        }
        self.routing = routing
        self.pool = EndpointPool(definition: routing, defaultPolicy: defaultPolicy, previous: previous?.pool, tracker: tracker, clock: clock)
        self.retry = definition.retry ?? RetryConfiguration()
        // The retry budget carries over while the model's retry settings are unchanged.
        if let previous, previous.retry == retry {
            self.budget = Mutex(previous.budget.withLock { $0 })
        } else {
            self.budget = Mutex(RetryBudget(ratio: retry.budgetRatio))
        }
    }

    /// Counts a first attempt now, on the pool's clock.
    func recordRequest() {
        recordRequest(at: pool.clock.seconds)
    }

    /// Takes one retry from the budget now, if there is one.
    func tryRetry() -> Bool {
        tryRetry(at: pool.clock.seconds)
    }

    func recordRequest(at now: Double) {
        budget.withLock { $0.recordRequest(at: now) }
    }

    func tryRetry(at now: Double) -> Bool {
        budget.withLock { $0.tryRetry(at: now) }
    }
}

/// The models LISA serves. Readers take an immutable snapshot with one atomic load — no
/// lock on the request path; changes (rare) build a new snapshot and swap it in, so
/// requests in flight keep the endpoints they started with.
public final class ModelRegistry: Sendable {
    private final class Snapshot: AtomicReference, Sendable {
        let models: [String: RoutableModel]
        init(_ models: [String: RoutableModel]) { self.models = models }
    }

    private let current = ManagedAtomic(Snapshot([:]))
    private let writer = Mutex(())
    /// The balancing policy of models that do not name one.
    public let defaultPolicy: LoadBalancingPolicy
    /// Requests in flight per model and endpoint, across snapshots.
    public let inFlight = InFlightTracker()
    /// What circuits, retry budgets, latency estimates and health probes run on.
    public let clock: AnyClock

    /// - Parameter clock: what routing's time is read from: ``AnyClock/continuous``, or a
    ///   manual clock in tests.
    public init(defaultPolicy: LoadBalancingPolicy = .powerOfTwoChoices, clock: AnyClock = .continuous) {
        self.defaultPolicy = defaultPolicy
        self.clock = clock
    }

    /// The model with this id, or `nil`.
    public func model(_ id: String) -> RoutableModel? {
        current.load(ordering: .acquiring).models[id]
    }

    /// All models, ordered by id.
    public func allModels() -> [RoutableModel] {
        current.load(ordering: .acquiring).models.values.sorted { $0.definition.modelId < $1.definition.modelId }
    }

    /// Adds a model; returns `false` (and changes nothing) when the id is taken.
    @discardableResult
    public func add(
        _ definition: ModelDefinition, source: ModelSource, status: ModelStatus = .inService,
        created: Int64 = Int64(Date().timeIntervalSince1970)
    ) -> Bool {
        writer.withLock { _ in
            var models = current.load(ordering: .acquiring).models
            guard models[definition.modelId] == nil else { return false }
            models[definition.modelId] = RoutableModel(
                definition: definition, source: source, status: status, created: created, defaultPolicy: defaultPolicy, tracker: inFlight,
                clock: clock
            )
            current.store(Snapshot(models), ordering: .releasing)
            return true
        }
    }

    /// Removes a model; returns the removed model, if any.
    @discardableResult
    public func remove(_ id: String) -> RoutableModel? {
        writer.withLock { _ in
            var models = current.load(ordering: .acquiring).models
            let removed = models.removeValue(forKey: id)
            if removed != nil { current.store(Snapshot(models), ordering: .releasing) }
            return removed
        }
    }

    /// Replaces the whole snapshot: the configured models, then the stored ones (a stored
    /// model whose id is configured is skipped and returned). Models whose definition,
    /// status and replicas did not change are kept as they are, endpoint state included.
    @discardableResult
    public func sync(configured: [ModelDefinition], stored: [StoredModel], replicas: [ReplicaRecord]) -> [String] {
        writer.withLock { _ in
            let old = current.load(ordering: .acquiring).models
            var models: [String: RoutableModel] = [:]
            var shadowed: [String] = []
            let replicasByModel = Dictionary(grouping: replicas, by: \.modelId)
            for definition in configured {
                if let previous = old[definition.modelId], previous.source == .configuration, previous.definition == definition {
                    models[definition.modelId] = previous
                } else {
                    models[definition.modelId] = RoutableModel(
                        definition: definition, source: .configuration,
                        created: old[definition.modelId]?.created ?? Int64(Date().timeIntervalSince1970),
                        defaultPolicy: defaultPolicy, previous: old[definition.modelId], tracker: inFlight, clock: clock
                    )
                }
            }
            for model in stored {
                let id = model.definition.modelId
                guard models[id] == nil else {
                    shadowed.append(id)
                    continue
                }
                let modelReplicas = replicasByModel[id] ?? []
                if let previous = old[id], previous.source == .api, previous.definition == model.definition,
                    previous.status == model.status, previous.statusReason == model.statusReason, previous.replicas == modelReplicas
                {
                    models[id] = previous
                    continue
                }
                models[id] = RoutableModel(
                    definition: model.definition, source: .api, status: model.status, statusReason: model.statusReason,
                    replicas: modelReplicas, created: Int64(model.createdAt), defaultPolicy: defaultPolicy,
                    previous: old[id], tracker: inFlight, clock: clock
                )
            }
            current.store(Snapshot(models), ordering: .releasing)
            inFlight.prune(keeping: models.mapValues { $0.routing.resolvedEndpoints.map(\.url) })
            return shadowed
        }
    }
}
