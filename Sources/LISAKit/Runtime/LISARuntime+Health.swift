import Foundation

/// What `/health/readiness` reports: whether this process can serve, and why not.
public struct Readiness: Sendable, Hashable, Codable {
    /// `OK`, or `unavailable`.
    public var status: String
    /// `ok`, or what went wrong reaching the state store.
    public var stateStore: String
    /// Whether this process runs the hosting controller now.
    public var leader: Bool
    /// Models this process routes to.
    public var models: Int

    public var isReady: Bool { status == "OK" }
}

extension LISARuntime {
    /// Checks the state store (a read within `timeout`) and reports what this process can
    /// do. Not ready while the store cannot be read: management calls would fail, and a
    /// Kubernetes probe should take the pod out of its Service until it can.
    public func readiness(timeout: Duration = .seconds(2)) async -> Readiness {
        let store = self.store
        var problem: String?
        do {
            _ = try await withDeadline(timeout, timedOut: {
                LISAError.stateStoreUnavailable("The state store did not answer within \(Int(timeout.seconds)) s.")
            }) {
                try await store.setting("lisa.readiness")
            }
        } catch let error as LISAError {
            problem = error.message
        } catch {
            problem = "The state store cannot be read: \(String(describing: error).prefix(200))"
        }
        return Readiness(
            status: problem == nil ? "OK" : "unavailable", stateStore: problem ?? "ok", leader: models.isLeading,
            models: gateway.registry.allModels().count
        )
    }
}
