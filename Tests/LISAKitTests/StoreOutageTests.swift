import Foundation
import Synchronization
import Testing

@testable import LISAKit

@Suite("State store outages: deadlines and the token cache")
struct StoreOutageTests {
    struct Late: Error {}

    /// An operation that ignores cancellation and finishes only when the test opens it.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?, finished: Bool)>((false, nil, false))

        func wait() async {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            state.withLock { $0.finished = true }
        }

        func open() {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.open = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }

        var finished: Bool { state.withLock { $0.finished } }
    }

    @Test("a deadline answers for an operation that ignores cancellation (a query on a dead connection)")
    func deadline() async throws {
        let gate = Gate()
        await #expect(throws: Late.self) {
            try await withDeadline(.milliseconds(100), timedOut: { Late() }) {
                await gate.wait()
                return 1
            }
        }
        #expect(!gate.finished, "the caller had its answer while the operation still ran")
        gate.open()
        #expect(try await withDeadline(.seconds(120), timedOut: { Late() }) { 42 } == 42)

        let second = Gate()
        let task = Task {
            try await withDeadline(.seconds(120), timedOut: { Late() }) {
                await second.wait()
                return 1
            }
        }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
        #expect(!second.finished, "cancelling the caller does not wait for the operation either")
        second.open()
    }

    static func token(_ id: String) -> APIToken {
        APIToken(
            id: id, name: "n", username: "u", groups: [], createdBy: "admin", createdAt: Date(), expiresAt: nil, isSystemToken: false,
            tokenHash: APIToken.hash("secret-\(id)")
        )
    }

    @Test("cached tokens: fresh, then stale (read again; honoured through an outage), then gone")
    func freshness() {
        let cache = TokenCache(settings: .init(freshSeconds: 30, outageSeconds: 900))
        let token = Self.token("t1")
        let (missing, generation) = cache.lookup(hash: "h", at: 0)
        guard case .missing = missing else { Issue.record("empty cache"); return }
        cache.insert(token, hash: "h", generation: generation, at: 0)
        guard case .fresh(let fresh) = cache.lookup(hash: "h", at: 10).0, fresh == token else { Issue.record("fresh"); return }
        guard case .stale = cache.lookup(hash: "h", at: 31).0 else { Issue.record("stale after 30 s"); return }
        guard case .missing = cache.lookup(hash: "h", at: 901).0 else { Issue.record("gone after the grace"); return }
        #expect(cache.count == 0)
    }

    @Test("revocation wins: a read that started before it cannot put the token back; a resync forces a read")
    func revocation() {
        let cache = TokenCache()
        let token = Self.token("t1")
        let now = TokenCache.now
        let (_, before) = cache.lookup(hash: "h", at: now)
        cache.revoke(tokenID: "t1")  // lands while the store read is in flight
        cache.insert(token, hash: "h", generation: before, at: now)
        guard case .missing = cache.lookup(hash: "h", at: now).0 else { Issue.record("a stale read re-cached a revoked token"); return }

        let (_, generation) = cache.lookup(hash: "h", at: now)
        cache.insert(token, hash: "h", generation: generation, at: now)
        guard case .fresh = cache.lookup(hash: "h", at: now).0 else { Issue.record("cached"); return }
        cache.revalidateAll()
        guard case .stale = cache.lookup(hash: "h", at: now).0 else { Issue.record("must be read again after a resync"); return }
        cache.revoke(tokenID: "t1")
        guard case .missing = cache.lookup(hash: "h", at: now).0 else { Issue.record("revoked"); return }
    }

    @Test("a revocation published by another process reaches the cache through the change feed")
    func followsChanges() async throws {
        let store = try await SQLStateStore.inMemory()
        let cache = TokenCache(following: store.tokens)
        let running = Task { try await cache.run() }
        let token = Self.token("t9")
        try await waitUntil(timeout: .seconds(120)) {
            // The cache subscribes when it starts: publish until it has seen one.
            let (_, generation) = cache.lookup(hash: "h")
            cache.insert(token, hash: "h", generation: generation)
            await store.coordination.publish(StateChange(kind: .token, id: "t9"))
            try await Task.sleep(for: .milliseconds(20))
            if case .missing = cache.lookup(hash: "h").0 { return true }
            return false
        }
        running.cancel()
        try? await store.close()
    }
}
