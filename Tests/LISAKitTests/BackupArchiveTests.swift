import Crypto
import Foundation
import LISAKit
import LISAKitTesting
import Logging
import NIOCore
import Testing

/// The backup archive's safe reader and restore, against well-formed and hostile archives.
@Suite struct BackupArchiveTests {
    /// A raw ustar header for hostile entries (any name, type and size).
    static func rawHeader(name: String, size: Int64, type: Character = "0", link: String = "") -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) { for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte } }
        put(name, at: 0)
        put("0000600", at: 100)
        let octal = String(size, radix: 8)
        put(String(repeating: "0", count: 11 - octal.count) + octal, at: 124)
        put("00000000000", at: 136)
        header[156] = type.asciiValue!
        put(link, at: 157)
        put("ustar", at: 257)
        put("00", at: 263)
        for index in 148..<156 { header[index] = 0x20 }
        let sum = String(header.reduce(0) { $0 + Int($1) }, radix: 8)
        put(String(repeating: "0", count: 6 - sum.count) + sum, at: 148)
        header[154] = 0
        return header
    }

    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    /// An archive of `files` with a manifest listing `listed` (default: the files themselves).
    static func archive(_ files: [(String, [UInt8])], listed: [BackupManifest.File]? = nil, rawEntries: [[UInt8]] = []) throws -> [UInt8] {
        let manifest = BackupManifest(
            schemaVersion: 9, files: listed ?? files.map { BackupManifest.File(path: $0.0, size: Int64($0.1.count), sha256: sha256($0.1)) }
        )
        let manifestBytes = Array(try manifest.encoded())
        var bytes = try TarFormat.header(name: BackupManifest.fileName, size: Int64(manifestBytes.count)) + manifestBytes
        bytes += [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(manifestBytes.count)))
        for (name, content) in files {
            bytes += try TarFormat.header(name: name, size: Int64(content.count)) + content
            bytes += [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(content.count)))
        }
        for raw in rawEntries { bytes += raw }
        return bytes + TarFormat.end
    }

    static func reader(_ bytes: [UInt8], limits: BackupArchiveReader.Limits = .init()) -> BackupArchiveReader {
        var offset = 0
        return BackupArchiveReader(limits: limits) { count in
            let piece = Array(bytes[offset..<min(bytes.count, offset + count)])
            offset += piece.count
            return piece
        }
    }

    static func refusal(_ bytes: [UInt8], limits: BackupArchiveReader.Limits = .init()) -> String? {
        var reader = reader(bytes, limits: limits)
        do {
            _ = try reader.verify()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func sha256MatchesSwiftCrypto() {
        for length in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 100_000] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            var digest = SHA256Digest()
            // Fed in uneven pieces, so the block buffering is exercised.
            var start = 0
            var step = 1
            while start < bytes.count {
                digest.update(Array(bytes[start..<min(bytes.count, start + step)]))
                start += step
                step = step * 3 % 97 + 1
            }
            #expect(digest.finalize() == Self.sha256(bytes), "length \(length)")
        }
        var abc = SHA256Digest()
        abc.update(Array("abc".utf8))
        #expect(abc.finalize() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func aWellFormedArchiveVerifies() throws {
        let files = [("lisa.sqlite", Array(repeating: UInt8(7), count: 1500)), ("vectors/vectors.sqlite", Array("v".utf8)), ("uploads/job-1", [])]
        var reader = Self.reader(try Self.archive(files))
        let manifest = try reader.verify()
        #expect(manifest.files.map(\.path) == ["lisa.sqlite", "vectors/vectors.sqlite", "uploads/job-1"])
        // GNU tar reads what TarFormat writes.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-tar-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("backup.tar").path
        FileManager.default.createFile(atPath: path, contents: Data(try Self.archive(files)))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-xf", path, "-C", directory.path]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        #expect(FileManager.default.contents(atPath: directory.appendingPathComponent("lisa.sqlite").path)?.count == 1500)
    }

    @Test func hostileEntriesAreRefused() throws {
        let manifestOnly = { (entry: [UInt8]) in try Self.archive([], rawEntries: [entry]) }
        let cases: [(String, [UInt8], String)] = [
            ("parent", try manifestOnly(Self.rawHeader(name: "../evil", size: 0)), "not a safe relative path"),
            ("nested parent", try manifestOnly(Self.rawHeader(name: "uploads/../../evil", size: 0)), "not a safe relative path"),
            ("absolute", try manifestOnly(Self.rawHeader(name: "/etc/passwd", size: 0)), "not a safe relative path"),
            ("symlink", try manifestOnly(Self.rawHeader(name: "lisa.sqlite", size: 0, type: "2", link: "/etc/shadow")), "symbolic link"),
            ("hard link", try manifestOnly(Self.rawHeader(name: "lisa.sqlite", size: 0, type: "1", link: "/etc/shadow")), "hard link"),
            ("directory", try manifestOnly(Self.rawHeader(name: "uploads", size: 0, type: "5")), "directory"),
            ("pax header", try manifestOnly(Self.rawHeader(name: "pax", size: 0, type: "x")), "extended header"),
        ]
        for (label, bytes, expected) in cases {
            let refusal = Self.refusal(bytes)
            #expect(refusal?.contains(expected) == true, "\(label): \(refusal ?? "accepted")")
        }
    }

    @Test func oversizedTruncatedAndCorruptArchivesAreRefused() throws {
        let content = Array(repeating: UInt8(1), count: 4096)
        var small = BackupArchiveReader.Limits()
        small.maxFileSize = 1024
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)]), limits: small)?.contains("over the limit") == true)
        var tight = BackupArchiveReader.Limits()
        tight.maxTotalSize = 2048
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)]), limits: tight)?.contains("more than 2048 bytes") == true)
        // A header that claims far more than the archive holds.
        let claim = try Self.archive(
            [], listed: [BackupManifest.File(path: "lisa.sqlite", size: 1 << 30, sha256: "00")],
            rawEntries: [Self.rawHeader(name: "lisa.sqlite", size: 1 << 30)]
        )
        #expect(Self.refusal(Array(claim.dropLast(1024)))?.contains("truncated") == true)
        // A flipped byte in a header.
        var corrupt = try Self.archive([("lisa.sqlite", content)])
        corrupt[1024 + 3] ^= 0x20
        #expect(Self.refusal(corrupt)?.contains("checksum") == true)
        // Cut short inside a file.
        #expect(Self.refusal(Array(try Self.archive([("lisa.sqlite", content)]).prefix(3000)))?.contains("truncated") == true)
    }

    @Test func manifestMismatchesAreRefused() throws {
        let content = Array("state".utf8)
        let good = BackupManifest.File(path: "lisa.sqlite", size: 5, sha256: Self.sha256(content))
        var wrongDigest = good
        wrongDigest.sha256 = Self.sha256(Array("other".utf8))
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)], listed: [wrongDigest]))?.contains("does not match its checksum") == true)
        var wrongSize = good
        wrongSize.size = 6
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)], listed: [wrongSize]))?.contains("the manifest says 6") == true)
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)], listed: []))?.contains("not in the manifest") == true)
        let extra = BackupManifest.File(path: "vectors/vectors.sqlite", size: 1, sha256: Self.sha256([1]))
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content)], listed: [good, extra]))?.contains("missing from the archive") == true)
        #expect(Self.refusal(try Self.archive([("lisa.sqlite", content), ("lisa.sqlite", content)]))?.contains("twice") == true)
        // Not a backup: the first entry is not the manifest.
        let plain = try TarFormat.header(name: "lisa.sqlite", size: 5) + content + [UInt8](repeating: 0, count: 507) + TarFormat.end
        #expect(Self.refusal(plain)?.contains("not a LISA backup") == true)
    }

    @Test func restoreWritesVerifiedFilesIntoANewDirectoryOnly() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-restore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let archive = base.appendingPathComponent("backup.tar").path
        let files = [("lisa.sqlite", Array("state".utf8)), ("vectors/vectors.sqlite", Array("vectors".utf8))]
        FileManager.default.createFile(atPath: archive, contents: Data(try Self.archive(files)))
        let target = base.appendingPathComponent("data").path
        _ = try BackupRestore.restore(archive: archive, into: target)
        #expect(FileManager.default.contents(atPath: target + "/vectors/vectors.sqlite") == Data("vectors".utf8))
        let mode = try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        // Not into a directory that holds anything.
        #expect(throws: BackupArchiveError.self) { try BackupRestore.restore(archive: archive, into: target) }
        // A damaged archive leaves nothing behind.
        var damaged = try Self.archive(files)
        damaged[damaged.count - 1024 - 512] ^= 1  // the last file's first byte
        FileManager.default.createFile(atPath: archive, contents: Data(damaged))
        let second = base.appendingPathComponent("second").path
        #expect(throws: BackupArchiveError.self) { try BackupRestore.restore(archive: archive, into: second) }
        #expect(!FileManager.default.fileExists(atPath: second))
        #expect(try FileManager.default.contentsOfDirectory(atPath: base.path).sorted() == ["backup.tar", "data"])
    }

    @Test func restoreFollowsASymlinkedTargetAndKeepsWhatWasWrittenMeanwhile() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-restore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("volume/data"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: base) }
        let bytes = try Self.archive([("lisa.sqlite", Array("state".utf8))])
        let archive = base.appendingPathComponent("backup.tar").path
        _ = FileManager.default.createFile(atPath: archive, contents: Data(bytes))
        // The target is a link to an empty directory on another volume: the files land there.
        let link = base.appendingPathComponent("data").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: base.appendingPathComponent("volume/data").path)
        _ = try BackupRestore.restore(archive: archive, into: link)
        #expect(FileManager.default.contents(atPath: base.appendingPathComponent("volume/data/lisa.sqlite").path) == Data("state".utf8))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == base.appendingPathComponent("volume/data").path)

        // A file written into the empty target while the archive is read is not deleted.
        let target = base.appendingPathComponent("late")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        let fifo = base.appendingPathComponent("backup.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let writer = Thread {
            guard let handle = FileHandle(forWritingAtPath: fifo) else { return }
            handle.write(Data(bytes.dropLast(TarFormat.end.count)))
            _ = FileManager.default.createFile(atPath: target.appendingPathComponent("lisa.log").path, contents: Data("mine".utf8))
            handle.write(Data(TarFormat.end))
            try? handle.close()
        }
        writer.start()
        #expect(throws: BackupArchiveError.self) { try BackupRestore.restore(archive: fifo, into: target.path) }
        #expect(FileManager.default.contents(atPath: target.appendingPathComponent("lisa.log").path) == Data("mine".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: base.path).filter { $0.contains("restoring") }.isEmpty)

        // A target under a file: a plain refusal, not a Foundation error.
        let refusal = #expect(throws: BackupArchiveError.self) { try BackupRestore.restore(archive: archive, into: archive + "/data") }
        #expect(refusal?.message.contains("not a directory") == true)
    }
}

