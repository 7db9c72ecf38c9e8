import Foundation
public import Instrumentation
import Synchronization
public import Tracing

/// The identity of a span as W3C Trace Context carries it: trace id, span id, whether the
/// trace is sampled, and the vendor `tracestate` passed along untouched.
public struct TraceIdentity: Sendable, Hashable {
    public var traceID: (high: UInt64, low: UInt64)
    public var spanID: UInt64
    public var sampled: Bool
    public var traceState: String?

    public static func == (a: Self, b: Self) -> Bool {
        a.traceID == b.traceID && a.spanID == b.spanID && a.sampled == b.sampled && a.traceState == b.traceState
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(traceID.high)
        hasher.combine(traceID.low)
        hasher.combine(spanID)
    }

    /// 32 lower-case hex digits.
    public var traceIDHex: String { Self.hex(traceID.high) + Self.hex(traceID.low) }
    /// 16 lower-case hex digits.
    public var spanIDHex: String { Self.hex(spanID) }

    /// The `traceparent` header: `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-\(sampled ? "01" : "00")" }

    /// Parses a `traceparent` header (version 00, or a later version read as 00 would be);
    /// `nil` for anything malformed, an all-zero id or the reserved version ff.
    public init?(traceparent: String, traceState: String? = nil) {
        let parts = traceparent.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].utf8.count == 2, parts[0] != "ff", parts[1].utf8.count == 32, parts[2].utf8.count == 16,
            parts[3].utf8.count == 2, parts[0] != "00" || parts.count == 4,
            let high = Self.parseHex(parts[1].prefix(16)), let low = Self.parseHex(parts[1].suffix(16)),
            let span = Self.parseHex(parts[2]), let flags = Self.parseHex(parts[3]), Self.parseHex(parts[0]) != nil,
            high != 0 || low != 0, span != 0
        else { return nil }
        self.traceID = (high, low)
        self.spanID = span
        self.sampled = flags & 1 == 1
        // tracestate: at most 32 members and 512 characters are worth carrying on.
        self.traceState = traceState.flatMap { $0.utf8.count <= 512 && !$0.contains(where: { $0.isNewline }) ? $0 : nil }
    }

    public init(traceID: (high: UInt64, low: UInt64), spanID: UInt64, sampled: Bool, traceState: String? = nil) {
        self.traceID = traceID
        self.spanID = spanID
        self.sampled = sampled
        self.traceState = traceState
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Lower-case hex only, as the specification asks.
    static func parseHex(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return UInt64(text, radix: 16)
    }
}

/// Where a ``TraceIdentity`` lives in an `InstrumentationContext`.
public enum TraceIdentityKey: InstrumentationContextKey {
    public typealias Value = TraceIdentity
    public static var nameOverride: String? { "traceparent" }
}

extension InstrumentationContext {
    /// The span this context belongs to, when an ``OTLPTracer`` made or extracted it.
    public var traceIdentity: TraceIdentity? {
        get { self[TraceIdentityKey.self] }
        set { self[TraceIdentityKey.self] = newValue }
    }
}

/// A swift-distributed-tracing `Tracer` that records spans for an ``OTLPExporter``, with W3C
/// Trace Context propagation (`traceparent`, `tracestate`) and parent-based ratio sampling:
/// a trace a client started keeps the client's decision; a new trace is recorded with
/// probability `sampleRatio`. Spans that are not recorded still carry their ids, so the
/// trace goes on upstream unbroken.
///
/// LISAServe makes one when `tracing.endpoint` is set. An app embedding LISAKit can hand
/// any other tracer (swift-otel's, for one) to ``LISARuntime`` instead.
public final class OTLPTracer: Tracer, Sendable {
    public typealias Span = OTLPSpan
    public let exporter: OTLPExporter
    /// Traces with a trace id's low 64 bits below this are sampled.
    private let threshold: UInt64

