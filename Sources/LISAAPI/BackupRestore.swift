public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Restores a LISA backup archive into a new data directory: verified files only, no SQLite.
///
/// The files are written into a hidden directory beside the target (mode 0700, files 0600,
/// each synced), checked against the manifest as they are written, and the directory is
/// renamed into place only when every file matched; on any failure nothing is left behind.
public enum BackupRestore {
    /// Restores `archive` into `directory`, which must not exist or be empty. Returns the manifest.
    public static func restore(
        archive: String, into directory: String, limits: BackupArchiveReader.Limits = .init()
    ) throws -> BackupManifest {
        let fileManager = FileManager.default
        // A symbolic link to the real data directory (on a volume of its own, say): restore
        // into what it points to, not over the link.
        let target = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath()
        var isDirectory: ObjCBool = false
        var targetExists = false
        if fileManager.fileExists(atPath: target.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw BackupArchiveError("'\(directory)' exists and is not a directory") }
            guard try fileManager.contentsOfDirectory(atPath: target.path).isEmpty else {
                throw BackupArchiveError("'\(directory)' is not empty: restore into a new data directory")
            }
            targetExists = true
        }
        let parent = target.deletingLastPathComponent()
        var parentIsDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: parent.path, isDirectory: &parentIsDirectory), parentIsDirectory.boolValue else {
            throw BackupArchiveError("'\(parent.path)' does not exist or is not a directory")
        }
        guard let handle = FileHandle(forReadingAtPath: archive) else { throw BackupArchiveError("cannot open '\(archive)'") }
        defer { try? handle.close() }
        let staging = parent.appendingPathComponent(".\(target.lastPathComponent).restoring-\(UUID().uuidString.prefix(8))")
        guard mkdir(staging.path, 0o700) == 0 else {
            throw BackupArchiveError("cannot write into '\(parent.path)': \(String(cString: strerror(errno)))")
        }
        do {
            var reader = BackupArchiveReader(file: handle, limits: limits)
            let manifest = try reader.verify { path in
                let url = staging.appendingPathComponent(path)
                try fileManager.createDirectory(
                    at: url.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
                )
                guard fileManager.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]),
                    let output = FileHandle(forWritingAtPath: url.path)
                else { throw BackupArchiveError("cannot create '\(url.path)'") }
                return (
                    sink: { piece in try output.write(contentsOf: piece) },
                    close: {
                        try output.synchronize()
                        try output.close()
                    }
                )
            }
            // rmdir, not a recursive remove: whatever was written into the target while the
            // archive was read is kept, and the restore refused.
            if targetExists, rmdir(target.path) != 0 {
                throw BackupArchiveError("'\(directory)' is no longer empty (errno \(errno)): restore into a new data directory")
            }
            try fileManager.moveItem(at: staging, to: target)
            syncDirectory(parent.path)
            return manifest
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
    }

    /// Checks `archive` against its manifest without writing anything.
    public static func verify(archive: String, limits: BackupArchiveReader.Limits = .init()) throws -> BackupManifest {
        guard let handle = FileHandle(forReadingAtPath: archive) else { throw BackupArchiveError("cannot open '\(archive)'") }
        defer { try? handle.close() }
        var reader = BackupArchiveReader(file: handle, limits: limits)
        return try reader.verify()
    }

    /// Makes a rename in `path` durable.
    public static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        _ = close(descriptor)
    }
}
