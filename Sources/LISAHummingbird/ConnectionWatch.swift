import NIOCore
import Synchronization

/// Cancellation callbacks of the requests in flight on one client connection, fired once
/// when the connection closes.
///
/// One `closeFuture` callback is registered per connection, not per request, so a
/// keep-alive connection that serves millions of requests holds nothing per finished request.
final class ConnectionWatch: Sendable {
    private struct State {
        var closed = false
        var nextToken = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Registers `callback`; returns `nil` (without keeping it) when the connection is already closed.
    func register(_ callback: @escaping @Sendable () -> Void) -> Int? {
        state.withLock { state in
            guard !state.closed else { return nil }
            let token = state.nextToken
            state.nextToken += 1
            state.callbacks[token] = callback
            return token
        }
    }

    func unregister(_ token: Int) {
        _ = state.withLock { $0.callbacks.removeValue(forKey: token) }
    }

    fileprivate func close() {
        let callbacks = state.withLock { state in
            state.closed = true
            defer { state.callbacks = [:] }
            return Array(state.callbacks.values)
        }
        for callback in callbacks { callback() }
    }

    private static let watches = Mutex<[ObjectIdentifier: ConnectionWatch]>([:])

    /// The watch of `channel`, created (with its one close callback) on first use.
    static func of(_ channel: any Channel) -> ConnectionWatch {
        let key = ObjectIdentifier(channel)
        let (watch, isNew) = watches.withLock { watches in
            if let watch = watches[key] { return (watch, false) }
            let watch = ConnectionWatch()
            watches[key] = watch
            return (watch, true)
        }
        if isNew {
            channel.closeFuture.whenComplete { _ in
                _ = watches.withLock { $0.removeValue(forKey: key) }
                watch.close()
            }
        }
        return watch
    }
}
