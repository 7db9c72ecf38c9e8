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
