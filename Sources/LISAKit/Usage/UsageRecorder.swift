import Foundation
import Logging
public import ServiceLifecycle
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
    public let settings: UsageConfiguration
    private let store: UsageStore
    private let logger: Logger
    private let queue: BatchQueue<UsageRecord>

    init(settings: UsageConfiguration, store: UsageStore, logger: Logger) {
        self.settings = settings
        self.store = store
        self.logger = logger
        self.queue = BatchQueue(capacity: settings.maxBuffered, wakeAt: 500)
    }

    /// Queues one record.
    public func record(_ record: UsageRecord) {
        queue.append(record)
    }

    /// Records waiting to be written.
    public var pendingRecords: Int { queue.count }

    /// Records dropped because the store could not take them in time.
    public var droppedRecords: Int { queue.dropped }

    /// Writes what is buffered now; returns how many were written. On failure the records
    /// go back to the front of the buffer.
    @discardableResult
    public func flush() async throws -> Int {
        let batch = queue.takeAll()
        guard !batch.isEmpty else { return 0 }
        do {
            try await store.insert(batch)
            return batch.count
        } catch {
            queue.putBack(batch)
            throw error
        }
    }
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastHousekeeping = ContinuousClock.now - .seconds(3600)
            var lastSweep = ContinuousClock.now
            var failing = false
            while !Task.isCancelled {
                await self.queue.waitForBatch(interval: .seconds(clamping: max(self.settings.flushIntervalSeconds, 0.05)))
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
                        let removed = try await self.store.delete(before: cutoff)
                        if removed > 0 { self.logger.info("usage records past retention removed", metadata: ["lisa.count": "\(removed)"]) }
                    } catch {
                        self.logger.debug("removing old usage records failed", metadata: ["lisa.error": "\(error)"])
                    }
                }
            }
        }
        // Shutting down: what is buffered is written now, within a few seconds.
        do {
            try await withDeadline(
                .seconds(5), timedOut: { LISAError.stateStoreUnavailable("The state store did not take the usage records in 5 s.") }
            ) {
                try await self.flush()
            }
        } catch {
            let lost = queue.count
            if lost > 0 { logger.warning("usage records not written at shutdown", metadata: ["lisa.count": "\(lost)", "lisa.error": "\(error)"]) }
        }
    }
}
