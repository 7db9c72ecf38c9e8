import NIOCore
import NIOPosix

/// Timers on SwiftNIO's event loops, for timeouts on the request path.
///
/// `Task.sleep` is not used there: on Linux a cancelled sleep leaves its timer queued until
/// the original deadline, so a 600 s timeout that is cancelled after 1 ms per request holds
/// memory for ten minutes (seen in the benchmark as RSS growing with request count). NIO's
/// scheduled tasks are removed from the timer heap when cancelled.
enum EventLoopTimer {
    /// Sleeps until `deadline`; throws `CancellationError` when the calling task is cancelled first.
    static func sleep(until deadline: NIODeadline, on eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) async throws {
        let scheduled = eventLoop.scheduleTask(deadline: deadline) {}
        try await withTaskCancellationHandler {
            do {
                try await scheduled.futureResult.get()
            } catch {
                throw CancellationError()
            }
        } onCancel: {
            scheduled.cancel()
        }
    }

    /// Sleeps for `duration` (see ``sleep(until:on:)``).
    static func sleep(for duration: Duration) async throws {
        try await sleep(until: .now() + .init(duration))
    }
}
