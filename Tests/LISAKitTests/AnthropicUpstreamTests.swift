import Foundation
import NIOCore
import Testing

@testable import LISAKit

private func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

/// Re-assembles chat chunks into a completion, as the openai SDK's stream helper does.
func assembleChat(_ events: [ServerSentEvent]) throws -> JSONValue {
    var id: JSONValue = .null
    var model: JSONValue = .null
    var content: String?
    var reasoning: String?
    var calls: [Int: [String: JSONValue]] = [:]
    var arguments: [Int: String] = [:]
    var finish: JSONValue = .null
    var stopReason: JSONValue?
    var usage: JSONValue?
    var sawDone = false
    for event in events {
        #expect(!sawDone, "nothing follows [DONE]")
        if event.isDone {
            sawDone = true
            continue
        }
        let chunk = try json(event.data)
        #expect(chunk["object"] == "chat.completion.chunk")
        id = chunk["id"] ?? id
        model = chunk["model"] ?? model
        if let value = chunk["usage"], value != .null { usage = value }
        guard let choice = chunk["choices"]?.arrayValue?.first else { continue }
        let delta = choice["delta"]
        if let text = delta?["content"]?.stringValue { content = (content ?? "") + text }
        if let text = delta?["reasoning_content"]?.stringValue { reasoning = (reasoning ?? "") + text }
        for call in delta?["tool_calls"]?.arrayValue ?? [] {
            let index = Int(call["index"]!.int64Value!)
            if let callID = call["id"] { calls[index] = ["id": callID, "type": "function", "name": call["function"]?["name"] ?? ""] }
            arguments[index, default: ""] += call["function"]?["arguments"]?.stringValue ?? ""
        }
        if let reason = choice["finish_reason"], reason != .null { finish = reason }
        if let matched = choice["stop_reason"] { stopReason = matched }
    }
    #expect(sawDone)
    var message: [String: JSONValue] = ["role": "assistant"]
    message["content"] = (content?.isEmpty ?? true) && !calls.isEmpty ? .null : .string(content ?? "")
    if let reasoning, !reasoning.isEmpty { message["reasoning_content"] = .string(reasoning) }
    if !calls.isEmpty {
        message["tool_calls"] = .array(
            calls.keys.sorted().map { index in
                let call = calls[index]!
                return ["id": call["id"]!, "type": "function", "function": ["name": call["name"]!, "arguments": .string(arguments[index] ?? "")]]
            })
    }
    var choice: [String: JSONValue] = ["index": 0, "message": .object(message), "finish_reason": finish]
    if let stopReason { choice["stop_reason"] = stopReason }
    var object: [String: JSONValue] = ["id": id, "object": "chat.completion", "model": model, "choices": [.object(choice)]]
    if let usage { object["usage"] = usage }
    return .object(object)
}

/// The completion with each tool call's arguments parsed: the same object may be written
/// with its keys in another order.
func argumentsParsed(_ completion: JSONValue) throws -> JSONValue {
    guard case .object(var object) = completion, case .array(var choices) = object["choices"] ?? .null,
        case .object(var choice) = choices[0], case .object(var message) = choice["message"] ?? .null,
        case .array(let calls) = message["tool_calls"] ?? .null
    else { return completion }
    message["tool_calls"] = .array(
        try calls.map { call in
            var call = call.objectValue!
            var function = call["function"]!.objectValue!
            function["arguments"] = try json(function["arguments"]!.stringValue!)
            call["function"] = .object(function)
            return .object(call)
        })
    choice["message"] = .object(message)
    choices[0] = .object(choice)
    object["choices"] = .array(choices)
    return .object(object)
}

/// A random Anthropic answer, as a whole message and as the event stream Anthropic sends.
private struct MessageAnswer {
    var thinking: String?
    var text: String?
    var tools: [(id: String, name: String, input: JSONValue)] = []
    var stopReason: String
    var stopSequence: String?

    var message: JSONValue {
        var content: [JSONValue] = []
        if let thinking { content.append(["type": "thinking", "thinking": .string(thinking), "signature": "sig"]) }
        if let text { content.append(["type": "text", "text": .string(text)]) }
        for tool in tools { content.append(["type": "tool_use", "id": .string(tool.id), "name": .string(tool.name), "input": tool.input]) }
        return [
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": .array(content),
            "stop_reason": .string(stopReason), "stop_sequence": stopSequence.map(JSONValue.string) ?? .null,
            "usage": ["input_tokens": 11, "output_tokens": 4, "cache_read_input_tokens": 2],
        ]
    }

