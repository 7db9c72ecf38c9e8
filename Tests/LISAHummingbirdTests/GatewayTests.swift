import AsyncHTTPClient
import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing

@Suite("Gateway over HTTP, against a fake upstream")
struct GatewayTests {
    static let chat = #"{"model":"chat","messages":[{"role":"user","content":"hello there"}],"top_k":7,"chat_template_kwargs":{"x":true}}"#

    @Test("a chat completion reaches the upstream with its modelName, key and vendor fields, and comes back")
    func nonStreamingChat() async throws {
        try await Harness.run(models: { url in
            [
                ModelDefinition(
                    modelId: "chat", modelName: "Qwen/Qwen2.5-0.5B", modelType: .textgen, inferenceContainer: .vllm,
                    endpoints: [.init(url: url, apiKey: "sk-upstream-secret")])
            ]
        }) { lisa in
            let (status, body, headers) = try await lisa.send("/v1/chat/completions", json: Self.chat)
            #expect(status == 200)
            #expect(headers.first(name: "Content-Type")?.hasPrefix("application/json") == true)
            let completion = try JSONDecoder().decode(ChatCompletion.self, from: Data(body.utf8))
            #expect(completion.choices.first?.message.content == .text("echo: hello there"))
            let seen = lisa.fake.observations
            #expect(seen.lastBody?["model"] == "Qwen/Qwen2.5-0.5B", "LISA sends the upstream's modelName")
            #expect(seen.lastBody?["top_k"] == 7, "vendor extensions pass through")
            #expect(seen.lastBody?["chat_template_kwargs"] == ["x": true])
            #expect(seen.lastAuthorization == "Bearer sk-upstream-secret", "the endpoint's key, not the client's")
        }
    }

    @Test("the same routes answer under /v2/serve, and /v1/models lists the models")
    func servePrefixAndModels() async throws {
        try await Harness.run { lisa in
            let (status, body, _) = try await lisa.send("/v2/serve/chat/completions", json: Self.chat)
            #expect(status == 200 && body.contains("echo: hello there"))
            let models = try JSONDecoder().decode(ModelList.self, from: Data(try await lisa.send(.GET, "/v1/models").body.utf8))
            #expect(models.data.map(\.id) == ["chat", "embed"])
            #expect(models.object == "list")
        }
    }

    @Test("streaming: the first chunk reaches the client long before the upstream finishes")
    func streamingIsIncremental() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.chunkDelay = .milliseconds(500)
        try await Harness.run(fake: FakeUpstream(configuration: configuration)) { lisa in
            var request = HTTPClientRequest(url: lisa.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(adminKey)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(
                ByteBuffer(
                    string:
                        #"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three four five six seven"}]}"#
                ))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            var finishedAtFirstEvent: Int?
            for try await buffer in response.body {
                let parsed = try parser.feed(buffer)
                if finishedAtFirstEvent == nil, !parsed.isEmpty { finishedAtFirstEvent = lisa.fake.observations.completed }
                events += parsed.map(\.event)
            }
            // 8 words at 500 ms each: when the first event reaches the client the upstream is still
            // sending (a buffered stream would arrive only once it had finished). No clock involved.
            #expect(finishedAtFirstEvent == 0, "the first event came only after the upstream had finished")
            #expect(events.last?.isDone == true)
            let chunks = try events.dropLast().map { try JSONDecoder().decode(ChatCompletionChunk.self, from: Data($0.data.utf8)) }
            let text = chunks.compactMap { $0.choices.first?.delta.content }.joined()
            #expect(text == "echo: one two three four five six seven")
            #expect(chunks.last?.usage?.completionTokens == 8, "include_usage passes through")
        }
    }

