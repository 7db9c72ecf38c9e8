import Foundation
import LISAKitTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

@testable import LISAKit

/// Every path that spends is reserved before and charged after, whatever the client sends or
/// does: output limits read as the upstream reads them, abandoned calls, RAG embeddings, media.
@Suite("Spending is charged")
struct SpendingTests {
    static let alice = Principal(username: "alice", groups: ["team"], method: .apiToken, tokenID: "tok_alice")

    /// A runtime over `provider`, with a chat, an embedding, an image and a transcription model.
    static func withRuntime(
        provider: any InferenceProvider, configure: (inout LISAConfiguration) -> Void = { _ in }, _ body: (LISARuntime) async throws -> Void
    ) async throws {
        var configuration = LISAConfiguration()
        configuration.adminKey = "spending-admin-key-0123456789"
        configuration.hostingBackend = "none"
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-spending-\(UUID().uuidString)").path
        configuration.models = [
            ModelDefinition(modelId: "chat", modelName: "upstream-chat", modelUrl: "http://chat.invalid/v1"),
            ModelDefinition(modelId: "embed", modelName: "e", modelType: .embedding, modelUrl: "http://embed.invalid/v1"),
            ModelDefinition(modelId: "img", modelName: "i", modelType: .imagegen, modelUrl: "http://img.invalid/v1"),
            ModelDefinition(modelId: "img-plain", modelName: "plain", modelType: .imagegen, modelUrl: "http://img.invalid/v1"),
            ModelDefinition(modelId: "stt", modelName: "s", modelType: .transcription, modelUrl: "http://stt.invalid/v1"),
            ModelDefinition(modelId: "stt-seconds", modelName: "seconds", modelType: .transcription, modelUrl: "http://stt.invalid/v1"),
            ModelDefinition(modelId: "stt-text", modelName: "text", modelType: .transcription, modelUrl: "http://stt.invalid/v1"),
            ModelDefinition(modelId: "rank", modelName: "r", modelType: .rerank, modelUrl: "http://rank.invalid/v1"),
        ]
        configuration.usage.flushIntervalSeconds = 3600
        configure(&configuration)
        let store = try await SQLStateStore.inMemory()
        let runtime = try await LISARuntime(configuration: configuration, store: store, provider: provider, logger: Logger(label: "spending-test"))
        do {
            try await body(runtime)
        } catch {
            try? await runtime.shutdown()
            try? await store.close()
            throw error
        }
        try await runtime.shutdown()
        try await store.close()
        try? FileManager.default.removeItem(atPath: configuration.dataDirectory)
    }

    static func context(_ principal: Principal, _ id: String = UUID().uuidString) -> InferenceContext {
        InferenceContext(requestID: id, principal: principal, logger: Logger(label: "spending-test"))
    }

    /// Settling happens off the request path: waits until nothing is held, then the budget.
    static func settled(_ runtime: LISARuntime, _ principal: Principal) async throws -> BudgetStatus {
        try await waitUntil { try await runtime.budgets(for: principal).data.allSatisfy { $0.reserved == 0 } }
        return try #require(try await runtime.budgets(for: principal).data.first)
    }

    static func report(_ runtime: LISARuntime) async throws -> UsageReport {
        try await runtime.usage.recorder.flush()
        return try await runtime.usageReport(
            UsageQuery(from: Date().addingTimeInterval(-60), to: Date().addingTimeInterval(60), bucket: .none, groupBy: [.model]), for: .admin
        )
    }

    // MARK: - Item 5: what is reserved

