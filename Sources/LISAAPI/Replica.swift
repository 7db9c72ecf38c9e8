import Foundation
import LISAOpenAI

/// A model as stored: its definition (the desired state) and where its lifecycle stands.
public struct StoredModel: Sendable, Hashable {
    public var definition: ModelDefinition
    public var status: ModelStatus
    /// Why the model is `Failed` (or what a step is waiting for).
    public var statusReason: String?
    /// Unix seconds.
    public var createdAt: Double
    public var updatedAt: Double

    public init(definition: ModelDefinition, status: ModelStatus, statusReason: String? = nil, createdAt: Double, updatedAt: Double) {
        self.definition = definition
        self.status = status
        self.statusReason = statusReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Where one replica of a hosted model stands.
public enum ReplicaState: String, Sendable, Codable {
    /// Recorded; the backend is starting it (not yet reachable).
    case launching
    /// Running, waiting for its health check.
    case starting
    /// Healthy: requests are routed to it.
    case ready
    /// No new requests; waiting for those in flight before it is stopped.
    case draining
    /// Exited; the backend restarts it after a back-off.
    case crashed
}

/// One replica of a hosted model, as the hosting backend persisted it. Every LISAServe
/// replica routes to the `ready` ones; the backend finds its processes (or pods) again
/// from these records after a restart.
public struct ReplicaRecord: Sendable, Hashable, Codable {
    public var replicaId: String
    public var modelId: String
    public var backend: String
    public var state: ReplicaState
    /// The OpenAI-compatible base URL, once known.
    public var url: String?
    /// The backend's handle (a process id, a pod name).
    public var handle: String?
    public var logPath: String?
    public var restarts: Int
    /// Unix seconds: when the current process started.
    public var startedAt: Double
    /// Unix seconds: when the backend may try again after a crash.
    public var retryAt: Double?
    public var detail: String?

    public init(replicaId: String, modelId: String, backend: String, state: ReplicaState, startedAt: Double) {
        self.replicaId = replicaId
        self.modelId = modelId
        self.backend = backend
        self.state = state
        self.restarts = 0
        self.startedAt = startedAt
    }
}

/// A LISAServe process's heartbeat: who it is and the requests it has in flight, per
/// model and endpoint URL (the autoscaler and drains add these up over live instances).
public struct InstanceRecord: Sendable, Hashable, Codable {
    public var instanceId: String
    public var hostname: String
    public var startedAt: Double
    public var heartbeatAt: Double
    public var isLeader: Bool
    /// modelId → endpoint URL → requests in flight.
    public var inFlight: [String: [String: Int]]

    public init(instanceId: String, hostname: String, startedAt: Double, heartbeatAt: Double, isLeader: Bool, inFlight: [String: [String: Int]]) {
        self.instanceId = instanceId
        self.hostname = hostname
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.isLeader = isLeader
        self.inFlight = inFlight
    }
}

/// A change other LISAServe replicas must learn of.
public struct StateChange: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable {
        case model, replica, token, resync
    }

    public var kind: Kind
    public var id: String
    /// The instance that made the change.
    public var origin: String

    public init(kind: Kind, id: String, origin: String = "") {
        self.kind = kind
        self.id = id
        self.origin = origin
    }
}
