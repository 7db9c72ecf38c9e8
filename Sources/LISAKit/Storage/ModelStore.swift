import Foundation

/// The stored models, their lifecycle status, and the records of their hosted replicas.
///
/// A model's definition is stored as JSON beside the columns that are queried, so fields
/// this version does not act on survive. Every write publishes a ``StateChange`` (`.model`
/// or `.replica`) through the store's ``StateCoordination``. Get one from
/// ``SQLStateStore/models``; it is safe to use concurrently.
public struct ModelStore: Sendable {
    let database: any StateDatabase
    let coordination: StateCoordination

    private static let columns = "model_id, definition, status, status_reason, created_at, updated_at"

    // MARK: - Models

    /// Every stored model, ordered by id.
    public func all() async throws -> [StoredModel] {
        try await database.query("SELECT \(Self.columns) FROM models ORDER BY model_id").map(Self.decodeModel)
    }

    /// The model with this id, or `nil`.
    public func model(id: String) async throws -> StoredModel? {
        try await database.query("SELECT \(Self.columns) FROM models WHERE model_id = ?", [.text(id)]).first.map(Self.decodeModel)
    }

    /// Stores a new model; throws ``LISAError/conflict(_:reason:)`` when the id is taken.
    @discardableResult
    public func insert(_ model: ModelDefinition, status: ModelStatus) async throws -> StoredModel {
        let now = Date().timeIntervalSince1970
        let rows = try await database.query(
            """
            INSERT INTO models (model_id, definition, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (model_id) DO NOTHING RETURNING model_id
            """,
            [.text(model.modelId), .text(try SQLStateStore.json(model)), .text(status.rawValue), .double(now), .double(now)]
        )
        if rows.isEmpty {
            throw LISAError.conflict("A model with modelId '\(model.modelId)' already exists.", reason: "model_exists")
        }
        await coordination.publish(StateChange(kind: .model, id: model.modelId))
        return StoredModel(definition: model, status: status, createdAt: now, updatedAt: now)
    }

    /// Changes a model atomically when its status is one of `expecting` (`nil`: any).
    /// Returns the stored result, or `nil` (and changes nothing) when the model is missing
    /// or its status did not match — another request or replica moved it first.
    public func update(
        id: String, expecting: Set<ModelStatus>?, _ change: @escaping @Sendable (inout StoredModel) throws -> Void
    ) async throws -> StoredModel? {
        let lock = database.dialect == .postgres ? " FOR UPDATE" : ""
        let updated = try await database.transaction { db -> StoredModel? in
            let rows = try await db.query("SELECT \(Self.columns) FROM models WHERE model_id = ?\(lock)", [.text(id)])
            guard var model = try rows.first.map(Self.decodeModel) else { return nil }
            if let expecting, !expecting.contains(model.status) { return nil }
            let before = model
            try change(&model)
            guard model != before else { return model }
            model.updatedAt = Date().timeIntervalSince1970
            try await db.query(
                "UPDATE models SET definition = ?, status = ?, status_reason = ?, updated_at = ? WHERE model_id = ?",
                [
                    .text(try SQLStateStore.json(model.definition)), .text(model.status.rawValue),
                    model.statusReason.map(StateValue.text) ?? .null, .double(model.updatedAt), .text(id),
                ]
            )
            return model
        }
        if updated != nil { await coordination.publish(StateChange(kind: .model, id: id)) }
        return updated
    }

    /// Removes a model (and its replica records) when its status is one of `expecting`
    /// (`nil`: any); returns whether it was removed.
    public func delete(id: String, expecting: Set<ModelStatus>?) async throws -> Bool {
        let deleted = try await database.transaction { db -> Bool in
            let rows: [StateRow]
            if let expecting {
                let marks = Array(repeating: "?", count: expecting.count).joined(separator: ", ")
                rows = try await db.query(
                    "DELETE FROM models WHERE model_id = ? AND status IN (\(marks)) RETURNING model_id",
                    [.text(id)] + expecting.map { .text($0.rawValue) }
                )
            } else {
                rows = try await db.query("DELETE FROM models WHERE model_id = ? RETURNING model_id", [.text(id)])
            }
            guard !rows.isEmpty else { return false }
            try await db.query("DELETE FROM model_replicas WHERE model_id = ?", [.text(id)])
            return true
        }
        if deleted { await coordination.publish(StateChange(kind: .model, id: id)) }
        return deleted
    }

    private static func decodeModel(_ row: StateRow) throws -> StoredModel {
        guard let text = row["definition"].string else { throw LISAError.internalError("A stored model has no definition.") }
        let definition = try JSONDecoder().decode(ModelDefinition.self, from: Data(text.utf8))
        let status = row["status"].string.flatMap(ModelStatus.init(rawValue:)) ?? .inService
        return StoredModel(
            definition: definition, status: status, statusReason: row["status_reason"].string,
            createdAt: row["created_at"].double ?? 0, updatedAt: row["updated_at"].double ?? 0
        )
    }

    // MARK: - Hosted replicas

    /// The replica records of one model, or of all (`nil`).
    public func replicas(modelId: String?) async throws -> [ReplicaRecord] {
        let rows =
            if let modelId {
                try await database.query("SELECT record FROM model_replicas WHERE model_id = ? ORDER BY replica_id", [.text(modelId)])
            } else {
                try await database.query("SELECT record FROM model_replicas ORDER BY model_id, replica_id")
            }
        return try rows.map { try SQLStateStore.decode(ReplicaRecord.self, $0["record"]) }
    }

    /// Inserts or replaces a replica record.
    public func saveReplica(_ replica: ReplicaRecord) async throws {
        try await database.query(
            """
            INSERT INTO model_replicas (replica_id, model_id, record, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (replica_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at
            """,
            [.text(replica.replicaId), .text(replica.modelId), .text(try SQLStateStore.json(replica)), .double(Date().timeIntervalSince1970)]
        )
        await coordination.publish(StateChange(kind: .replica, id: replica.modelId))
    }

    /// Removes a replica record, if there is one.
    public func deleteReplica(id: String) async throws {
        let rows = try await database.query("DELETE FROM model_replicas WHERE replica_id = ? RETURNING model_id", [.text(id)])
        if let modelId = rows.first?["model_id"].string {
            await coordination.publish(StateChange(kind: .replica, id: modelId))
        }
    }
}