    @Test(
        "the output reserved is the largest limit the upstream may honour, times n and best_of; 0, negative, fractional and absurd limits are unset")
    func outputLimits() {
        func reserved(_ operation: UpstreamOperation, _ json: String) -> Int? {
            OutputLimit(operation, inbound: ByteBuffer(string: json))?.reservation(cap: nil, fallback: 4096)
        }
        #expect(reserved(.chatCompletions, #"{"max_completion_tokens":0,"max_tokens":300}"#) == 300, "vLLM reads 0 as unset and writes 300")
        #expect(reserved(.chatCompletions, #"{"max_completion_tokens":500,"max_tokens":300}"#) == 500)
        #expect(reserved(.chatCompletions, #"{"max_output_tokens":1}"#) == 4096, "no chat upstream honours max_output_tokens")
        #expect(reserved(.chatCompletions, #"{"max_tokens":100,"n":3}"#) == 300)
        #expect(reserved(.chatCompletions, #"{"max_tokens":-5}"#) == 4096)
        #expect(reserved(.chatCompletions, #"{"max_tokens":12.5}"#) == 4096)
        #expect(reserved(.chatCompletions, #"{"max_tokens":300.0}"#) == 300)
        #expect(reserved(.chatCompletions, #"{"max_tokens":"300"}"#) == 4096)
        #expect(reserved(.chatCompletions, #"{"max_tokens":2000000}"#) == 4096, "over any model's output")
        #expect(reserved(.chatCompletions, #"{"max_tokens":1e300,"n":1e300}"#) == 4096, "huge numbers are no count and no crash")
        #expect(reserved(.chatCompletions, #"{"max_tokens":10,"n":0}"#) == 10)
        #expect(reserved(.completions, #"{"max_tokens":10,"n":2,"best_of":5}"#) == 50, "best_of answers are written, n returned")
        #expect(reserved(.messages, #"{"max_tokens":64}"#) == 64)
        #expect(reserved(.responses, #"{"max_output_tokens":0,"max_tokens":9}"#) == 4096)
        #expect(reserved(.responses, #"{"max_output_tokens":77}"#) == 77)
        #expect(reserved(.embeddings, #"{"max_tokens":77}"#) == nil)
        #expect(OutputLimit(.chatCompletions, inbound: ByteBuffer(string: #"{"max_tokens":100}"#))?.reservation(cap: 50, fallback: 4096) == 50)
    }

    @Test(
        "8 concurrent calls with max_completion_tokens 0 and max_tokens 300 on a 1,000-token budget: not all are admitted, spend stays within one call over"
    )
    func concurrentReservations() async throws {
        let gate = Gate(expected: 8)
        // Every call that reaches the upstream waits until all eight have arrived or been
        // refused, so none settles before the others are admitted: the budget sees them all at once.
        let provider = InMemoryProvider { call in
            await gate.pass()
            return InMemoryProvider.json([
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "upstream-chat",
                "choices": [["index": 0, "message": ["role": "assistant", "content": "words"], "finish_reason": "length"]],
                "usage": ["prompt_tokens": 20, "completion_tokens": 300, "total_tokens": 320],
            ])
        }
        try await Self.withRuntime(provider: provider, configure: { $0.budgets.user = BudgetLimit(period: .day, tokens: 1000) }) { runtime in
            let body = #"{"model":"chat","messages":[{"role":"user","content":"write"}],"max_completion_tokens":0,"max_tokens":300}"#
            let admitted = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        do {
                            _ = try await runtime.gateway.chatCompletions(
                                body: ByteBuffer(string: body), context: Self.context(Self.alice, "r\(index)"))
                            return true
                        } catch {
                            #expect((error as? LISAError)?.reason == "budget_exceeded")
                            await gate.refused()
                            return false
                        }
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            let status = try await Self.settled(runtime, Self.alice)
            // Each call reserves its input (~25 tokens) and 300: calls start while spent and
            // reserved are under 1,000, so four at most; unchecked, eight spend 2,560.
            #expect(admitted >= 1 && admitted <= 4, "admitted \(admitted)")
            #expect(status.spent == Double(admitted * 320))
            #expect(status.spent <= 1000 + 320, "at most one call over the budget")
        }
    }

    // MARK: - Item 6: abandoned calls

    @Test("a client that leaves after the upstream read its prompt is charged the prompt, estimated and marked")
    func abandonedCall() async throws {
        let (arrived, arrival) = AsyncStream.makeStream(of: Void.self)
        let provider = InMemoryProvider { call throws(UpstreamFailure) in
            arrival.yield()
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                throw UpstreamFailure(reason: .cancelled)
            }
            throw UpstreamFailure(reason: .timedOut)
        }
        try await Self.withRuntime(provider: provider, configure: { $0.budgets.user = BudgetLimit(period: .day, tokens: 100_000) }) { runtime in
            let prompt = String(repeating: "tell me more about this ", count: 90)  // ~2,200 bytes: ~550 tokens
            let body = ByteBuffer(string: #"{"model":"chat","messages":[{"role":"user","content":"\#(prompt)"}]}"#)
            let call = Task { try await runtime.gateway.chatCompletions(body: body, context: Self.context(Self.alice)) }
            for await _ in arrived { break }
            call.cancel()
            await #expect { _ = try await call.value } throws: { ($0 as? LISAError)?.reason == "cancelled" }
            let status = try await Self.settled(runtime, Self.alice)
            let estimate = Double(body.readableBytes / 4)
            #expect(status.spent == estimate, "the prompt sent, at four bytes a token")
            let row = try #require(try await Self.report(runtime).data.first { $0.model == "chat" })
            #expect(row.inputTokens == Int(estimate) && row.outputTokens == 0)
            #expect(row.estimatedRequests == 1 && row.errors == 1)
        }
    }

