import Foundation
import NIOCore
import Testing

@testable import LISAKit

/// The hot path's one-pass reads must never accept what the typed decoders refuse, nor read
/// a different value: they only decide which path decodes.
@Suite("Quick reads")
struct QuickReadTests {
    /// The typed decode of a body the gateway would serve, as `serve` does it.
    private func typed(_ body: String) -> RoutingFields? {
        guard (try? StrictJSON.validate(Array(body.utf8))) != nil,
            let request = try? JSONDecoder().decode(ChatCompletionRequest.self, from: Data(body.utf8)),
            !request.messages.isEmpty
        else { return nil }
        return RoutingFields(model: request.model, stream: request.stream ?? false, user: request.user)
    }

    private func quick(_ body: String) -> RoutingFields? {
        ChatCompletionRequest.routingFields(in: ByteBuffer(string: body))
    }

    @Test("the common shapes are read in one pass, with the typed decoder's values")
    func commonShapes() {
        let bodies = [
            #"{"model":"mock","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}"#,
            #"{"model": "m\u00e9", "stream": true, "stream_options": {"include_usage": true}, "user": "al\"ice","#
                + #" "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi \ud83d\ude00", "name": "bob"},"#
                + #" {"role": "assistant", "content": null, "refusal": null}, {"role": "tool", "content": "42", "tool_call_id": "call_1"},"#
                + #" {"role": "critic", "content": [1, {"a": [true, null]}]}], "temperature": 0.7, "top_p": 1, "seed": -3, "n": 1,"#
                + #" "logit_bias": {"50256": -100}, "metadata": {"k": "v"}, "modalities": ["text"], "top_k": 40,"#
                + #" "chat_template_kwargs": {"enable_thinking": false}, "reasoning_effort": "low", "audio": null, "store": false}"#,
            "{\n  \"messages\" : [ { \"content\" : \"x\" , \"role\" : \"developer\" } ] ,\n  \"model\" : \"a\"\n}\n",
            #"{"model":"m","messages":[{"role":"user","content":""}],"stream":null,"user":null,"max_tokens":null}"#,
        ]
        for body in bodies {
            let read = quick(body)
            #expect(read != nil, "not read in one pass: \(body)")
            #expect(read == typed(body), "differs from the typed decode: \(body)")
        }
        #expect(quick(bodies[1]) == RoutingFields(model: "mé", stream: true, user: "al\"ice"))
    }

