import AsyncHTTPClient
import Foundation
import InMemoryTracing
import Instrumentation
import LISAKitTesting
import Logging
import NIOCore
import NIOFoundationCompat
import Testing
import Tracing

@testable import LISAKit

/// Traces: W3C Trace Context parsing, the spans of a call through any tracer an embedder
/// hands over, and OTLP's JSON mapping. (The export to a real receiver, with the SDKs, is
/// Tests/python/test_tracing.py.)
@Suite("Tracing")
struct TracingTests {
    static let logger = Logger(label: "lisa-test", factory: { _ in SwiftLogNoOpLogHandler() })

    @Test("traceparent: version 00 and later versions are read; anything malformed, zero or upper-case is refused")
    func traceparentParsing() throws {
        let parsed = try #require(TraceIdentity(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", traceState: "a=b"))
        #expect(parsed.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && parsed.spanIDHex == "00f067aa0ba902b7")
        #expect(parsed.sampled && parsed.traceState == "a=b")
        #expect(parsed.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        #expect(TraceIdentity(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled == false)
        // A later version may add fields; what version 00 defines is read.
        #expect(TraceIdentity(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future") != nil)
        for hostile in [
            "", "00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", String(repeating: "0", count: 100_000),
        ] {
            #expect(TraceIdentity(traceparent: hostile) == nil, "\(hostile.prefix(60))")
        }
        // A tracestate too long to be honest is not carried on.
        #expect(TraceIdentity(traceparent: parsed.traceparent, traceState: String(repeating: "a", count: 600))?.traceState == nil)
    }

    @Test("a call through the gateway is a GenAI span under the caller's span, with one client span per upstream attempt")
    func spansThroughAnyTracer() async throws {
        let tracer = InMemoryTracer()
        let provider = InMemoryProvider { (call) throws(UpstreamFailure) in
            if call.endpoint.url == "http://dead.invalid/v1" { throw UpstreamFailure(reason: .connectFailed("refused")) }
            return try await InMemoryProvider.echo.answer(call)
        }
        var model = ModelDefinition(modelId: "pair", modelName: "upstream-name")
        model.endpoints = [EndpointDefinition(url: "http://dead.invalid/v1"), EndpointDefinition(url: "http://live.invalid/v1")]
        model.loadBalancing = .roundRobin
        let store = try await SQLStateStore.inMemory()
        defer { Task { try? await store.close() } }
        let gateway = Gateway(registry: ModelRegistry(), provider: provider, tracer: tracer, logger: Self.logger)
        let manager = try ModelManager(
            store: store.models, coordination: store.coordination, usage: store.usage, registry: gateway.registry, configured: [model],
            logger: Self.logger)
        try await manager.reload()

        let context = InferenceContext(requestID: "req-trace", principal: .admin, logger: Self.logger)
        for _ in 0..<2 {
            try await tracer.withSpan("caller") { _ in
                _ = try await gateway.chatCompletions(
                    body: ByteBuffer(string: #"{"model":"pair","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#), context: context
                )
            }
        }
        let spans = tracer.finishedSpans
        let callers = spans.filter { $0.operationName == "caller" }
        let calls = spans.filter { $0.operationName == "chat pair" }
        #expect(callers.count == 2 && calls.count == 2)
        for call in calls {
            #expect(callers.contains { $0.spanID == call.parentSpanID }, "the call is the caller's child")
            #expect(call.attributes["gen_ai.operation.name"]?.toSpanAttribute() == .string("chat"))
            #expect(call.attributes["gen_ai.request.model"]?.toSpanAttribute() == .string("pair"))
            #expect(call.attributes["gen_ai.response.model"]?.toSpanAttribute() == .string("upstream-name"))
            #expect(call.attributes["gen_ai.request.max_tokens"]?.toSpanAttribute() == .int64(9))
            #expect(call.attributes["gen_ai.usage.input_tokens"] != nil && call.status?.code != .error)
        }
        let attempts = spans.filter { $0.operationName == "POST" }
        #expect(attempts.allSatisfy { attempt in calls.contains { $0.spanID == attempt.parentSpanID } && attempt.kind == .client })
        // Round robin over [dead, live]: at least one call tried the dead endpoint first, and
        // every call that did was retried on the live one.
        let failed = attempts.filter { $0.attributes["error.type"]?.toSpanAttribute() == .string("upstream_unreachable") }
        #expect(!failed.isEmpty && failed.allSatisfy { $0.status?.code == .error })
        #expect(attempts.count == calls.count + failed.count)
        // Each attempt's context went upstream (the provider's headers), none of the call's own.
        #expect(tracer.performedContextInjections.count == attempts.count)
    }

    @Test("OTLP/JSON: hex ids, parent, times and 64-bit integers as strings, typed values; unsampled spans are not queued")
    func otlpMapping() async throws {
        let exporter = OTLPExporter(
            settings: TracingConfiguration(endpoint: "http://127.0.0.1:1"), httpClient: HTTPClient.shared, logger: Self.logger)
        let tracer = OTLPTracer(exporter: exporter, sampleRatio: 1)
        var parent = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], into: &parent, using: DictionaryExtractor())
        let span = tracer.startSpan("chat m", context: parent, ofKind: .client)
        span.attributes["gen_ai.usage.input_tokens"] = 7
        span.attributes["lisa.stream"] = true
        span.attributes["gen_ai.request.temperature"] = 0.5
        span.attributes["gen_ai.request.model"] = "m"
        span.attributes["lisa.odd"] = "quote \" backslash \\ newline \n bell \u{07} ünï"
        span.setStatus(SpanStatus(code: .error, message: "timeout"))
        span.end()
        span.end()  // once only
        #expect(exporter.pendingSpans == 1)