    @Test("a call no upstream read (its endpoint refused the connection) is not charged")
    func unsentCallIsFree() async throws {
        let provider = InMemoryProvider { _ throws(UpstreamFailure) in throw UpstreamFailure(reason: .connectFailed("connection refused")) }
        try await Self.withRuntime(provider: provider, configure: { $0.budgets.user = BudgetLimit(period: .day, tokens: 1000) }) { runtime in
            let body = ByteBuffer(string: #"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":10}"#)
            await #expect { _ = try await runtime.gateway.chatCompletions(body: body, context: Self.context(Self.alice)) } throws: {
                ($0 as? LISAError)?.reason == "upstream_unreachable"
            }
            let status = try await Self.settled(runtime, Self.alice)
            #expect(status.spent == 0)
        }
    }

    // MARK: - Item 7: RAG

    @Test(
        "ingestion and retrieval embeddings are charged to the uploader's and the searcher's budgets; over budget, uploads are refused and jobs fail with the reason"
    )
    func ragIsBudgeted() async throws {
        try await Self.withRuntime(
            provider: InMemoryProvider.echo,
            configure: {
                $0.budgets.users = ["alice": BudgetLimit(period: .day, tokens: 200), "bob": BudgetLimit(period: .day, tokens: 1_000_000)]
            }
        ) { runtime in
            let rag = runtime.rag
            _ = try await rag.createRepository(RAGRepository(repositoryId: "docs", embeddingModelId: "embed"), by: .admin)
            let text = Data(String(repeating: "A sentence about budgets and embeddings. ", count: 40).utf8)  // 1,640 bytes
            // Both queued while nothing is spent; the first spends more than the whole budget.
            let first = try await rag.upload(text, filename: "a.txt", to: "docs", collection: nil, chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            let second = try await rag.upload(text, filename: "b.txt", to: "docs", collection: nil, chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            await rag.ingest(first.jobId)
            #expect(try await rag.waitForJob(first.jobId)?.status == .completed)
            let spent = try await Self.settled(runtime, Self.alice).spent
            #expect(spent > 200, "ingestion spent \(spent) tokens of alice's budget")

            await rag.ingest(second.jobId)
            let failed = try #require(try await rag.waitForJob(second.jobId))
            #expect(failed.status == .failed)
            #expect(failed.reason?.contains("budget") == true, "\(failed.reason ?? "")")
            let after = try await Self.settled(runtime, Self.alice).spent
            #expect(after == spent, "the refused job spent nothing")
            await #expect {
                _ = try await rag.upload(text, filename: "c.txt", to: "docs", collection: nil, chunkSize: nil, chunkOverlap: nil, by: Self.alice)
            } throws: { ($0 as? LISAError)?.reason == "budget_exceeded" }
            await #expect {
                _ = try await rag.search("budgets", in: "docs", collection: nil, topK: 1, for: Self.alice)
            } throws: { ($0 as? LISAError)?.reason == "budget_exceeded" }

            let bob = Principal(username: "bob", groups: [], method: .oidc)
            _ = try await rag.search("budgets", in: "docs", collection: nil, topK: 1, for: bob)
            let searched = try await Self.settled(runtime, bob).spent
            #expect(searched > 0, "the searcher's query embedding is charged")
        }
    }

    // MARK: - Item 8: media

