public import Hummingbird
public import LISAKit
public import NIOCore

/// What LISA's routes need from a request context: the connection it came in on (so upstream
/// work is cancelled when the client goes away), the request id and the authenticated principal.
///
/// Conform your own Hummingbird context to mount ``LISARoutes`` in an existing app: store
/// `source.channel` in `init(source:)` and add the two stored properties.
public protocol LISARoutesContext: RequestContext {
    /// The client connection; `nil` where there is none (for example in router tests).
    var channel: (any Channel)? { get }
    /// The request id ``RequestIDMiddleware`` assigned (kept here rather than in logger
    /// metadata, which is costly to change per request).
    var requestID: String? { get set }
    /// Who is making the request, set by ``AuthenticationMiddleware``.
    var principal: Principal? { get set }
}

/// The request context LISAServe uses.
public struct LISARequestContext: LISARoutesContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?
    public var requestID: String?
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

extension LISARoutesContext {
    /// Runs `operation`, cancelling it as soon as the client's connection closes.
    ///
    /// Unlike consuming the request stream, this keeps the connection reusable
    /// (keep-alive) when the client stays.
    public func cancellingWhenClientLeaves<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let channel else { return try await operation() }
        let task = Task(executorPreference: channel.taskExecutorHere) { try await operation() }
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

extension Channel {
    /// An executor on this channel's event loop when the caller runs there (LISAServe pins each
    /// connection's task to its loop), so a task started for the request stays on that thread;
    /// `nil` (the concurrency pool) otherwise.
    var taskExecutorHere: (any TaskExecutor)? {
        eventLoop.inEventLoop ? EventLoopExecutor(eventLoop) : nil
    }
}
