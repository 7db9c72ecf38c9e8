import Foundation
import NIOCore
import NIOFoundationCompat

/// How a call reaches one candidate model, and how its answer comes back: the operation on the
/// wire, the request's translation for an upstream of another dialect, and the answer's
/// translation back (buffered, streamed, and where its usage is).
///
/// It is the one place that knows an upstream's dialect (``UpstreamAPI``) for the gateway: a
/// chat call to an Anthropic or Responses upstream is translated here, both ways.
struct UpstreamWire: Sendable {
    enum Answer: Sendable {
        /// A JSON object or an event stream in the inbound dialect.
        case asIs
        /// Anthropic Messages, answered as chat completions.
        case anthropicToChat
        /// OpenAI Responses, answered as chat completions.
        case responsesToChat
        /// TEI's rerank shape, answered in Cohere's and vLLM's.
        case teiRerank
        /// Any bytes of an allowed media type (audio, subtitles), relayed as they arrive.
        case raw
    }
    var operation: UpstreamOperation
    var answer: Answer
    var contentType = "application/json"
    /// The inbound request, where the answer's translation needs it (TEI rerank's `top_n`).
    var original: ByteBuffer?
    /// Client headers carried on: `anthropic-beta` when a Messages request passes through.
    var headers: [(name: String, value: String)] = []
    /// Whether the client's dialect translates the answer once the gateway has it.
    var translatedByDialect = false

    init(operation: UpstreamOperation, answer: Answer) {
        self.operation = operation
        self.answer = answer
    }

    /// The wire for `operation` to `model`; `nil` to skip a fallback that cannot take it.
    init?(for operation: UpstreamOperation, to model: RoutableModel, primary: Bool) throws(LISAError) {
        switch (operation, model.definition.upstreamAPI) {
        case (.chatCompletions, .anthropic):
            self.init(operation: .messages, answer: .anthropicToChat)
        case (.chatCompletions, .openAIResponses):
            self.init(operation: .responses, answer: .responsesToChat)
        case (.messages, .anthropic), (.countTokens, .anthropic), (.responses, .openAIResponses):
            self.init(operation: operation, answer: .asIs)
        case (.messages, _), (.countTokens, _), (.responses, _):
            return nil
        case (.rerank, _) where model.definition.inferenceContainer == .tei:
            self.init(operation: .teiRerank, answer: .teiRerank)
        case (.audioSpeech, _), (.audioTranscriptions, _), (.audioTranslations, _):
            self.init(operation: operation, answer: .raw)
        case (_, .anthropic), (_, .openAIResponses):
            guard primary else { return nil }
            let (what, route) =
                model.definition.upstreamAPI == .anthropic ? ("an Anthropic Messages", "/v1/messages") : ("an OpenAI Responses", "/v1/responses")
            throw .invalidRequest(
                "The model '\(model.definition.modelId)' has \(what) upstream: call it through /v1/chat/completions or \(route).",
                param: "model", reason: "model_type_mismatch"
            )
        default:
            self.init(operation: operation, answer: .asIs)
        }
    }

    /// The body for this candidate: the inbound request, translated where the wire says so.
    mutating func body(from inbound: ByteBuffer) throws(LISAError) -> ByteBuffer {
        switch answer {
        case .anthropicToChat:
            return DialectJSON.encode(try AnthropicUpstream.messagesRequest(fromChat: try RequestJSON.decode(JSONValue.self, from: inbound)))
        case .responsesToChat:
            return DialectJSON.encode(try ResponsesUpstream.responsesRequest(fromChat: try RequestJSON.decode(JSONValue.self, from: inbound)))
        case .teiRerank:
            original = inbound
            return DialectJSON.encode(try Rerank.teiRequest(from: try RequestJSON.decode(JSONValue.self, from: inbound)))
        case .asIs, .raw:
            return inbound
        }
    }

    /// The dialect of the events the gateway relays: the upstream's own when they pass
    /// through, chat chunks once translated.
    var framing: DialectName {
        switch (answer, operation) {
        case (.asIs, .messages): .messages
        case (.asIs, .responses): .responses
        default: .chatCompletions
        }
    }

    /// An upstream's event stream as the gateway relays it: translated to chat chunks, ending
    /// with `[DONE]`, where the upstream speaks another dialect.
    func events(of body: UpstreamBody) -> UpstreamBody {
        switch answer {
        case .anthropicToChat: UpstreamBody(TranslatedEventBody(base: body, translator: AnthropicChatStreamTranslator(created: Gateway.now())))
        case .responsesToChat: UpstreamBody(TranslatedEventBody(base: body, translator: ResponsesChatStreamTranslator(created: Gateway.now())))
        default: body
        }
    }

    /// The usage a buffered answer (in the client's dialect) reports, read from its `usage` member only.
    func usage(in answer: ByteBuffer) -> Usage? {
        guard let usageBytes = JSONMemberScanner.value(of: "usage", in: answer) else { return nil }
        return switch operation {
        case .messages: AnthropicUpstream.usage(try? JSONDecoder().decode(JSONValue.self, from: usageBytes))
        case .responses: ResponsesUpstream.usage(try? JSONDecoder().decode(JSONValue.self, from: usageBytes))
        default: Usage.quickRead(usageBytes) ?? (try? JSONDecoder().decode(Usage.self, from: usageBytes))
        }
    }

    /// A buffered answer in the client's dialect, naming the model the client asked for
    /// unless `rename` is off.
    func translatedAnswer(
        _ buffer: ByteBuffer, modelID: String, requested: String, request body: ByteBuffer, rename: Bool
    ) throws(LISAError) -> ByteBuffer {
        var buffer = buffer
        if answer == .anthropicToChat {
            // Read block by block: a large answer is never held as a whole parsed tree.
            guard let chat = try AnthropicUpstream.chatCompletion(fromMessageBytes: buffer, created: Gateway.now()) else {
                throw .badGateway(
                    "The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(chat)
        } else if answer == .responsesToChat {
            guard let chat = try ResponsesUpstream.chatCompletion(fromResponseBytes: buffer) else {
                throw .badGateway(
                    "The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(chat)
        } else if answer == .teiRerank {
            guard let ranked = try? JSONValue(parsing: buffer) else {
                throw .badGateway("The upstream of model '\(modelID)' answered with something other than JSON.", reason: "upstream_invalid_response")
            }
            buffer = DialectJSON.encode(try Rerank.answer(fromTEI: ranked, request: original ?? body, model: requested))
        }
        // The answer names the model the client asked for, unless this model shows its upstream's.
        if rename { buffer = AnswerModelName(requested).rewriting(answer: buffer) }
        return buffer
    }
}