    func events(using generator: inout some RandomNumberGenerator) -> [ServerSentEvent] {
        func pieces(_ text: String) -> [String] {
            var result: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                let length = Int.random(in: 1...max(1, min(4, rest.count)), using: &generator)
                result.append(String(rest.prefix(length)))
                rest = rest.dropFirst(length)
            }
            return result
        }
        func event(_ type: String, _ data: JSONValue) -> ServerSentEvent {
            var object = data.objectValue!
            object["type"] = .string(type)
            return DialectJSON.event(type, .object(object))
        }
        var events = [
            event(
                "message_start",
                [
                    "message": [
                        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": nil,
                        "stop_sequence": nil, "usage": ["input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 2],
                    ]
                ]),
            event("ping", [:]),
        ]
        var index: Int64 = 0
        if let thinking {
            events.append(event("content_block_start", ["index": .integer(index), "content_block": ["type": "thinking", "thinking": ""]]))
            for piece in pieces(thinking) {
                events.append(
                    event("content_block_delta", ["index": .integer(index), "delta": ["type": "thinking_delta", "thinking": .string(piece)]]))
            }
            events.append(event("content_block_delta", ["index": .integer(index), "delta": ["type": "signature_delta", "signature": "sig"]]))
            events.append(event("content_block_stop", ["index": .integer(index)]))
            index += 1
        }
        if let text {
            events.append(event("content_block_start", ["index": .integer(index), "content_block": ["type": "text", "text": ""]]))
            for piece in pieces(text) {
                events.append(event("content_block_delta", ["index": .integer(index), "delta": ["type": "text_delta", "text": .string(piece)]]))
            }
            events.append(event("content_block_stop", ["index": .integer(index)]))
            index += 1
        }
        for tool in tools {
            events.append(
                event(
                    "content_block_start",
                    [
                        "index": .integer(index),
                        "content_block": ["type": "tool_use", "id": .string(tool.id), "name": .string(tool.name), "input": [:]],
                    ]))
            for piece in pieces(DialectJSON.string(tool.input)) {
                events.append(
                    event("content_block_delta", ["index": .integer(index), "delta": ["type": "input_json_delta", "partial_json": .string(piece)]]))
            }
            events.append(event("content_block_stop", ["index": .integer(index)]))
            index += 1
        }
        events.append(
            event(
                "message_delta",
                [
                    "delta": ["stop_reason": .string(stopReason), "stop_sequence": stopSequence.map(JSONValue.string) ?? .null],
                    "usage": ["output_tokens": 4],
                ]))
        events.append(event("message_stop", [:]))
        return events
    }

    static func random(using generator: inout some RandomNumberGenerator) -> MessageAnswer {
        let words = ["Hallo", " wörld", "🙂", " \"q\"", "\n", " end."]
        func sentence() -> String { (0..<Int.random(in: 1...5, using: &generator)).map { _ in words.randomElement(using: &generator)! }.joined() }
        var answer = MessageAnswer(stopReason: ["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"].randomElement(using: &generator)!)
        if Bool.random(using: &generator) { answer.thinking = sentence() }
        if answer.stopReason != "tool_use" || Bool.random(using: &generator) { answer.text = sentence() }
        if answer.stopReason == "tool_use" {
            for index in 0..<Int.random(in: 1...3, using: &generator) {
                answer.tools.append(("toolu_\(index)", "tool\(index)", ["q": .string(sentence()), "n": .integer(Int64(index))]))
            }
        }
        if answer.stopReason == "stop_sequence" { answer.stopSequence = "STOP" }
        return answer
    }
}