        let document = exporter.document(exporter.queue.takeAll())
        let encoded = try JSONDecoder().decode(JSONValue.self, from: document)
        func first(_ value: JSONValue?) -> JSONValue? { value?.arrayValue?.first }
        let resource = try #require(first(encoded["resourceSpans"]))
        let service: JSONValue? = first(resource["resource"]?["attributes"])?["value"]
        #expect(service == ["stringValue": "lisa"])
        let exported = try #require(first(first(resource["scopeSpans"])?["spans"]))
        #expect(exported["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(exported["parentSpanId"] == "00f067aa0ba902b7")
        #expect(exported["kind"] == 3)
        #expect(exported["status"] == ["code": 2, "message": "timeout"])
        #expect(exported["startTimeUnixNano"]?.stringValue.flatMap(UInt64.init) != nil)
        var attributes: [String: JSONValue] = [:]
        for attribute in exported["attributes"]?.arrayValue ?? [] {
            attributes[attribute["key"]?.stringValue ?? ""] = attribute["value"]
        }
        #expect(attributes["gen_ai.usage.input_tokens"] == ["intValue": "7"])
        #expect(attributes["lisa.stream"] == ["boolValue": true])
        #expect(attributes["gen_ai.request.temperature"] == ["doubleValue": 0.5])
        #expect(attributes["gen_ai.request.model"] == ["stringValue": "m"])
        #expect(attributes["lisa.odd"] == ["stringValue": "quote \" backslash \\ newline \n bell \u{07} ünï"], "escaped and read back")

        // Ratio 0: a trace LISA starts is not recorded, but carries ids to pass on (flags 00).
        let never = OTLPTracer(exporter: exporter, sampleRatio: 0)
        let unsampled = never.startSpan("chat m", context: .topLevel, ofKind: .client)
        #expect(!unsampled.isRecording && unsampled.identity.traceparent.hasSuffix("-00"))
        unsampled.end()
        // A client's sampled trace is recorded whatever the ratio.
        let followed = never.startSpan("chat m", context: parent, ofKind: .client)
        #expect(followed.isRecording)
        followed.end()
        #expect(exporter.pendingSpans == 1)
    }

    @Test("tracing settings: the standard variables, and endpoints with credentials or no scheme refused")
    func settings() throws {
        var settings = TracingConfiguration()
        try settings.apply(environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x, k=v",
        ])
        #expect(settings.tracesURL == "http://collector:4318/v1/traces")
        #expect(settings.headers == ["authorization": "Bearer x", "k": "v"])
        try settings.apply(environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://vendor.example/otlp/spans"])
        #expect(settings.tracesURL == "https://vendor.example/otlp/spans")
        try settings.apply(environment: ["OTEL_SDK_DISABLED": "true"])
        #expect(!settings.isEnabled)
        for bad in ["collector:4318", "ftp://collector", "http://user:secret@collector:4318"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try TracingConfiguration(endpoint: bad).validate() }
        }
        var ratio = TracingConfiguration(endpoint: "http://collector:4318")
        ratio.sampleRatio = 2
        #expect(throws: ConfigurationError.self) { try ratio.validate() }
    }
}
