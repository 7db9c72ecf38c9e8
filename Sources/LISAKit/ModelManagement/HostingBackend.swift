import Foundation

/// What a hosting backend reports of one replica.
public enum ReplicaObservation: Sendable, Equatable {
    /// Running, not (yet) answering its health check.
    case starting
    /// Running and healthy.
    case ready
    /// Not running; the reason (exit status, signal, missing process).
    case exited(String)
}

/// Runs the replicas of `lisa_hosted` models. The ``ModelController`` decides how many
/// replicas a model needs, persists each one's record before acting, supervises them
/// (health, restarts with back-off, startup timeouts) and drains them before they stop;
/// a backend only carries out single-replica operations, so a new platform needs only
/// these five.
///
/// ``LocalProcessBackend`` runs replicas as child processes on this machine. The
/// Kubernetes design (a Deployment and a Service per model) is in
/// `Documentation/Hosting.md`.
public protocol HostingBackend: Sendable {
    /// Stored with each replica record (`local`, `kubernetes`).
    var name: String { get }

    /// Starts `replica` (its record is already stored with state `launching`) and returns
    /// the record with its URL, handle and log location, state `starting`.
    func launch(_ replica: ReplicaRecord, of model: ModelDefinition) async throws -> ReplicaRecord

    /// Whether the replica runs, and whether it answers its health check.
    func observe(_ replica: ReplicaRecord, of model: ModelDefinition) async -> ReplicaObservation

    /// Stops the replica: a polite signal, then a forced one after `timeout`. Finds the
    /// replica by its id when the record has no handle yet (a launch cut short).
    func stop(_ replica: ReplicaRecord, timeout: Duration) async

    /// Stops what this backend runs for this deployment that no record in `known`
    /// accounts for; returns the ids it stopped.
    func removeOrphans(known: Set<String>) async -> [String]

    /// The last `tail` lines the replica wrote.
    func logs(of replica: ReplicaRecord, tail: Int) async throws -> String
}
