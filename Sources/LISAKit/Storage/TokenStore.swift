import Foundation

/// The API tokens: their hashes and records, never their secrets.
///
/// Inserting or deleting a token publishes a ``StateChange`` (`.token`) through the
/// store's ``StateCoordination``, so every process's token cache drops it. Get one from
/// ``SQLStateStore/tokens``; it is safe to use concurrently.
public struct TokenStore: Sendable {
    let database: any StateDatabase
    let coordination: StateCoordination

    /// Stores a new API token (its hash, never its secret).
    public func insert(_ token: APIToken) async throws {
        try await database.query(
            "INSERT INTO api_tokens (id, token_hash, username, record, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                .text(token.id), .text(token.tokenHash), .text(token.username), .text(try SQLStateStore.json(token)),
                .double(token.createdAt.timeIntervalSince1970),
            ]
        )
        await coordination.publish(StateChange(kind: .token, id: token.id))
    }

    /// The token whose secret hashes to `hash`, or `nil`.
    public func token(hash: String) async throws -> APIToken? {
        try await database.query("SELECT record FROM api_tokens WHERE token_hash = ?", [.text(hash)]).first.map {
            try SQLStateStore.decode(APIToken.self, $0["record"])
        }
    }

    /// The token with this public id, or `nil`.
    public func token(id: String) async throws -> APIToken? {
        try await database.query("SELECT record FROM api_tokens WHERE id = ?", [.text(id)]).first.map {
            try SQLStateStore.decode(APIToken.self, $0["record"])
        }
    }

    /// Every token, or those of one user, oldest first.
    public func tokens(username: String?) async throws -> [APIToken] {
        let rows =
            if let username {
                try await database.query("SELECT record FROM api_tokens WHERE username = ? ORDER BY created_at, id", [.text(username)])
            } else {
                try await database.query("SELECT record FROM api_tokens ORDER BY created_at, id")
            }
        return try rows.map { try SQLStateStore.decode(APIToken.self, $0["record"]) }
    }

    /// Removes a token; returns whether it existed.
    @discardableResult
    public func delete(id: String) async throws -> Bool {
        let deleted = !(try await database.query("DELETE FROM api_tokens WHERE id = ? RETURNING id", [.text(id)])).isEmpty
        if deleted { await coordination.publish(StateChange(kind: .token, id: id)) }
        return deleted
    }
}
