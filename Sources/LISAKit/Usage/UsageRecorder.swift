import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Writes usage records to the state store off the request path: a call only appends to a
/// buffer; the service writes the buffer in one batch every `flushIntervalSeconds` (sooner
/// when 500 are waiting), keeps it through a store outage (the oldest dropped past
/// `maxBuffered`, and counted), and writes what is left on shutdown. It also forgets records
/// past their retention and releases budget reservations whose process died.
///
/// A process that is killed loses at most the records of its last flush interval; budget
/// counters are written on the request path and lose nothing.
public final class UsageRecorder: Service, Sendable {
    private struct Buffer {
        var records: [UsageRecord] = []
        var dropped = 0
        var wake: CheckedContinuation<Void, Never>?
    }

    public let settings: UsageSettings
    private let store: any StateStore
    private let logger: Logger
    private let buffer = Mutex(Buffer())

    init(settings: UsageSettings, store: any StateStore, logger: Logger) {
        self.settings = settings
        self.store = store
        self.logger = logger
    }

    /// Queues one record.
    public func record(_ record: UsageRecord) {
        let wake = buffer.withLock { buffer -> CheckedContinuation<Void, Never>? in
            buffer.records.append(record)
            if buffer.records.count > settings.maxBuffered {
                let excess = buffer.records.count - settings.maxBuffered
                buffer.records.removeFirst(excess)
                buffer.dropped += excess
            }
            guard buffer.records.count >= 500 else { return nil }
            defer { buffer.wake = nil }
            return buffer.wake
        }
        wake?.resume()
    }

    /// Records waiting to be written.
    public var pendingRecords: Int { buffer.withLock { $0.records.count } }

    /// Records dropped because the store could not take them in time.
    public var droppedRecords: Int { buffer.withLock { $0.dropped } }

    /// Writes what is buffered now; returns how many were written. On failure the records
    /// go back to the front of the buffer.
    @discardableResult
    public func flush() async throws -> Int {
        let batch = buffer.withLock { buffer -> [UsageRecord] in
            defer { buffer.records = [] }
            return buffer.records
        }
        guard !batch.isEmpty else { return 0 }
        do {
            try await store.insertUsage(batch)
            return batch.count
        } catch {
            buffer.withLock { buffer in
                buffer.records = batch + buffer.records
                if buffer.records.count > settings.maxBuffered {
                    let excess = buffer.records.count - settings.maxBuffered
                    buffer.records.removeFirst(excess)
                    buffer.dropped += excess
                }
            }
            throw error
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastHousekeeping = ContinuousClock.now - .seconds(3600)
            var lastSweep = ContinuousClock.now
            var failing = false
            while !Task.isCancelled {
                await self.waitForWork()
                do {
                    try await self.flush()
                    if failing { self.logger.info("usage records are written again") }
                    failing = false
                } catch {
                    if !failing {
                        self.logger.warning("writing usage records failed; they are kept and tried again", metadata: ["lisa.error": "\(error)"])
                    }
                    failing = true
                }
                let now = ContinuousClock.now
                if now - lastSweep >= .seconds(30) {
                    lastSweep = now
                    do {
                        let released = try await self.store.releaseExpiredReservations(before: Date().timeIntervalSince1970)
                        if released > 0 { self.logger.info("released budget reservations nobody settled", metadata: ["lisa.count": "\(released)"]) }
                    } catch {
                        self.logger.debug("releasing expired budget reservations failed", metadata: ["lisa.error": "\(error)"])
                    }
                }
                if now - lastHousekeeping >= .seconds(3600) {
                    lastHousekeeping = now
                    let cutoff = Date().addingTimeInterval(-Double(self.settings.retentionDays) * 86400)
                    do {
                        let removed = try await self.store.deleteUsage(before: cutoff)
                        if removed > 0 { self.logger.info("usage records past retention removed", metadata: ["lisa.count": "\(removed)"]) }
                    } catch {
                        self.logger.debug("removing old usage records failed", metadata: ["lisa.error": "\(error)"])
                    }
                }
            }
        }
        // Shutting down: what is buffered is written now, within a few seconds.
        do {
            try await withDeadline(.seconds(5), timedOut: { LISAError.stateStoreUnavailable("The state store did not take the usage records in 5 s.") }) {
                try await self.flush()
            }
        } catch {
            let lost = buffer.withLock { $0.records.count }
            if lost > 0 { logger.warning("usage records not written at shutdown", metadata: ["lisa.count": "\(lost)", "lisa.error": "\(error)"]) }
        }
    }

    /// Returns after the flush interval, or sooner when 500 records wait or the task is cancelled.
    private func waitForWork() async {
        let interval = Duration.milliseconds(Int64(max(settings.flushIntervalSeconds, 0.05) * 1000))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await EventLoopTimer.sleep(for: interval) }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let ready = self.buffer.withLock { buffer -> Bool in
                            if buffer.records.count >= 500 || Task.isCancelled { return true }
                            buffer.wake = continuation
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    let wake = self.buffer.withLock { buffer -> CheckedContinuation<Void, Never>? in
                        defer { buffer.wake = nil }
                        return buffer.wake
                    }
                    wake?.resume()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
