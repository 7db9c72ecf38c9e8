import Foundation
import Synchronization

/// Where a registered model came from.
public enum ModelSource: String, Sendable, Codable {
    /// Declared in the configuration file; changed only by editing the file.
    case configuration
    /// Registered through the models API and kept in the state store.
    case api
}

/// A model the router can send requests to, with its endpoints and balancing state.
public final class RoutableModel: Sendable {
    public let definition: ModelDefinition
    public let source: ModelSource
    /// When the model was registered with this registry (Unix seconds), shown as `created`.
    public let created: Int64
    /// The endpoints, each repeated by its weight: round-robin over this list is weighted.
    private let schedule: [EndpointDefinition]
    private let cursor = Atomic<Int>(0)

    init(definition: ModelDefinition, source: ModelSource, created: Int64) {
        self.definition = definition
        self.source = source
        self.created = created
        self.schedule = definition.resolvedEndpoints.flatMap { endpoint in
            Array(repeating: endpoint, count: max(1, endpoint.weight))
        }
    }

    /// The endpoints in the order to try them for the next request: round-robin (weighted)
    /// start, then the remaining distinct endpoints as fail-over candidates.
    public func endpointsForNextRequest() -> [EndpointDefinition] {
        guard !schedule.isEmpty else { return [] }
        let start = cursor.add(1, ordering: .relaxed).oldValue
        let first = schedule[Int(UInt(bitPattern: start) % UInt(schedule.count))]
        var ordered = [first]
        for endpoint in definition.resolvedEndpoints where endpoint != first && !ordered.contains(endpoint) {
            ordered.append(endpoint)
        }
        return ordered
    }
}

/// The models LISA serves: those from the configuration file and those registered through
/// the API. Lookups take a short lock; the request path never waits on I/O here.
public final class ModelRegistry: Sendable {
    private let models = Mutex<[String: RoutableModel]>([:])

    public init() {}

    /// The model with this id, or `nil`.
    public func model(_ id: String) -> RoutableModel? {
        models.withLock { $0[id] }
    }

    /// All models, ordered by id.
    public func allModels() -> [RoutableModel] {
        models.withLock { Array($0.values) }.sorted { $0.definition.modelId < $1.definition.modelId }
    }

    /// Adds a model; returns `false` (and changes nothing) when the id is taken.
    @discardableResult
    public func add(_ definition: ModelDefinition, source: ModelSource, created: Int64 = Int64(Date().timeIntervalSince1970)) -> Bool {
        let model = RoutableModel(definition: definition, source: source, created: created)
        return models.withLock { models in
            guard models[definition.modelId] == nil else { return false }
            models[definition.modelId] = model
            return true
        }
    }

    /// Removes a model; returns the removed model, if any.
    @discardableResult
    public func remove(_ id: String) -> RoutableModel? {
        models.withLock { $0.removeValue(forKey: id) }
    }
}
