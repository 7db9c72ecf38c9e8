import Crypto
import Foundation
public import Logging
public import NIOCore
import NIOFoundationCompat
import SQLiteNIO
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An online, consistent snapshot of the embedded state, ready to stream as one archive.
///
/// ``make(dataDirectory:schemaVersion:timeLimit:logger:)`` copies, while LISA serves:
/// `lisa.sqlite` (state, waiting uploads included: they are blobs in it), then
/// `vectors/vectors.sqlite` (the embedded vector store), each with SQLite's `VACUUM INTO`
/// on a connection of its own (a read transaction: one consistent point in time, writers
/// go on); then the files of `uploads/` (uploads queued by versions that kept them there).
/// State is copied before vectors because ingestion writes a document's vectors before its
/// record: every document the snapshot's state knows has its vectors in the snapshot.
///
/// The copies lie in `.backup-<id>` inside the data directory (mode 0700) until
/// ``remove()`` (or deinit); a crashed backup's directory is removed by the next one. One
/// backup runs at a time per data directory (an `flock` on `.backup.lock`, across
/// processes too); a second is refused with `409 backup_in_progress`.
public final class StateBackup: Sendable {
    /// What the archive holds.
    public let manifest: BackupManifest
    /// The archive's exact size in bytes.
    public let size: Int64
    /// A file name for the archive: `lisa-backup-<UTC time>.tar`.
    public let fileName: String
    private let directory: URL
    private let files: [URL]
    private let manifestBytes: [UInt8]
    private let lock: Mutex<Int32?>

    private init(manifest: BackupManifest, manifestBytes: [UInt8], directory: URL, files: [URL], lockDescriptor: Int32) {
        self.manifest = manifest
        self.manifestBytes = manifestBytes
        self.directory = directory
        self.files = files
        self.lock = Mutex(lockDescriptor)
        var size = Int64(TarFormat.blockSize + manifestBytes.count + TarFormat.padding(after: Int64(manifestBytes.count)))
        for file in manifest.files { size += Int64(TarFormat.blockSize) + file.size + Int64(TarFormat.padding(after: file.size)) }
        self.size = size + Int64(2 * TarFormat.blockSize)
        let stamp = manifest.createdAt.replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        self.fileName = "lisa-backup-\(stamp).tar"
    }

    deinit { remove() }

    /// Snapshots the embedded state of `dataDirectory` (off the event loops). Throws
    /// `409 backup_in_progress` while another backup of it runs, and `503` when the
    /// snapshot takes longer than `timeLimit` (its files are then removed as it stops).
    public static func make(
        dataDirectory: String, schemaVersion: Int, timeLimit: Duration = .seconds(600), logger: Logger
    ) async throws -> StateBackup {
        let data = URL(fileURLWithPath: dataDirectory, isDirectory: true).standardizedFileURL
        let descriptor = open(data.appendingPathComponent(".backup.lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LISAError.internalError("Cannot open the backup lock in the data directory (errno \(errno)).")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw LISAError.conflict(
                "Another backup of this data directory is running; try again when it has finished.", reason: "backup_in_progress"
            )
        }
        let fileManager = FileManager.default
        for stale in (try? fileManager.contentsOfDirectory(atPath: data.path)) ?? [] where stale.hasPrefix(".backup-") {
            try? fileManager.removeItem(at: data.appendingPathComponent(stale))
        }
        let directory = data.appendingPathComponent(".backup-\(UUID().uuidString.lowercased().prefix(12))", isDirectory: true)
        let started = ContinuousClock.now
        let backup = try await withDeadline(
            timeLimit,
            timedOut: { LISAError.serviceUnavailable("The backup took longer than \(timeLimit) and was stopped.") },
            operation: {
                do {
                    return try await offEventLoops {
                        try await snapshot(data: data, into: directory, schemaVersion: schemaVersion, lockDescriptor: descriptor, logger: logger)
                    }
                } catch {
                    // Also when the deadline passed: the lock is held until the copy stops.
                    try? FileManager.default.removeItem(at: directory)
                    close(descriptor)
                    throw error
                }
            }
        )
        logger.info(
            "backup snapshot ready", metadata: ["lisa.backup.bytes": "\(backup.size)", "lisa.backup.duration": "\(ContinuousClock.now - started)"]
        )
        return backup
    }

