import Foundation
import LISAKitTesting
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

@testable import LISAKit

/// Buffered answers are held to a memory budget per call and across calls: past the first an
/// upstream's answer fails with 502, past the second with 503 and Retry-After, and what a call
/// held is given back when its answer is dropped.
@Suite("Answer memory budget")
struct AnswerMemoryBudgetTests {
    static let logger = Logger(label: "lisa-test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("the shared budget takes what fits and gives it back; a charge returns its bytes when released or dropped")
    func accounting() throws {
        var limits = AnswerMemoryBudget.Limits()
        limits.perCallBytes = 1000
        limits.inFlightBytes = 1500
        let budget = AnswerMemoryBudget(limits: limits)
        let first = budget.charge(factor: 1)
        try first.add(600)
        try first.add(400)
        #expect(budget.bytesInUse == 1000)
        #expect(throws: AnswerMemoryCharge.Refusal.self) { try first.add(1) }
        #expect(first.refusal == .tooLargeForOneCall(limit: 1000))
        do {
            let second = budget.charge(factor: 2)
            try second.add(200)
            #expect(budget.bytesInUse == 1400)
            #expect(throws: AnswerMemoryCharge.Refusal.self) { try second.add(100) }
            #expect(second.refusal == .budgetSpent)
        }
        // The second charge was dropped: its bytes are back.
        #expect(budget.bytesInUse == 1000)
        first.release()
        first.release()
        #expect(budget.bytesInUse == 0)
        let huge = budget.charge(factor: 8)
        #expect(throws: AnswerMemoryCharge.Refusal.self) { try huge.add(Int.max / 2) }
        #expect(budget.bytesInUse == 0)
    }

    @Test("through the gateway: an answer past the per-call budget is a 502, a translated one counts its factor, a spent budget is a 503")
    func gateway() async throws {
        let size = Mutex<Int>(0)
        let provider = InMemoryProvider { call throws(UpstreamFailure) in
            let padding = String(repeating: "a", count: size.withLock { $0 })
            let body: String
            if call.operation == .messages {
                body =
                    #"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"\#(padding)"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#
            } else {
                body =
                    #"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"\#(padding)"},"finish_reason":"stop"}]}"#
            }
            // In pieces, as a socket would deliver it.
            let bytes = ByteBuffer(string: body)
            let pieces = stride(from: 0, to: bytes.readableBytes, by: 4096).map {
                bytes.getSlice(at: $0, length: min(4096, bytes.readableBytes - $0))!
            }
            return UpstreamResponse(status: 200, headers: ["content-type": "application/json"], body: UpstreamBody(pieces))
        }
        var limits = AnswerMemoryBudget.Limits()
        limits.perCallBytes = 256 << 10
        limits.inFlightBytes = 384 << 10
        let budget = AnswerMemoryBudget(limits: limits)
        let store = try await SQLStateStore.inMemory()
        let gateway = Gateway(registry: ModelRegistry(), provider: provider, answerMemory: budget, logger: Self.logger)
        var anthropic = ModelDefinition(modelId: "claude", modelName: "m", modelUrl: "http://a.invalid/v1")
        anthropic.upstreamAPI = .anthropic
        let models = [ModelDefinition(modelId: "chat", modelName: "m", modelUrl: "http://a.invalid/v1"), anthropic]
        let manager = try ModelManager(
            store: store.models, coordination: store.coordination, usage: store.usage, registry: gateway.registry, configured: models,
            logger: Self.logger)
        try await manager.reload()
        let context = InferenceContext(requestID: "req-memory", logger: Self.logger)
        func call(_ model: String) async -> Result<GatewayResponse, LISAError> {
            do throws(LISAError) {
                return .success(
                    try await gateway.chatCompletions(
                        body: ByteBuffer(string: #"{"model":"\#(model)","messages":[{"role":"user","content":"hi"}]}"#), context: context))
            } catch {
                return .failure(error)
            }
        }

        // 270 KB is past a 256 KiB budget for one call.
        size.withLock { $0 = 270_000 }
        guard case .failure(let tooLarge) = await call("chat") else { Issue.record("a 270 KB answer passed a 256 KiB budget"); return }
        #expect(tooLarge.code == .upstreamFailed)
        #expect(tooLarge.reason == "upstream_answer_too_large")
        #expect(tooLarge.message.contains("larger than LISA holds for one call"))
        #expect(budget.bytesInUse == 0, "a refused answer gives back what it held")
        do {
            // 225 KB passes, and holds its share of the 384 KiB for all calls while it is kept...
            size.withLock { $0 = 225_000 }
            let held = try await call("chat").get()
            #expect(budget.bytesInUse > 225_000)
            // ...so a second of 175 KB waits its turn.
            size.withLock { $0 = 175_000 }
            guard case .failure(let spent) = await call("chat") else { Issue.record("the shared budget was overspent"); return }
            #expect(spent.code == .upstreamUnavailable)
            #expect(spent.reason == "answer_memory_budget")
            #expect(spent.retryAfter == 1)
            withExtendedLifetime(held) {}
        }
        #expect(budget.bytesInUse == 0, "a dropped answer gives its memory back")
        #expect(try await call("chat").get().contentType == "application/json")

        // Translated, an answer counts its factor: a Messages answer of half the budget and a little is past it.
        size.withLock { $0 = (256 << 10) / AnswerMemoryBudget.Factor.translatedFromUpstream + 2_000 }
        guard case .failure(let translated) = await call("claude") else { Issue.record("a translated answer passed uncounted"); return }
        #expect(translated.reason == "upstream_answer_too_large")
        size.withLock { $0 = (256 << 10) / AnswerMemoryBudget.Factor.translatedFromUpstream - 2_000 }
        guard case .success(let answer) = await call("claude"), case .buffer(let buffer) = answer.body else {
            Issue.record("a translated answer within budget failed")
            return
        }
        #expect(String(buffer: buffer).contains(#""object":"chat.completion""#))
        try await store.close()
    }
}
