import Foundation
import NIOCore
import Testing

@testable import LISAKit

private func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

/// A chat answer to translate: what a model said, as a whole completion and as chunks.
struct ChatAnswer {
    var reasoning: String?
    var text: String?
    var calls: [(id: String, name: String, arguments: String)] = []
    var finish: String
    var usage: (prompt: Int64, completion: Int64)? = (7, 3)

    var completion: JSONValue {
        var message: [String: JSONValue] = ["role": "assistant", "content": text.map(JSONValue.string) ?? .null]
        if let reasoning { message["reasoning_content"] = .string(reasoning) }
        if !calls.isEmpty {
            message["tool_calls"] = .array(
                calls.map { ["id": .string($0.id), "type": "function", "function": ["name": .string($0.name), "arguments": .string($0.arguments)]] })
        }
        var object: [String: JSONValue] = [
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [["index": 0, "message": .object(message), "finish_reason": .string(finish)]],
        ]
        if let usage {
            object["usage"] = [
                "prompt_tokens": .integer(usage.prompt), "completion_tokens": .integer(usage.completion),
                "total_tokens": .integer(usage.prompt + usage.completion),
            ]
        }
        return .object(object)
    }

    /// The same answer as chunks, each string split at random points.
    func chunks(using generator: inout some RandomNumberGenerator) -> [ServerSentEvent] {
        func pieces(_ text: String) -> [String] {
            var result: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                let length = Int.random(in: 1...max(1, min(5, rest.count)), using: &generator)
                result.append(String(rest.prefix(length)))
                rest = rest.dropFirst(length)
            }
            return result
        }
        func chunk(_ delta: JSONValue, finish: String? = nil) -> ServerSentEvent {
            let value: JSONValue = [
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [["index": 0, "delta": delta, "finish_reason": finish.map(JSONValue.string) ?? .null]],
            ]
            return ServerSentEvent(data: DialectJSON.string(value))
        }
        var events = [chunk(["role": "assistant"])]
        for piece in pieces(reasoning ?? "") { events.append(chunk(["reasoning_content": .string(piece)])) }
        for piece in pieces(text ?? "") { events.append(chunk(["content": .string(piece)])) }
        for (index, call) in calls.enumerated() {
            events.append(
                chunk([
                    "tool_calls": [
                        [
                            "index": .integer(Int64(index)), "id": .string(call.id), "type": "function",
                            "function": ["name": .string(call.name), "arguments": ""],
                        ]
                    ]
                ]))
            for piece in pieces(call.arguments) {
                events.append(chunk(["tool_calls": [["index": .integer(Int64(index)), "function": ["arguments": .string(piece)]]]]))
            }
        }
        events.append(chunk([:], finish: finish))
        if let usage {
            let value: JSONValue = [
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                "usage": [
                    "prompt_tokens": .integer(usage.prompt), "completion_tokens": .integer(usage.completion),
                    "total_tokens": .integer(usage.prompt + usage.completion),
                ],
            ]
            events.append(ServerSentEvent(data: DialectJSON.string(value)))
        }
        events.append(.done)
        return events
    }

    static func random(using generator: inout some RandomNumberGenerator) -> ChatAnswer {
        let words = ["Hello", " wörld", "🙂", " \"quoted\"", "\n", " tab\t", " end."]
        func sentence() -> String { (0..<Int.random(in: 1...6, using: &generator)).map { _ in words.randomElement(using: &generator)! }.joined() }
        var answer = ChatAnswer(finish: ["stop", "length", "tool_calls", "content_filter"].randomElement(using: &generator)!)
        if Bool.random(using: &generator) { answer.reasoning = sentence() }
        if Bool.random(using: &generator) || answer.finish != "tool_calls" { answer.text = sentence() }
        if answer.finish == "tool_calls" {
            for index in 0..<Int.random(in: 1...2, using: &generator) {
                answer.calls.append(("call_\(index)", "tool\(index)", DialectJSON.string(["q": .string(sentence()), "n": .integer(Int64(index))])))
            }
        }
        if Bool.random(using: &generator) { answer.usage = nil }
        return answer
    }
}