    public init(exporter: OTLPExporter, sampleRatio: Double) {
        self.exporter = exporter
        let ratio = min(max(sampleRatio, 0), 1)
        threshold = ratio >= 1 ? .max : UInt64(Double(UInt64.max) * ratio)
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind, at instant: @autoclosure () -> Instant,
        function: String, file fileID: String, line: UInt
    ) -> OTLPSpan {
        var context = context()
        let parent = context.traceIdentity
        var generator = SystemRandomNumberGenerator()
        let traceID: (high: UInt64, low: UInt64) = parent?.traceID ?? (generator.next(), generator.next())
        var spanID: UInt64 = 0
        while spanID == 0 { spanID = generator.next() }
        let sampled = parent?.sampled ?? (threshold == .max || traceID.low < threshold)
        let identity = TraceIdentity(traceID: traceID, spanID: spanID, sampled: sampled, traceState: parent?.traceState)
        context.traceIdentity = identity
        // A caller's "sampled" counts only once the request is signed in; until then (and for
        // good when sign-in fails) the local sampler decides, on a draw of its own, not on
        // the caller's trace id. The spans wait at the gate for the outcome.
        var gate: RemoteSamplingGate?
        if sampled, let pending = context.remoteSamplingGate, !pending.isConfirmed {
            let threshold = self.threshold
            if pending.isRefused || !pending.localDecision({ threshold == .max || UInt64.random(in: 0 ... .max) < threshold }) { gate = pending }
        }
        if let gate, gate.isRefused {
            return OTLPSpan(
                name: operationName, kind: kind, identity: identity, parentSpanID: parent?.spanID, context: context,
                start: instant().nanosecondsSinceEpoch, exporter: nil
            )
        }
        return OTLPSpan(
            name: operationName, kind: kind, identity: identity, parentSpanID: parent?.spanID, context: context,
            start: instant().nanosecondsSinceEpoch, exporter: sampled ? exporter : nil, gate: gate
        )
    }

    public func forceFlush() {
        exporter.flushSoon()
    }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier),
            let identity = TraceIdentity(traceparent: header, traceState: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context.traceIdentity = identity
    }

    public func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        guard let identity = context.traceIdentity else { return }
        injector.inject(identity.traceparent, forKey: "traceparent", into: &carrier)
        if let state = identity.traceState { injector.inject(state, forKey: "tracestate", into: &carrier) }
    }
}

/// A span of an ``OTLPTracer``: its name, attributes, events and status are kept until it
/// ends, then queued for export (only when its trace is sampled).
public final class OTLPSpan: Tracing.Span, Sendable {
    struct State {
        var name: String
        var attributes = SpanAttributes()
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
        var status: SpanStatus?
        var ended = false
    }

    public let context: InstrumentationContext
    public let kind: SpanKind
    public let identity: TraceIdentity
    public let parentSpanID: UInt64?
    let start: UInt64
    private let exporter: OTLPExporter?
    /// Where the span waits, when ended, for its request's sign-in (see ``RemoteSamplingGate``).
    private let gate: RemoteSamplingGate?
    private let state: Mutex<State>

    init(
        name: String, kind: SpanKind, identity: TraceIdentity, parentSpanID: UInt64?, context: InstrumentationContext, start: UInt64,
        exporter: OTLPExporter?, gate: RemoteSamplingGate? = nil
    ) {
        self.gate = gate
        self.kind = kind
        self.identity = identity
        self.parentSpanID = parentSpanID
        self.context = context
        self.start = start
        self.exporter = exporter
        self.state = Mutex(State(name: name))
    }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { if !$0.ended { $0.attributes = newValue } } }
    }

    public var isRecording: Bool { exporter != nil && !state.withLock { $0.ended } }

    public func setStatus(_ status: SpanStatus) {
        state.withLock { state in
            // OK is final; otherwise the last status set wins.
            if state.status?.code != .ok { state.status = status }
        }
    }

    public func addEvent(_ event: SpanEvent) {
        guard exporter != nil else { return }
        state.withLock { state in
            if !state.ended && state.events.count < 128 { state.events.append(event) }
        }
    }

    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        guard exporter != nil else { return }
        var attributes = attributes
        attributes["exception.type"] = String(reflecting: type(of: error))
        attributes["exception.message"] = (error as? LISAError)?.reason ?? "\(error)"
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: attributes))
    }

    public func addLink(_ link: SpanLink) {
        guard exporter != nil else { return }
        state.withLock { state in
            if !state.ended && state.links.count < 32 { state.links.append(link) }
        }
    }

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let finished = state.withLock { state -> State? in
            guard !state.ended else { return nil }
            state.ended = true
            return state
        }
        guard let finished, let exporter else { return }
        let span = OTLPExporter.FinishedSpan(
            identity: identity, parentSpanID: parentSpanID, name: finished.name, kind: kind, start: start,
            end: instant().nanosecondsSinceEpoch, attributes: finished.attributes, events: finished.events,
            links: finished.links.compactMap { $0.context.traceIdentity }, status: finished.status
        )
        if let gate { gate.submit(span, to: exporter) } else { exporter.enqueue(span) }
    }
}

