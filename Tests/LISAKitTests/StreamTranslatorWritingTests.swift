import Foundation
import NIOCore
import Testing

@testable import LISAKit

/// A translator writes its plain deltas straight (``ChatStreamDelta``) instead of building them
/// as JSON values: the bytes must be the same either way, and the reader must take exactly
/// the chunks whose translation it can write.
@Suite("Stream translators: deltas written straight")
struct StreamTranslatorWritingTests {
    /// Ids are random per item, so two translators agree up to them.
    private func normalized(_ buffer: ByteBuffer) -> String {
        String(buffer: buffer).replacing(/"(msg|rs|fc|call|toolu|resp)_[0-9a-f]+"/, with: "\"ID\"")
    }

    /// The chunks of `answer`, some rewritten to other shapes upstreams send (vLLM's
    /// `logprobs`/`stop_reason`, a `null` usage, Ollama's `reasoning`).
    private func variedChunks(_ answer: ChatAnswer, using generator: inout SeededGenerator) -> [ServerSentEvent] {
        answer.chunks(using: &generator).map { event in
            guard !event.isDone, var chunk = try? JSONValue(parsing: event.data), var object = chunk.objectValue else { return event }
            if Bool.random(using: &generator) { object["usage"] = .null }
            if var choices = object["choices"]?.arrayValue, var choice = choices.first?.objectValue {
                if Bool.random(using: &generator) {
                    choice["logprobs"] = .null
                    choice["stop_reason"] = .null
                }
                if Bool.random(using: &generator), var delta = choice["delta"]?.objectValue, let reasoning = delta["reasoning_content"] {
                    delta.removeValue(forKey: "reasoning_content")
                    delta["reasoning"] = reasoning
                    choice["delta"] = .object(delta)
                }
                choices[0] = .object(choice)
                object["choices"] = .array(choices)
            }
            chunk = .object(object)
            return ServerSentEvent(data: DialectJSON.string(chunk))
        }
    }

