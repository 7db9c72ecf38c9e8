import Foundation
import Logging

extension LISARuntime {
    /// An online snapshot of this runtime's embedded state (``StateBackup``), to stream as
    /// one archive and then ``StateBackup/remove()``.
    ///
    /// Throws `409 state_in_postgresql` when the state is in PostgreSQL (back that up with
    /// `pg_dump`; see Documentation/Operations.md), `409 backup_in_progress` while another
    /// backup runs.
    public func backup(timeLimit: Duration = .seconds(600), logger: Logger) async throws -> StateBackup {
        guard configuration.databaseURL == nil, !store.isShared else {
            throw LISAError.conflict(
                "This LISA keeps its state in PostgreSQL: back it up with pg_dump -Fc and check a restore with"
                    + " LISAServe --check-database (Documentation/Operations.md, Backup and restore).",
                reason: "state_in_postgresql"
            )
        }
        return try await StateBackup.make(
            dataDirectory: configuration.dataDirectory, schemaVersion: SQLStateStore.schemaVersion, timeLimit: timeLimit, logger: logger
        )
    }
}
