public import CoreMetrics
public import Logging
public import ServiceLifecycle
public import Tracing

extension LISARuntime: Service {
    /// Runs the runtime's long-lived parts (``services``: health probes, the models service,
    /// ingestion, usage records, key refresh, trace export) until graceful shutdown or
    /// cancellation. After a graceful shutdown it closes what the runtime opened
    /// (``shutdown()``): in a `ServiceGroup`, list the runtime before the servers that call it,
    /// so it stops after them. When it is cancelled or a part fails, the group is cancelling
    /// everything at once and requests may still be finishing against the store: it leaves the
    /// closing to its owner's ``shutdown()`` after the group has ended (as ``withRuntime(configuration:store:provider:metrics:tracer:clock:logger:_:)``
    /// and LISAServer do).
    public func run() async throws {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: services.map { .init(service: $0) }, logger: logger)
        )
        do {
            try await group.run()
        } catch is CancellationError {
            return  // cancelled: the usual way a group ends a service; the owner closes
        }
        // Only a graceful end closes: a part that returned on its own ends the group while the
        // servers that use the runtime may still be running.
        guard Task.isShuttingDownGracefully, !Task.isCancelled else { return }
        try await closeInOwnTask()
    }

    /// ``shutdown()`` in a task of its own: closing waits for the store's listener and locks,
    /// which a cancelled task would cut short, leaving the store open.
    func closeInOwnTask() async throws {
        try await Task { try await self.shutdown() }.value
    }

    /// Begins the gateway's drain when graceful shutdown starts: streams still open near the
    /// end of `shutdownGracePeriod` end with an error event in their dialect rather than a
    /// bare close. List it after your HTTP server in the `ServiceGroup` (the group shuts
    /// services down last to first, so the drain begins before the server waits for its
    /// requests).
    public var streamDrain: some Service {
        StreamDrain(drain: gateway.drain, grace: configuration.shutdownGracePeriod)
    }

    /// Builds a runtime, runs its parts while `body` uses it, then stops them and closes what
    /// it opened, however `body` ends: LISA in process, without a server.
    ///
    /// ```swift
    /// let answer = try await LISARuntime.withRuntime(configuration: configuration, logger: logger) { runtime in
    ///     try await runtime.chatCompletion(request)
    /// }
    /// ```
    public static func withRuntime<T: Sendable>(
        configuration: LISAConfiguration, store: SQLStateStore? = nil, provider: (any InferenceProvider)? = nil,
        metrics: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil, clock: AnyClock = .continuous, logger: Logger,
        _ body: (LISARuntime) async throws -> T
    ) async throws -> T {
        let runtime = try await LISARuntime(
            configuration: configuration, store: store, provider: provider, metrics: metrics, tracer: tracer, clock: clock, logger: logger
        )
        let running = Task { try await runtime.run() }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(runtime))
        } catch {
            result = .failure(error)
        }
        running.cancel()
        _ = await running.result
        try await runtime.closeInOwnTask()
        return try result.get()
    }
}

/// Begins a drain signal's deadline when graceful shutdown starts, just inside the grace
/// period (the last fifth of it, at most 1 s, is left to write the error events).
struct StreamDrain: Service {
    let drain: DrainSignal
    let grace: Duration

    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled: the group is going away without a graceful phase
        }
        let margin = min(Duration.seconds(1), grace / 5)
        drain.begin(deadline: .now + grace - margin)
    }
}
