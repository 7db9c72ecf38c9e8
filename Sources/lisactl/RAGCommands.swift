import ArgumentParser
import Foundation
import LISAClient

/// `lisactl repos create|list|delete`.
struct ReposCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repos", abstract: "Create, list and delete RAG repositories.", subcommands: [Create.self, List.self, Delete.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a repository (administrators).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The repositoryId.") var repositoryId: String
        @Option(name: .customLong("embedding-model"), help: "The embedding model's modelId.") var embeddingModel: String
        @Option(help: "embedded, pgvector or opensearch (default: the server's: embedded with SQLite state, pgvector with PostgreSQL).")
        var type: String?
        @Option(name: .customLong("group"), help: "A group allowed to use it (repeat); none: everyone.") var groups: [String] = []
        @Option(name: .customLong("chunk-size"), help: "Default chunk size (100-10000).") var chunkSize: Int?
        @Option(name: .customLong("chunk-overlap"), help: "Default chunk overlap (at most half the size).") var chunkOverlap: Int?

        func run() async throws {
            try await reportingErrors {
                let kind = try type.map { name in
                    guard let kind = RepositoryType(rawValue: name) else { throw ValidationError("--type must be embedded, pgvector or opensearch") }
                    return kind
                }
                var repository = RAGRepository(repositoryId: repositoryId, type: kind, embeddingModelId: embeddingModel, allowedGroups: groups)
                repository.chunkSize = chunkSize
                repository.chunkOverlap = chunkOverlap
                let created = try await global.makeClient().createRepository(repository)
                switch global.output {
                case .json: try printJSON(created)
                case .table: print("created repository \(created.repositoryId) (\(created.type.rawValue), \(created.embeddingModelId))")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the repositories you may use.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let repositories = try await global.makeClient().repositories()
                switch global.output {
                case .json: try printJSON(repositories)
                case .table:
                    printTable(
                        ["REPOSITORY", "TYPE", "EMBEDDING MODEL", "GROUPS"],
                        repositories.map { [$0.repositoryId, $0.type.rawValue, $0.embeddingModelId, $0.allowedGroups.joined(separator: ",")] }
                    )
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a repository with its documents (administrators).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The repositoryId.") var repositoryId: String

        func run() async throws {
            try await reportingErrors {
                try await global.makeClient().deleteRepository(id: repositoryId)
                print("deleted repository \(repositoryId)")
            }
        }
    }
}

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
                        (name, try await client.upload(data, filename: name, to: repo, collection: collection, chunkSize: chunkSize, chunkOverlap: chunkOverlap))
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

/// `lisactl search --repo R "query"`.
struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Similarity search in a repository.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The repositoryId.") var repo: String
    @Option(help: "The collectionId.") var collection: String?
    @Option(name: .customLong("top-k"), help: "How many chunks.") var topK = 3
    @Argument(help: "The query.") var query: [String]

    func run() async throws {
        try await reportingErrors {
            let found = try await global.makeClient().search(query.joined(separator: " "), in: repo, collection: collection, topK: topK)
            switch global.output {
            case .json: try printJSON(found)
            case .table:
                for (index, source) in found.enumerated() {
                    print("[\(index + 1)] \(source.documentName) (score \(String(format: "%.3f", source.score)))")
                    print("    " + source.text.replacingOccurrences(of: "\n", with: " ").prefix(200))
                }
            }
        }
    }
}
