import ArgumentParser
import Foundation
import LISAClient

/// `lisactl send`: one request in another dialect, printed exactly as the server answers.
struct SendCommand: AsyncParsableCommand {
    enum DialectName: String, ExpressibleByArgument, CaseIterable {
        case messages, responses
    }

    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a prompt as an Anthropic Messages or OpenAI Responses request and print the raw answer (for debugging).",
        discussion: "Prints the JSON answer, or with --stream every server-sent event as it arrives."
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "The dialect: messages (POST /v1/messages) or responses (POST /v1/responses).") var dialect: DialectName
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
            let path: String
            switch dialect {
            case .messages:
                path = "/v1/messages"
                body["max_tokens"] = .integer(Int64(maxTokens ?? 1024))
                body["messages"] = [["role": "user", "content": .string(text)]]
                if let systemPrompt { body["system"] = .string(systemPrompt) }
            case .responses:
                path = "/v1/responses"
                body["input"] = .string(text)
                if let maxTokens { body["max_output_tokens"] = .integer(Int64(maxTokens)) }
                if let systemPrompt { body["instructions"] = .string(systemPrompt) }
                if let previousResponseID { body["previous_response_id"] = .string(previousResponseID) }
            }
            let encoded = try JSONEncoder().encode(JSONValue.object(body))
            let output = FileHandle.standardOutput
            for try await chunk in global.makeClient().postRaw(path, body: encoded) {
                output.write(chunk)
            }
            if !stream { output.write(Data("\n".utf8)) }
        }
    }
}
