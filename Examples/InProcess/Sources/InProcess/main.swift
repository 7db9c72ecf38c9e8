// Calls a model in process: LISA's routing, retries, fallbacks, access checks and metrics,
// no HTTP server. Two replicas of one upstream, balanced; one answer, then one stream.
//
//   UPSTREAM_URL=http://127.0.0.1:8000/v1 swift run InProcess "Why is the sky blue?"
import Foundation
import LISAKit
import Logging

let environment = ProcessInfo.processInfo.environment
let upstream = environment["UPSTREAM_URL"] ?? "http://127.0.0.1:8000/v1"
var configuration = LISAConfiguration()
configuration.dataDirectory = environment["LISA_DATA_DIR"] ?? ".in-process-lisa"
configuration.hostingBackend = "none"
configuration.models = [
    ModelDefinition(
        modelId: "assistant", modelName: environment["UPSTREAM_MODEL"] ?? "Qwen/Qwen2.5-0.5B-Instruct",
        endpoints: [EndpointDefinition(url: upstream), EndpointDefinition(url: upstream)])
]

let question = CommandLine.arguments.dropFirst().joined(separator: " ")
let request = ChatCompletionRequest(model: "assistant", messages: [.user(UserMessage(content: .text(question)))])

// The runtime runs while the closure does, and closes what it opened afterwards.
try await LISARuntime.withRuntime(configuration: configuration, logger: Logger(label: "in-process")) { runtime in
    let answer = try await runtime.chatCompletion(request)
    print("answer:", answer.choices.first?.message.content?.plainText ?? "")
    print("stream:", terminator: " ")
    for try await chunk in runtime.streamChatCompletion(request) {
        print(chunk.choices.first?.delta.content ?? "", terminator: "")
    }
    print()
}
