import ArgumentParser
import Foundation
import LISAClient

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "embed", abstract: "Compute embeddings of texts.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "The embedding model's modelId.") var model: String
    @Option(help: "Ask the model for this many dimensions.") var dimensions: Int?
    @Argument(help: "Texts to embed; stdin when absent.") var texts: [String] = []

    func run() async throws {
        try await reportingErrors {
            var inputs = texts
            if inputs.isEmpty {
                let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { throw ValidationError("no text: pass it as an argument or on stdin") }
                inputs = [text]
            }
            let request = EmbeddingRequest(
                model: model, input: inputs.count == 1 ? .text(inputs[0]) : .texts(inputs), dimensions: dimensions
            )
            let response = try await global.makeClient().embeddings(request)
            switch global.output {
            case .json: try printJSON(response)
            case .table:
                printTable(
                    ["INDEX", "DIMENSIONS", "FIRST VALUES"],
                    response.data.map { item in
                        let values = item.embedding.floatValues ?? []
                        return [
                            String(item.index), String(values.count),
                            values.prefix(4).map { String(format: "%.4f", $0) }.joined(separator: " ") + (values.count > 4 ? " …" : ""),
                        ]
                    }
                )
            }
        }
    }
}
