import Foundation
public import Logging

extension LISARuntime {
    /// An online snapshot of this runtime's embedded state (``StateBackup``), to stream as
    /// one archive and then ``StateBackup/remove()``.
    ///
    /// Throws `409 state_in_postgresql` when the state is in PostgreSQL (back that up with
    /// `pg_dump`; see Documentation/Operations.md), `409 backup_in_progress` while another
    /// backup runs.
    /// The backup is logged at `notice` with who took it (`caller`): an archive holds all
    /// of the state.
    public func backup(by caller: Principal? = nil, timeLimit: Duration = .seconds(600), logger: Logger) async throws -> StateBackup {
        guard configuration.databaseURL == nil, !store.isShared else {
            throw LISAError.conflict(
                "This LISA keeps its state in PostgreSQL: back it up with pg_dump -Fc and check a restore with"
                    + " LISAServe --check-database (Documentation/Operations.md, Backup and restore).",
                reason: "state_in_postgresql"
            )
        }
        let backup = try await StateBackup.make(
            dataDirectory: configuration.dataDirectory, schemaVersion: SQLStateStore.schemaVersion, timeLimit: timeLimit, logger: logger
        )
        logger.notice(
            "state backup taken",
            metadata: [
                "lisa.principal": "\(caller?.username ?? "(in process)")", "lisa.backup.bytes": "\(backup.size)",
                "lisa.backup.files": "\(backup.manifest.files.count)",
            ]
        )
        return backup
    }
}
