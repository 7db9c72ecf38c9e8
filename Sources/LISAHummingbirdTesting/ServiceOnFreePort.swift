import Logging
import ServiceLifecycle

/// Runs the service `make` builds (told to listen on port 0) until stopped; returns the
/// `http://127.0.0.1:PORT` it reported and a function that shuts it down gracefully.
func runOnFreePort<S: Service>(
    label: String, _ make: (@escaping @Sendable (Int) -> Void) -> S, afterStop: @escaping @Sendable () -> Void = {}
) async -> (url: String, stop: @Sendable () async -> Void) {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = make { continuation.yield($0) }
    let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: label)))
    let task = Task { try await serviceGroup.run() }
    var iterator = ports.makeAsyncIterator()
    let port = await iterator.next() ?? 0
    return (
        "http://127.0.0.1:\(port)",
        {
            await serviceGroup.triggerGracefulShutdown()
            _ = try? await task.value
            afterStop()
        }
    )
}
