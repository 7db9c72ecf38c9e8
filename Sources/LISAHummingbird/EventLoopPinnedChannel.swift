import HummingbirdCore
import LISAKit
import Logging
import NIOCore

/// A child channel whose connection task runs on the channel's own event loop.
///
/// Hummingbird runs each connection's task on the Swift concurrency pool, so every request
/// hops from the event loop to a pool thread and back for each read and write. With the
/// task's executor preference set to the channel's loop, reading the request, running the
/// handler, calling the upstream (``UpstreamHTTPClient`` pools connections per loop and picks
/// the caller's) and writing the answer all happen on one thread.
struct EventLoopPinnedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopExecutor(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}
