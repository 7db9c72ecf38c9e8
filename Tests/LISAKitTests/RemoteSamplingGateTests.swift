import AsyncHTTPClient
import Instrumentation
import Logging
import Testing
import Tracing

@testable import LISAKit

/// A caller's sampled `traceparent` counts only once the caller has signed in (issue 31, item 11).
@Suite("Remote sampling waits for sign-in")
struct RemoteSamplingGateTests {
    static let logger = Logger(label: "lisa-test", factory: { _ in SwiftLogNoOpLogHandler() })

    func sampledParent(_ tracer: OTLPTracer, gate: RemoteSamplingGate?) -> InstrumentationContext {
        var parent = InstrumentationContext.topLevel
        tracer.extract(["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"], into: &parent, using: DictionaryExtractor())
        parent.remoteSamplingGate = gate
        return parent
    }

    @Test("at sampleRatio 0, spans of a request that fails sign-in are dropped, a signed-in one's exported, children included")
    func gate() throws {
        let exporter = OTLPExporter(
            settings: TracingConfiguration(endpoint: "http://127.0.0.1:1"), httpClient: HTTPClient.shared, logger: Self.logger)
        let tracer = OTLPTracer(exporter: exporter, sampleRatio: 0)

        let refused = RemoteSamplingGate()
        let server = tracer.startSpan("POST", context: sampledParent(tracer, gate: refused), ofKind: .server)
        let authenticate = tracer.startSpan("authenticate", context: server.context, ofKind: .internal)
        authenticate.end()
        refused.refuse()
        server.end()
        #expect(exporter.pendingSpans == 0, "a failed sign-in exports nothing, whatever the caller's flags")
        let late = tracer.startSpan("late", context: server.context, ofKind: .internal)
        #expect(!late.isRecording)

        let confirmed = RemoteSamplingGate()
        let signedIn = tracer.startSpan("POST", context: sampledParent(tracer, gate: confirmed), ofKind: .server)
        let check = tracer.startSpan("authenticate", context: signedIn.context, ofKind: .internal)
        check.end()
        #expect(exporter.pendingSpans == 0, "held until sign-in is decided")
        confirmed.confirm()
        #expect(exporter.pendingSpans == 1, "the span that waited is exported")
        confirmed.refuse()  // the binding refuses when the request ends: no effect once confirmed
        signedIn.end()
        #expect(exporter.pendingSpans == 2)

        // Without a gate (an embedder's own call, after its own sign-in), the caller's flag is followed.
        tracer.startSpan("chat m", context: sampledParent(tracer, gate: nil), ofKind: .client).end()
        #expect(exporter.pendingSpans == 3)
    }

    @Test("at sampleRatio 1 the local sampler records a request that fails sign-in, whole")
    func localSamplerStillDecides() {
        let exporter = OTLPExporter(
            settings: TracingConfiguration(endpoint: "http://127.0.0.1:1"), httpClient: HTTPClient.shared, logger: Self.logger)
        let tracer = OTLPTracer(exporter: exporter, sampleRatio: 1)
        let gate = RemoteSamplingGate()
        let server = tracer.startSpan("POST", context: sampledParent(tracer, gate: gate), ofKind: .server)
        tracer.startSpan("authenticate", context: server.context, ofKind: .internal).end()
        gate.refuse()
        server.end()
        #expect(exporter.pendingSpans == 2)
    }
}
