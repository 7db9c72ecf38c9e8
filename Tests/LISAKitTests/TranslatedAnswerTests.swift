import Foundation
import NIOCore
import Testing

@testable import LISAKit

/// Buffered Messages and Responses answers are translated to chat one content block (output
/// item, message part) at a time from their bytes, never as one parsed tree; what comes out
/// is byte for byte what the tree translation writes, and bad answers fail the same way.
@Suite("Translated answers read piece by piece")
struct TranslatedAnswerTests {
    // MARK: - Slicer

    @Test("the slicer's member ranges and element visits match a full parse (500 random documents)")
    func slicerMatchesParse() throws {
        var generator = SeededGenerator(state: 31)
        for _ in 0..<500 {
            let value = RandomJSON.object(depth: 0, using: &generator)
            let text = RandomJSON.write(value, using: &generator)
            let buffer = ByteBuffer(string: text)
            try StrictJSON.validate(buffer)
            let parsed = try JSONValue(parsing: buffer)
            let members = try #require(JSONSlices.members(of: buffer), "\(text)")
            let object = try #require(parsed.objectValue)
            #expect(members.map(\.key) == object.keys)
            for (member, (_, expected)) in zip(members, object) {
                let slice = JSONSlices.slice(of: buffer, member.value)
                #expect(try JSONValue(parsing: slice) == expected)
                // A range covers the value exactly: no whitespace on either side.
                #expect(slice.readableBytesView.first.map { ![0x20, 0x0A, 0x0D, 0x09].contains($0) } == true)
                #expect(slice.readableBytesView.last.map { ![0x20, 0x0A, 0x0D, 0x09].contains($0) } == true)
                if case .array(let elements) = expected {
                    var visited: [JSONValue] = []
                    let complete = JSONSlices.forEachElement(of: buffer, in: member.value) { range in
                        visited.append((try? JSONValue(parsing: JSONSlices.slice(of: buffer, range))) ?? "unreadable")
                        return true
                    }
                    #expect(complete)
                    #expect(visited == elements)
                }
                if case .object(let inner) = expected {
                    #expect(JSONSlices.members(of: buffer, in: member.value)?.map(\.key) == inner.keys)
                    #expect(!JSONSlices.forEachElement(of: buffer, in: member.value) { _ in true })
                }
            }
        }
    }

    @Test("the slicer stays in bounds and answers nil on broken structure, and deep nesting costs it no stack")
    func slicerOnBadInput() {
        for text in [
            "", "{", "[", "{\"a\"", "{\"a\":", "{\"a\":1,", "{\"a\":1} x", "[1,", "[1 2]", "{\"a\" 1}", "\"x", "{\"a\":\"\\", "{\"a\":[1,{]}",
        ] {
            let buffer = ByteBuffer(string: text)
            #expect(JSONSlices.members(of: buffer) == nil, "\(text)")
            #expect(!JSONSlices.forEachElement(of: buffer, in: 0..<buffer.readableBytes) { _ in true }, "\(text)")
        }
        let deep = ByteBuffer(string: "{\"a\":" + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "}")
        #expect(JSONSlices.members(of: deep)?.map(\.value.count) == [400_000])
        #expect(JSONSlices.members(of: ByteBuffer(string: #"{"k\u0065y\n":1}"#))?.map(\.key) == ["key\n"])
    }

    // MARK: - Messages

