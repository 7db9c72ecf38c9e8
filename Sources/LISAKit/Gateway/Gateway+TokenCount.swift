import Foundation
import Logging
public import NIOCore
import NIOFoundationCompat

extension Gateway {
    /// The input tokens of a request by the model's own tokenizer, where its upstream has
    /// one: Anthropic's `count_tokens` (`messagesRequest` passed through), vLLM's `/tokenize`
    /// (the chat form, so the chat template counts), or llama.cpp's `/apply-template` then
    /// `/tokenize`. `nil` when the model declares none or the upstream did not answer within
    /// `timeout`; the caller estimates then.
    public func upstreamTokenCount(
        messagesRequest: ByteBuffer, chatRequest: JSONValue, model: RoutableModel, context: InferenceContext,
        timeout: Duration = .seconds(5)
    ) async -> Int? {
        guard case .object(let chat) = chatRequest,
            let endpoint = model.pool.choose(affinityKey: nil, excluding: [])
        else { return nil }
        let deadline = NIODeadline.now() + .init(timeout)
        endpoint.begin()
        defer { endpoint.end() }
        let modelName = JSONValue.string(model.definition.modelName)
        let answer: JSONValue?
        switch (model.definition.upstreamAPI, model.definition.inferenceContainer) {
        case (.anthropic, _):
            guard case .object(var members)? = try? RequestJSON.decode(JSONValue.self, from: messagesRequest) else { return nil }
            members["model"] = modelName
            for key in ["max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k", "metadata", "lisa", "service_tier"] {
                members[key] = nil
            }
            answer = await tokenizerCall(.countTokens, .object(members), to: endpoint, deadline: deadline, context: context)
        case (.openai, .vllm):
            var members: [String: JSONValue] = ["model": modelName, "messages": chat["messages"] ?? []]
            if let tools = chat["tools"] { members["tools"] = tools }
            answer = await tokenizerCall(.tokenize, .object(members), to: endpoint, deadline: deadline, context: context)
        case (.openai, .llamacpp):
            guard
                let templated = await tokenizerCall(
                    .applyTemplate, ["messages": chat["messages"] ?? []], to: endpoint, deadline: deadline, context: context),
                let prompt = templated["prompt"]?.stringValue
            else { return nil }
            answer = await tokenizerCall(
                .tokenize, ["content": .string(prompt), "add_special": true], to: endpoint, deadline: deadline, context: context)
        default:
            return nil
        }
        guard let answer else { return nil }
        let count = answer["input_tokens"]?.int64Value ?? answer["count"]?.int64Value ?? answer["tokens"]?.arrayValue.map { Int64($0.count) }
        return count.map(Int.init)
    }

    /// One call to an upstream's tokenizer: its JSON answer, or `nil` (logged) on any failure.
    private func tokenizerCall(
        _ operation: UpstreamOperation, _ body: JSONValue, to endpoint: Endpoint, deadline: NIODeadline, context: InferenceContext
    ) async -> JSONValue? {
        do {
            let response = try await provider.send(
                UpstreamRequest(operation: operation, body: DialectJSON.encode(body), endpoint: endpoint.definition, deadline: deadline),
                logger: context.logger
            )
            let buffer = try await response.body.collect(upTo: 4 * 1024 * 1024)
            guard (200..<300).contains(response.status), let json = try? JSONDecoder().decode(JSONValue.self, from: buffer) else {
                context.logger.info(
                    "the upstream did not count tokens; estimating",
                    metadata: ["lisa.status": "\(response.status)", "lisa.operation": "\(operation)"]
                )
                return nil
            }
            return json
        } catch {
            context.logger.info("the upstream did not count tokens; estimating", metadata: ["lisa.reason": "\(error)"])
            return nil
        }
    }
}
