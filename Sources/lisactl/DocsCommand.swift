import ArgumentParser
import Foundation
import LISAClient

/// `lisactl docs ingest|list|delete`.
struct DocsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docs", abstract: "Ingest, list and delete documents of a repository.", subcommands: [Ingest.self, List.self, Delete.self]
    )

    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload files and follow their ingestion jobs.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The repositoryId.") var repo: String
        @Option(help: "The collectionId (default: the repository's default collection).") var collection: String?
        @Option(name: .customLong("chunk-size")) var chunkSize: Int?
        @Option(name: .customLong("chunk-overlap")) var chunkOverlap: Int?
        @Flag(name: .customLong("no-wait"), help: "Return once uploaded, without following the jobs.") var noWait = false
        @Argument(help: "Files: .txt .md .html .json .csv .pdf .docx") var files: [String]

        func run() async throws {
            try await reportingErrors {
                guard !files.isEmpty else { throw ValidationError("name at least one file") }
                let client = global.makeClient()
                var jobs: [(String, IngestionJob)] = []
                for file in files {
                    guard let data = FileManager.default.contents(atPath: file) else { throw ConfigurationError("cannot read '\(file)'") }
                    let name = (file as NSString).lastPathComponent
                    jobs.append(
                        (
                            name,
                            try await client.upload(
                                data, filename: name, to: repo, collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap)
                        )
                    )
                    if global.output == .table { print("uploaded \(name): job \(jobs.last!.1.jobId)") }
                }
                if noWait {
                    if global.output == .json { try printJSON(jobs.map(\.1)) }
                    return
                }
                var finished: [IngestionJob] = []
                var failed = 0
                for (index, entry) in jobs.enumerated() {
                    var job = entry.1
                    while job.status == .pending || job.status == .inProgress {
                        try await Task.sleep(for: .milliseconds(200))
                        job = try await client.job(job.jobId, in: repo)
                    }
                    finished.append(job)
                    if job.status == .failed { failed += 1 }
                    if global.output == .table {
                        let done = index + 1
                        let bar = String(repeating: "#", count: done * 20 / jobs.count).padding(toLength: 20, withPad: ".", startingAt: 0)
                        let detail = job.status == .completed ? "\(job.chunks ?? 0) chunks" : (job.reason ?? "")
                        print("[\(bar)] \(done)/\(jobs.count) \(entry.0): \(job.status.rawValue) \(detail)")
                    }
                }
                if global.output == .json { try printJSON(finished) }
                if failed > 0 {
                    // Not a usage mistake: say so plainly and exit 1, as RAG.md documents.
                    FileHandle.standardError.write(Data("lisactl: error: \(failed) of \(jobs.count) files failed to ingest\n".utf8))
                    throw ExitCode.failure
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a repository's documents.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The repositoryId.") var repo: String

        func run() async throws {
            try await reportingErrors {
                let documents = try await global.makeClient().documents(in: repo)
                switch global.output {
                case .json: try printJSON(documents)
                case .table:
                    printTable(
                        ["DOCUMENT", "NAME", "COLLECTION", "CHUNKS", "OWNER"],
                        documents.map { [$0.documentId, $0.documentName, $0.collectionId, String($0.chunks), $0.username] }
                    )
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a document and its chunks.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The repositoryId.") var repo: String
        @Argument(help: "The documentId.") var documentId: String

        func run() async throws {
            try await reportingErrors {
                try await global.makeClient().deleteDocument(documentId, in: repo)
                print("deleted document \(documentId)")
            }
        }
    }
}
