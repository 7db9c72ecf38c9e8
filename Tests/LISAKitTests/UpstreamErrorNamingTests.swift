import Foundation
import LISAKitTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

@testable import LISAKit

/// An upstream's own 4xx message names the model as the upstream knows it; the client sees
/// the name it asked for (unless the model shows its upstream's name).
@Suite("Upstream error messages name the client's model")
struct UpstreamErrorNamingTests {
    static let logger = Logger(label: "lisa-test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("a vLLM 400 naming the upstream's model comes back naming the requested one; passUpstreamModelName keeps it")
    func renamed() async throws {
        let provider = InMemoryProvider { _ throws(UpstreamFailure) in
            let body =
                #"{"object":"error","message":"The model `Qwen/Qwen2.5-0.5B` does not support tools; Qwen/Qwen2.5-0.5B is a base model.","type":"BadRequestError","param":null,"code":400}"#
            return UpstreamResponse(status: 400, headers: ["content-type": "application/json"], body: UpstreamBody([ByteBuffer(string: body)]))
        }
        let store = try await SQLStateStore.inMemory()
        let gateway = Gateway(registry: ModelRegistry(), provider: provider, logger: Self.logger)
        var shown = ModelDefinition(modelId: "shown", modelName: "Qwen/Qwen2.5-0.5B", modelUrl: "http://a.invalid/v1")
        shown.passUpstreamModelName = true
        let models = [ModelDefinition(modelId: "qwen-alt", modelName: "Qwen/Qwen2.5-0.5B", modelUrl: "http://a.invalid/v1"), shown]
        let manager = try ModelManager(
            store: store.models, coordination: store.coordination, usage: store.usage, registry: gateway.registry, configured: models,
            logger: Self.logger)
        try await manager.reload()
        let context = InferenceContext(requestID: "req-naming", logger: Self.logger)
        for (model, expected) in [
            ("qwen-alt", "The model `qwen-alt` does not support tools; qwen-alt is a base model."),
            ("shown", "The model `Qwen/Qwen2.5-0.5B` does not support tools; Qwen/Qwen2.5-0.5B is a base model."),
        ] {
            do {
                _ = try await gateway.chatCompletions(
                    body: ByteBuffer(string: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"#), context: context)
                Issue.record("a 400 became an answer")
            } catch {
                #expect(error.upstreamStatus == 400 || error.code == .invalidRequest, "\(error)")
                #expect(error.message == expected)
            }
        }
        try await store.close()
    }
}