    @Test("Responses: the straight bytes are the built bytes (80 random answers)")
    func responses() throws {
        var generator = SeededGenerator(state: 11)
        let translation = try ResponsesDialect.translate(try JSONValue(parsing: #"{"model":"m","input":"hi"}"#))
        for _ in 0..<80 {
            let answer = ChatAnswer.random(using: &generator)
            var straight = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
            var built = straight
            built.writesDeltasStraight = false
            var (fast, slow) = (ByteBuffer(), ByteBuffer())
            for event in variedChunks(answer, using: &generator) {
                straight.translate(event, into: &fast)
                built.translate(event, into: &slow)
            }
            #expect(normalized(fast) == normalized(slow))
            #expect(straight.final != nil)
            #expect(straight.final.map { normalized(DialectJSON.encode($0)) } == built.final.map { normalized(DialectJSON.encode($0)) })
        }
    }

    @Test("Anthropic: the straight bytes are the built bytes (80 random answers)")
    func anthropic() throws {
        var generator = SeededGenerator(state: 12)
        for _ in 0..<80 {
            let answer = ChatAnswer.random(using: &generator)
            var straight = AnthropicStreamTranslator(model: "claude-lisa")
            var built = straight
            built.writesDeltasStraight = false
            var (fast, slow) = (ByteBuffer(), ByteBuffer())
            for event in variedChunks(answer, using: &generator) {
                straight.translate(event, into: &fast)
                built.translate(event, into: &slow)
            }
            #expect(normalized(fast) == normalized(slow))
        }
    }

    @Test("a plain delta is written straight, in the order and form emit gives")
    func plainDeltaBytes() throws {
        let translation = try ResponsesDialect.translate(try JSONValue(parsing: #"{"model":"m","input":"hi"}"#))
        var translator = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
        var buffer = ByteBuffer()
        translator.translate(ServerSentEvent(data: #"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"A"}}]}"#), into: &buffer)
        buffer.clear()
        translator.translate(
            ServerSentEvent(data: #"{"id":"c","choices":[{"index":0,"delta":{"content":"\"b\"\n"},"finish_reason":null}]}"#), into: &buffer)
        #expect(
            normalized(buffer)
                == "event: response.output_text.delta\ndata: {\"item_id\":\"ID\",\"output_index\":0,\"content_index\":0,"
                + "\"delta\":\"\\\"b\\\"\\n\",\"logprobs\":[],\"type\":\"response.output_text.delta\",\"sequence_number\":5}\n\n")
    }

    @Test("the delta reader takes the common chunk shapes")
    func readsCommonShapes() {
        let vLLM =
            #"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#
        #expect(ChatStreamDelta.read(vLLM) == ChatStreamDelta(id: "chatcmpl-1", content: "Hi", reasoning: nil))
        let ollama = #"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"hm"},"finish_reason":null}]}"#
        #expect(ChatStreamDelta.read(ollama) == ChatStreamDelta(id: "x", content: "", reasoning: "hm"))
        let escaped = #"{"choices":[{"delta":{"content":"\u00fc\"\n"}}]}"#
        #expect(ChatStreamDelta.read(escaped)?.content == "ü\"\n")
        // reasoning_content wins over reasoning wherever it is, also when null (as the tree reader has it).
        #expect(ChatStreamDelta.read(#"{"choices":[{"delta":{"reasoning":"a","reasoning_content":null}}]}"#)?.reasoning == nil)
        #expect(ChatStreamDelta.read(#"{"choices":[{"delta":{"reasoning_content":"b","reasoning":"a"}}]}"#)?.reasoning == "b")
    }

    @Test(
        "the delta reader leaves every other chunk to the tree parser",
        arguments: [
            #"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a"}}],"lisa":{"sources":[]}}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
            #"{"choices":[{"index":1,"delta":{"content":"a"}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a"},"stop_reason":"</s>"}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"a"}]}}]}"#,
            #"{"choices":[{"index":0,"delta":{"con\u0074ent":"a"}}]}"#,
            #"{"choices":[{"index":0,"delta":{"content":"a"}}]} x"#,
            #"{"choices":[]}"#,
            #"{"id":"x"}"#,
            #"[DONE]"#,
        ])
    func leavesTheRest(chunk: String) {
        #expect(ChatStreamDelta.read(chunk) == nil)
    }

    @Test("chat from a Responses or Messages upstream: the straight chunks are the built chunks (80 random answers)")
    func upstreamTranslators() throws {
        var generator = SeededGenerator(state: 13)
        let translation = try ResponsesDialect.translate(try JSONValue(parsing: #"{"model":"m","input":"hi"}"#))
        for _ in 0..<80 {
            let chunks = variedChunks(ChatAnswer.random(using: &generator), using: &generator)
            // The upstreams' own streams, made by LISA's translators from a chat stream.
            var toResponses = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
            var toMessages = AnthropicStreamTranslator(model: "claude")
            let responsesEvents = chunks.flatMap { toResponses.translate($0) }
            let messagesEvents = chunks.flatMap { toMessages.translate($0) }

            var fromResponses = ResponsesChatStreamTranslator(created: 5)
            var fromResponsesBuilt = fromResponses
            fromResponsesBuilt.writesDeltasStraight = false
            var (fast, slow) = (ByteBuffer(), ByteBuffer())
            for event in responsesEvents {
                fromResponses.translate(event, into: &fast)
                fromResponsesBuilt.translate(event, into: &slow)
            }
            #expect(fast.readableBytes > 0)
            #expect(normalized(fast) == normalized(slow))

            var fromMessages = AnthropicChatStreamTranslator(created: 5)
            var fromMessagesBuilt = fromMessages
            fromMessagesBuilt.writesDeltasStraight = false
            (fast, slow) = (ByteBuffer(), ByteBuffer())
            for event in messagesEvents {
                fromMessages.translate(event, into: &fast)
                fromMessagesBuilt.translate(event, into: &slow)
            }
            #expect(fast.readableBytes > 0)
            #expect(normalized(fast) == normalized(slow))
        }
    }

    @Test("the upstream delta readers take plain deltas and leave the rest")
    func upstreamReaders() {
        #expect(
            UpstreamTextDelta.readAnthropic(#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi\n"}}"#)
                == UpstreamTextDelta(kind: .content, text: "Hi\n"))
        #expect(
            UpstreamTextDelta.readAnthropic(#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"hm"}}"#)
                == UpstreamTextDelta(kind: .reasoning, text: "hm"))
        #expect(
            UpstreamTextDelta.readResponses(
                #"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"a","logprobs":[],"sequence_number":4}"#
            ) == UpstreamTextDelta(kind: .content, text: "a"))
        #expect(UpstreamTextDelta.readResponses(#"{"type":"response.refusal.delta","delta":"no"}"#) == UpstreamTextDelta(kind: .refusal, text: "no"))
        for other in [
            #"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":1}}"#,
            #"{"type":"content_block_delta","type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
            #"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#,
            #"{"type":"response.function_call_arguments.delta","delta":"{"}"#,
            #"{"type":"response.output_text.delta","delta":null}"#,
            #"{"type":"response.output_text.delta","delta":"a"} x"#,
        ] {
            #expect(UpstreamTextDelta.readAnthropic(other) == nil && UpstreamTextDelta.readResponses(other) == nil, "\(other)")
        }
    }
}
