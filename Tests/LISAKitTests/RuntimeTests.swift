import Foundation
import LISAKit
import LISAKitTesting
import Logging
import MetricsTestKit
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import Testing

/// LISA in process: a runtime from a configuration, models called with typed values, no
/// HTTP server and no sockets (an in-memory provider).
@Suite("LISARuntime in process")
struct RuntimeTests {
    static func withRuntime(
        metrics: TestMetrics? = nil, configure: (inout LISAConfiguration) -> Void = { _ in }, _ body: (LISARuntime) async throws -> Void
    ) async throws {
        var configuration = LISAConfiguration()
        configuration.adminKey = "runtime-admin-key-0123456789"
        configuration.hostingBackend = "none"
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-runtime-\(UUID().uuidString)").path
        var secret = ModelDefinition(modelId: "secret", modelName: "s", modelUrl: "http://secret.invalid/v1")
        secret.allowedGroups = ["vip"]
        configuration.models = [
            ModelDefinition(modelId: "chat", modelName: "upstream-chat", modelUrl: "http://chat.invalid/v1"), secret,
            ModelDefinition(modelId: "embed", modelName: "e", modelType: .embedding, modelUrl: "http://embed.invalid/v1"),
        ]
        configure(&configuration)
        let store = try await SQLStateStore.inMemory()
        let runtime: LISARuntime
        do {
            runtime = try await LISARuntime(
                configuration: configuration, store: store, provider: InMemoryProvider.echo, metrics: metrics, logger: Logger(label: "runtime-test")
            )
        } catch {
            try? await store.close()
            throw error
        }
        do {
            try await body(runtime)
        } catch {
            try? await runtime.shutdown()
            try? await store.close()
            try? FileManager.default.removeItem(atPath: configuration.dataDirectory)
            throw error
        }
        try await runtime.shutdown()
        try await store.close()
        try? FileManager.default.removeItem(atPath: configuration.dataDirectory)
    }