    @Test("anything unusual or wrong goes to the typed decoder")
    func unusualShapes() {
        let bodies = [
            #"{"model":"m","messages":[]}"#,  // empty messages: the typed path's 400
            #"{"model":"m"}"#,
            #"{"messages":[{"role":"user","content":"x"}]}"#,
            #"{"model":7,"messages":[{"role":"user","content":"x"}]}"#,
            #"{"model":"m","messages":[{"content":"x"}]}"#,
            #"{"model":"m","messages":[{"role":"user"}]}"#,
            #"{"model":"m","messages":[{"role":"user","content":7}]}"#,
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}"#,
            #"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            #"{"model":"m","messages":[{"role":"assistant","tool_calls":[]}]}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x","name":3}]}"#,
            #"{"model":"m","messages":["x"]}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1e2}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":12345678901234567890}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["\n"]}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[]}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"k":1}}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":[]}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}}"#,
            #"{"model":"m","messages":[{"role":"user","content":"x"}],"extra":1E400}"#,
            #"{"mod\u0065l":"m","messages":[{"role":"user","content":"x"}]}"#,
            #"[{"model":"m"}]"#,
        ]
        for body in bodies {
            #expect(quick(body) == nil, "read in one pass: \(body)")
        }
    }

    @Test("generated documents: whatever is read in one pass decodes to the same fields")
    func differential() {
        var seeded = SeededGenerator(state: 0x5EED)
        var accepted = 0
        for _ in 0..<10_000 {
            let body = Self.randomRequest(&seeded)
            guard (try? StrictJSON.validate(Array(body.utf8))) != nil else { continue }
            guard let read = quick(body) else { continue }
            accepted += 1
            #expect(read == typed(body), "one-pass read differs from the typed decode: \(body)")
        }
        // The generator makes the common shape often enough for the comparison to mean something.
        #expect(accepted > 200)
    }

    @Test("usage: the plain shape in one pass, with the decoder's values; anything else falls back")
    func usage() throws {
        let plain = [
            #"{"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}"#,
            #"{"prompt_tokens":1,"total_tokens":1,"completion_tokens":null,"prompt_tokens_details":null}"#,
            #"{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}}"#,
        ]
        for text in plain {
            let read = Usage.quickRead(ByteBuffer(string: text))
            #expect(read != nil, "not read in one pass: \(text)")
            #expect(read == (try JSONDecoder().decode(Usage.self, from: Data(text.utf8))))
        }
        let other = [
            #"{"prompt_tokens": 9, "total_tokens": 18, "cost": 0.1}"#,
            #"{"prompt_tokens": 9}"#,
            #"{"prompt_tokens": 9, "total_tokens": 18, "prompt_tokens": 1}"#,
            #"{"prompt_tokens": "9", "total_tokens": 18}"#,
            #"{"prompt_tokens": 9, "total_tokens": 18"#,
            #"{"prompt_tokens": 9, "total_tokens": 018}"#,
            #"{"prompt_tokens": 9, "total_tokens": 18} x"#,
            #"{"prompt_tokens": 9, "total_tokens": 18, "prompt_tokens_details": {"cached": 1.5}}"#,
            "", "{", "[", "nul", "\"",
        ]
        for text in other {
            #expect(Usage.quickRead(ByteBuffer(string: text)) == nil, "read in one pass: \(text)")
        }
        // Found by the fuzzer: a detail name with invalid UTF-8, which the decoder refuses.
        var invalid = ByteBuffer(string: #"{"prompt_tokens":3,"total_tokens":3,"prompt_tokens_details":{"cached_tok"#)
        invalid.writeBytes([0xE5])
        invalid.writeString(#"ns":0}}"#)
        #expect((try? JSONDecoder().decode(Usage.self, from: Data(invalid.readableBytesView))) == nil)
        #expect(Usage.quickRead(invalid) == nil)
    }

    @Test("the cursor skips any value, refuses past its depth budget and is linear")
    func cursorBudgets() {
        func skips(_ text: String) -> Bool {
            var bytes = Array(text.utf8)
            return bytes.withUnsafeMutableBytes { raw in
                var cursor = JSONCursor(UnsafeRawBufferPointer(raw))
                return cursor.skipValue() && cursor.atEnd()
            }
        }
        #expect(skips(#"{"a": [1, -2.5, "x\"y", {"b": {}}, [], true, false, null]}"#))
        #expect(skips(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        #expect(!skips(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)))
        #expect(!skips(#"{"a" 1}"#))
        #expect(!skips(#"[1,]"#))
        #expect(!skips(#"{"a":1]"#))
        #expect(!skips(#"[1}"#))
        #expect(!skips("[1e5]"))
        // Half a million unclosed brackets: refused at once, at the depth limit, not after a
        // scan of the rest.
        var deep = Array(String(repeating: "[", count: 500_000).utf8)
        let stoppedAt = deep.withUnsafeMutableBytes { raw in
            var cursor = JSONCursor(UnsafeRawBufferPointer(raw))
            return cursor.skipValue() ? nil : cursor.index
        }
        #expect(stoppedAt.map { $0 <= 65 } == true, "refused after \(stoppedAt.map(String.init) ?? "none") bytes")
        let wide = "[" + Array(repeating: #"{"k":"v"}"#, count: 100_000).joined(separator: ",") + "]"
        #expect(skips(wide))
    }

    /// A request of random shape: mostly well-typed members (so the common shape comes up
    /// often), with wrong types, missing members and odd messages mixed in.
    static func randomRequest(_ random: inout SeededGenerator) -> String {
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        let scalars = [
            #""s""#, "1", "-0", "2.5", "1e3", "true", "false", "null", "[]", "{}", #"[1,"a"]"#, #"{"k":"v"}"#,
            "12345678901234567890", #""\u00e9""#, #""""#, "0.1234567890123456789012345",
        ]
        /// A value of the member's own type most of the time, any scalar otherwise.
        func value(_ valid: [String]) -> String { chance(80) ? pick(valid) : pick(scalars) }
        func message() -> String {
            var members: [String] = []
            if chance(95) {
                members.append(#""role":"# + value([#""user""#, #""system""#, #""assistant""#, #""tool""#, #""developer""#, #""critic""#]))
            }
            if chance(90) { members.append(#""content":"# + value([#""hi""#, #""h\"i""#, "null", #"[{"type":"text","text":"x"}]"#])) }
            if chance(20) { members.append(#""name":"# + value([#""n""#, "null"])) }
            if chance(30) { members.append(#""tool_call_id":"# + value([#""c1""#])) }
            if chance(10) { members.append(#""refusal":"# + value(["null", #""no""#])) }
            if chance(10) { members.append(#""tool_calls":"# + value(["null", "[]"])) }
            if chance(10) { members.append(#""x_extra":"# + pick(scalars)) }
            members.shuffle(using: &random)
            return chance(3) ? pick(scalars) : "{" + members.joined(separator: ",") + "}"
        }
        var members: [String] = []
        if chance(95) { members.append(#""model":"# + value([#""mock""#, #""a\"b""#, #""\u00e9""#])) }
        if chance(95) {
            let count = Int(random.next() % 4)
            members.append(#""messages":["# + (0..<count).map { _ in message() }.joined(separator: ",") + "]")
        }
        let options: [(String, [String])] = [
            ("stream", ["true", "false", "null"]), ("user", [#""u""#, "null"]), ("temperature", ["0.5", "1", "null"]),
            ("top_p", ["0.9"]), ("max_tokens", ["16", "null"]), ("n", ["1"]), ("seed", ["-7"]), ("logprobs", ["true"]),
            ("top_logprobs", ["2"]), ("stream_options", [#"{"include_usage":true}"#, #"{"include_usage":null,"x":[1]}"#, #"{"include_usage":1}"#]),
            ("metadata", [#"{"a":"b"}"#, #"{"a":1}"#]), ("modalities", [#"["text"]"#, "[1]"]), ("logit_bias", [#"{"1":2}"#, "[]"]),
            ("audio", scalars), ("prediction", scalars), ("store", ["false"]), ("reasoning_effort", [#""low""#]),
            ("service_tier", [#""auto""#]), ("parallel_tool_calls", ["true"]), ("stop", [#""x""#]), ("tools", ["[]"]),
            ("top_k", scalars), ("custom", scalars),
        ]
        for (name, valid) in options where chance(20) {
            members.append("\"\(name)\":" + value(valid))
        }
        members.shuffle(using: &random)
        return "{" + members.joined(separator: ",") + "}"
    }
}
