import Foundation
import LISAHummingbirdTesting
import LISAKit
import NIOHTTP1
import Testing

/// Answers name the model the client asked for, not the upstream's `modelName` (the fake
/// upstream answers with the `model` it receives), on every route, buffered and streamed.
@Suite("Answers name the client's model")
struct AnswerModelNameTests {
    static func models(_ url: String) -> [ModelDefinition] {
        var claude = ModelDefinition(modelId: "claude-alt", modelName: "claude-upstream", modelUrl: url)
        claude.upstreamAPI = .anthropic
        var responses = ModelDefinition(modelId: "resp-alt", modelName: "resp-upstream", modelUrl: url)
        responses.upstreamAPI = .openAIResponses
        var shown = ModelDefinition(modelId: "qwen-shown", modelName: "shown-upstream", modelUrl: url)
        shown.passUpstreamModelName = true
        return [
            ModelDefinition(modelId: "qwen-alt", modelName: "echo-upstream", modelUrl: url),
            ModelDefinition(modelId: "embed-alt", modelName: "embed-upstream", modelType: .embedding, modelUrl: url),
            claude, responses, shown,
        ]
    }

    /// The events of an SSE body: (event name, data) for each.
    static func events(_ body: String) -> [(event: String?, data: String)] {
        body.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").compactMap { block in
            var event: String?
            var data: [String] = []
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event:") { event = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                if line.hasPrefix("data:") { data.append(String(line.dropFirst(line.hasPrefix("data: ") ? 6 : 5))) }
            }
            return data.isEmpty ? nil : (event, data.joined(separator: "\n"))
        }
    }

    static func json(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    /// Where a route's answer names its model: top level, or in Anthropic's and Responses' events.
    static func namedModel(_ event: String?, _ value: JSONValue) -> JSONValue? {
        if event == "message_start" { return value["message"]?["model"] }
        if let response = value["response"], response["object"] == "response" { return response["model"] }
        return value["model"]
    }

    @Test(
        "buffered and every streamed event name the requested model on every route",
        arguments: [
            ("/v1/chat/completions", #"{"model":"qwen-alt","messages":[{"role":"user","content":"hi there"}]"#, "qwen-alt", "echo-upstream"),
            ("/v1/completions", #"{"model":"qwen-alt","prompt":"hi there""#, "qwen-alt", "echo-upstream"),
            (
                "/v1/chat/completions", #"{"model":"claude-alt","max_tokens":50,"messages":[{"role":"user","content":"hi there"}]"#, "claude-alt",
                "claude-upstream"
            ),
            ("/v1/chat/completions", #"{"model":"resp-alt","messages":[{"role":"user","content":"hi there"}]"#, "resp-alt", "resp-upstream"),
            (
                "/v1/messages", #"{"model":"claude-alt","max_tokens":50,"messages":[{"role":"user","content":"hi there"}]"#, "claude-alt",
                "claude-upstream"
            ),
            ("/v1/messages", #"{"model":"qwen-alt","max_tokens":50,"messages":[{"role":"user","content":"hi there"}]"#, "qwen-alt", "echo-upstream"),
            ("/v1/responses", #"{"model":"resp-alt","input":"hi there""#, "resp-alt", "resp-upstream"),
            ("/v1/responses", #"{"model":"qwen-alt","input":"hi there""#, "qwen-alt", "echo-upstream"),
        ]
    )
    func clientModelEverywhere(route: String, request: String, requested: String, upstream: String) async throws {
        try await Harness.run(models: Self.models) { lisa in
            let buffered = try await lisa.send(route, json: request + "}")
            #expect(buffered.status == 200, "\(buffered.body)")
            let answer = try Self.json(buffered.body)
            #expect(answer["model"] == .string(requested), "\(buffered.body)")
            #expect(!buffered.body.contains(upstream))

            let streamed = try await lisa.send(route, json: request + #","stream":true}"#)
            #expect(streamed.status == 200, "\(streamed.body)")
            #expect(!streamed.body.contains(upstream), "no event names the upstream's model")
            var named = 0
            for (event, data) in Self.events(streamed.body) where data != "[DONE]" {
                if let model = Self.namedModel(event, try Self.json(data)) {
                    #expect(model == .string(requested), "\(event ?? "message"): \(data)")
                    named += 1
                }
            }
            #expect(named > 0)

            if route == "/v1/responses", let id = answer["id"]?.stringValue {
                let stored = try await lisa.send(.GET, "/v1/responses/\(id)")
                #expect(try Self.json(stored.body)["model"] == .string(requested), "the stored response too")
            }
        }
    }

    @Test("embeddings name the requested model")
    func embeddings() async throws {
        try await Harness.run(models: Self.models) { lisa in
            let answer = try await lisa.send("/v1/embeddings", json: #"{"model":"embed-alt","input":"hi"}"#)
            #expect(answer.status == 200)
            #expect(try Self.json(answer.body)["model"] == "embed-alt")
        }
    }

    @Test("passUpstreamModelName shows the upstream's name, buffered and streamed")
    func passThrough() async throws {
        try await Harness.run(models: Self.models) { lisa in
            let request = #"{"model":"qwen-shown","messages":[{"role":"user","content":"hi there"}]"#
            let buffered = try await lisa.send("/v1/chat/completions", json: request + "}")
            #expect(try Self.json(buffered.body)["model"] == "shown-upstream")
            let streamed = try await lisa.send("/v1/chat/completions", json: request + #","stream":true}"#)
            let chunks = Self.events(streamed.body).filter { $0.data != "[DONE]" }
            #expect(!chunks.isEmpty)
            for chunk in chunks { #expect(try Self.json(chunk.data)["model"] == "shown-upstream") }
        }
    }
}

/// Translated requests reach the upstream with every object's members in the client's order.
@Suite("Translated requests keep the client's member order")
struct TranslatedMemberOrderTests {
    /// Where each of `keys` (quoted, with its colon) is in `raw`, in order; `nil` if one is missing.
    static func positions(of keys: [String], in raw: String) -> [Int]? {
        var result: [Int] = []
        for key in keys {
            guard let range = raw.range(of: "\"\(key)\":") else { return nil }
            result.append(raw.distance(from: raw.startIndex, to: range.lowerBound))
        }
        return result
    }

    static let orders: [[String]] = [
        ["unit", "city", "days"], ["unit", "days", "city"], ["city", "days", "unit"], ["city", "unit", "days"], ["days", "city", "unit"],
        ["days", "unit", "city"], ["zeta", "alpha", "mid", "beta", "omega", "gamma", "delta", "epsilon"],
    ]

    static func schema(_ keys: [String]) -> String {
        #"{"type":"object","properties":{"# + keys.map { #""\#($0)":{"type":"string","description":"the \#($0)"}"# }.joined(separator: ",")
            + #"},"required":["# + keys.map { "\"\($0)\"" }.joined(separator: ",") + "]}"
    }

    @Test(
        "a tool's properties reach the upstream in the client's order, on every translated path",
        arguments: ["messages-to-chat", "responses-to-chat", "chat-to-messages", "chat-to-responses"]
    )
    func toolSchemaOrder(path: String) async throws {
        try await Harness.run(models: AnswerModelNameTests.models) { lisa in
            for keys in Self.orders {
                let schema = Self.schema(keys)
                let (route, body): (String, String) =
                    switch path {
                    case "messages-to-chat":
                        (
                            "/v1/messages",
                            #"{"model":"qwen-alt","max_tokens":20,"messages":[{"role":"user","content":"weather"}],"tools":[{"name":"weather","input_schema":\#(schema)}]}"#
                        )
                    case "responses-to-chat":
                        (
                            "/v1/responses",
                            #"{"model":"qwen-alt","input":"weather","store":false,"tools":[{"type":"function","name":"weather","parameters":\#(schema)}]}"#
                        )
                    case "chat-to-messages":
                        (
                            "/v1/chat/completions",
                            #"{"model":"claude-alt","max_tokens":20,"messages":[{"role":"user","content":"weather"}],"tools":[{"type":"function","function":{"name":"weather","parameters":\#(schema)}}]}"#
                        )
                    default:
                        (
                            "/v1/chat/completions",
                            #"{"model":"resp-alt","messages":[{"role":"user","content":"weather"}],"tools":[{"type":"function","function":{"name":"weather","parameters":\#(schema)}}]}"#
                        )
                    }
                let answer = try await lisa.send(route, json: body)
                #expect(answer.status == 200, "\(answer.body)")
                let raw = try #require(lisa.fake.observations.lastRawBody)
                let found = try #require(Self.positions(of: keys, in: raw), "\(raw)")
                #expect(found == found.sorted(), "\(keys) reached the upstream as \(raw)")
                #expect(raw.contains(#""type":"object","properties":{"\#(keys[0])":{"type":"string","description":"the \#(keys[0])"}"#))
            }
        }
    }
}
