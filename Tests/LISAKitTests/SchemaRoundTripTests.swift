import Foundation
import NIOCore
import Testing

@testable import LISAKit

@Suite("OpenAI schemas")
struct SchemaRoundTripTests {
    @Test("a chat request with every documented field and vendor extensions survives decode → encode")
    func chatRequestRoundTrip() throws {
        let (original, reencoded, request) = try roundTrip(ChatCompletionRequest.self, try Fixture.data("chat-request-full.json"))
        #expect(reencoded.semanticallyEquals(original), "re-encoded request differs from the original")

        #expect(request.model == "chat-small")
        #expect(request.messages.count == 6)
        #expect(request.messages.map(\.role) == [.developer, .system, .user, .assistant, .tool, .function])
        guard case .user(let user) = request.messages[2], case .parts(let parts) = user.content else {
            Issue.record("third message should be a multi-part user message")
            return
        }
        #expect(parts.count == 5)
        if case .imageURL(let image) = parts[1] {
            #expect(image.imageURL.detail == "high")
            #expect(image.imageURL.additionalFields["uuid"] == "img-1")
        } else {
            Issue.record("second part should be an image")
        }
        if case .other(let video) = parts[4] {
            #expect(video["type"] == "video_url")
        } else {
            Issue.record("video_url should decode as an unknown part")
        }
        guard case .assistant(let assistant) = request.messages[3] else {
            Issue.record("fourth message should be from the assistant")
            return
        }
        #expect(assistant.toolCalls?.first?.function?.name == "get_weather")
        #expect(assistant.additionalFields["reasoning_content"] == "I should call the tool.")
        #expect(request.toolChoice == .function(name: "get_weather"))
        if case .jsonSchema(let format) = request.responseFormat {
            #expect(format.name == "answer")
            #expect(format.strict == true)
        } else {
            Issue.record("response_format should be json_schema")
        }
        #expect(request.stop == .multiple(["\n\n", "END"]))
        #expect(request.seed == 9_007_199_254_740_993, "a seed above 2^53 must not lose precision")
        #expect(request.streamOptions?.includeUsage == true)
        #expect(request.additionalFields["top_k"] == .integer(40))
        #expect(request.additionalFields["chat_template_kwargs"] == ["enable_thinking": false])
        #expect(request.additionalFields.keys.sorted() == ["chat_template_kwargs", "guided_json", "repetition_penalty", "top_k"])
    }

    @Test("a response with tool calls, unknown finish reasons and vendor fields round-trips")
    func chatResponseRoundTrip() throws {
        let (original, reencoded, response) = try roundTrip(ChatCompletion.self, try Fixture.data("chat-response-tools.json"))
        #expect(reencoded.semanticallyEquals(original))
        #expect(response.choices[0].finishReason == .toolCalls)
        #expect(response.choices[1].finishReason == .other("eos_token"))
        #expect(response.choices[0].message.toolCalls?.first?.id == "call_9")
        #expect(response.choices[0].additionalFields["stop_reason"] == .null)
        #expect(response.usage?.totalTokens == 19)
        #expect(response.additionalFields.keys.sorted() == ["kv_transfer_params", "prompt_logprobs"])
    }

