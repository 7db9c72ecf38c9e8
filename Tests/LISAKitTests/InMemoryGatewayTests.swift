import Foundation
import LISAKit
import LISAKitTesting
import Logging
import NIOCore
import NIOFoundationCompat
import Synchronization
import Testing

/// The gateway with no sockets: an ``InMemoryProvider`` behind it.
@Suite("Gateway in process (in-memory provider)")
struct InMemoryGatewayTests {
    static let logger = Logger(label: "lisa-test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func withGateway(
        provider: InMemoryProvider, models: [ModelDefinition], access: AccessConfiguration = AccessConfiguration(),
        _ body: (Gateway) async throws -> Void
    ) async throws {
        let store = try await SQLStateStore.inMemory()
        do {
            let gateway = Gateway(registry: ModelRegistry(), provider: provider, access: access, logger: logger)
            let manager = try ModelManager(
                store: store.models, coordination: store.coordination, usage: store.usage, registry: gateway.registry, configured: models,
                logger: logger)
            try await manager.reload()
            try await body(gateway)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    static func context(_ principal: Principal = .admin) -> InferenceContext {
        InferenceContext(requestID: "req-memory", principal: principal, logger: logger)
    }

    @Test("a chat completion and a stream through routing, with the client's bytes and the upstream's model name")
    func chatAndStream() async throws {
        let calls = Mutex<[InMemoryProvider.Call]>([])
        let provider = InMemoryProvider { (call) throws(UpstreamFailure) in
            calls.withLock { $0.append(call) }
            return try await InMemoryProvider.echo.answer(call)
        }
        try await Self.withGateway(
            provider: provider, models: [ModelDefinition(modelId: "chat", modelName: "upstream-name", modelUrl: "http://a.invalid/v1")]
        ) { gateway in
            let answer = try await gateway.chatCompletions(
                body: ByteBuffer(string: #"{"model":"chat","messages":[{"role":"user","content":"hi there"}],"extra":1}"#), context: Self.context()
            )
            guard case .buffer(let buffer) = answer.body else { Issue.record("expected a body"); return }
            let completion = try JSONDecoder().decode(ChatCompletion.self, from: buffer)
            #expect(completion.choices.first?.message.content == .text("echo: hi there"))
            #expect(calls.withLock { $0.first?.json?["model"]?.stringValue } == "upstream-name")
            #expect(calls.withLock { $0.first?.json?["extra"] } == 1, "unknown members pass through")

            let streamed = try await gateway.chatCompletions(
                body: ByteBuffer(string: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"one two"}]}"#), context: Self.context()
            )
            guard case .eventStream(let relay) = streamed.body else { Issue.record("expected a stream"); return }
            let received = Mutex<[ByteBuffer]>([])
            try await relay.pump { chunk in received.withLock { $0.append(chunk) } }
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            for chunk in received.withLock({ $0 }) { events += try parser.feed(chunk).map(\.event) }
            #expect(events.last?.isDone == true)
            #expect(events.count == 4, "three words (\"echo:\", \"one\", \"two\") and [DONE]")
        }
    }

    @Test("a connect failure on one endpoint is retried on the other; a model the caller may not use is 404")
    func failoverAndAccess() async throws {
        let provider = InMemoryProvider { (call) throws(UpstreamFailure) in
            if call.endpoint.url == "http://dead.invalid/v1" { throw UpstreamFailure(reason: .connectFailed("refused")) }
            return try await InMemoryProvider.echo.answer(call)
        }
        var twoEndpoints = ModelDefinition(modelId: "pair", modelName: "x")
        twoEndpoints.endpoints = [EndpointDefinition(url: "http://dead.invalid/v1"), EndpointDefinition(url: "http://live.invalid/v1")]
        var secret = ModelDefinition(modelId: "secret", modelName: "y", modelUrl: "http://live.invalid/v1")
        secret.allowedGroups = ["vip"]
        try await Self.withGateway(provider: provider, models: [twoEndpoints, secret]) { gateway in
            for _ in 0..<4 {
                let answer = try await gateway.chatCompletions(
                    body: ByteBuffer(string: #"{"model":"pair","messages":[{"role":"user","content":"x"}]}"#), context: Self.context()
                )
                #expect(answer.contentType == "application/json")
            }
            let user = Principal(username: "mallory", groups: [], method: .apiToken)
            await #expect(throws: LISAError.modelNotFound("secret")) {
                _ = try await gateway.chatCompletions(
                    body: ByteBuffer(string: #"{"model":"secret","messages":[{"role":"user","content":"x"}]}"#), context: Self.context(user)
                )
            }
        }
    }
}