/// A caller's sampling decision (`traceparent` flags `01`) held back until its request is
/// signed in: unauthenticated input must not decide what this server records and exports.
///
/// The binding puts one into the request's context when the caller's trace is sampled
/// (``InstrumentationContext/remoteSamplingGate``); the authentication step calls
/// ``confirm()`` once the caller is known, and the binding calls ``refuse()`` when the
/// request ends. Spans an ``OTLPTracer`` records only because of the caller's flag wait
/// here (at most ``capacity``): exported on confirmation, dropped on refusal. Spans the
/// local sampler chose are exported either way. Other tracers ignore the gate.
public final class RemoteSamplingGate: Sendable {
    private enum Decision { case pending, confirmed, refused }
    private struct State {
        var decision = Decision.pending
        /// The local sampler's draw for this request, made once so a trace is whole or absent.
        var local: Bool?
        var held: [(exporter: OTLPExporter, span: OTLPExporter.FinishedSpan)] = []
    }
    private let state = Mutex(State())
    /// The most spans held for one request; more are dropped.
    public static let capacity = 64

    public init() {}

    /// The request is signed in: its spans are exported as the caller's trace asked.
    public func confirm() {
        let held = state.withLock { state -> [(exporter: OTLPExporter, span: OTLPExporter.FinishedSpan)] in
            guard state.decision == .pending else { return [] }
            state.decision = .confirmed
            defer { state.held = [] }
            return state.held
        }
        for (exporter, span) in held { exporter.enqueue(span) }
    }

    /// The request ended without signing in: the spans held and any still open are dropped.
    /// No effect once confirmed.
    public func refuse() {
        state.withLock { state in
            guard state.decision == .pending else { return }
            state.decision = .refused
            state.held = []
        }
    }

    /// The local sampler's decision for this request: `draw`'s first answer.
    func localDecision(_ draw: () -> Bool) -> Bool {
        state.withLock { state in
            if let local = state.local { return local }
            let local = draw()
            state.local = local
            return local
        }
    }

    var isConfirmed: Bool { state.withLock { $0.decision == .confirmed } }
    var isRefused: Bool { state.withLock { $0.decision == .refused } }

    func submit(_ span: OTLPExporter.FinishedSpan, to exporter: OTLPExporter) {
        let now = state.withLock { state -> Bool in
            switch state.decision {
            case .confirmed: return true
            case .refused: return false
            case .pending:
                if state.held.count < Self.capacity { state.held.append((exporter, span)) }
                return false
            }
        }
        if now { exporter.enqueue(span) }
    }
}

/// Where a ``RemoteSamplingGate`` lives in an `InstrumentationContext`.
public enum RemoteSamplingGateKey: InstrumentationContextKey {
    public typealias Value = RemoteSamplingGate
    public static var nameOverride: String? { "lisa.remote_sampling_gate" }
}

extension InstrumentationContext {
    /// The gate a request's remote sampling decision waits at until sign-in, if any.
    public var remoteSamplingGate: RemoteSamplingGate? {
        get { self[RemoteSamplingGateKey.self] }
        set { self[RemoteSamplingGateKey.self] = newValue }
    }
}
