import ArgumentParser
import Foundation
import LISAClient

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Send a prompt to a model and stream the answer (reads stdin without a prompt)."
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "The model's modelId.") var model: String
    @Option(name: .customLong("system"), help: "A system prompt.") var systemPrompt: String?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.") var maxTokens: Int?
    @Option(help: "Sampling temperature.") var temperature: Double?
    @Flag(name: .customLong("no-stream"), help: "Wait for the whole answer instead of streaming it.") var noStream = false
    @Option(help: "Ground the answer in this RAG repository and print the sources.") var rag: String?
    @Option(name: .customLong("rag-collection"), help: "The repository's collection.") var ragCollection: String?
    @Argument(help: "The prompt; read from stdin when absent.") var prompt: [String] = []

    func run() async throws {
        try await reportingErrors {
            var text = prompt.joined(separator: " ")
            if text.isEmpty {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard !text.isEmpty else { throw ValidationError("no prompt: pass it as an argument or on stdin") }
            var messages: [ChatMessage] = []
            if let systemPrompt { messages.append(.system(SystemMessage(content: .text(systemPrompt)))) }
            messages.append(.user(UserMessage(content: .text(text))))
            var request = ChatCompletionRequest(model: model, messages: messages, maxTokens: maxTokens, temperature: temperature)
            if let rag {
                var grounding: [String: JSONValue] = ["repositoryId": .string(rag)]
                if let ragCollection { grounding["collectionId"] = .string(ragCollection) }
                request.additionalFields["lisa"] = ["rag": .object(grounding)]
            }
            let client = global.makeClient()
            if noStream || global.output == .json {
                request.stream = false
                let completion = try await client.chatCompletion(request)
                if global.output == .json {
                    try printJSON(completion)
                } else {
                    print(completion.choices.first?.message.content?.plainText ?? "")
                    printSources(completion.additionalFields["lisa"])
                }
                return
            }
            let output = FileHandle.standardOutput
            var sources: JSONValue?
            for try await chunk in client.streamChatCompletion(request) {
                if let piece = chunk.choices.first?.delta.content, !piece.isEmpty {
                    output.write(Data(piece.utf8))
                }
                if let lisa = chunk.additionalFields["lisa"] { sources = lisa }
            }
            output.write(Data("\n".utf8))
            printSources(sources)
        }
    }
}
