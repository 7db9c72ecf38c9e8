import AsyncHTTPClient
import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import NIOCore
import NIOHTTP1
import Testing

@Suite("Bad input and access")
struct RequestValidationTests {
    @Test("every API route but health needs the admin key; failures are OpenAI-shaped 401s")
    func authentication() async throws {
        try await Harness.run { lisa in
            for (method, path) in [(HTTPMethod.GET, "/v1/models"), (.GET, "/models"), (.GET, "/v2/serve/models"), (.DELETE, "/models/chat")] {
                let missing = try await lisa.send(method, path, key: nil)
                #expect(missing.status == 401, "\(method) \(path)")
                #expect(try errorBody(missing.body).type == "authentication_error")
                #expect(missing.headers.first(name: "WWW-Authenticate") != nil)
                let wrong = try await lisa.send(method, path, key: "not-the-key")
                #expect(wrong.status == 401)
                #expect(!wrong.body.contains("not-the-key"), "presented secrets are never echoed")
            }
            let chat = try await lisa.send("/v1/chat/completions", json: GatewayTests.chat, key: "wrong")
            #expect(chat.status == 401)
            #expect(lisa.fake.observations.requests.isEmpty, "nothing reached the upstream")
            let viaApiKeyHeader = try await lisa.send(.GET, "/v1/models", key: nil, headers: [])
            #expect(viaApiKeyHeader.status == 401)
            for path in ["/health", "/health/readiness", "/health/liveliness"] {
                #expect(try await lisa.send(.GET, path, key: nil).status == 200)
            }
            var request = HTTPClientRequest(url: lisa.baseURL + "/v1/models")
            request.headers.add(name: "Api-Key", value: adminKey)
            #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status == .ok)
        }
    }

    @Test(
        "bad requests get a 4xx naming the problem, and the server keeps serving",
        arguments: [
            (#"{"model":"chat","messages":"#, 400, "not valid JSON", nil as String?),
            (#"{"model":"chat","messages":[{"role":"user","content":5}]}"#, 400, "messages[0].content", "messages[0].content"),
            (#"{"messages":[{"role":"user","content":"x"}]}"#, 400, "model: required field is missing", "model"),
            (#"{"model":"chat"}"#, 400, "messages: required field is missing", "messages"),
            (#"{"model":"chat","messages":[]}"#, 400, "at least one message", "messages"),
            (#"{"model":"gpt-nope","messages":[{"role":"user","content":"x"}]}"#, 404, "'gpt-nope' does not exist", "model"),
            (#"{"model":"chat","messages":[{"role":"user","content":"x"}],"temperature":"warm"}"#, 400, "temperature", "temperature"),
            (#"{"model":"","messages":[{"role":"user","content":"x"}]}"#, 400, "model must not be empty", "model"),
            ("", 400, "empty", nil),
            ("[1,2]", 400, "expected an object", nil),
        ])
    func badInput(json: String, status: Int, message: String, param: String?) async throws {
        try await Harness.run { lisa in
            let (got, body, _) = try await lisa.send("/v1/chat/completions", json: json)
            #expect(got == status)
            let error = try errorBody(body)
            #expect(error.message.contains(message), "message: \(error.message)")
            #expect(error.param == param)
            #expect(lisa.fake.observations.requests.isEmpty)
            let (ok, _, _) = try await lisa.send("/v1/chat/completions", json: GatewayTests.chat)
            #expect(ok == 200)
        }
    }

    @Test("wrong content type is a 415, an oversized body a 413, an unknown path a 404")
    func transportErrors() async throws {
        try await Harness.run(maxRequestBodySize: 4096) { lisa in
            let form = try await lisa.send(
                "/v1/chat/completions", json: GatewayTests.chat, headers: [("Content-Type", "application/x-www-form-urlencoded")])
            #expect(form.status == 415)
            #expect(try errorBody(form.body).code == "unsupported_media_type")

            let big = #"{"model":"chat","messages":[{"role":"user","content":""# + String(repeating: "a", count: 10_000) + #""}]}"#
            let tooLarge = try await lisa.send("/v1/chat/completions", json: big)
            #expect(tooLarge.status == 413)
            #expect(try errorBody(tooLarge.body).message.contains("4096"))

            let unknown = try await lisa.send(.GET, "/v1/nothing")
            #expect(unknown.status == 404)
            #expect(try errorBody(unknown.body).code == "unknown_url")

            #expect(try await lisa.send("/v1/chat/completions", json: GatewayTests.chat).status == 200)
        }
    }
}