/// Re-assembles Anthropic stream events into a message, as the anthropic SDK's accumulator does.
private func assembleAnthropic(_ events: [ServerSentEvent]) throws -> JSONValue {
    var message: JSONObject = [:]
    var blocks: [JSONObject] = []
    var partialJSON: [Int: String] = [:]
    var sawStop = false
    for event in events {
        let data = try json(event.data)
        #expect(data["type"]?.stringValue == event.event, "the event name and the data's type agree")
        switch event.event {
        case "message_start": message = data["message"]!.objectValue!
        case "content_block_start":
            #expect(Int(data["index"]!.int64Value!) == blocks.count, "blocks start in order")
            blocks.append(data["content_block"]!.objectValue!)
        case "content_block_delta":
            let index = Int(data["index"]!.int64Value!)
            let delta = data["delta"]!
            switch delta["type"]?.stringValue {
            case "text_delta": blocks[index]["text"] = .string((blocks[index]["text"]?.stringValue ?? "") + delta["text"]!.stringValue!)
            case "thinking_delta":
                blocks[index]["thinking"] = .string((blocks[index]["thinking"]?.stringValue ?? "") + delta["thinking"]!.stringValue!)
            case "input_json_delta": partialJSON[index, default: ""] += delta["partial_json"]!.stringValue!
            default: Issue.record("unknown delta \(delta)")
            }
        case "content_block_stop":
            let index = Int(data["index"]!.int64Value!)
            if let partial = partialJSON[index] { blocks[index]["input"] = try json(partial) }
        case "message_delta":
            message["stop_reason"] = data["delta"]!["stop_reason"]!
            message["stop_sequence"] = data["delta"]!["stop_sequence"]!
            var usage = message["usage"]!.objectValue!
            for (key, value) in data["usage"]!.objectValue! { usage[key] = value }
            message["usage"] = .object(usage)
        case "message_stop": sawStop = true
        case "ping": continue
        default: Issue.record("unexpected event \(event.event ?? "nil")")
        }
    }
    #expect(sawStop)
    message["content"] = .array(blocks.map(JSONValue.object))
    return .object(message)
}

@Suite("Dialects: Anthropic Messages")
struct AnthropicDialectTests {
    @Test("a Messages request becomes the chat request of the translation table")
    func requestGolden() throws {
        let request = try json(
            """
            {"model":"claude-lisa","max_tokens":256,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
             "messages":[
              {"role":"user","content":[{"type":"text","text":"Look at this"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]},
              {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"redacted_thinking","data":"x"},{"type":"text","text":"Calling."},{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"cats"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"3 cats"}]},{"type":"tool_result","tool_use_id":"toolu_2","content":"boom","is_error":true},{"type":"text","text":"and?"}]}
             ],
             "tools":[{"name":"lookup","description":"Looks up","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],
             "tool_choice":{"type":"any","disable_parallel_tool_use":true},
             "stop_sequences":["END"],"temperature":0.2,"top_p":0.9,"top_k":5,"metadata":{"user_id":"u-1"},"stream":true,
             "lisa":{"rag":{"repositoryId":"docs"}},"seed":7}
            """
        )
        let expected = try json(
            """
            {"model":"claude-lisa","max_tokens":256,
             "messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":[{"type":"text","text":"Look at this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]},
              {"role":"assistant","content":"Calling.","reasoning_content":"hmm","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"lookup","arguments":"{\\"q\\":\\"cats\\"}"}}]},
              {"role":"tool","tool_call_id":"toolu_1","content":"3 cats"},
              {"role":"tool","tool_call_id":"toolu_2","content":"Error: boom"},
              {"role":"user","content":"and?"}
             ],
             "tools":[{"type":"function","function":{"name":"lookup","description":"Looks up","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],
             "tool_choice":"required","parallel_tool_calls":false,
             "stop":["END"],"temperature":0.2,"top_p":0.9,"top_k":5,"user":"u-1","stream":true,"stream_options":{"include_usage":true},
             "lisa":{"rag":{"repositoryId":"docs"}},"seed":7}
            """
        )
        #expect(try AnthropicDialect.chatRequest(from: request) == expected)
    }

