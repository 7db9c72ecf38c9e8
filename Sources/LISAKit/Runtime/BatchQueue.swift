import Synchronization

/// A bounded buffer that a background writer drains in batches: producers only append
/// (past `capacity` the oldest go first, and are counted), and the writer waits for the
/// next batch — an interval, or sooner when `wakeAt` elements wait.
///
/// Usage records and trace spans both go out this way, off the request path.
final class BatchQueue<Element: Sendable>: Sendable {
    private struct State {
        var elements: [Element] = []
        var dropped = 0
        var wake: CheckedContinuation<Void, Never>?
    }

    let capacity: Int
    let wakeAt: Int
    private let state = Mutex(State())

    init(capacity: Int, wakeAt: Int) {
        self.capacity = max(capacity, 1)
        self.wakeAt = max(min(wakeAt, capacity), 1)
    }

    /// Queues one element; wakes the writer when a batch is ready.
    func append(_ element: Element) {
        let wake = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.elements.append(element)
            Self.trim(&state, to: capacity)
            guard state.elements.count >= wakeAt else { return nil }
            defer { state.wake = nil }
            return state.wake
        }
        wake?.resume()
    }

    /// Everything queued, oldest first; the queue is empty after.
    func takeAll() -> [Element] {
        state.withLock { state in
            defer { state.elements = [] }
            return state.elements
        }
    }

    /// Up to `limit` of the oldest elements.
    func take(upTo limit: Int) -> [Element] {
        state.withLock { state in
            let batch = Array(state.elements.prefix(limit))
            state.elements.removeFirst(batch.count)
            return batch
        }
    }

    /// Puts a batch that could not be written back in front of what came since.
    func putBack(_ batch: [Element]) {
        state.withLock { state in
            state.elements = batch + state.elements
            Self.trim(&state, to: capacity)
        }
    }

    /// Elements waiting.
    var count: Int { state.withLock { $0.elements.count } }

    /// Elements dropped because the queue was full.
    var dropped: Int { state.withLock { $0.dropped } }

    private static func trim(_ state: inout State, to capacity: Int) {
        guard state.elements.count > capacity else { return }
        let excess = state.elements.count - capacity
        state.elements.removeFirst(excess)
        state.dropped += excess
    }

    /// Returns after `interval`, or sooner when `wakeAt` elements wait or the task is cancelled.
    func waitForBatch(interval: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await EventLoopTimer.sleep(for: interval) }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let ready = self.state.withLock { state -> Bool in
                            if state.elements.count >= self.wakeAt || Task.isCancelled { return true }
                            state.wake = continuation
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    let wake = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                        defer { state.wake = nil }
                        return state.wake
                    }
                    wake?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
