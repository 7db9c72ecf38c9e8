import AsyncHTTPClient
import Foundation
import LISAHummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import LISAKit

/// The AsyncHTTPClient transport (`upstreamClient: asynchttpclient`) against a real HTTP
/// upstream: the same request the lean client sends, and the one first-byte timer.
@Suite struct AsyncHTTPClientProviderTests {
    static let logger = Logger(label: "ahc-provider-test")

    @Test("the AsyncHTTPClient provider sends the call with the endpoint's key, and a head that does not come in time is a timeout")
    func sendsAndTimesOut() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.slowDelay = .seconds(30)
        let fake = FakeUpstream(configuration: configuration)
        try await fake.withRunning { url in
            let provider = AsyncHTTPClientProvider(httpClient: HTTPClient.shared)
            var endpoint = EndpointDefinition(url: url)
            endpoint.apiKey = "sk-upstream"
            let body = ByteBuffer(string: #"{"model":"echo-upstream","messages":[{"role":"user","content":"hi there"}]}"#)
            let response = try await provider.send(
                UpstreamRequest(operation: .chatCompletions, body: body, endpoint: endpoint, deadline: .now() + .seconds(30)), logger: Self.logger
            )
            #expect(response.status == 200)
            let answer = try JSONValue(parsing: try await response.body.collect(upTo: 1 << 20))
            #expect(answer["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "echo: hi there")
            #expect(fake.observations.lastAuthorization == "Bearer sk-upstream")

            let slow = ByteBuffer(string: #"{"model":"slow","messages":[{"role":"user","content":"x"}]}"#)
            let failure = await #expect(throws: UpstreamFailure.self) {
                _ = try await provider.send(
                    UpstreamRequest(
                        operation: .chatCompletions, body: slow, endpoint: endpoint, deadline: .now() + .seconds(30),
                        firstByteTimeout: .milliseconds(50)
                    ),
                    logger: Self.logger
                )
            }
            #expect(failure?.reason == .timedOut)
        }
    }
}
