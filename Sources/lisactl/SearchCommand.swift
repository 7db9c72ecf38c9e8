import ArgumentParser
import Foundation
import LISAClient

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
