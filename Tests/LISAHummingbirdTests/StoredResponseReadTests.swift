import Foundation
import Hummingbird
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import NIOHTTP1
import Testing

/// Stored responses are bounded, read only as far as a route needs, and their routes metered.
@Suite("Stored responses: bounded and read in parts")
struct StoredResponseReadTests {
    static func json(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test("a response whose input would be stored past quotas.maxStoredResponseBytes is refused with 413 before it is sent")
    func refusedPastTheCap() async throws {
        var quotas = StorageQuotas()
        quotas.maxStoredResponseBytes = 20_000
        try await Harness.run(quotas: quotas) { lisa in
            let items = (0..<2000).map { _ in #"{"role":"user","content":"x"}"# }.joined(separator: ",")
            let refused = try await lisa.send("/v1/responses", json: #"{"model":"chat","input":[\#(items)]}"#)
            #expect(refused.status == 413, "\(refused.body)")
            let error = try Self.json(refused.body)["error"]
            #expect(error?["code"] == "stored_response_too_large", "\(refused.body)")
            #expect(error?["message"]?.stringValue?.contains("quotas.maxStoredResponseBytes") == true)
            #expect(lisa.fake.observations.requests["/v1/chat/completions", default: 0] == 0, "nothing was sent upstream")

            let unstored = try await lisa.send("/v1/responses", json: #"{"model":"chat","store":false,"input":[\#(items)]}"#)
            #expect(unstored.status == 200, "store: false is not held to the cap")
        }
    }

    @Test("GET answers the stored bytes, input_items pages the stored items, DELETE needs only the owner")
    func readsInParts() async throws {
        try await Harness.run { lisa in
            let items = (0..<250).map { #"{"role":"user","content":"item \#($0)","id":"msg_\#($0)\t\n\"q"}"# }.joined(separator: ",")
            let created = try await lisa.send("/v1/responses", json: #"{"model":"chat","input":[\#(items)]}"#)
            #expect(created.status == 200, "\(created.body)")
            let id = try #require(try Self.json(created.body)["id"]?.stringValue)

            let got = try await lisa.send(.GET, "/v1/responses/\(id)")
            #expect(got.status == 200)
            #expect(try Self.json(got.body) == Self.json(created.body), "the object the POST answered")

            let newest = try Self.json(try await lisa.send(.GET, "/v1/responses/\(id)/input_items?limit=3").body)
            #expect(newest["data"]?.arrayValue?.map { $0["content"] } == ["item 249", "item 248", "item 247"])
            #expect(newest["first_id"] == "msg_249\t\n\"q" && newest["last_id"] == "msg_247\t\n\"q" && newest["has_more"] == true)
            let after = "msg_1%09%0A%22q"
            let tail = try Self.json(try await lisa.send(.GET, "/v1/responses/\(id)/input_items?order=asc&limit=100&after=\(after)").body)
            #expect(tail["data"]?.arrayValue?.count == 100 && tail["first_id"] == "msg_2\t\n\"q" && tail["has_more"] == true)
            let last = try Self.json(try await lisa.send(.GET, "/v1/responses/\(id)/input_items?order=asc&after=msg_248%09%0A%22q").body)
            #expect(last["data"]?.arrayValue?.map { $0["content"] } == ["item 249"] && last["has_more"] == false)
            let unknown = try await lisa.send(.GET, "/v1/responses/\(id)/input_items?after=nope")
            #expect(unknown.status == 400)

            let continued = try await lisa.send("/v1/responses", json: #"{"model":"chat","input":"next","previous_response_id":"\#(id)"}"#)
            #expect(continued.status == 200, "the conversation continues: \(continued.body)")

            let deleted = try await lisa.send(.DELETE, "/v1/responses/\(id)")
            #expect(deleted.status == 200)
            #expect(try Self.json(deleted.body)["deleted"] == true)
            #expect(try await lisa.send(.GET, "/v1/responses/\(id)").status == 404)
        }
    }

    @Test("reading, paging and deleting stored responses and usage reports count against the caller's rate limit")
    func readsAreMetered() {
        for (method, path) in [
            (HTTPRequest.Method.get, "/v1/responses/resp_1"), (.delete, "/v1/responses/resp_1"), (.get, "/v1/responses/resp_1/input_items"),
            (.get, "/v2/serve/responses/resp_1"), (.get, "/usage"),
        ] {
            #expect(AuthenticationMiddleware<LISARequestContext>.isMetered(method: method, path: path), "\(method) \(path)")
        }
        #expect(!AuthenticationMiddleware<LISARequestContext>.isMetered(method: .get, path: "/budgets"))
    }
}
