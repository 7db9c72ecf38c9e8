import AsyncHTTPClient
import Foundation
import LISAHummingbird
import LISAHummingbirdTesting
import LISAKit
import LISAKitTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

@Suite("Routing over HTTP")
struct RoutingIntegrationTests {
    static let chat = #"{"model":"chat","messages":[{"role":"user","content":"route me"}]}"#

    @Test("a dead endpoint opens its circuit, traffic flows to the live one, and the circuit recovers when it comes back")
    func circuitOpensAndRecovers() async throws {
        let reserved = try ReservedPort()
        let deadPort = reserved.port
        let clock = ManualClock()
        try await Harness.run(
            clock: AnyClock(clock),
            models: { url in
                var model = ModelDefinition(
                    modelId: "chat", modelName: "echo", endpoints: [.init(url: "http://127.0.0.1:\(deadPort)/v1"), .init(url: url)])
                model.loadBalancing = .roundRobin
                model.circuitBreaker = .init(failureThreshold: 2, cooldownSeconds: 1)
                return [model]
            }
        ) { lisa in
            for _ in 0..<8 {
                #expect(try await lisa.send("/v1/chat/completions", json: Self.chat).status == 200, "retried on the live endpoint")
            }
            let model = try #require(lisa.gateway.registry.model("chat"))
            #expect(model.pool.endpoints[0].status.circuit == "open")
            let view = try await lisa.send(.GET, "/models/chat")
            #expect(view.body.contains(#""circuit":"open""#), "the admin view shows the circuit")

            // The replica comes back; after the cooldown a trial request closes the circuit.
            reserved.release()
            try await FakeUpstream().withRunning(port: deadPort) { _ async throws in
                clock.advance(by: .milliseconds(1100))
                for _ in 0..<4 {
                    #expect(try await lisa.send("/v1/chat/completions", json: Self.chat).status == 200)
                }
                #expect(model.pool.endpoints[0].status.circuit == "closed")
            }
        }
    }

    @Test("retries stop when the retry budget is spent")
    func retryBudgetExhaustion() async throws {
        try await Harness.run(models: { url in
            var model = ModelDefinition(modelId: "chat", modelName: "fail-503", endpoints: [.init(url: url), .init(url: url + "/")])
            model.retry = RetryConfiguration(maxAttempts: 2, budgetRatio: 0)
            model.retry?.backoffBaseMilliseconds = 0
            model.circuitBreaker = .init(failureThreshold: 1000, cooldownSeconds: 1)
            return [model]
        }) { lisa in
            for _ in 0..<30 {
                #expect(try await lisa.send("/v1/chat/completions", json: Self.chat).status == 503)
            }
            // 30 first attempts, plus the budget's floor of 1 retry a second over its 10 s window.
            #expect(lisa.fake.observations.requests["/v1/chat/completions"] == 40)
            let metrics = try await lisa.send(.GET, "/metrics").body
            #expect(metricValue(metrics, "lisa_retries_total", ["model": "chat"]) == 10)
        }
    }