    @Test("legacy completions and embeddings (float and base64)")
    func completionsAndEmbeddings() async throws {
        try await Harness.run { lisa in
            let (status, body, _) = try await lisa.send("/v1/completions", json: #"{"model":"chat","prompt":"say hi","max_tokens":4}"#)
            #expect(status == 200)
            let completion = try JSONDecoder().decode(Completion.self, from: Data(body.utf8))
            #expect(completion.choices.first?.text == "echo: say hi")

            let floats = try await lisa.send("/v1/embeddings", json: #"{"model":"embed","input":["alpha","beta"]}"#)
            #expect(floats.status == 200)
            let response = try JSONDecoder().decode(EmbeddingResponse.self, from: Data(floats.body.utf8))
            #expect(response.data.count == 2)
            #expect(response.data[0].embedding.floatValues == FakeUpstream.embedding(of: "alpha"))

            let base64 = try await lisa.send("/v1/embeddings", json: #"{"model":"embed","input":"alpha","encoding_format":"base64"}"#)
            let encoded = try JSONDecoder().decode(EmbeddingResponse.self, from: Data(base64.body.utf8))
            guard case .base64 = encoded.data[0].embedding else {
                Issue.record("base64 was asked for")
                return
            }
            #expect(encoded.data[0].embedding.floatValues == FakeUpstream.embedding(of: "alpha"))

            let wrongType = try await lisa.send("/v1/embeddings", json: #"{"model":"chat","input":"x"}"#)
            #expect(wrongType.status == 400)
            #expect(try errorBody(wrongType.body).code == "model_type_mismatch")
        }
    }

    @Test("upstream failures become OpenAI-shaped errors with the right status")
    func upstreamErrors() async throws {
        try await Harness.run(models: { url in
            ["fail-500", "fail-503", "fail-400", "fail-429"].map { ModelDefinition(modelId: $0, modelName: $0, modelUrl: url) }
                + [ModelDefinition(modelId: "down", modelName: "x", modelUrl: "http://127.0.0.1:9/v1")]
        }) { lisa in
            func call(_ model: String) async throws -> (Int, ErrorResponse.Body, HTTPHeaders) {
                let (status, body, headers) = try await lisa.send(
                    "/v1/chat/completions", json: #"{"model":"\#(model)","messages":[{"role":"user","content":"x"}]}"#
                )
                return (status, try errorBody(body), headers)
            }
            let (s500, e500, _) = try await call("fail-500")
            #expect(s500 == 502 && e500.message.contains("HTTP 500") && e500.message.contains("The fake upstream failed."))
            let (s503, _, _) = try await call("fail-503")
            #expect(s503 == 503)
            let (s400, e400, _) = try await call("fail-400")
            #expect(s400 == 400 && e400.message == "This model's maximum context length is 8 tokens.", "the caller's own mistake passes through")
            let (s429, _, h429) = try await call("fail-429")
            #expect(s429 == 429 && h429.first(name: "Retry-After") == "7")
            let (sDown, eDown, _) = try await call("down")
            #expect(sDown == 502 && eDown.code == "upstream_unreachable" && eDown.message.contains("connection refused"))
            #expect(!eDown.message.contains("127.0.0.1"), "internal addresses are not shown to clients")
        }
    }

    @Test("a dead endpoint is skipped: requests fail over to a live one")
    func failOver() async throws {
        try await Harness.run(models: { url in
            [ModelDefinition(modelId: "chat", modelName: "m", endpoints: [.init(url: "http://127.0.0.1:9/v1"), .init(url: url)])]
        }) { lisa in
            for _ in 0..<4 {
                let (status, _, _) = try await lisa.send("/v1/chat/completions", json: Self.chat)
                #expect(status == 200)
            }
            #expect(lisa.fake.observations.requests["/v1/chat/completions"] == 4)
        }
    }

    @Test("a stream that breaks mid-way ends with an error event, never a fake [DONE]", arguments: ["break-stream", "no-done"])
    func brokenStream(upstreamModel: String) async throws {
        try await Harness.run(models: { url in [ModelDefinition(modelId: "chat", modelName: upstreamModel, modelUrl: url)] }) { lisa in
            let (status, body, _) = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"a b c d e"}]}"#
            )
            #expect(status == 200)
            var parser = ServerSentEventParser()
            let events = try parser.feed(ByteBuffer(string: body)).map(\.event)
            #expect(events.count >= 2)
            #expect(!events.contains { $0.isDone })
            let last = try #require(events.last)
            #expect(last.event == "error")
            let error = try errorBody(last.data)
            #expect(error.type == "upstream_error")
        }
    }

    @Test("a client that disconnects mid-stream cancels the upstream request")
    func disconnectCancelsStream() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.chunkDelay = .milliseconds(200)
        try await Harness.run(fake: FakeUpstream(configuration: configuration)) { lisa in
            let words = (1...50).map(String.init).joined(separator: " ")  // ~10 s of streaming
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                var request = HTTPClientRequest(url: lisa.baseURL + "/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(adminKey)")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"\#(words)"}]}"#))
                let task = Task {
                    let response = try await client.execute(request, timeout: .seconds(30))
                    var iterator = response.body.makeAsyncIterator()
                    _ = try await iterator.next()
                }
                _ = try await task.value  // read one chunk, then drop the response: the connection closes
            }
            try await client.shutdown()
            let cancelled = await eventually { lisa.fake.observations.cancelled == 1 }
            #expect(cancelled, "the upstream stream should be cancelled, observations: \(lisa.fake.observations)")
            #expect(lisa.fake.observations.completed == 0)
        }
    }

    @Test("a client that gives up on a slow non-streaming answer cancels the upstream request")
    func disconnectCancelsNonStreaming() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.slowDelay = .seconds(10)
        try await Harness.run(
            fake: FakeUpstream(configuration: configuration),
            models: { url in [ModelDefinition(modelId: "chat", modelName: "slow", modelUrl: url)] }
        ) { lisa in
            var request = HTTPClientRequest(url: lisa.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(adminKey)")
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: Self.chat))
            // The client gives up once the upstream has the request (not after a fixed time, which a
            // busy machine may spend before the request even arrives).
            let call = Task { try await HTTPClient.shared.execute(request, timeout: .seconds(60)) }
            #expect(await eventually { lisa.fake.observations.requests.values.reduce(0, +) == 1 })
            call.cancel()
            await #expect(throws: (any Error).self) { _ = try await call.value }
            let cancelled = await eventually { lisa.fake.observations.cancelled == 1 }
            #expect(cancelled, "the upstream request should be cancelled, observations: \(lisa.fake.observations)")
        }
    }
}