/// The server side: a snapshot of a live data directory, one at a time, removed afterwards.
@Suite struct StateBackupTests {
    @Test func aSnapshotIsConsistentExclusiveAndRemoved() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-backup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: data) }
        let logger = Logger(label: "test")
        let store = try await SQLStateStore.openSQLite(path: data.appendingPathComponent("lisa.sqlite").path, logger: logger)
        let vectors = try await EmbeddedVectorStore.open(directory: data.appendingPathComponent("vectors").path, logger: logger)
        try await store.settings.setValue("before the backup", for: "marker")
        try await vectors.createCollection(VectorCollection(name: "c", dimension: 2, metric: .cosine))
        try await vectors.upsert([VectorChunk(id: "1", documentId: "d", text: "t", metadata: [:], embedding: [1, 0])], into: "c")

        let backup = try await StateBackup.make(dataDirectory: data.path, schemaVersion: SQLStateStore.schemaVersion, logger: logger)
        // Written after the snapshot: not in it.
        try await store.settings.setValue("after the backup", for: "marker")
        // One at a time.
        let refusal = await #expect(throws: LISAError.self) {
            _ = try await StateBackup.make(dataDirectory: data.path, schemaVersion: SQLStateStore.schemaVersion, logger: logger)
        }
        #expect(refusal?.reason == "backup_in_progress")
        var bytes: [UInt8] = []
        try await backup.write { bytes += Array($0.readableBytesView) }
        #expect(Int64(bytes.count) == backup.size)
        // Written out: its files are gone (before the last bytes went out) and the next may start.
        #expect(try FileManager.default.contentsOfDirectory(atPath: data.path).filter { $0.hasPrefix(".backup-") }.isEmpty)

        let archive = data.appendingPathComponent("backup.tar").path
        _ = FileManager.default.createFile(atPath: archive, contents: Data(bytes))
        let restored = data.appendingPathComponent("restored").path
        let manifest = try BackupRestore.restore(archive: archive, into: restored)
        #expect(manifest.files.map(\.path) == ["lisa.sqlite", "vectors/vectors.sqlite"])
        let copy = try await SQLStateStore.openSQLite(path: restored + "/lisa.sqlite", logger: logger)
        #expect(try await copy.settings.value(for: "marker") == "before the backup")
        let copiedVectors = try await EmbeddedVectorStore.open(directory: restored + "/vectors", logger: logger)
        #expect(try await copiedVectors.search(VectorQuery(embedding: [1, 0], topK: 1), in: "c").first?.id == "1")
        try await copiedVectors.close()
        try await copy.close()
        try await vectors.close()
        try await store.close()

        // The next backup may start.
        let next = try await StateBackup.make(dataDirectory: data.path, schemaVersion: SQLStateStore.schemaVersion, logger: logger)
        next.remove()
    }

    @Test func aClientThatStopsReadingLosesTheBackupAndItsLock() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-backup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: data) }
        let logger = Logger(label: "test")
        // An empty file is an empty SQLite database.
        _ = FileManager.default.createFile(atPath: data.appendingPathComponent("lisa.sqlite").path, contents: Data())
        let backup = try await StateBackup.make(dataDirectory: data.path, schemaVersion: SQLStateStore.schemaVersion, logger: logger)
        let clock = ManualClock()
        let (stuck, stalling) = AsyncStream.makeStream(of: Void.self)
        // Once the client is stuck, the stall limit passes twice: the watchdog notes what
        // was sent, then finds it unchanged.
        let time = Task {
            for await _ in stuck { break }
            for _ in 0..<2 {
                while clock.sleepers == 0 { try await Task.sleep(for: .milliseconds(1)) }
                clock.advance(by: .seconds(60))
            }
        }
        // The first piece goes out, then the client takes nothing more (a channel writer
        // suspended on back-pressure, which a cancellation ends). The watchdog cancels the
        // task that writes: a task of its own, not the test's.
        let writing = Task {
            var pieces = 0
            try await backup.write(clock: AnyClock(clock)) { _ in
                pieces += 1
                if pieces > 1 {
                    stalling.yield()
                    try await Task.sleep(for: .seconds(3600))
                }
            }
        }
        let error = await #expect(throws: LISAError.self) { try await writing.value }
        stalling.finish()
        time.cancel()
        #expect(error?.message.contains("took nothing") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: data.path).filter { $0.hasPrefix(".backup-") }.isEmpty)
        // The next backup may start.
        let next = try await StateBackup.make(dataDirectory: data.path, schemaVersion: SQLStateStore.schemaVersion, logger: logger)
        next.remove()
    }
}
