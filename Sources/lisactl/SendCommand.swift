public import ArgumentParser
import Foundation
import LISAClient

/// `lisactl send`: one request in any dialect, printed exactly as the server answers.
struct SendCommand: AsyncParsableCommand {

    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a prompt as a chat completions, Anthropic Messages or OpenAI Responses request and print the raw answer (for debugging).",
        discussion: "Prints the JSON answer, or with --stream every server-sent event as it arrives."
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "The dialect: chat (POST /v1/chat/completions), messages (POST /v1/messages) or responses (POST /v1/responses).")
    var dialect: DialectName
    @Option(name: .shortAndLong, help: "The model's modelId.") var model: String
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate (messages needs one; default 1024).") var maxTokens: Int?
    @Option(name: .customLong("system"), help: "A system prompt (instructions, for responses).") var systemPrompt: String?
    @Option(name: .customLong("previous-response-id"), help: "Continue a stored response (responses).") var previousResponseID: String?
    @Flag(help: "Stream the answer's events.") var stream = false
    @Argument(help: "The prompt.") var prompt: [String]

    func run() async throws {
        try await reportingErrors {
            let text = prompt.joined(separator: " ")
            guard !text.isEmpty else { throw ValidationError("no prompt") }
            var body: [String: JSONValue] = ["model": .string(model), "stream": .bool(stream)]
            switch dialect {
            case .chatCompletions:
                var messages: [JSONValue] = [["role": "user", "content": .string(text)]]
                if let systemPrompt { messages.insert(["role": "system", "content": .string(systemPrompt)], at: 0) }
                body["messages"] = .array(messages)
                if let maxTokens { body["max_tokens"] = .integer(Int64(maxTokens)) }
            case .messages:
                body["max_tokens"] = .integer(Int64(maxTokens ?? 1024))
                body["messages"] = [["role": "user", "content": .string(text)]]
                if let systemPrompt { body["system"] = .string(systemPrompt) }
            case .responses:
                body["input"] = .string(text)
                if let maxTokens { body["max_output_tokens"] = .integer(Int64(maxTokens)) }
                if let systemPrompt { body["instructions"] = .string(systemPrompt) }
                if let previousResponseID { body["previous_response_id"] = .string(previousResponseID) }
            }
            let encoded = try JSONEncoder().encode(JSONValue.object(body))
            let output = FileHandle.standardOutput
            for try await chunk in global.makeClient().postRaw("/v1" + dialect.route, body: encoded) {
                output.write(chunk)
            }
            if !stream { output.write(Data("\n".utf8)) }
        }
    }
}

extension DialectName: ExpressibleByArgument {}
