import Hummingbird
import NIOCore

/// A request context that knows the connection it came in on, so LISA can cancel upstream
/// work when the client goes away.
///
/// Conform your own Hummingbird context to mount ``LISARoutes`` in an existing app:
/// store `source.channel` in `init(source:)` and return it here.
public protocol ConnectionAwareRequestContext: RequestContext {
    /// The client connection; `nil` where there is none (for example in router tests).
    var channel: (any Channel)? { get }
    /// The request id ``RequestIDMiddleware`` assigned (kept here rather than in logger
    /// metadata, which is costly to change per request).
    var requestID: String? { get set }
}

/// The request context LISAServe uses.
public struct LISARequestContext: ConnectionAwareRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?
    public var requestID: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

extension ConnectionAwareRequestContext {
    /// Runs `operation`, cancelling it as soon as the client's connection closes.
    ///
    /// Unlike consuming the request stream, this keeps the connection reusable
    /// (keep-alive) when the client stays.
    public func cancellingWhenClientLeaves<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let channel else { return try await operation() }
        let task = Task { try await operation() }
        let watch = ConnectionWatch.of(channel)
        guard let token = watch.register({ task.cancel() }) else {
            task.cancel()
            return try await task.value
        }
        defer { watch.unregister(token) }
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }
}