    @Test("stream chunks with tool-call deltas and a usage chunk parse from real SSE")
    func streamChunks() throws {
        var parser = ServerSentEventParser()
        let events = try parser.feed(ByteBuffer(bytes: try Fixture.data("chat-stream.txt")))
        #expect(events.count == 6)
        #expect(events.last?.event.isDone == true)
        let chunks = try events.dropLast().map { try JSONDecoder().decode(ChatCompletionChunk.self, from: Data($0.event.data.utf8)) }
        #expect(chunks[0].choices[0].delta.role == .assistant)
        let arguments = chunks.compactMap { $0.choices.first?.delta.toolCalls?.first?.function?.arguments }.joined()
        #expect(arguments == #"{"a":1}"#)
        #expect(chunks[3].choices[0].finishReason == .toolCalls)
        #expect(chunks[4].usage?.completionTokens == 4)
        for (event, chunk) in zip(events, chunks) {
            let original = try JSONDecoder().decode(JSONValue.self, from: Data(event.event.data.utf8))
            let reencoded = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(chunk))
            #expect(reencoded.semanticallyEquals(original))
        }
    }

    @Test("embeddings: float and base64 vectors, and every input form")
    func embeddings() throws {
        let (original, reencoded, response) = try roundTrip(EmbeddingResponse.self, try Fixture.data("embedding-response.json"))
        #expect(reencoded.semanticallyEquals(original))
        #expect(response.data[0].embedding.floatValues == [0.25, -0.5, 1.0])
        #expect(response.data[1].embedding.floatValues == [1.0, -2.0, 3.0])

        let inputs: [(String, EmbeddingInput)] = [
            (#""hello""#, .text("hello")),
            (#"["a","b"]"#, .texts(["a", "b"])),
            ("[1,2,3]", .tokens([1, 2, 3])),
            ("[[1,2],[3]]", .tokenLists([[1, 2], [3]])),
        ]
        for (json, expected) in inputs {
            let request = try JSONDecoder().decode(
                EmbeddingRequest.self, from: Data(#"{"model":"e","input":\#(json),"encoding_format":"base64","dimensions":256}"#.utf8)
            )
            #expect(request.input == expected)
            #expect(request.encodingFormat == .base64)
            #expect(request.dimensions == 256)
        }
        let odd = try JSONDecoder().decode(EmbeddingRequest.self, from: Data(#"{"model":"e","input":"x","encoding_format":"binary"}"#.utf8))
        #expect(odd.encodingFormat == .other("binary"))
    }

    @Test("legacy completions round-trip with vendor fields")
    func completions() throws {
        let json = #"{"model":"m","prompt":["a","b"],"max_tokens":5,"echo":true,"logprobs":2,"best_of":3,"suffix":"!","min_p":0.1}"#
        let (original, reencoded, request) = try roundTrip(CompletionRequest.self, Data(json.utf8))
        #expect(reencoded.semanticallyEquals(original))
        #expect(request.prompt == .texts(["a", "b"]))
        #expect(request.additionalFields["min_p"] == .number(0.1))
    }

    @Test("unknown roles, part types, tool choices and response formats are kept, not rejected")
    func openEnums() throws {
        let json = #"""
            {"model":"m","messages":[{"role":"critic","content":"hm","score":3},
             {"role":"user","content":[{"type":"audio_url","audio_url":{"url":"x"}}]}],
             "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}},
             "response_format":{"type":"grammar","grammar":"root ::= \"a\""}}
            """#
        let (original, reencoded, request) = try roundTrip(ChatCompletionRequest.self, Data(json.utf8))
        #expect(reencoded.semanticallyEquals(original))
        #expect(request.messages[0].role == .other("critic"))
        if case .other = request.toolChoice {} else { Issue.record("unknown tool_choice should be kept as .other") }
        if case .other = request.responseFormat {} else { Issue.record("unknown response_format should be kept as .other") }
        #expect(try JSONDecoder().decode(FinishReason.self, from: Data(#""abort""#.utf8)) == .other("abort"))
    }

    @Test(
        "decoding errors name the JSON path that failed",
        arguments: [
            (#"{"messages":[]}"#, "model: required field is missing"),
            (#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0].content: expected a string or an array of content parts"),
            (#"{"model":"m","messages":[{"content":"x"}]}"#, "messages[0].role: required field is missing"),
            (#"{"model":"m","messages":[],"temperature":"hot"}"#, "temperature: expected a number"),
            (
                #"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "messages[0].content[0].image_url: required field is missing"
            ),
            (#"{"model":"m","messages":[],"stop":7}"#, "stop: expected a string or an array of strings"),
            (#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id: required field is missing"),
            (#"{"model":"m","messages":"#, "request body is not valid JSON"),
        ])
    func errorPaths(json: String, expected: String) throws {
        do {
            _ = try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(json.utf8))
            Issue.record("decoding \(json) should fail")
        } catch let error as DecodingError {
            #expect(error.lisaDescription == expected)
        }
    }

    @Test("the top-level model is replaced in place; nested keys, strings and escapes are left alone")
    func memberScanner() throws {
        let body = #"""
             { "messages" : [{"role":"user","content":"say \"model\": 1 {\\\"}","model":"nested"}],
              "model":"chat-small" , "meta": {"model": "inner", "list": [1, {"model": "x"}]}, "n": -1.5e3, "ok": true }
            """#
        let edited = try #require(JSONMemberScanner.replacingStringMember("model", with: #"Qwen/Qwen2.5 "q""#, in: ByteBuffer(string: body)))
        let original = try JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))
        let result = try JSONDecoder().decode(JSONValue.self, from: Data(String(buffer: edited).utf8))
        guard case .object(var expected) = original else { Issue.record("not an object"); return }
        expected["model"] = .string(#"Qwen/Qwen2.5 "q""#)
        #expect(result == .object(expected))
        #expect(
            String(buffer: edited).hasPrefix(#" { "messages" : [{"role":"user","content":"say \"model\": 1 {\\\"}","model":"nested"}],"#),
            "bytes before the member are untouched")

        let usage = try #require(
            JSONMemberScanner.value(of: "usage", in: ByteBuffer(string: #"{"id":"x","usage":{"prompt_tokens":3,"total_tokens":5}}"#)))
        #expect(try JSONDecoder().decode(Usage.self, from: Data(String(buffer: usage).utf8)).totalTokens == 5)
        #expect(JSONMemberScanner.replacingStringMember("model", with: "m", in: ByteBuffer(string: "[1,2]")) == nil)
        #expect(JSONMemberScanner.replacingStringMember("model", with: "m", in: ByteBuffer(string: #"{"messages":[]}"#)) == nil)
        #expect(JSONMemberScanner.replacingStringMember("model", with: "m", in: ByteBuffer(string: #"{"model":"a""#)) == nil)
    }

    @Test("the error envelope always carries param and code, and accepts numeric codes")
    func errorEnvelope() throws {
        let encoded = try JSONDecoder().decode(
            JSONValue.self, from: JSONEncoder().encode(ErrorResponse(error: .init(message: "m", type: "t")))
        )
        #expect(encoded == ["error": ["message": "m", "type": "t", "param": nil, "code": nil]])
        let vllm = try JSONDecoder().decode(ErrorResponse.self, from: Data(#"{"error":{"message":"bad","type":"BadRequestError","code":400}}"#.utf8))
        #expect(vllm.error.code == "400")
    }
}
