import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import Logging
import NIOHTTP1
import Testing

@Suite("Models API")
struct ModelsAPITests {
    @Test("a model registered through the API is served, persisted, and still served after a restart")
    func registerPersistRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("lisa.sqlite").path
        let fake = FakeUpstream()

        let first = try await SQLStateStore.openSQLite(path: path, logger: Logger(label: "t"))
        let upstreamPort = try await Harness.run(fake: fake, store: first, models: { _ in [] }) { lisa in
            let create = try await lisa.send(
                "/models",
                json:
                    #"{"modelId":"qwen","modelName":"Qwen/Qwen2.5","modelType":"textgen","inferenceContainer":"vllm","endpoints":[{"url":"\#(lisa.upstreamURL)","apiKey":"sk-hidden"}],"autoScalingConfig":{"minCapacity":1}}"#
            )
            #expect(create.status == 201)
            #expect(!create.body.contains("sk-hidden"), "API keys are never returned")
            #expect(create.body.contains(#""status":"InService""#))
            let duplicate = try await lisa.send("/models", json: #"{"modelId":"qwen","modelUrl":"http://x/v1"}"#)
            #expect(duplicate.status == 409)
            let invalid = try await lisa.send("/models", json: #"{"modelId":"bad id","modelUrl":"http://x/v1"}"#)
            #expect(invalid.status == 400)
            #expect(try errorBody(invalid.body).param == "modelId")
            let served = try await lisa.send("/v1/chat/completions", json: #"{"model":"qwen","messages":[{"role":"user","content":"persist"}]}"#)
            #expect(served.status == 200)
            return try #require(URL(string: lisa.upstreamURL)?.port)
        }
        try await first.close()

        // A new server on the same state: the model is back and served.
        let second = try await SQLStateStore.openSQLite(path: path, logger: Logger(label: "t"))
        try await Harness.run(fake: fake, upstreamPort: upstreamPort, store: second, models: { _ in [] }) { lisa in
            let get = try await lisa.send(.GET, "/models/qwen")
            #expect(get.status == 200)
            #expect(get.body.contains("autoScalingConfig"), "fields for later versions are kept")
            let served = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"qwen","messages":[{"role":"user","content":"after restart"}]}"#)
            #expect(served.status == 200 && served.body.contains("echo: after restart"))
            #expect(fake.observations.lastAuthorization == "Bearer sk-hidden")

            let deleted = try await lisa.send(.DELETE, "/models/qwen")
            #expect(deleted.status == 200 && deleted.body.contains(#""deleted":true"#))
            #expect(try await lisa.send(.GET, "/models/qwen").status == 404)
            #expect(try await lisa.send("/v1/chat/completions", json: #"{"model":"qwen","messages":[{"role":"user","content":"x"}]}"#).status == 404)
        }
        #expect(try await second.models.all().isEmpty, "the deletion is persisted")
        try await second.close()
    }

    @Test("models from the configuration file are listed but cannot be deleted through the API")
    func configuredModels() async throws {
        try await Harness.run { lisa in
            let list = try await lisa.send(.GET, "/models")
            #expect(list.status == 200)
            #expect(list.body.contains(#""source":"configuration""#))
            let delete = try await lisa.send(.DELETE, "/models/chat")
            #expect(delete.status == 409)
            #expect(try errorBody(delete.body).code == "model_in_configuration")
            let stop = try await lisa.send(.PUT, "/models/chat", json: #"{"enabled":false}"#)
            #expect(stop.status == 409)
            #expect(try errorBody(stop.body).code == "model_in_configuration")
            #expect(try await lisa.send(.GET, "/models/none").status == 404)
        }
    }
}