    private static func snapshot(
        data: URL, into directory: URL, schemaVersion: Int, lockDescriptor: Int32, logger: Logger
    ) async throws -> StateBackup {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let state = data.appendingPathComponent("lisa.sqlite")
        guard fileManager.fileExists(atPath: state.path) else {
            throw LISAError.conflict(
                "The data directory has no lisa.sqlite: this LISA keeps no embedded state to back up.", reason: "no_embedded_state"
            )
        }
        var paths = ["lisa.sqlite"]
        try await vacuum(state, into: directory.appendingPathComponent("lisa.sqlite"), logger: logger)
        try Task.checkCancellation()
        let vectors = data.appendingPathComponent("vectors/vectors.sqlite")
        if fileManager.fileExists(atPath: vectors.path) {
            try fileManager.createDirectory(
                at: directory.appendingPathComponent("vectors"), withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700]
            )
            try await vacuum(vectors, into: directory.appendingPathComponent("vectors/vectors.sqlite"), logger: logger)
            paths.append("vectors/vectors.sqlite")
            try Task.checkCancellation()
        }
        let uploads = data.appendingPathComponent("uploads")
        let waiting = ((try? fileManager.contentsOfDirectory(atPath: uploads.path)) ?? []).sorted()
        for name in waiting where BackupPath.isSafe(name) {
            let source = uploads.appendingPathComponent(name)
            let attributes = try? fileManager.attributesOfItem(atPath: source.path)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else { continue }
            if !fileManager.fileExists(atPath: directory.appendingPathComponent("uploads").path) {
                try fileManager.createDirectory(
                    at: directory.appendingPathComponent("uploads"), withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700]
                )
            }
            do {
                try fileManager.copyItem(at: source, to: directory.appendingPathComponent("uploads/\(name)"))
                paths.append("uploads/\(name)")
            } catch {
                // Its job finished meanwhile (and removed it): nothing to keep.
                if fileManager.fileExists(atPath: source.path) { throw error }
            }
        }
        var files: [BackupManifest.File] = []
        for path in paths {
            try Task.checkCancellation()
            let url = directory.appendingPathComponent(path)
            _ = chmod(url.path, 0o600)
            let (size, digest) = try digest(of: url)
            files.append(BackupManifest.File(path: path, size: size, sha256: digest))
        }
        let manifest = BackupManifest(schemaVersion: schemaVersion, files: files)
        return StateBackup(
            manifest: manifest, manifestBytes: Array(try manifest.encoded()), directory: directory,
            files: paths.map { directory.appendingPathComponent($0) }, lockDescriptor: lockDescriptor
        )
    }

    /// A consistent copy of the SQLite database at `source`, on a connection of its own.
    private static func vacuum(_ source: URL, into target: URL, logger: Logger) async throws {
        let connection = try await SQLiteConnection.open(storage: .file(path: source.path), logger: logger)
        do {
            _ = try await connection.query("PRAGMA busy_timeout=5000")
            _ = try await connection.query("VACUUM INTO ?", [.text(target.path)])
            try await connection.close()
        } catch {
            // Closed from a task of its own: this one may be cancelled (the time limit), and a
            // connection left unclosed is a leaked handle (and a trap in SQLiteNIO's debug builds).
            await Task { try? await connection.close() }.value
            throw error
        }
    }

    private static func digest(of url: URL) throws -> (Int64, String) {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw LISAError.internalError("Cannot read \(url.path).") }
        defer { try? handle.close() }
        var hash = SHA256()
        var size: Int64 = 0
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
            hash.update(data: piece)
            size += Int64(piece.count)
        }
        return (size, hash.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// Writes the archive to `send` in pieces of up to 1 MiB: the manifest, each file,
    /// the end. Reads the files off the event loops, and removes them (``remove()``) before
    /// the end is sent.
    ///
    /// A client that takes no piece for `stallLimit` (it stopped reading but keeps the
    /// connection) would hold the lock and the snapshot's disk space for ever: the current
    /// task is then cancelled (a suspended `send` of a channel writer throws), the snapshot
    /// removed, and this throws `503`. The limit is measured on `clock`.
    public func write(
        stallLimit: Duration = .seconds(60), clock: AnyClock = .continuous, into send: (ByteBuffer) async throws -> Void
    ) async throws {
        let progress = StreamProgress()
        // Only used while this task waits for the group below, so never after it ended.
        let current = withUnsafeCurrentTask { $0.map(CurrentTask.init) }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let current {
                    group.addTask {
                        var seen = -1
                        while true {
                            try await clock.sleep(for: stallLimit)
                            let sent = progress.sent.load(ordering: .relaxed)
                            if sent == seen {
                                progress.stalled.store(true, ordering: .relaxed)
                                current.task.cancel()
                                return
                            }
                            seen = sent
                        }
                    }
                }
                defer { group.cancelAll() }
                try await writeAll { piece in
                    try await send(piece)
                    progress.sent.add(1, ordering: .relaxed)
                }
            }
        } catch {
            remove()
            if progress.stalled.load(ordering: .relaxed) {
                throw LISAError.serviceUnavailable("The backup's client took nothing for \(stallLimit); the backup was stopped.")
            }
            throw error
        }
    }

    private func writeAll(into send: (ByteBuffer) async throws -> Void) async throws {
        let manifestHeader = try TarFormat.header(name: BackupManifest.fileName, size: Int64(manifestBytes.count))
        var head = ByteBuffer(bytes: manifestHeader)
        head.writeBytes(manifestBytes)
        head.writeRepeatingByte(0, count: TarFormat.padding(after: Int64(manifestBytes.count)))
        try await send(head)
        for (file, url) in zip(manifest.files, files) {
            try await send(ByteBuffer(bytes: try TarFormat.header(name: file.path, size: file.size)))
            guard let handle = FileHandle(forReadingAtPath: url.path) else { throw LISAError.internalError("The backup's \(file.path) is gone.") }
            defer { try? handle.close() }
            var left = file.size
            while left > 0 {
                let count = Int(min(left, 1 << 20))
                let piece = try await offEventLoops { try handle.read(upToCount: count) ?? Data() }
                guard !piece.isEmpty else { throw LISAError.internalError("The backup's \(file.path) is shorter than when it was copied.") }
                left -= Int64(piece.count)
                try await send(ByteBuffer(data: piece))
            }
            let padding = TarFormat.padding(after: file.size)
            if padding > 0 { try await send(ByteBuffer(repeating: 0, count: padding)) }
        }
        // Every file is read: release the snapshot before the last bytes go out, so a client
        // that starts the next backup as soon as this one arrived is not refused.
        remove()
        try await send(ByteBuffer(bytes: TarFormat.end))
    }

    /// Removes the snapshot's files and lets the next backup start. Idempotent.
    public func remove() {
        lock.withLock { descriptor in
            guard let held = descriptor else { return }
            try? FileManager.default.removeItem(at: directory)
            close(held)
            descriptor = nil
        }
    }
}

/// The writing task, for its stall watchdog, which the task outlives (a child of a group it awaits).
private struct CurrentTask: @unchecked Sendable {
    let task: UnsafeCurrentTask
}

/// How far a backup's stream got, for its stall watchdog.
private final class StreamProgress: Sendable {
    let sent = Atomic<Int>(0)
    let stalled = Atomic<Bool>(false)
}
