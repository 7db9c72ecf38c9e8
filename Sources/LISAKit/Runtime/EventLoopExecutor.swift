public import NIOCore

/// A Swift concurrency task executor that runs jobs on one SwiftNIO event loop.
///
/// Code that runs with it as its preference (`withTaskExecutorPreference`) stays on the
/// loop's thread: a request handler that reads from a channel of that loop, calls an upstream
/// whose connection lives on that loop (``UpstreamHTTPClient`` picks the caller's loop) and
/// writes its answer back never hops to the concurrency pool and back. LISAServe runs each
/// HTTP/1.1 connection's task on its own channel's loop this way.
///
/// Anything that blocks the thread blocks every connection of the loop: keep long computations
/// and blocking I/O off it (actors and `Task.detached` run elsewhere).
public final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