    @Test("Messages answers: the byte translation writes the tree translation's bytes (fixtures and 300 random answers)")
    func messagesMatchTree() throws {
        var answers = [
            #"""
            {"id":"msg_1","type":"message","role":"assistant","model":"claude-x","stop_reason":"tool_use","stop_sequence":null,
             "content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"a"}}],
             "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":3,"cache_creation_input_tokens":2}}
            """#,
            #"{"id":"m","type":"message","model":{"z":1,"a":[2]},"content":[],"stop_reason":"stop_sequence","stop_sequence":"END"}"#,
            #"{"type":"message","id":"m","content":[1,"x",null,{"type":"text"},{"type":"refusal","text":"no"}],"usage":null}"#,
            #"  {"usage":{"output_tokens":2},"content" : [ {"text":"a\"b\\c\u00e9","type":"text"} ] ,"id":"m","type":"message"}  "#,
            #"{"t\u0079pe":"message","id":"m","c\u006fntent":[{"type":"tool_use","id":"t","name":"f","input":{"z":1,"a":{"y":[1,2],"b":"\u2028"}}}]}"#,
        ]
        var generator = SeededGenerator(state: 5)
        for _ in 0..<300 { answers.append(RandomAnswer.message(using: &generator)) }
        for text in answers {
            let bytes = ByteBuffer(string: text)
            let tree = try AnthropicUpstream.chatCompletion(fromMessage: try JSONValue(parsing: bytes), created: 7)
            let sliced = try #require(try AnthropicUpstream.chatCompletion(fromMessageBytes: bytes, created: 7))
            #expect(sliced.jsonString == tree.jsonString, "\(text)")
        }
    }

    @Test(
        "Messages answers: what is not JSON gives nil (the gateway's 502), what is not a message the same error",
        arguments: [
            (#"{"type":"message","content":[}"#, nil), ("not json", nil), (#"{"type":"message","content":[1]} x"#, nil),
            (#"{"type":"message","content":["\ud800"]}"#, nil), (#"{"type":"message","content":[1e999]}"#, nil),
            (#"{"type":"message","content":{}}"#, "not a message"), (#"{"type":"mess","content":[]}"#, "not a message"),
            (#"{"type":"message"}"#, "not a message"), (#"[1,2]"#, "not a message"), (#""message""#, "not a message"),
        ] as [(String, String?)])
    func messagesErrors(text: String, error: String?) throws {
        let bytes = ByteBuffer(string: text)
        if let error {
            #expect(throws: LISAError.badGateway("The Anthropic upstream's answer is not a message.", reason: "upstream_invalid_response")) {
                try AnthropicUpstream.chatCompletion(fromMessageBytes: bytes, created: 1)
            }
            #expect(error == "not a message")
            #expect(throws: LISAError.badGateway("The Anthropic upstream's answer is not a message.", reason: "upstream_invalid_response")) {
                try AnthropicUpstream.chatCompletion(fromMessage: try JSONValue(parsing: bytes), created: 1)
            }
        } else {
            #expect(try AnthropicUpstream.chatCompletion(fromMessageBytes: bytes, created: 1) == nil)
            #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: bytes) }
        }
    }

    @Test("duplicate keys (refused by StrictJSON, read by the tree parser) translate as the tree reads them")
    func duplicateKeys() throws {
        for text in [
            #"{"type":"message","id":"a","content":[{"type":"text","text":"x"}],"id":"b","content":[{"type":"text","text":"y","text":"z"}]}"#,
            #"{"id":"r","object":"response","output":[],"output":[{"type":"message","content":[{"type":"output_text","text":"q"}]}],"created_at":1}"#,
        ] {
            let bytes = ByteBuffer(string: text)
            let tree = try JSONValue(parsing: bytes)
            if tree["type"] == "message" {
                #expect(
                    try AnthropicUpstream.chatCompletion(fromMessageBytes: bytes, created: 1)?.jsonString
                        == AnthropicUpstream.chatCompletion(fromMessage: tree, created: 1).jsonString)
            } else {
                #expect(
                    try ResponsesUpstream.chatCompletion(fromResponseBytes: bytes)?.jsonString
                        == ResponsesUpstream.chatCompletion(fromResponse: tree).jsonString)
            }
        }
    }

    // MARK: - Responses

    @Test("responses: the byte translation writes the tree translation's bytes (fixtures and 300 random answers)")
    func responsesMatchTree() throws {
        var answers = [
            #"""
            {"id":"resp_1","object":"response","created_at":9,"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-x",
             "output":[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"mulling"}]},
                       {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Part"},{"type":"output_text","text":"ial"}]},
                       {"type":"function_call","id":"fc_1","call_id":"call_9","name":"f","arguments":"{}"}],
             "usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":2},"output_tokens_details":{"reasoning_tokens":1}}}
            """#,
            #"{"id":"r","object":"response","created_at":1,"output":[1,null,"s",[],{"type":"message","content":"plain"},{"type":"message"},{"content":[{"type":"output_text","text":"no type"}]}]}"#,
            #"{"id":"r","object":"response","created_at":1,"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":[{"type":"message","content":[{"type":"refusal","refusal":"no \"way\""}]}]}"#,
            #"{"output" : [ { "content" : [ {"text":"a","type":"output_text"} , {"type":"output_text","text":"\u00e9\n"} ], "type" : "message" } ] , "object":"response", "created_at": 3, "id": "r"}"#,
            #"{"id":"r","object":"response","created_at":2,"output":[{"type":"function_call","call_id":"c","name":"g","arguments":"{\"b\":1,\"a\":2}"},{"type":"web_search_call","id":"w"}]}"#,
        ]
        var generator = SeededGenerator(state: 11)
        for _ in 0..<300 { answers.append(RandomAnswer.response(using: &generator)) }
        for text in answers {
            let bytes = ByteBuffer(string: text)
            let tree = try ResponsesUpstream.chatCompletion(fromResponse: try JSONValue(parsing: bytes))
            let sliced = try #require(try ResponsesUpstream.chatCompletion(fromResponseBytes: bytes))
            #expect(sliced.jsonString == tree.jsonString, "\(text)")
        }
    }

    @Test(
        "responses: what is not JSON gives nil, what is not a response or failed the same error as the tree reading",
        arguments: [
            (#"{"object":"response","output":[{]}"#, nil), (#"{"object":"response","output":[]"#, nil),
            (#"{"object":"response","output":[{"type":"message","content":[01]}]}"#, nil),
            (#"{"object":"response","output":{}}"#, "The Responses upstream's answer is not a response."),
            (#"{"object":"responses","output":[]}"#, "The Responses upstream's answer is not a response."),
            (#"{"object":"response"}"#, "The Responses upstream's answer is not a response."),
            (#"[]"#, "The Responses upstream's answer is not a response."),
            (#"{"object":"response","status":"failed","output":[],"error":{"message":"boom"}}"#, "The Responses upstream failed: boom"),
            (#"{"status":"failed","object":"response","output":[{"type":"message"}]}"#, "The Responses upstream failed: the response failed"),
        ] as [(String, String?)])
    func responsesErrors(text: String, message: String?) throws {
        let bytes = ByteBuffer(string: text)
        guard let message else {
            #expect(try ResponsesUpstream.chatCompletion(fromResponseBytes: bytes) == nil)
            #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: bytes) }
            return
        }
        var fromBytes: LISAError?
        var fromTree: LISAError?
        do { _ = try ResponsesUpstream.chatCompletion(fromResponseBytes: bytes) } catch { fromBytes = error }
        do { _ = try ResponsesUpstream.chatCompletion(fromResponse: try JSONValue(parsing: bytes)) } catch { fromTree = error as? LISAError }
        #expect(fromBytes != nil)
        #expect(fromBytes?.message == message)
        #expect(fromBytes == fromTree)
    }

    @Test("the gateway's buffered translation reads bytes: invalid JSON is the same 502, a good answer the same chat bytes")
    func gatewayTranslation() throws {
        let message = ByteBuffer(string: #"{"id":"m","type":"message","model":"u","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"#)
        let wire = UpstreamWire(operation: .messages, answer: .anthropicToChat)
        let chat = try JSONValue(parsing: try wire.translatedAnswer(message, modelID: "x", requested: "x", request: ByteBuffer(), rename: false))
        #expect(chat["choices"]?.arrayValue?.first?["message"]?["content"] == "hi")
        #expect(
            throws: LISAError.badGateway(
                "The upstream of model 'x' answered with something other than a JSON object.", reason: "upstream_invalid_response")
        ) {
            try UpstreamWire(operation: .responses, answer: .responsesToChat).translatedAnswer(
                ByteBuffer(string: "{"), modelID: "x", requested: "x", request: ByteBuffer(), rename: false)
        }
    }
}

// MARK: - Random documents

private enum RandomJSON {
    static func scalar(using generator: inout SeededGenerator) -> JSONValue {
        switch Int.random(in: 0..<6, using: &generator) {
        case 0: .null
        case 1: .bool(Bool.random(using: &generator))
        case 2: .integer(Int64.random(in: -1_000_000...1_000_000, using: &generator))
        case 3: .number(Double(Int.random(in: -9999...9999, using: &generator)) / 8 + 0.5)
        default: .string(string(using: &generator))
        }
    }

    static func string(using generator: inout SeededGenerator) -> String {
        let pieces = ["a", "b", "\"", "\\", "\n", "é", "😀", " ", "}", "]", ",", ":", "{", "[", "\u{1}", "/"]
        return (0..<Int.random(in: 0..<6, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
    }

    static func value(depth: Int, using generator: inout SeededGenerator) -> JSONValue {
        guard depth < 4 else { return scalar(using: &generator) }
        switch Int.random(in: 0..<4, using: &generator) {
        case 0: return object(depth: depth + 1, using: &generator)
        case 1: return .array((0..<Int.random(in: 0..<5, using: &generator)).map { _ in value(depth: depth + 1, using: &generator) })
        default: return scalar(using: &generator)
        }
    }

    static func object(depth: Int, using generator: inout SeededGenerator) -> JSONValue {
        var members = JSONObject()
        for index in 0..<Int.random(in: 0..<6, using: &generator) {
            members[string(using: &generator) + "\(index)"] = value(depth: depth, using: &generator)
        }
        return .object(members)
    }

    /// JSON text of `value` with random whitespace between tokens and random escapes in strings.
    static func write(_ value: JSONValue, using generator: inout SeededGenerator) -> String {
        func space() -> String { ["", "", " ", "\n", "\t ", "\r\n  "].randomElement(using: &generator)! }
        switch value {
        case .object(let members):
            return "{" + space()
                + members.map { space() + quoted($0.key, using: &generator) + space() + ":" + space() + write($0.value, using: &generator) + space() }
                .joined(separator: ",") + space() + "}"
        case .array(let elements):
            return "[" + space() + elements.map { space() + write($0, using: &generator) + space() }.joined(separator: ",") + "]"
        case .string(let text): return quoted(text, using: &generator)
        default: return value.jsonString
        }
    }

    static func quoted(_ text: String, using generator: inout SeededGenerator) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "/": out += Bool.random(using: &generator) ? "\\/" : "/"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            case "a": out += Bool.random(using: &generator) ? "\\u0061" : "a"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

private enum RandomAnswer {
    static func text(using generator: inout SeededGenerator) -> JSONValue { .string(RandomJSON.string(using: &generator)) }

    static func message(using generator: inout SeededGenerator) -> String {
        var blocks: [JSONValue] = []
        for index in 0..<Int.random(in: 0..<40, using: &generator) {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0: blocks.append(["type": "text", "text": text(using: &generator)])
            case 1: blocks.append(["type": "thinking", "thinking": text(using: &generator), "signature": "s"])
            case 2:
                blocks.append([
                    "type": "tool_use", "id": .string("toolu_\(index)"), "name": text(using: &generator),
                    "input": RandomJSON.object(depth: 2, using: &generator),
                ])
            case 3: blocks.append(["type": "redacted_thinking", "data": "x"])
            default: blocks.append(RandomJSON.value(depth: 2, using: &generator))
            }
        }
        let stops: [JSONValue] = ["end_turn", "max_tokens", "tool_use", "refusal", "stop_sequence", .null]
        var message: JSONObject = [
            "id": "msg_1", "type": "message", "role": "assistant", "model": text(using: &generator), "content": .array(blocks),
            "stop_reason": stops.randomElement(using: &generator)!, "stop_sequence": Bool.random(using: &generator) ? "END" : .null,
            "usage": ["input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": .integer(Int64.random(in: 0...2, using: &generator))],
        ]
        if Bool.random(using: &generator) { message["extra"] = RandomJSON.object(depth: 1, using: &generator) }
        return RandomJSON.write(.object(message.shuffled(using: &generator)), using: &generator)
    }

    static func response(using generator: inout SeededGenerator) -> String {
        var output: [JSONValue] = []
        for index in 0..<Int.random(in: 0..<12, using: &generator) {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0:
                let parts: [JSONValue] = (0..<Int.random(in: 0..<20, using: &generator)).map { _ in
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: ["type": "output_text", "text": text(using: &generator), "annotations": []]
                    case 1: ["type": "refusal", "refusal": text(using: &generator)]
                    default: RandomJSON.value(depth: 3, using: &generator)
                    }
                }
                output.append(["type": "message", "id": .string("msg_\(index)"), "role": "assistant", "content": .array(parts)])
            case 1:
                output.append([
                    "type": "reasoning", "id": .string("rs_\(index)"), "summary": [["type": "summary_text", "text": text(using: &generator)]],
                    "content": Bool.random(using: &generator) ? [["type": "reasoning_text", "text": text(using: &generator)]] : [],
                ])
            case 2:
                output.append([
                    "type": "function_call", "id": .string("fc_\(index)"), "call_id": .string("call_\(index)"), "name": text(using: &generator),
                    "arguments": .string(RandomJSON.object(depth: 2, using: &generator).jsonString),
                ])
            case 3: output.append(["type": "web_search_call", "id": "ws", "status": "completed"])
            default: output.append(RandomJSON.value(depth: 3, using: &generator))
            }
        }
        let statuses: [JSONValue] = ["completed", "incomplete", "in_progress"]
        var response: JSONObject = [
            "id": "resp_1", "object": "response", "created_at": 5, "status": statuses.randomElement(using: &generator)!,
            "model": text(using: &generator), "output": .array(output),
            "usage": ["input_tokens": 3, "output_tokens": 4, "output_tokens_details": ["reasoning_tokens": 1]],
        ]
        if Bool.random(using: &generator) { response["incomplete_details"] = ["reason": "content_filter"] }
        return RandomJSON.write(.object(response.shuffled(using: &generator)), using: &generator)
    }
}

extension JSONObject {
    fileprivate func shuffled(using generator: inout SeededGenerator) -> JSONObject {
        JSONObject(Array(self).shuffled(using: &generator).map { ($0.key, $0.value) })
    }
}