    @Test(
        "tool_choice maps auto, any, tool and none",
        arguments: [
            (#"{"type":"auto"}"#, #""auto""#), (#"{"type":"any"}"#, #""required""#), (#"{"type":"none"}"#, #""none""#),
            (#"{"type":"tool","name":"f"}"#, #"{"type":"function","function":{"name":"f"}}"#),
        ])
    func toolChoice(anthropic: String, chat: String) throws {
        let request = try json(#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tool_choice":\#(anthropic)}"#)
        #expect(try AnthropicDialect.chatRequest(from: request)["tool_choice"] == json(chat))
    }

    @Test(
        "what chat completions cannot carry is refused, naming the member",
        arguments: [
            (#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, "max_tokens"),
            (#"{"model":"m","max_tokens":5,"messages":[]}"#, "messages"),
            (#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#, "messages[0].role"),
            (
                #"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"server_tool_use","id":"1"}]}]}"#,
                "messages[0].content[0].type"
            ),
            (
                #"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{}}]}]}]}"#,
                "messages[0].content[0].content[0].type"
            ),
            (
                #"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
                "tools[0].type"
            ),
            (#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"mcp_servers":[]}"#, "mcp_servers"),
            (#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"maybe"}}"#, "tool_choice.type"),
            (#"{"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]}"#, "max_tokens"),
        ])
    func refusals(body: String, param: String) throws {
        #expect(throws: LISAError.self) { try AnthropicDialect.chatRequest(from: try json(body)) }
        do {
            _ = try AnthropicDialect.chatRequest(from: try json(body))
        } catch let error as LISAError {
            #expect(error.param == param)
            #expect(error.code == .invalidRequest)
        }
    }

    @Test("a chat completion becomes the Messages answer of the translation table")
    func responseGolden() throws {
        let completion = try json(
            """
            {"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"up",
             "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","reasoning_content":"plan","content":"Let me look.",
               "tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\\"q\\": \\"cats\\"}"}}]}}],
             "usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":8}},"lisa":{"sources":[]}}
            """
        )
        let expected = try json(
            """
            {"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"claude-lisa",
             "content":[{"type":"thinking","thinking":"plan","signature":""},{"type":"text","text":"Let me look."},{"type":"tool_use","id":"call_1","name":"lookup","input":{"q":"cats"}}],
             "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9,"cache_read_input_tokens":8},"lisa":{"sources":[]}}
            """
        )
        #expect(try AnthropicDialect.message(fromChat: completion, model: "claude-lisa") == expected)
    }

    @Test(
        "finish reasons map to stop reasons",
        arguments: [
            ("stop", nil as String?, "end_turn", nil as String?), ("stop", "END", "stop_sequence", "END"), ("length", nil, "max_tokens", nil),
            ("tool_calls", nil, "tool_use", nil), ("content_filter", nil, "refusal", nil), (nil, nil, "end_turn", nil),
        ])
    func stopReasons(finish: String?, matched: String?, stopReason: String, sequence: String?) {
        let (reason, stop) = AnthropicDialect.stopReason(finish: finish, matched: matched.map(JSONValue.string))
        #expect(reason == stopReason)
        #expect(stop == sequence)
    }

    @Test("a translated stream re-assembles to the translated whole answer (200 random answers)")
    func streamMatchesWhole() throws {
        var generator = SeededGenerator(state: 42)
        for _ in 0..<200 {
            let answer = ChatAnswer.random(using: &generator)
            var whole = try AnthropicDialect.message(fromChat: answer.completion, model: "claude-lisa").objectValue!
            var translator = AnthropicStreamTranslator(model: "claude-lisa")
            let events = answer.chunks(using: &generator).flatMap { translator.translate($0) }
            var streamed = try assembleAnthropic(events).objectValue!
            #expect(translator.finished)
            // Ids are generated; the thinking block's signature is empty in both.
            whole["id"] = nil
            streamed["id"] = nil
            if answer.usage == nil {
                // Without usage the stream reports no input tokens; the whole answer says 0.
                whole["usage"] = ["input_tokens": 0, "output_tokens": 0]
            }
            #expect(JSONValue.object(streamed) == JSONValue.object(whole))
        }
    }

    @Test("a broken upstream ends the stream with an error event and no message_stop")
    func brokenStream() throws {
        var translator = AnthropicStreamTranslator(model: "m")
        var events = translator.translate(ServerSentEvent(data: #"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#))
        events += translator.translate(ServerSentEvent.error(LISAError.badGateway("The upstream of model 'm' failed during the stream.").body))
        events += translator.translate(.done)
        #expect(events.map(\.event) == ["message_start", "ping", "content_block_start", "content_block_delta", "error"])
        let error = try json(events.last!.data)
        #expect(error == ["type": "error", "error": ["type": "api_error", "message": "The upstream of model 'm' failed during the stream."]])
    }

    @Test("errors take Anthropic's types")
    func errorTypes() {
        #expect(AnthropicDialect.errorType(for: .modelNotFound("x")) == "not_found_error")
        #expect(AnthropicDialect.errorType(for: .unauthorized("no")) == "authentication_error")
        #expect(AnthropicDialect.errorType(for: .rateLimited("slow")) == "rate_limit_error")
        #expect(AnthropicDialect.errorType(for: .serviceUnavailable("busy")) == "overloaded_error")
        #expect(AnthropicDialect.errorType(for: .invalidRequest("bad")) == "invalid_request_error")
        #expect(AnthropicDialect.errorType(for: .badGateway("broke")) == "api_error")
    }

    @Test("the token estimate counts text, tools and messages")
    func estimate() throws {
        let chat = try AnthropicDialect.chatRequest(
            from: try json(#"{"model":"m","messages":[{"role":"user","content":"abcdefgh"}]}"#), requireMaxTokens: false)
        #expect(AnthropicDialect.estimatedInputTokens(chatRequest: chat) == 2 + 4)
    }
}

/// Re-assembles a Responses stream: the output items from `response.output_item.done`, with
/// every delta checked against its `.done` event.
private func assembleResponses(_ events: [ServerSentEvent]) throws -> (items: [JSONValue], final: JSONValue?) {
    var items: [JSONValue] = []
    var text: [String: String] = [:]
    var arguments: [String: String] = [:]
    var final: JSONValue?
    var sequence: Int64 = 0
    for event in events {
        let data = try json(event.data)
        #expect(data["type"]?.stringValue == event.event)
        #expect(data["sequence_number"]?.int64Value == sequence, "sequence numbers count up from 0")
        sequence += 1
        let item = data["item_id"]?.stringValue ?? ""
        switch event.event {
        case "response.output_text.delta", "response.reasoning_text.delta": text[item, default: ""] += data["delta"]!.stringValue!
        case "response.output_text.done", "response.reasoning_text.done": #expect(text[item] == data["text"]?.stringValue)
        case "response.function_call_arguments.delta": arguments[item, default: ""] += data["delta"]!.stringValue!
        case "response.function_call_arguments.done": #expect(arguments[item] ?? "" == data["arguments"]?.stringValue)
        case "response.output_item.done":
            #expect(Int(data["output_index"]!.int64Value!) == items.count)
            items.append(data["item"]!)
        case "response.completed", "response.incomplete", "response.failed": final = data["response"]
        default: continue
        }
    }
    return (items, final)
}

private func withoutIDs(_ value: JSONValue) -> JSONValue {
    switch value {
    case .object(var members):
        members["id"] = nil
        return .object(members.mapValues(withoutIDs))
    case .array(let items): return .array(items.map(withoutIDs))
    default: return value
    }
}

@Suite("Dialects: OpenAI Responses")
struct ResponsesDialectTests {
    @Test("a Responses request becomes the chat request of the translation table")
    func requestGolden() throws {
        let request = try json(
            """
            {"model":"gpt-lisa","instructions":"Be brief.","max_output_tokens":100,"temperature":0.5,"top_p":0.8,
             "input":[
              {"role":"user","content":[{"type":"input_text","text":"Hi"},{"type":"input_image","image_url":"https://x/y.png","detail":"low"}]},
              {"type":"function_call","call_id":"call_1","name":"lookup","arguments":"{}"},
              {"type":"function_call_output","call_id":"call_1","output":"42"},
              {"type":"message","role":"developer","content":"Use tools."}
             ],
             "tools":[{"type":"function","name":"lookup","description":"d","parameters":{"type":"object"},"strict":true}],
             "tool_choice":{"type":"function","name":"lookup"},"parallel_tool_calls":false,
             "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
             "reasoning":{"effort":"low"},"metadata":{"k":"v"},"user":"u","stream":true,"store":false,"seed":3}
            """
        )
        let expected = try json(
            """
            {"model":"gpt-lisa","max_tokens":100,"temperature":0.5,"top_p":0.8,
             "messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"42"},
              {"role":"developer","content":"Use tools."}
             ],
             "tools":[{"type":"function","function":{"name":"lookup","description":"d","parameters":{"type":"object"},"strict":true}}],
             "tool_choice":{"type":"function","function":{"name":"lookup"}},"parallel_tool_calls":false,
             "response_format":{"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object"},"strict":true}},
             "reasoning_effort":"low","user":"u","stream":true,"stream_options":{"include_usage":true},"seed":3}
            """
        )
        let translation = try ResponsesDialect.translate(request)
        #expect(translation.chat == expected)
        #expect(!translation.store)
        #expect(translation.inputItems.count == 4)
        #expect(translation.inputItems.allSatisfy { $0["id"]?.stringValue?.isEmpty == false })
    }

    @Test("history from previous_response_id goes after the instructions, before the input")
    func history() throws {
        let history: [JSONValue] = [["role": "user", "content": "one"], ["role": "assistant", "content": "two"]]
        let translation = try ResponsesDialect.translate(try json(#"{"model":"m","instructions":"sys","input":"three"}"#), history: history)
        #expect(
            translation.chat["messages"] == [["role": "system", "content": "sys"], history[0], history[1], ["role": "user", "content": "three"]])
        #expect(translation.inputMessages == [["role": "user", "content": "three"]])
    }

    @Test(
        "what LISA cannot run is refused, naming the member",
        arguments: [
            (#"{"model":"m"}"#, "input"),
            (#"{"model":"m","input":"x","tools":[{"type":"web_search"}]}"#, "tools[0].type"),
            (#"{"model":"m","input":[{"type":"web_search_call","id":"w"}]}"#, "input[0].type"),
            (#"{"model":"m","input":[{"type":"item_reference","id":"w"}]}"#, "input[0].type"),
            (#"{"model":"m","input":"x","background":true}"#, "background"),
            (#"{"model":"m","input":"x","conversation":"c"}"#, "conversation"),
            (#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#, "input[0].content[0].file_id"),
            (#"{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}"#, "text.format.type"),
            (#"{"model":"m","input":"x","max_output_tokens":0}"#, "max_output_tokens"),
        ])
    func refusals(body: String, param: String) throws {
        do {
            _ = try ResponsesDialect.translate(try json(body))
            Issue.record("accepted \(body)")
        } catch let error as LISAError {
            #expect(error.param == param)
        }
    }

    @Test("a chat completion becomes the response object of the translation table")
    func responseGolden() throws {
        let completion = try json(
            """
            {"id":"c","object":"chat.completion","created":1,"model":"up",
             "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Looking.","tool_calls":[{"id":"call_7","type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}}]}}],
             "usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}}
            """
        )
        let translation = try ResponsesDialect.translate(try json(#"{"model":"gpt-lisa","input":"hi","metadata":{"k":"v"}}"#))
        let response = try ResponsesDialect.response(fromChat: completion, id: "resp_1", createdAt: 5, translation: translation)
        #expect(response["status"] == "completed")
        #expect(response["metadata"] == ["k": "v"])
        #expect(
            try withoutIDs(response["output"]!)
                == json(
                    """
                    [{"type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Looking.","annotations":[],"logprobs":[]}]},
                     {"type":"function_call","call_id":"call_7","name":"f","arguments":"{\\"a\\":1}","status":"completed"}]
                    """
                )
        )
        #expect(
            try response["usage"]
                == json(
                    #"{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":14}"#
                )
        )
        #expect(
            try ResponsesDialect.assistantMessage(from: response["output"]!.arrayValue!)
                == json(
                    #"{"role":"assistant","content":"Looking.","tool_calls":[{"id":"call_7","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}"#
                ))
    }

    @Test("a length finish is an incomplete response")
    func incomplete() throws {
        let translation = try ResponsesDialect.translate(try json(#"{"model":"m","input":"hi"}"#))
        let completion = ChatAnswer(text: "Hel", finish: "length").completion
        let response = try ResponsesDialect.response(fromChat: completion, id: "resp_1", createdAt: 5, translation: translation)
        #expect(response["status"] == "incomplete")
        #expect(response["incomplete_details"] == ["reason": "max_output_tokens"])
    }

    @Test("a translated stream re-assembles to the translated whole response (200 random answers)")
    func streamMatchesWhole() throws {
        var generator = SeededGenerator(state: 7)
        let translation = try ResponsesDialect.translate(try json(#"{"model":"m","input":"hi"}"#))
        for _ in 0..<200 {
            var answer = ChatAnswer.random(using: &generator)
            if answer.finish == "tool_calls", answer.text == nil, answer.reasoning == nil, Bool.random(using: &generator) { answer.text = "" }
            let whole = try ResponsesDialect.response(fromChat: answer.completion, id: "resp_1", createdAt: 5, translation: translation)
            var translator = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
            let events = answer.chunks(using: &generator).flatMap { translator.translate($0) }
            #expect(events.first?.event == "response.created")
            #expect(events.dropFirst().first?.event == "response.in_progress")
            let (items, final) = try assembleResponses(events)
            #expect(withoutIDs(.array(items)) == withoutIDs(whole["output"]!))
            #expect(final.map(withoutIDs) == withoutIDs(whole))
            #expect(translator.final.map { try? json(DialectJSON.string($0)) } == final)
        }
    }

    @Test("a broken upstream ends the stream with response.failed, never a completion")
    func brokenStream() throws {
        let translation = try ResponsesDialect.translate(try json(#"{"model":"m","input":"hi"}"#))
        var translator = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
        var events = translator.translate(ServerSentEvent(data: #"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#))
        events += translator.translate(ServerSentEvent.error(LISAError.badGateway("broke").body))
        events += translator.translate(.done)
        #expect(events.last?.event == "response.failed")
        #expect(!events.contains { $0.event == "response.completed" })
        let failed = try json(events.last!.data)
        #expect(failed["response"]?["status"] == "failed")
        #expect(failed["response"]?["error"]?["message"] == "broke")
    }
}

@Suite("Dialects: chat completions to a Responses upstream")
struct ResponsesUpstreamTests {
    @Test("a chat request becomes the Responses request of the translation table")
    func requestGolden() throws {
        let chat = try json(
            #"""
            {"model":"gpt-x","max_tokens":200,"temperature":0.3,"top_p":0.8,"stream":true,"stream_options":{"include_usage":true},
             "user":"u-1","metadata":{"k":"v"},"parallel_tool_calls":false,"reasoning_effort":"low","lisa":{"x":1},"truncation":"auto",
             "response_format":{"type":"json_schema","json_schema":{"name":"out","schema":{"type":"object"},"strict":true}},
             "tool_choice":{"type":"function","function":{"name":"lookup"}},
             "tools":[{"type":"function","function":{"name":"lookup","description":"Finds","parameters":{"type":"object"},"strict":true}}],
             "messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":[{"type":"text","text":"Look"},{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}]},
              {"role":"assistant","content":"Calling.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":1}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"found"},
              {"role":"developer","content":"Now summarize."},
              {"role":"user","content":"Thanks"}
             ]}
            """#)
        let expected = try json(
            #"""
            {"model":"gpt-x","store":false,"max_output_tokens":200,"temperature":0.3,"top_p":0.8,"stream":true,"user":"u-1",
             "metadata":{"k":"v"},"parallel_tool_calls":false,"reasoning":{"effort":"low"},"truncation":"auto",
             "text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
             "tool_choice":{"type":"function","name":"lookup"},
             "tools":[{"type":"function","name":"lookup","description":"Finds","parameters":{"type":"object"},"strict":true}],
             "instructions":"Be brief.",
             "input":[
              {"type":"message","role":"user","content":[{"type":"input_text","text":"Look"},{"type":"input_image","image_url":"https://example.com/a.png","detail":"low"}]},
              {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Calling."}]},
              {"type":"function_call","call_id":"call_1","name":"lookup","arguments":"{\"q\":1}"},
              {"type":"function_call_output","call_id":"call_1","output":"found"},
              {"type":"message","role":"developer","content":"Now summarize."},
              {"type":"message","role":"user","content":"Thanks"}
             ]}
            """#)
        #expect(try ResponsesUpstream.responsesRequest(fromChat: chat) == expected)
    }

    @Test(
        "what the Responses API cannot carry is refused, naming the member",
        arguments: [
            (#""n":2"#, "n"), (#""stop":"x""#, "stop"), (#""seed":1"#, "seed"), (#""logit_bias":{}"#, "logit_bias"),
            (#""logprobs":true"#, "logprobs"), (#""response_format":{"type":"yaml"}"#, "response_format.type"),
            (#""tools":[{"type":"custom"}]"#, "tools[0].type"), (#""tool_choice":"sometimes""#, "tool_choice"),
        ])
    func refusals(member: String, param: String) throws {
        let request = try json(#"{"model":"m","messages":[{"role":"user","content":"hi"}],\#(member)}"#)
        #expect {
            try ResponsesUpstream.responsesRequest(fromChat: request)
        } throws: { error in
            (error as? LISAError)?.param == param
        }
    }

    @Test("a response becomes the chat completion of the translation table")
    func answerGolden() throws {
        let response = try json(
            #"""
            {"id":"resp_1","object":"response","created_at":9,"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-x",
             "output":[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"mulling"}]},
                       {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Part"},{"type":"output_text","text":"ial"}]},
                       {"type":"function_call","id":"fc_1","call_id":"call_9","name":"f","arguments":"{}"}],
             "usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":2},"output_tokens_details":{"reasoning_tokens":1}}}
            """#)
        let expected = try json(
            #"""
            {"id":"resp_1","object":"chat.completion","created":9,"model":"gpt-x",
             "choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant","content":"Partial","reasoning_content":"mulling",
               "tool_calls":[{"id":"call_9","type":"function","function":{"name":"f","arguments":"{}"}}]}}],
             "usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":2},
                      "completion_tokens_details":{"reasoning_tokens":1}}}
            """#)
        #expect(try ResponsesUpstream.chatCompletion(fromResponse: response) == expected)
        #expect(throws: LISAError.self) {
            try ResponsesUpstream.chatCompletion(fromResponse: ["object": "response", "status": "failed", "output": []])
        }
    }

    @Test("chat → Responses → chat keeps the answer, streamed through both state machines as whole (200 random answers)")
    func roundTrip() throws {
        var generator = SeededGenerator(state: 23)
        let translation = try ResponsesDialect.translate(try json(#"{"model":"m","input":"hi"}"#))
        for _ in 0..<200 {
            let answer = ChatAnswer.random(using: &generator)
            let response = try ResponsesDialect.response(fromChat: answer.completion, id: "resp_1", createdAt: 5, translation: translation)
            var whole = try ResponsesUpstream.chatCompletion(fromResponse: response).objectValue!
            var toResponses = ResponsesStreamTranslator(id: "resp_1", createdAt: 5, translation: translation)
            var toChat = ResponsesChatStreamTranslator(created: 5)
            let chunks = answer.chunks(using: &generator).flatMap { toResponses.translate($0) }.flatMap { toChat.translate($0) }
            #expect(toChat.failure == nil)
            let streamed = try assembleChat(chunks)
            whole["created"] = nil
            #expect(try argumentsParsed(streamed) == argumentsParsed(.object(whole)))
            // What chat says survives the trip: the finish reason, the calls, the reasoning, the text.
            let original = answer.completion["choices"]!.arrayValue![0]
            let back = whole["choices"]!.arrayValue![0]
            #expect(back["finish_reason"] == original["finish_reason"])
            #expect(back["message"]?["tool_calls"] == original["message"]?["tool_calls"])
            #expect(back["message"]?["reasoning_content"] == original["message"]?["reasoning_content"])
            if let text = answer.text, !text.isEmpty { #expect(back["message"]?["content"] == .string(text)) }
        }
    }
}
