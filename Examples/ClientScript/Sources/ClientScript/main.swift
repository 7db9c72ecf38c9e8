// Lists the models of a LISA server, then streams a chat answer.
//
//   LISA_URL=http://127.0.0.1:8080 LISA_API_KEY=… swift run ClientScript chat-small "Why is the sky blue?"
import Foundation
import LISAClient

let environment = ProcessInfo.processInfo.environment
let arguments = CommandLine.arguments.dropFirst()
let lisa = LISAClient(baseURL: environment["LISA_URL"] ?? "http://127.0.0.1:8080", apiKey: environment["LISA_API_KEY"])

do {
    let served = try await lisa.servedModels()
    print("models:", served.data.map(\.id).joined(separator: ", "))
    guard let model = arguments.first ?? served.data.first?.id else {
        print("no model to talk to")
        exit(1)
    }
    let prompt = arguments.dropFirst().joined(separator: " ")
    let request = ChatCompletionRequest(
        model: model,
        messages: [.user(UserMessage(content: .text(prompt.isEmpty ? "Say hello." : prompt)))],
        maxTokens: 256
    )
    for try await chunk in lisa.streamChatCompletion(request) {
        print(chunk.choices.first?.delta.content ?? "", terminator: "")
    }
    print()
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