    static func request(_ model: String, _ text: String) throws -> ChatCompletionRequest {
        try JSONDecoder().decode(
            ChatCompletionRequest.self, from: Data(#"{"model":"\#(model)","messages":[{"role":"user","content":"\#(text)"}]}"#.utf8))
    }

    @Test("stored responses stay within their owner's quota: the oldest make room")
    func storedResponseQuota() async throws {
        try await Self.withRuntime(configure: { $0.quotas.maxStoredResponsesPerUser = 3 }) { runtime in
            var ids: [String] = []
            for index in 0..<5 {
                let context = InferenceContext(requestID: "r\(index)", principal: .admin, logger: Logger(label: "quota-test"))
                let answer = try await runtime.responses(body: ByteBuffer(string: #"{"model":"chat","input":"n\#(index)"}"#), context: context)
                guard case .buffer(let buffer) = answer.body else {
                    Issue.record("a buffered request got a stream")
                    return
                }
                ids.append(try #require(try JSONDecoder().decode(JSONValue.self, from: buffer)["id"]?.stringValue))
            }
            for id in ids.prefix(2) {
                await #expect(throws: LISAError.self) { try await runtime.response(id: id, for: .admin) }
            }
            for id in ids.suffix(3) {
                #expect(try await runtime.response(id: id, for: .admin)["id"] == .string(id))
            }
        }
    }

    @Test("chat, a stream and embeddings through the runtime's gateway, typed")
    func typedCalls() async throws {
        try await Self.withRuntime { runtime in
            let answer = try await runtime.chatCompletion(try Self.request("chat", "hello there"))
            #expect(answer.choices.first?.message.content == .text("echo: hello there"))
            var pieces: [String] = []
            for try await chunk in runtime.streamChatCompletion(try Self.request("chat", "one two")) {
                pieces += chunk.choices.compactMap { $0.delta.content }
            }
            #expect(pieces.joined() == "echo: one two")
            let embedding = try await runtime.embeddings(EmbeddingRequest(model: "embed", input: .texts(["abc", "de"])))
            #expect(embedding.data.count == 2)
        }
    }

    @Test("metrics go to the embedder's swift-metrics backend; completions are typed too")
    func metricsBackend() async throws {
        let metrics = TestMetrics()
        try await Self.withRuntime(metrics: metrics) { runtime in
            _ = try await runtime.chatCompletion(try Self.request("chat", "count me"))
            let completion = try await runtime.completion(CompletionRequest(model: "chat", prompt: .text("say")))
            #expect(!completion.choices.isEmpty)
            let requests = try metrics.expectCounter("lisa_requests_total", [("model", "chat"), ("endpoint", "chat.invalid"), ("status", "200")])
            #expect(requests.totalValue == 2)
            let durations = try metrics.expectTimer("lisa_request_duration_seconds", [("model", "chat")])
            #expect(durations.values.count == 2 && durations.values.allSatisfy { $0 > 0 })
            await #expect(throws: LISAError.modelNotFound("nope")) { _ = try await runtime.chatCompletion(try Self.request("nope", "x")) }
            // A name that is no model gets no series: callers cannot grow the label set.
            #expect(throws: (any Error).self) {
                try metrics.expectCounter("lisa_requests_total", [("model", "nope"), ("endpoint", "none"), ("status", "404")])
            }
        }
    }

    @Test("access checks hold in process: a model outside the caller's groups does not exist for them")
    func accessInProcess() async throws {
        try await Self.withRuntime { runtime in
            let user = Principal(username: "mallory", groups: [], method: .apiToken)
            await #expect(throws: LISAError.modelNotFound("secret")) {
                _ = try await runtime.chatCompletion(try Self.request("secret", "x"), as: user)
            }
            let vip = Principal(username: "victor", groups: ["vip"], method: .apiToken)
            let allowed = try await runtime.chatCompletion(try Self.request("secret", "x"), as: vip)
            #expect(allowed.choices.count == 1)
            #expect(runtime.services.count == 5, "prober, models, ingestion, the token cache and the usage recorder (no OIDC configured)")
        }
    }
}

@Suite("LISARuntime as a Service")
struct RuntimeServiceTests {
    static func configuration() -> LISAConfiguration {
        var configuration = LISAConfiguration()
        configuration.adminKey = "runtime-admin-key-0123456789"
        configuration.hostingBackend = "none"
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-service-\(UUID().uuidString)").path
        configuration.models = [ModelDefinition(modelId: "chat", modelName: "upstream-chat", modelUrl: "http://chat.invalid/v1")]
        return configuration
    }

    @Test("withRuntime runs the runtime around a closure and closes the state it opened afterwards, also when the closure throws")
    func scopedRuntime() async throws {
        let configuration = Self.configuration()
        defer { try? FileManager.default.removeItem(atPath: configuration.dataDirectory) }
        let (answer, runtime) = try await LISARuntime.withRuntime(
            configuration: configuration, provider: InMemoryProvider.echo, logger: Logger(label: "service-test")
        ) { runtime in
            (try await runtime.chatCompletion(try RuntimeTests.request("chat", "hi")), runtime)
        }
        #expect(answer.choices.first?.message.content == .text("echo: hi"))
        // The SQLite store it opened is closed: reading it fails.
        await #expect(throws: (any Error).self) { _ = try await runtime.store.settings.value(for: "deployment_id") }

        struct Failed: Error {}
        let thrown = LISARuntimeBox()
        await #expect(throws: Failed.self) {
            try await LISARuntime.withRuntime(configuration: configuration, provider: InMemoryProvider.echo, logger: Logger(label: "service-test")) {
                runtime in
                thrown.runtime = runtime
                throw Failed()
            }
        }
        await #expect(throws: (any Error).self) { _ = try await thrown.runtime?.store.settings.value(for: "deployment_id") }
    }

    @Test("run() closes what the runtime opened after a graceful shutdown; when cancelled it leaves that to shutdown()")
    func runClosesOnEnd() async throws {
        let configuration = Self.configuration()
        defer { try? FileManager.default.removeItem(atPath: configuration.dataDirectory) }
        let runtime = try await LISARuntime(configuration: configuration, provider: InMemoryProvider.echo, logger: Logger(label: "service-test"))
        let group = ServiceGroup(services: [runtime], logger: Logger(label: "service-test"))
        let running = Task { try await group.run() }
        _ = try await runtime.chatCompletion(try RuntimeTests.request("chat", "hi"))
        await group.triggerGracefulShutdown()
        try await running.value
        await #expect(throws: (any Error).self) { _ = try await runtime.store.settings.value(for: "deployment_id") }
        try await runtime.shutdown()

        // Cancelled (the group is cancelling everything, requests may still be finishing):
        // the store stays open until the owner's shutdown().
        let second = Self.configuration()
        defer { try? FileManager.default.removeItem(atPath: second.dataDirectory) }
        let cancelled = try await LISARuntime(configuration: second, provider: InMemoryProvider.echo, logger: Logger(label: "service-test"))
        let task = Task { try await cancelled.run() }
        _ = try await cancelled.chatCompletion(try RuntimeTests.request("chat", "hi"))
        task.cancel()
        try await task.value
        _ = try await cancelled.store.settings.value(for: "deployment_id")
        try await cancelled.shutdown()
        await #expect(throws: (any Error).self) { _ = try await cancelled.store.settings.value(for: "deployment_id") }
    }
}

/// Hands a runtime out of a closure that throws.
final class LISARuntimeBox: @unchecked Sendable {
    // Written once inside the closure, read after it returned: never at the same time.
    var runtime: LISARuntime?
}
