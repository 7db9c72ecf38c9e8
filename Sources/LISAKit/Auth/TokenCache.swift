import Foundation
public import ServiceLifecycle
import Synchronization

/// API tokens verified against the state store, kept briefly so that an inference request
/// does not read the store every time, and keeps working while the store is unreachable.
///
/// - A cached token is used without asking the store for ``Configuration/freshSeconds`` (30 s by
///   default) after it was read.
/// - After that it is read again; when the store cannot answer (down, or past its call
///   deadline) the cached token is still honoured for ``Configuration/outageSeconds`` (15 min)
///   after it was last read, so a database outage does not stop inference.
/// - Revocation stays immediate: a revoked token is dropped here by the replica that
///   revoked it before the call returns, and by every other replica when the change feed
///   (PostgreSQL `NOTIFY`) delivers the change, within milliseconds. When the feed may
///   have missed changes (its connection was lost), every entry must be read again before
///   it is used on fresh terms — so the longest a revoked token can outlive its revocation
///   on another replica is ``Configuration/freshSeconds``, and only while that replica's feed is
///   down.
///
/// Expiry is checked on every use. Run it as a `Service` (``LISARuntime/services`` does)
/// to follow the store's changes.
public final class TokenCache: Service, Sendable {
    public struct Configuration: Sendable, Hashable {
        /// How long a token read from the store is used without reading it again; 0 turns
        /// the cache off (every request reads the store, and an outage stops token sign-ins).
        public var freshSeconds: Double = 30
        /// How long after its last read a token is still honoured when the store cannot be read.
        public var outageSeconds: Double = 900
        /// The most tokens kept.
        public var capacity: Int = 50_000

        public init(freshSeconds: Double = 30, outageSeconds: Double = 900, capacity: Int = 50_000) {
            self.freshSeconds = freshSeconds
            self.outageSeconds = outageSeconds
            self.capacity = capacity
        }
    }

    private struct Entry {
        var token: APIToken
        /// When it was last read from the store (uptime seconds).
        var readAt: Double
        /// Set when the change feed may have missed a revocation: read it again first.
        var mustRevalidate: Bool
    }

    public let settings: Configuration
    private let tokens: TokenStore?
    private struct State {
        var entries: [String: Entry] = [:]
        /// Bumped by every revocation, so a read that started before one cannot put back
        /// what it revoked.
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Until when (uptime seconds) stale tokens are honoured without asking the store: it
    /// just failed to answer, and a request must not wait for it again and again.
    private let storeDownUntil = Mutex<Double>(0)

    /// Whether the store failed within the last few seconds.
    func storeRecentlyFailed(at now: Double = TokenCache.now) -> Bool { storeDownUntil.withLock { $0 } > now }

    /// The store did not answer: for 5 s, stale tokens are used without asking it.
    func storeFailed(at now: Double = TokenCache.now) { storeDownUntil.withLock { $0 = now + 5 } }

    /// A cache that follows the changes of `tokens` (on every process sharing the store)
    /// while it runs as a service.
    public init(settings: Configuration = Configuration(), following tokens: TokenStore? = nil) {
        self.settings = settings
        self.tokens = tokens
    }

    static var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    enum Lookup {
        /// Use it.
        case fresh(APIToken)
        /// Read the store; fall back to this token if the store cannot answer.
        case stale(APIToken)
        case missing
    }

    /// What is cached for `hash`, and the generation to hand back to ``insert(_:hash:generation:at:)``
    /// after reading the store.
    func lookup(hash: String, at now: Double = TokenCache.now) -> (Lookup, generation: UInt64) {
        state.withLock { state in
            guard settings.freshSeconds > 0, let entry = state.entries[hash] else { return (.missing, state.generation) }
            let age = now - entry.readAt
            if !entry.mustRevalidate, age < settings.freshSeconds { return (.fresh(entry.token), state.generation) }
            if age < settings.outageSeconds { return (.stale(entry.token), state.generation) }
            state.entries[hash] = nil
            return (.missing, state.generation)
        }
    }

    /// Keeps a token just read from the store, unless something was revoked since the
    /// lookup that returned `generation` (the read may predate the revocation).
    func insert(_ token: APIToken, hash: String, generation: UInt64, at now: Double = TokenCache.now) {
        guard settings.freshSeconds > 0 else { return }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= settings.capacity, state.entries[hash] == nil {
                state.entries = state.entries.filter { now - $0.value.readAt < settings.freshSeconds }
                if state.entries.count >= settings.capacity { state.entries.removeAll(keepingCapacity: true) }
            }
            state.entries[hash] = Entry(token: token, readAt: now, mustRevalidate: false)
        }
    }

    /// Forgets the token with this public id (revoked, or changed).
    public func revoke(tokenID: String) {
        state.withLock { state in
            state.generation &+= 1
            state.entries = state.entries.filter { $0.value.token.id != tokenID }
        }
    }

    /// Forgets one token by its hash (the store no longer has it).
    func remove(hash: String) {
        _ = state.withLock { $0.entries.removeValue(forKey: hash) }
    }

    /// Every entry must be read from the store again before it is used on fresh terms.
    public func revalidateAll() {
        state.withLock { state in
            state.generation &+= 1
            for key in state.entries.keys { state.entries[key]?.mustRevalidate = true }
        }
    }

    /// How many tokens are kept (tests, metrics).
    public var count: Int { state.withLock { $0.entries.count } }

    /// Follows the store's changes until cancelled or shut down.
    public func run() async throws {
        guard let tokens else { return }
        let changes = tokens.coordination.changes()
        await cancelWhenGracefulShutdown {
            for await change in changes {
                switch change.kind {
                case .token: self.revoke(tokenID: change.id)
                case .resync: self.revalidateAll()
                default: break
                }
            }
        }
    }
}
