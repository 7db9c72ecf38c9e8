import Foundation
import Logging

/// Carries model workflows out, on the one process that leads (``StateCoordination/runAsLeader(_:)``).
///
/// Every half second it compares what the store says each model should be with what runs,
/// and takes the next step — each step persisted before it acts, so a controller that dies
/// anywhere is replaced by one that picks up from the store:
/// - `Creating`, `Starting`, `Updating`, `InService` (hosted): launch missing replicas,
///   watch their health, restart crashed ones with exponential back-off, autoscale, drain
///   and stop extra ones; a replica that dies or never gets ready during a start fails the
///   model with the reason and the replica's last log lines;
/// - `Stopping`, `Deleting`: stop routing, drain in-flight requests, stop the replicas,
///   then `Stopped` or gone;
/// - `Stopped`, `Failed`: nothing may run; replica processes no record accounts for are
///   stopped.
actor ModelController {
    let manager: ModelManager
    let backend: (any HostingBackend)?
    private var store: ModelStore { manager.store }
    private var logger: Logger { manager.logger }
    /// Models with a long step (drain, stop) under way in a task of its own.
    private var busy: Set<String> = []
    private var autoscalers: [String: Autoscaler] = [:]
    private var ticks = 0
    static let tick: Duration = .milliseconds(500)
    /// Replica-seconds run since they were last written, per hosted model (cost reports).
    private var replicaTime: [String: Double] = [:]
    private var lastMetered: ContinuousClock.Instant?

    init(manager: ModelManager, backend: (any HostingBackend)?) {
        self.manager = manager
        self.backend = backend
    }

    func run() async throws {
        try await recover()
        do {
            while !Task.isCancelled {
                do {
                    try await reconcile()
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("model reconciliation failed; retrying", metadata: ["lisa.error": "\(error)"])
                }
                try await Task.sleep(for: Self.tick)
            }
        } catch {}
        // The task is cancelled by now; stop the replicas in one that is not, so its
        // queries and waits run.
        await Task { await self.shutdown() }.value
    }

    /// After a (re)start: replicas whose process is gone are relaunched at once (their
    /// model wanted them); launches cut short are cleaned; processes no record knows stop.
    private func recover() async throws {
        guard let backend else { return }
        let models = Dictionary(uniqueKeysWithValues: try await store.all().map { ($0.definition.modelId, $0) })
        for var replica in try await store.replicas(modelId: nil) {
            guard let model = models[replica.modelId] else { continue }
            switch replica.state {
            case .launching:
                await backend.stop(replica, timeout: .seconds(5))
            case .starting, .ready, .draining:
                if case .exited(let reason) = await backend.observe(replica, of: model.definition) {
                    logger.notice(
                        "replica found stopped after a restart; relaunching",
                        metadata: ["lisa.replica": "\(replica.replicaId)", "lisa.reason": "\(reason)"])
                    replica.state = .launching
                    replica.detail = reason
                    try await store.saveReplica(replica)
                } else {
                    logger.notice(
                        "adopted a running replica", metadata: ["lisa.model": "\(replica.modelId)", "lisa.replica": "\(replica.replicaId)"])
                }
            case .crashed:
                break
            }
        }
        let known = Set(try await store.replicas(modelId: nil).map(\.replicaId))
        _ = await backend.removeOrphans(known: known)
    }

    /// On a graceful shutdown the replicas this process started stop with it; the next
    /// leader relaunches them.
    private func shutdown() async {
        guard let backend, let replicas = try? await store.replicas(modelId: nil) else { return }
        await withDiscardingTaskGroup { group in
            for replica in replicas where replica.state != .crashed {
                group.addTask { await backend.stop(replica, timeout: .seconds(10)) }
            }
        }
    }

    /// Counts the time each hosted model's replicas run (launching to draining: they hold
    /// their machine all along), and writes it every ten seconds under the current hour.
    private func meterReplicaTime(models: [StoredModel], replicas: [String: [ReplicaRecord]]) {
        let now = ContinuousClock.now
        defer { lastMetered = now }
        guard let last = lastMetered else { return }
        // A gap longer than a few ticks (leadership moved) is not counted twice: the
        // previous leader counted its part.
        let elapsed = Swift.min((now - last).seconds, 5)
        for model in models where model.definition.isHosted {
            let running = (replicas[model.definition.modelId] ?? []).filter { $0.state != .crashed }.count
            if running > 0 { replicaTime[model.definition.modelId, default: 0] += Double(running) * elapsed }
        }
        guard ticks % 20 == 0, !replicaTime.isEmpty else { return }
        let pending = replicaTime
        replicaTime = [:]
        let hour = Int64(Date().timeIntervalSince1970 / 3600) * 3600
        let usage = manager.usage
        let logger = self.logger
        Task {
            for (model, seconds) in pending {
                do {
                    try await usage.addReplicaSeconds(seconds, model: model, hour: hour)
                } catch {
                    logger.debug("recording replica time failed", metadata: ["lisa.model": "\(model)", "lisa.error": "\(error)"])
                }
            }
        }
    }

    private func reconcile() async throws {
        ticks += 1
        let models = try await store.all()
        let replicas = Dictionary(grouping: try await store.replicas(modelId: nil), by: \.modelId)
        let ids = Set(models.map(\.definition.modelId))
        // Records of models that are gone (deleted by a process that died half-way).
        for (modelID, orphaned) in replicas where !ids.contains(modelID) {
            for replica in orphaned {
                await backend?.stop(replica, timeout: .seconds(10))
                try await store.deleteReplica(id: replica.replicaId)
            }
        }
        for model in models where !busy.contains(model.definition.modelId) {
            let modelReplicas = replicas[model.definition.modelId] ?? []
            switch model.status {
            case .stopping, .deleting:
                spawnStep(model.definition.modelId) { controller in await controller.finish(model, replicas: modelReplicas) }
            case .creating, .starting, .updating, .inService:
                if model.definition.isHosted {
                    try await supervise(model, replicas: modelReplicas)
                } else if let next = ModelLifecycle.status(after: .ready, from: model.status) {
                    _ = try await store.update(id: model.definition.modelId, expecting: [model.status]) { $0.status = next }
                }
            case .stopped, .failed:
                for replica in modelReplicas where replica.state != .crashed {
                    await backend?.stop(replica, timeout: .seconds(10))
                    var stopped = replica
                    stopped.state = .crashed
                    stopped.retryAt = nil
                    try await store.saveReplica(stopped)
                }
            }
        }
        meterReplicaTime(models: models, replicas: replicas)
        if let backend, ticks % 20 == 0 {
            let known = Set(try await store.replicas(modelId: nil).map(\.replicaId))
            _ = await backend.removeOrphans(known: known)
        }
        if ticks % 120 == 1 {
            // Heartbeats of processes gone for an hour (killed, never deregistered).
            try await manager.coordination.deleteInstances(heartbeatBefore: Date().timeIntervalSince1970 - 3600)
        }
    }

    private func spawnStep(_ modelID: String, _ step: @escaping @Sendable (ModelController) async -> Void) {
        busy.insert(modelID)
        Task {
            await step(self)
            self.done(modelID)
        }
    }

    private func done(_ modelID: String) {
        busy.remove(modelID)
    }

    // MARK: - Hosted models

    private func supervise(_ model: StoredModel, replicas: [ReplicaRecord]) async throws {
        guard let backend, let spec = model.definition.launch else { return }
        let id = model.definition.modelId
        let now = Date().timeIntervalSince1970
        let starting = model.status == .creating || model.status == .starting
        var active: [ReplicaRecord] = []
        for var replica in replicas {
            switch replica.state {
            case .launching:
                replica = try await launch(replica, of: model, backend: backend)
                if replica.state == .crashed, starting, replica.restarts == 0 { return }
            case .starting, .ready:
                switch await backend.observe(replica, of: model.definition) {
                case .ready where replica.state == .starting:
                    replica.state = .ready
                    replica.detail = nil
                    try await store.saveReplica(replica)
                    logger.info("replica ready", metadata: ["lisa.model": "\(id)", "lisa.replica": "\(replica.replicaId)"])
                case .ready:
                    break
                case .starting where replica.state == .ready:
                    replica.state = .starting
                    replica.detail = "health check failing"
                    try await store.saveReplica(replica)
                case .starting:
                    if now - replica.startedAt > spec.startupTimeoutSeconds {
                        let reason = "replica \(replica.replicaId) was not ready within \(Int(spec.startupTimeoutSeconds)) s"
                        if starting { return try await fail(model, reason: reason, replica: replica) }
                        await backend.stop(replica, timeout: .seconds(spec.stopTimeoutSeconds))
                        try await crashed(&replica, reason: reason)
                    }
                case .exited(let reason):
                    if starting && replica.restarts == 0 {
                        return try await fail(model, reason: "replica \(replica.replicaId) \(reason) before it was ready", replica: replica)
                    }
                    logger.warning(
                        "replica exited", metadata: ["lisa.model": "\(id)", "lisa.replica": "\(replica.replicaId)", "lisa.reason": "\(reason)"])
                    try await crashed(&replica, reason: reason)
                }
            case .crashed:
                if let retryAt = replica.retryAt, now >= retryAt {
                    replica.restarts += 1
                    replica.state = .launching
                    try await store.saveReplica(replica)
                    replica = try await launch(replica, of: model, backend: backend)
                } else if replica.retryAt == nil {
                    // Left from a stop or a failure: a start begins afresh.
                    try await store.deleteReplica(id: replica.replicaId)
                    continue
                }
            case .draining:
                // A drain cut short by a change of leader: finish it.
                let draining = replica
                spawnStep(id) { controller in await controller.retire(draining, of: model) }
                continue
            }
            active.append(replica)
        }

        // How many replicas: the autoscaler while in service, else the configured count.
        var scaling = model.definition.autoScalingConfig ?? AutoScalingConfig()
        var target = scaling.clampedDesired
        if model.status == .inService {
            var autoscaler = autoscalers[id] ?? Autoscaler(configuration: scaling)
            autoscaler.configuration = scaling
            let inFlight = await manager.inFlight(model: id, urls: nil)
            let ready = active.filter { $0.state == .ready }.count
            if let wanted = autoscaler.sample(inFlight: inFlight, current: max(ready, target), at: now), wanted != target {
                logger.notice(
                    "autoscaling",
                    metadata: ["lisa.model": "\(id)", "lisa.from": "\(target)", "lisa.to": "\(wanted)", "lisa.in_flight": "\(inFlight)"]
                )
                scaling.desiredCapacity = wanted
                target = wanted
                let stored = scaling
                _ = try await store.update(id: id, expecting: [.inService]) { $0.definition.autoScalingConfig = stored }
            }
            autoscalers[id] = autoscaler
        }
        if active.count < target {
            for _ in active.count..<target {
                let replica = ReplicaRecord(
                    replicaId: Self.newReplicaID(), modelId: id, backend: backend.name, state: .launching, startedAt: now
                )
                try await store.saveReplica(replica)
                let launched = try await launch(replica, of: model, backend: backend)
                if launched.state == .crashed, starting { return }
                active.append(launched)
            }
        } else if active.count > target {
            // Retire the ones doing least: not ready first, then the newest.
            let extra = active.sorted { a, b in
                if (a.state == .ready) != (b.state == .ready) { return a.state != .ready }
                return a.startedAt > b.startedAt
            }.prefix(active.count - target)
            for var replica in extra {
                replica.state = .draining
                try await store.saveReplica(replica)
                active.removeAll { $0.replicaId == replica.replicaId }
                let draining = replica
                spawnStep(id) { controller in await controller.retire(draining, of: model) }
            }
        }
        let ready = active.filter { $0.state == .ready }.count
        if model.status.isTransitional, ready >= target, active.count == target,
            let next = ModelLifecycle.status(after: .ready, from: model.status)
        {
            _ = try await store.update(id: id, expecting: [model.status]) { $0.status = next }
            logger.notice("model in service", metadata: ["lisa.model": "\(id)", "lisa.replicas": "\(ready)"])
        }
    }

    private func launch(_ replica: ReplicaRecord, of model: StoredModel, backend: any HostingBackend) async throws -> ReplicaRecord {
        do {
            let launched = try await backend.launch(replica, of: model.definition)
            try await store.saveReplica(launched)
            return launched
        } catch let error as LISAError {
            var failed = replica
            try await crashed(&failed, reason: error.message)
            // A model that has never served cannot start: say why (the scheduler's
            // message, a refused image) rather than retrying forever.
            if model.status == .creating || model.status == .starting, replica.restarts == 0 {
                try await fail(model, reason: "replica \(replica.replicaId) could not be launched: \(error.message)", replica: failed)
            }
            return failed
        }
    }

    private func crashed(_ replica: inout ReplicaRecord, reason: String) async throws {
        replica.state = .crashed
        replica.detail = reason
        // 1, 2, 4 … 60 seconds between restarts.
        replica.retryAt = Date().timeIntervalSince1970 + min(60, pow(2, Double(min(replica.restarts, 6))))
        try await store.saveReplica(replica)
    }

    private func fail(_ model: StoredModel, reason: String, replica: ReplicaRecord) async throws {
        var detail = reason
        if let backend, let tail = try? await backend.logs(of: replica, tail: 5) {
            detail += ". Last log lines:\n" + tail
        }
        logger.error("model failed", metadata: ["lisa.model": "\(model.definition.modelId)", "lisa.reason": "\(reason)"])
        let message = detail
        _ = try await store.update(id: model.definition.modelId, expecting: [model.status]) { stored in
            stored.status = ModelLifecycle.status(after: .failed(message), from: stored.status) ?? .failed
            stored.statusReason = message
        }
        // The next reconcile sees Failed and stops every replica.
    }

    /// Drains one replica, stops it and forgets it.
    private func retire(_ replica: ReplicaRecord, of model: StoredModel) async {
        let spec = model.definition.launch
        if let url = replica.url {
            await manager.drain(model: replica.modelId, urls: [url], timeout: .seconds(spec?.drainTimeoutSeconds ?? 30))
        }
        await backend?.stop(replica, timeout: .seconds(spec?.stopTimeoutSeconds ?? 10))
        try? await store.deleteReplica(id: replica.replicaId)
        logger.info("replica retired", metadata: ["lisa.model": "\(replica.modelId)", "lisa.replica": "\(replica.replicaId)"])
    }

    /// Stopping → Stopped, Deleting → gone: drain, stop every replica, record the result.
    private func finish(_ model: StoredModel, replicas: [ReplicaRecord]) async {
        let id = model.definition.modelId
        let spec = model.definition.launch
        do {
            for var replica in replicas where replica.state == .ready || replica.state == .starting {
                replica.state = .draining
                try await store.saveReplica(replica)
            }
            await manager.drain(model: id, urls: nil, timeout: .seconds(spec?.drainTimeoutSeconds ?? 30))
            await withDiscardingTaskGroup { group in
                for replica in replicas {
                    group.addTask { await self.backend?.stop(replica, timeout: .seconds(spec?.stopTimeoutSeconds ?? 10)) }
                }
            }
            if model.status == .deleting {
                _ = try await store.delete(id: id, expecting: [.deleting])
                autoscalers[id] = nil
                logger.notice("model deleted", metadata: ["lisa.model": "\(id)"])
            } else {
                for replica in replicas { try await store.deleteReplica(id: replica.replicaId) }
                _ = try await store.update(id: id, expecting: [.stopping]) { $0.status = .stopped }
                autoscalers[id] = nil
                logger.notice("model stopped", metadata: ["lisa.model": "\(id)"])
            }
        } catch {
            logger.warning("could not finish the model step; retrying", metadata: ["lisa.model": "\(id)", "lisa.error": "\(error)"])
        }
    }

    static func newReplicaID() -> String {
        String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12))
    }
}