    @Test("images, transcriptions and rerank are charged what the upstream reports in their own shapes, else an estimate marked as one")
    func mediaUsage() async throws {
        let provider = InMemoryProvider { call in
            let model = call.json?["model"]?.stringValue ?? Self.formModel(call.body)
            switch (call.operation, model) {
            case (.imagesGenerations, "i"):
                return InMemoryProvider.json([
                    "created": 0, "data": [["b64_json": "AAAA"]],
                    "usage": [
                        "input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210,
                        "input_tokens_details": ["text_tokens": 50, "image_tokens": 0],
                    ],
                ])
            case (.imagesGenerations, _):
                return InMemoryProvider.json([
                    "created": 0, "data": [["url": "https://images.invalid/1.png"], ["url": "https://images.invalid/2.png"]],
                ])
            case (.audioTranscriptions, "s"):
                return InMemoryProvider.json([
                    "text": "hello there",
                    "usage": [
                        "type": "tokens", "input_tokens": 120, "output_tokens": 3, "total_tokens": 123,
                        "input_token_details": ["audio_tokens": 118, "text_tokens": 2],
                    ],
                ])
            case (.rerank, _):
                return InMemoryProvider.json(["results": [["index": 0, "relevance_score": 0.9]], "usage": ["total_tokens": 42]])
            case (.audioTranscriptions, "seconds"):
                return InMemoryProvider.json(["text": "hello there world", "usage": ["type": "duration", "seconds": 30]])
            default:
                return UpstreamResponse(status: 200, headers: ["Content-Type": "text/plain"], body: UpstreamBody([ByteBuffer(string: "hello there")]))
            }
        }
        try await Self.withRuntime(provider: FormTakingProvider(base: provider)) { runtime in
            let gateway = runtime.gateway
            for model in ["img", "img-plain"] {
                let body = ByteBuffer(string: #"{"model":"\#(model)","prompt":"a red fox","n":2,"size":"1024x1024","quality":"high"}"#)
                _ = try await gateway.media(.imageGenerations, body: body, contentType: "application/json", context: Self.context(Self.alice))
            }
            for model in ["stt", "stt-seconds", "stt-text"] {
                let (form, type) = MultipartForm(parts: [
                    .init(name: "model", data: Data(model.utf8)),
                    .init(name: "file", filename: "a.wav", contentType: "audio/wav", data: Self.wav(seconds: 20)),
                ]).encoded()
                let answer = try await gateway.media(.transcriptions, body: form, contentType: type, context: Self.context(Self.alice))
                if case .bytes(let relayed) = answer.body { try await relayed.pump { _ in } }
            }
            let rank = ByteBuffer(string: #"{"model":"rank","query":"fox","documents":["a fox","a dog"]}"#)
            _ = try await gateway.media(.rerank, body: rank, contentType: "application/json", context: Self.context(Self.alice))
            let rows = Dictionary(uniqueKeysWithValues: try await Self.report(runtime).data.map { ($0.model ?? "", $0) })
            #expect(rows["img"]?.inputTokens == 50 && rows["img"]?.outputTokens == 4160 && rows["img"]?.estimatedRequests == 0)
            #expect(rows["img-plain"]?.outputTokens == 2 * 4160, "two high-quality 1024² images, estimated")
            #expect(rows["img-plain"]?.estimatedRequests == 1)
            #expect(rows["stt"]?.inputTokens == 120 && rows["stt"]?.outputTokens == 3 && rows["stt"]?.estimatedRequests == 0)
            #expect(rows["stt-seconds"]?.inputTokens == 300, "30 s at 10 tokens a second")
            #expect(rows["stt-seconds"]?.outputTokens == 5 && rows["stt-seconds"]?.estimatedRequests == 1)
            #expect(rows["stt-text"]?.inputTokens == 200, "20 s of WAV by its header")
            #expect(rows["stt-text"]?.outputTokens == 80 && rows["stt-text"]?.estimatedRequests == 1)
            #expect(rows["rank"]?.inputTokens == 42 && rows["rank"]?.estimatedRequests == 0, "vLLM rerank's total_tokens")
        }
    }

    /// The `model` field of a multipart form sent upstream.
    static func formModel(_ body: ByteBuffer) -> String {
        let text = String(buffer: body)
        guard let range = text.range(of: "name=\"model\"\r\n\r\n") else { return "" }
        return String(text[range.upperBound...].prefix { !$0.isNewline })
    }

    /// A WAV file of silence: 8 kHz, 16-bit mono.
    static func wav(seconds: Int) -> Data {
        let rate = 8000
        let samples = rate * seconds * 2
        var data = Data("RIFF".utf8)
        func le32(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ value: Int) { withUnsafeBytes(of: UInt16(value).littleEndian) { data.append(contentsOf: $0) } }
        le32(36 + samples)
        data.append(contentsOf: "WAVEfmt ".utf8)
        le32(16)
        le16(1)
        le16(1)
        le32(rate)
        le32(rate * 2)
        le16(2)
        le16(16)
        data.append(contentsOf: "data".utf8)
        le32(samples)
        data.append(Data(count: samples))
        return data
    }
}

/// An in-memory provider that also takes forms (image edits, transcriptions).
struct FormTakingProvider: InferenceProvider {
    let base: InMemoryProvider
    var timeouts: UpstreamTimeouts { base.timeouts }
    var defaultTLS: UpstreamTLS? { base.defaultTLS }

    func send(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse {
        try await base.send(request, logger: logger)
    }
}

/// Holds every caller until `expected` have passed or been refused.
actor Gate {
    private let expected: Int
    private var count = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(expected: Int) { self.expected = expected }

    func pass() async {
        count += 1
        if count >= expected { return open() }
        await withCheckedContinuation { waiting.append($0) }
    }

    func refused() {
        count += 1
        if count >= expected { open() }
    }

    private func open() {
        for continuation in waiting { continuation.resume() }
        waiting.removeAll()
    }
}
