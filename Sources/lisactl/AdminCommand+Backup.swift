import ArgumentParser
import Foundation
import LISAClient

extension AdminCommand {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an online backup of the server's embedded state (SQLite, vectors, waiting uploads) as one tar archive.",
            discussion: "The archive is checked against its manifest after the download. A server whose state is in PostgreSQL refuses: use pg_dump."
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: [.customShort("o"), .customLong("output-file")], help: "Where to write the archive (it must not exist).")
        var outputFile: String

        func run() async throws {
            try await reportingErrors {
                guard !FileManager.default.fileExists(atPath: outputFile) else {
                    throw BackupArchiveError("'\(outputFile)' exists; choose a new file")
                }
                let started = ContinuousClock.now
                var client = global.makeClient()
                client.timeout = .seconds(6 * 3600)  // a large data directory over a slow link
                let bytes = try await client.downloadBackup(to: outputFile)
                let manifest: BackupManifest
                do {
                    manifest = try BackupRestore.verify(archive: outputFile)
                } catch {
                    throw BackupArchiveError("the downloaded archive is damaged: \(error)")
                }
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    print(
                        "wrote \(outputFile): \(bytes) bytes, \(manifest.files.count) files, schema \(manifest.schemaVersion),"
                            + " LISA \(manifest.lisaVersion), in \(ContinuousClock.now - started)"
                    )
                }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unpack a backup archive into a new data directory, checking every file against the manifest.",
            discussion: "The directory must not exist or be empty. Then start LISAServe with --data-dir on it."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive `lisactl admin backup` wrote.") var archive: String
        @Option(name: .customLong("data-dir"), help: "The new data directory.") var dataDir: String

        func run() async throws {
            try await reportingErrors {
                let manifest = try BackupRestore.restore(archive: archive, into: dataDir)
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    print(
                        "restored \(manifest.files.count) files (LISA \(manifest.lisaVersion), schema \(manifest.schemaVersion),"
                            + " taken \(manifest.createdAt)) into \(dataDir)"
                    )
                }
            }
        }
    }

    struct VerifyBackup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-backup", abstract: "Check a backup archive against its manifest; writes nothing."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive.") var archive: String

        func run() async throws {
            try await reportingErrors {
                let manifest = try BackupRestore.verify(archive: archive)
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    printTable(["FILE", "BYTES", "SHA256"], manifest.files.map { [$0.path, String($0.size), $0.sha256] })
                    print("ok: LISA \(manifest.lisaVersion), schema \(manifest.schemaVersion), taken \(manifest.createdAt)")
                }
            }
        }
    }
}
