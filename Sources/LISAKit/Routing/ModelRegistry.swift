import Atomics
import Foundation
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
    public let definition: ModelDefinition
    public let source: ModelSource
    /// When the model was registered with this registry (Unix seconds), shown as `created`.
    public let created: Int64
    public let pool: EndpointPool
    public let retry: RetryConfiguration
    private let budget: Mutex<RetryBudget>

    init(definition: ModelDefinition, source: ModelSource, created: Int64, defaultPolicy: LoadBalancingPolicy) {
        self.definition = definition
        self.source = source
        self.created = created
        self.pool = EndpointPool(definition: definition, defaultPolicy: defaultPolicy)
        self.retry = definition.retry ?? RetryConfiguration()
        self.budget = Mutex(RetryBudget(ratio: retry.budgetRatio))
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

    public init(defaultPolicy: LoadBalancingPolicy = .powerOfTwoChoices) {
        self.defaultPolicy = defaultPolicy
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
    public func add(_ definition: ModelDefinition, source: ModelSource, created: Int64 = Int64(Date().timeIntervalSince1970)) -> Bool {
        let model = RoutableModel(definition: definition, source: source, created: created, defaultPolicy: defaultPolicy)
        return writer.withLock { _ in
            var models = current.load(ordering: .acquiring).models
            guard models[definition.modelId] == nil else { return false }
            models[definition.modelId] = model
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
}