@Suite("Dialects: chat completions to an Anthropic upstream")
struct AnthropicUpstreamTests {
    @Test("a chat request becomes the Messages request of the translation table")
    func requestGolden() throws {
        let chat = try json(
            #"""
            {"model":"claude-x","max_completion_tokens":300,"temperature":0.2,"top_p":0.9,"stop":"END","stream":true,
             "stream_options":{"include_usage":true},"user":"u-1","parallel_tool_calls":false,"top_k":5,"lisa":{"x":1},
             "tool_choice":{"type":"function","function":{"name":"lookup"}},
             "tools":[{"type":"function","function":{"name":"lookup","description":"Finds","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],
             "messages":[
              {"role":"system","content":"Be brief."},
              {"role":"developer","content":[{"type":"text","text":"Use tools."}]},
              {"role":"user","content":[{"type":"text","text":"Look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]},
              {"role":"assistant","content":"Calling.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"a\"}"}},{"id":"call_2","type":"function","function":{"name":"lookup","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"one"},
              {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"two"}]},
              {"role":"assistant","content":null},
              {"role":"user","content":"Thanks"}
             ]}
            """#)
        let expected = try json(
            #"""
            {"model":"claude-x","max_tokens":300,"temperature":0.2,"top_p":0.9,"stop_sequences":["END"],"stream":true,
             "metadata":{"user_id":"u-1"},"top_k":5,
             "tool_choice":{"type":"tool","name":"lookup","disable_parallel_tool_use":true},
             "tools":[{"name":"lookup","description":"Finds","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],
             "system":"Be brief.\n\nUse tools.",
             "messages":[
              {"role":"user","content":[{"type":"text","text":"Look"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]},
              {"role":"assistant","content":[{"type":"text","text":"Calling."},{"type":"tool_use","id":"call_1","name":"lookup","input":{"q":"a"}},{"type":"tool_use","id":"call_2","name":"lookup","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"one"},{"type":"tool_result","tool_use_id":"call_2","content":"two"}]},
              {"role":"user","content":"Thanks"}
             ]}
            """#)
        #expect(try AnthropicUpstream.messagesRequest(fromChat: chat) == expected)
    }

    @Test("max_tokens defaults when the chat request sets none")
    func defaultMaxTokens() throws {
        let out = try AnthropicUpstream.messagesRequest(fromChat: try json(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#))
        #expect(out["max_tokens"] == .integer(AnthropicUpstream.defaultMaxTokens))
        #expect(out["system"] == nil)
    }

    @Test(
        "tool_choice maps auto, none, required and a function",
        arguments: [
            (#""auto""#, #"{"type":"auto"}"#), (#""none""#, #"{"type":"none"}"#), (#""required""#, #"{"type":"any"}"#),
            (#"{"type":"function","function":{"name":"f"}}"#, #"{"type":"tool","name":"f"}"#),
        ])
    func toolChoice(chat: String, anthropic: String) throws {
        let request = try json(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":\#(chat)}"#)
        #expect(try AnthropicUpstream.messagesRequest(fromChat: request)["tool_choice"] == json(anthropic))
    }

    @Test(
        "what Messages cannot carry is refused, naming the member",
        arguments: [
            (#""n":2"#, "n"), (#""logprobs":true"#, "logprobs"), (#""seed":1"#, "seed"), (#""presence_penalty":0.5"#, "presence_penalty"),
            (#""frequency_penalty":0.5"#, "frequency_penalty"), (#""logit_bias":{"1":2}"#, "logit_bias"),
            (#""reasoning_effort":"low""#, "reasoning_effort"),
            (#""response_format":{"type":"json_object"}"#, "response_format.type"), (#""stop":[1]"#, "stop"),
            (#""tools":[{"type":"custom","custom":{}}]"#, "tools[0].type"),
        ])
    func refusals(member: String, param: String) throws {
        let request = try json(#"{"model":"m","messages":[{"role":"user","content":"hi"}],\#(member)}"#)
        #expect {
            try AnthropicUpstream.messagesRequest(fromChat: request)
        } throws: { error in
            (error as? LISAError)?.param == param && (error as? LISAError)?.code == .invalidRequest
        }
    }

    @Test(
        "messages Messages cannot carry are refused, naming the message",
        arguments: [
            (#"[{"role":"user","content":"a"},{"role":"system","content":"late"}]"#, "messages[1]"),
            (#"[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]"#, "messages[0].content[0].type"),
            (#"[{"role":"function","content":"x","name":"f"}]"#, "messages[0].role"),
            (
                #"[{"role":"assistant","content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]"#,
                "messages[0].tool_calls[0].function.arguments"
            ),
            (#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]"#, "messages[0].content[0].image_url.url"),
        ])
    func messageRefusals(messages: String, param: String) throws {
        let request = try json(#"{"model":"m","messages":\#(messages)}"#)
        #expect {
            try AnthropicUpstream.messagesRequest(fromChat: request)
        } throws: { error in
            (error as? LISAError)?.param == param
        }
    }

    @Test("a Messages answer becomes the chat completion of the translation table")
    func answerGolden() throws {
        let message = try json(
            #"""
            {"id":"msg_1","type":"message","role":"assistant","model":"claude-x","stop_reason":"tool_use","stop_sequence":null,
             "content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"a"}}],
             "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":3,"cache_creation_input_tokens":2}}
            """#)
        let expected = try json(
            #"""
            {"id":"msg_1","object":"chat.completion","created":7,"model":"claude-x",
             "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Let me look.","reasoning_content":"hmm",
               "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"a\"}"}}]}}],
             "usage":{"prompt_tokens":15,"completion_tokens":5,"total_tokens":20,"prompt_tokens_details":{"cached_tokens":3}}}
            """#)
        #expect(try AnthropicUpstream.chatCompletion(fromMessage: message, created: 7) == expected)
    }

    @Test(
        "stop reasons map to finish reasons",
        arguments: [
            ("end_turn", nil, "stop", nil), ("max_tokens", nil, "length", nil), ("tool_use", nil, "tool_calls", nil),
            ("refusal", nil, "content_filter", nil), ("stop_sequence", "END", "stop", "END"), ("pause_turn", nil, "stop", nil),
        ] as [(String, String?, String, String?)])
    func finishReasons(stop: String, sequence: String?, finish: String, matched: String?) {
        let (reason, kept) = AnthropicUpstream.finishReason(stop: stop, sequence: sequence.map(JSONValue.string))
        #expect(reason == finish)
        #expect(kept == matched)
    }

    @Test("an Anthropic stream translates to chat chunks that re-assemble to the translated whole answer (200 random answers)")
    func streamMatchesWhole() throws {
        var generator = SeededGenerator(state: 7)
        for _ in 0..<200 {
            let answer = MessageAnswer.random(using: &generator)
            var whole = try AnthropicUpstream.chatCompletion(fromMessage: answer.message, created: 1).objectValue!
            var translator = AnthropicChatStreamTranslator(created: 1)
            let chunks = answer.events(using: &generator).flatMap { translator.translate($0) }
            let streamed = try assembleChat(chunks)
            #expect(translator.failure == nil)
            whole["created"] = nil
            #expect(try argumentsParsed(streamed) == argumentsParsed(.object(whole)))
        }
    }

    @Test("chat → Messages → chat is the identity on what both carry (200 random answers through both translators, streamed too)")
    func roundTrip() throws {
        var generator = SeededGenerator(state: 99)
        for _ in 0..<200 {
            let answer = MessageAnswer.random(using: &generator)
            // An Anthropic answer, as LISA's Messages dialect would produce it from chat and back.
            let chat = try AnthropicUpstream.chatCompletion(fromMessage: answer.message, created: 1)
            let again = try AnthropicDialect.message(fromChat: chat, model: "claude-x")
            var original = answer.message.objectValue!
            var back = again.objectValue!
            // Signatures and cache detail are Anthropic's alone; ids are kept.
            original["content"] = .array(
                original["content"]!.arrayValue!.map { block in
                    guard block["type"] == "thinking" else { return block }
                    return ["type": "thinking", "thinking": block["thinking"]!, "signature": ""]
                })
            original["usage"] = nil
            back["usage"] = nil
            #expect(JSONValue.object(back) == JSONValue.object(original))
        }
    }

    @Test("an error event ends the translated stream as a failure, never with [DONE]")
    func errorEvent() async throws {
        let events = [
            #"event: message_start"# + "\n" + #"data: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":1}}}"#,
            #"event: content_block_start"# + "\n" + #"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            #"event: content_block_delta"# + "\n" + #"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            #"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ].map { ByteBuffer(string: $0 + "\n\n") }
        let body = TranslatedEventBody(base: UpstreamBody(events), translator: AnthropicChatStreamTranslator(created: 1))
        var received = ""
        await #expect(throws: UpstreamStreamFailure.self) {
            for try await chunk in body { received += String(buffer: chunk) }
        }
        #expect(received.contains(#""content":"Hi""#))
        #expect(!received.contains("[DONE]"))
    }
}