    @Test("when every endpoint fails, the fallback model answers")
    func fallbackModel() async throws {
        try await Harness.run(models: { url in
            var primary = ModelDefinition(modelId: "chat", modelName: "fail-500", modelUrl: url)
            primary.fallbacks = ["missing", "backup"]
            return [primary, ModelDefinition(modelId: "backup", modelName: "backup-upstream", modelUrl: url)]
        }) { lisa in
            let (status, body, _) = try await lisa.send("/v1/chat/completions", json: Self.chat)
            #expect(status == 200)
            #expect(body.contains("echo: route me"))
            #expect(lisa.fake.observations.lastBody?["model"] == "backup-upstream", "the fallback's own modelName is sent")
            let bad = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"chat","messages":[{"role":"user","content":"x"}],"temperature":"x"}"#)
            #expect(bad.status == 400, "the caller's own mistakes do not fall back")
            let metrics = try await lisa.send(.GET, "/metrics").body
            #expect(metricValue(metrics, "lisa_fallbacks_total", ["model": "chat", "fallback": "backup"]) == 1)
        }
    }

    @Test("a fallback of another upstream API is used when it can take the request and skipped when it cannot")
    func fallbackAcrossUpstreamAPIs() async throws {
        try await Harness.run(models: { url in
            var primary = ModelDefinition(modelId: "chat", modelName: "fail-500", modelUrl: url)
            primary.fallbacks = ["claude"]
            var claude = ModelDefinition(modelId: "claude", modelName: "claude-echo", modelUrl: url)
            claude.upstreamAPI = .anthropic
            return [primary, claude]
        }) { lisa in
            let (status, body, _) = try await lisa.send("/v1/chat/completions", json: Self.chat)
            #expect(status == 200)
            #expect(body.contains("echo: route me"), "the Anthropic fallback answered, translated to chat")
            #expect(lisa.fake.observations.lastAnthropicVersion == "2023-06-01")
            // seed has no Messages equivalent: the fallback is skipped and the primary's failure is the answer.
            let seeded = try await lisa.send("/v1/chat/completions", json: #"{"model":"chat","seed":1,"messages":[{"role":"user","content":"x"}]}"#)
            #expect(seeded.status == 502)
        }
    }

    @Test("a first-byte timeout answers 504 and cancels the upstream request")
    func firstByteTimeout() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.slowDelay = .seconds(30)
        try await Harness.run(
            fake: FakeUpstream(configuration: configuration),
            models: { url in
                var model = ModelDefinition(modelId: "chat", modelName: "slow", modelUrl: url)
                model.timeouts = ModelTimeouts(firstByteSeconds: 0.3)
                return [model]
            }
        ) { lisa in
            let (status, body, _) = try await lisa.send("/v1/chat/completions", json: Self.chat)
            // A 504, not the 200 the upstream sends after 30 s: the first-byte limit cut it short.
            #expect(status == 504)
            #expect(try errorBody(body).code == "upstream_timeout")
            #expect(await eventually(timeout: .seconds(15)) { lisa.fake.observations.cancelled == 1 })
        }
    }

    @Test("a replica that accepts and never answers: streams fail over within the first-byte timeout, and the balancer moves away")
    func stalledEndpointFailsOver() async throws {
        var stalling = FakeUpstream.Configuration()
        stalling.stall = true
        stalling.stallDuration = .seconds(60)
        let stalled = FakeUpstream(configuration: stalling)
        try await stalled.withRunning { stalledURL in
            try await Harness.run(models: { url in
                var model = ModelDefinition(modelId: "chat", modelName: "echo", endpoints: [.init(url: stalledURL), .init(url: url)])
                // 3 s: the healthy replica must answer within it too, also on a busy machine (1 s
                // gave a 504 there once); the stalled one never answers, so it costs only time.
                model.timeouts = ModelTimeouts(firstByteSeconds: 3)
                model.circuitBreaker = .init(failureThreshold: 3, cooldownSeconds: 120)
                return [model]
            }) { lisa in
                // 20 requests: a replica not picked in 8 × 2 picks is picked next, so the stalled
                // one is tried at least once however the first choices fall.
                try await Self.streamChats(lisa, count: 20)
                let stalls = stalled.observations.requests["/v1/chat/completions", default: 0]
                #expect((1...3).contains(stalls), "the stalled replica got \(stalls) of 20 (it got 12 of 15 before)")
                #expect(lisa.fake.observations.requests["/v1/chat/completions"] == 20, "every request was answered by the healthy replica")
                // LISA cancelled every stalled attempt (within the first-byte timeout: the stalled
                // replica answers after 60 s, and the client gives up after 30) rather than
                // leaving it hanging.
                #expect(await eventually(timeout: .seconds(15)) { stalled.observations.cancelled == stalls })
            }
        }
    }

    /// Sends `count` streaming chat requests, each expected to be answered in full.
    private static func streamChats(_ lisa: Harness, count: Int) async throws {
        for _ in 0..<count {
            let (status, body, _) = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"route me"}]}"#
            )
            #expect(status == 200)
            #expect(body.contains("data: [DONE]"))
        }
    }

    @Test("a stream that goes quiet ends with an error event after the idle timeout, not the total")
    func idleStreamEnds() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.stallDuration = .seconds(6)
        try await Harness.run(
            fake: FakeUpstream(configuration: configuration),
            models: { url in
                var model = ModelDefinition(modelId: "chat", modelName: "stall-stream", modelUrl: url)
                model.timeouts = ModelTimeouts(streamIdleSeconds: 0.5)
                return [model]
            }
        ) { lisa in
            let (status, body, _) = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"a b c d e f"}]}"#
            )
            #expect(status == 200)
            // Ended by the 0.5 s idle limit, not by the fake's 6 s pause ending (the stream would
            // then finish with [DONE]) or by the total.
            var parser = ServerSentEventParser()
            let events = try parser.feed(ByteBuffer(string: body)).map(\.event)
            #expect(events.count >= 3, "the chunks before the stall arrived")
            #expect(!events.contains { $0.isDone })
            #expect(events.last?.event == "error")
            #expect(events.last?.data.contains("sent nothing for 0.5 s") == true)
        }
    }

    @Test("a total timeout mid-stream ends the stream with an error event, no [DONE]")
    func totalTimeoutMidStream() async throws {
        var configuration = FakeUpstream.Configuration()
        configuration.slowDelay = .seconds(5)  // 0.5 s between chunks
        try await Harness.run(
            fake: FakeUpstream(configuration: configuration),
            models: { url in
                var model = ModelDefinition(modelId: "chat", modelName: "slow", modelUrl: url)
                model.timeouts = ModelTimeouts(totalSeconds: 1.2)
                return [model]
            }
        ) { lisa in
            let (status, body, _) = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"chat","stream":true,"messages":[{"role":"user","content":"a b c d e f g h"}]}"#
            )
            #expect(status == 200)
            var parser = ServerSentEventParser()
            let events = try parser.feed(ByteBuffer(string: body)).map(\.event)
            #expect(events.count >= 2, "some chunks arrived before the timeout")
            #expect(!events.contains { $0.isDone })
            #expect(events.last?.event == "error")
            #expect(events.last?.data.contains("timed out") == true)
        }
    }

    @Test("metrics count requests, tokens, overhead and endpoint state after a known sequence")
    func metricsAfterKnownSequence() async throws {
        try await Harness.run(models: { url in
            [
                ModelDefinition(modelId: "chat", modelName: "echo", modelUrl: url),
                ModelDefinition(modelId: "bad", modelName: "fail-400", modelUrl: url),
            ]
        }) { lisa in
            for _ in 0..<3 { _ = try await lisa.send("/v1/chat/completions", json: Self.chat) }
            _ = try await lisa.send(
                "/v1/chat/completions",
                json: #"{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x y"}]}"#
            )
            for _ in 0..<2 { _ = try await lisa.send("/v1/chat/completions", json: #"{"model":"bad","messages":[{"role":"user","content":"x"}]}"#) }
            let port = URL(string: lisa.upstreamURL)!.port!
            let (status, text, headers) = try await lisa.send(.GET, "/metrics")
            #expect(status == 200)
            #expect(headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
            let endpoint = "127.0.0.1:\(port)"
            #expect(metricValue(text, "lisa_requests_total", ["model": "chat", "endpoint": endpoint, "status": "200"]) == 4)
            #expect(metricValue(text, "lisa_requests_total", ["model": "bad", "endpoint": endpoint, "status": "400"]) == 2)
            #expect(!text.contains(#"lisa_requests_total{model="bad",endpoint="none""#), "each request is counted once")
            // The fake reports 5 prompt tokens a request; the stream's usage chunk counts too.
            #expect(metricValue(text, "lisa_tokens_total", ["model": "chat", "direction": "prompt"]) == 20)
            #expect(metricValue(text, "lisa_gateway_overhead_seconds_count", ["model": "chat"]) == 4)
            #expect(metricValue(text, "lisa_time_to_first_token_seconds_count", ["model": "chat"]) == 4)
            #expect(metricValue(text, "lisa_endpoint_in_flight", ["model": "chat"]) == 0)
            #expect(metricValue(text, "lisa_endpoint_circuit_state", ["model": "chat"]) == 0)
            #expect(!text.contains(adminKey))
            #expect(try await lisa.send(.GET, "/metrics", key: nil).status == 401, "metrics need the admin key")
        }
    }

    @Test("every response carries a request id; a sane client id is kept")
    func requestIDs() async throws {
        try await Harness.run { lisa in
            let generated = try await lisa.send("/v1/chat/completions", json: Self.chat)
            let id = try #require(generated.headers.first(name: "X-Request-Id"))
            #expect(id.hasPrefix("req-"))
            let kept = try await lisa.send(
                "/v1/chat/completions", json: Self.chat, headers: [("Content-Type", "application/json"), ("X-Request-Id", "trace-42")]
            )
            #expect(kept.headers.first(name: "X-Request-Id") == "trace-42")
            let error = try await lisa.send(.GET, "/v1/nowhere", headers: [("X-Request-Id", "bad id with spaces")])
            #expect(error.status == 404)
            #expect(error.headers.first(name: "X-Request-Id")?.hasPrefix("req-") == true, "errors get one too; unsafe ids are replaced")
        }
    }

    @Test("without a healthCheck, a reachability probe takes a dead endpoint out (a 404 at / is reachable); enabled: false opts out")
    func defaultReachabilityProbes() async throws {
        let deadPort = try deadPort()
        var fast = HealthCheckConfiguration.reachability
        fast.intervalSeconds = 0.1
        // The dead port refuses at once; a long timeout keeps a busy machine from failing the live one's probe.
        fast.timeoutSeconds = 10
        try await Harness.run(
            probes: true, defaultHealthCheck: fast,
            models: { url in
                let model = ModelDefinition(
                    modelId: "chat", modelName: "echo", endpoints: [.init(url: "http://127.0.0.1:\(deadPort)/v1"), .init(url: url)])
                var unprobed = ModelDefinition(modelId: "unprobed", modelName: "echo", modelUrl: "http://127.0.0.1:\(deadPort)/v1")
                var off = HealthCheckConfiguration()
                off.enabled = false
                unprobed.healthCheck = off
                return [model, unprobed]
            }
        ) { lisa in
            let model = try #require(lisa.gateway.registry.model("chat"))
            #expect(await eventually { !model.pool.endpoints[0].status.healthy })
            // The fake upstream answers 404 at its root: reachable, so it stays in.
            #expect(model.pool.endpoints[1].status.healthy)
            let records = try await lisa.send(.GET, "/models").body
            #expect(records.contains(#""health":"degraded""#))
            #expect(try await lisa.send("/v1/chat/completions", json: Self.chat).status == 200)
            let unprobed = try #require(lisa.gateway.registry.model("unprobed"))
            #expect(unprobed.pool.endpoints[0].status.healthy, "no probe ran")
        }
    }

    @Test("active probes take a dead endpoint out; with all endpoints down requests fail fast with 503")
    func activeHealthProbes() async throws {
        let deadPort = try deadPort()
        try await Harness.run(
            probes: true,
            models: { url in
                var model = ModelDefinition(
                    modelId: "chat", modelName: "echo", endpoints: [.init(url: "http://127.0.0.1:\(deadPort)/v1"), .init(url: url)])
                // The dead endpoint refuses at once; the probe's timeout is long so that a busy machine
                // cannot make the live one miss it and fail the calls below.
                model.healthCheck = HealthCheckConfiguration(path: "/health", intervalSeconds: 0.1, timeoutSeconds: 10)
                var down = ModelDefinition(modelId: "down", modelName: "echo", modelUrl: "http://127.0.0.1:\(deadPort)/v1")
                down.healthCheck = model.healthCheck
                return [model, down]
            }
        ) { lisa in
            let model = try #require(lisa.gateway.registry.model("chat"))
            #expect(await eventually { !model.pool.endpoints[0].status.healthy })
            #expect(model.pool.endpoints[1].status.healthy)
            for _ in 0..<6 {
                #expect(try await lisa.send("/v1/chat/completions", json: Self.chat).status == 200)
            }
            let metrics = try await lisa.send(.GET, "/metrics").body
            #expect(metricValue(metrics, "lisa_retries_total", ["model": "chat"]) == nil, "no request was sent to the dead one")
            #expect(metricValue(metrics, "lisa_endpoint_healthy", ["model": "chat", "endpoint": "0:127.0.0.1:\(deadPort)"]) == 0)

            // Failing fast is failing without trying: 503 naming the unhealthy endpoints (a call that
            // tried would have ended with the upstream's error), not a time that depends on the machine.
            let (status, body, headers) = try await lisa.send(
                "/v1/chat/completions", json: #"{"model":"down","messages":[{"role":"user","content":"x"}]}"#)
            #expect(status == 503)
            #expect(try errorBody(body).message.contains("unhealthy"))
            #expect(headers.first(name: "Retry-After") == "1")
        }
    }
}
