public import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle
import Synchronization
public import Tracing

/// Exports ended spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding
/// (`POST <endpoint>/v1/traces`, `Content-Type: application/json`), which every collector,
/// Jaeger, Tempo and the vendors' endpoints accept.
///
/// Spans are queued off the request path (``BatchQueue``: the oldest dropped past
/// `maxQueuedSpans`, and counted) and sent in batches every `exportIntervalSeconds`, sooner
/// when a batch is full, through the runtime's HTTP client (no redirects: only the
/// configured collector is ever called). A batch the collector refuses with 429, 502, 503
/// or 504, or that cannot be sent, is tried once more; then it is dropped, so a dead
/// collector costs a bounded queue and nothing else. What is queued at shutdown is sent
/// within 5 s.
public final class OTLPExporter: Service, Sendable {
    /// An ended, sampled span.
    public struct FinishedSpan: Sendable {
        public var identity: TraceIdentity
        public var parentSpanID: UInt64?
        public var name: String
        public var kind: SpanKind
        public var start: UInt64
        public var end: UInt64
        public var attributes: SpanAttributes
        public var events: [SpanEvent]
        public var links: [TraceIdentity]
        public var status: SpanStatus?
    }

    public let settings: TracingConfiguration
    private let url: String
    private let httpClient: HTTPClient
    private let logger: Logger
    let queue: BatchQueue<FinishedSpan>
    private let exported = ExportCounts()

    public init(settings: TracingConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.settings = settings
        self.url = settings.tracesURL ?? ""
        self.httpClient = httpClient
        self.logger = logger
        self.queue = BatchQueue(capacity: settings.maxQueuedSpans, wakeAt: settings.maxBatchSpans)
    }

    /// Queues an ended span.
    public func enqueue(_ span: FinishedSpan) {
        queue.append(span)
    }

    /// Spans waiting to be exported.
    public var pendingSpans: Int { queue.count }
    /// Spans dropped: the queue was full, or the collector did not take them.
    public var droppedSpans: Int { queue.dropped + exported.failed }
    /// Spans the collector took.
    public var exportedSpans: Int { exported.succeeded }

    /// Asks for an export as soon as possible (the next batch wait ends early).
    public func flushSoon() {
        Task { try? await self.exportAll() }
    }

    /// Sends everything queued now, in batches; returns how many spans the collector took.
    @discardableResult
    public func exportAll() async throws -> Int {
        var sent = 0
        while true {
            let batch = queue.take(upTo: settings.maxBatchSpans)
            guard !batch.isEmpty else { return sent }
            do {
                try await export(batch)
                sent += batch.count
                exported.add(succeeded: batch.count)
            } catch {
                exported.add(failed: batch.count)
                throw error
            }
        }
    }

    public func run() async throws {
        let interval = Duration.seconds(clamping: settings.exportIntervalSeconds)
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                await self.queue.waitForBatch(interval: interval)
                do {
                    try await self.exportAll()
                    if failing { self.logger.info("traces are exported again", metadata: ["lisa.collector": "\(self.url)"]) }
                    failing = false
                } catch {
                    if !failing {
                        self.logger.warning(
                            "exporting traces failed; spans are dropped until the collector answers",
                            metadata: ["lisa.collector": "\(self.url)", "lisa.error": "\(error)"]
                        )
                    }
                    failing = true
                }
            }
        }
        do {
            _ = try await withDeadline(.seconds(5), timedOut: { LISAError.gatewayTimeout("The collector did not take the spans in 5 s.") }) {
                try await self.exportAll()
            }
        } catch {
            let lost = queue.count
            if lost > 0 { logger.warning("spans not exported at shutdown", metadata: ["lisa.count": "\(lost)", "lisa.error": "\(error)"]) }
        }
    }

    /// One OTLP request, tried twice when the collector is busy or unreachable.
    func export(_ batch: [FinishedSpan]) async throws {
        let body = document(batch)
        for attempt in 1...2 {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "LISA/\(LISAVersion.string)")
            for (name, value) in settings.headers { request.headers.replaceOrAdd(name: name, value: value) }
            request.body = .bytes(body)
            do {
                let response = try await httpClient.execute(request, deadline: .now() + .init(.seconds(clamping: settings.timeoutSeconds)))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if (200..<300).contains(response.status.code) { return }
                let retriable = [429, 502, 503, 504].contains(response.status.code)
                guard retriable, attempt == 1 else { throw LISAError.badGateway("The collector answered \(response.status.code).") }
            } catch let error as LISAError {
                throw error
            } catch {
                guard attempt == 1 else { throw error }
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: - OTLP/JSON

    /// `ExportTraceServiceRequest` in OTLP's JSON mapping: ids in hex, 64-bit integers and
    /// times as decimal strings, enums as numbers. Written directly (no intermediate tree):
    /// with every call traced this runs for thousands of spans a second.
    func document(_ batch: [FinishedSpan]) -> ByteBuffer {
        var out = OTLPJSONWriter(capacity: 256 + batch.count * 900)
        out.raw(#"{"resourceSpans":[{"resource":{"attributes":["#)
        for (index, (key, value)) in [
            ("service.name", settings.serviceName), ("service.version", LISAVersion.string), ("telemetry.sdk.name", "lisa"),
            ("telemetry.sdk.language", "swift"),
        ].enumerated() {
            if index > 0 { out.raw(",") }
            out.raw(#"{"key":"#)
            out.string(key)
            out.raw(#","value":{"stringValue":"#)
            out.string(value)
            out.raw("}}")
        }
        out.raw(#"]},"scopeSpans":[{"scope":{"name":"LISAKit","version":"#)
        out.string(LISAVersion.string)
        out.raw(#"},"spans":["#)
        for (index, span) in batch.enumerated() {
            if index > 0 { out.raw(",") }
            Self.write(span, to: &out)
        }
        out.raw("]}]}]}")
        return ByteBuffer(string: out.text)
    }

    static func write(_ span: FinishedSpan, to out: inout OTLPJSONWriter) {
        out.raw(#"{"traceId":""# + span.identity.traceIDHex + #"","spanId":""# + span.identity.spanIDHex + "\"")
        if let parent = span.parentSpanID { out.raw(#","parentSpanId":""# + TraceIdentity.hex(parent) + "\"") }
        if let state = span.identity.traceState {
            out.raw(#","traceState":"#)
            out.string(state)
        }
        out.raw(#","name":"#)
        out.string(span.name)
        out.raw(#","kind":\#(kindNumber(span.kind)),"flags":\#(0x100 | (span.identity.sampled ? 1 : 0))"#)
        out.raw(#","startTimeUnixNano":"\#(span.start)","endTimeUnixNano":"\#(max(span.end, span.start))","attributes":"#)
        writeAttributes(span.attributes, to: &out)
        if !span.events.isEmpty {
            out.raw(#","events":["#)
            for (index, event) in span.events.enumerated() {
                if index > 0 { out.raw(",") }
                out.raw(#"{"timeUnixNano":"\#(event.nanosecondsSinceEpoch)","name":"#)
                out.string(event.name)
                out.raw(#","attributes":"#)
                writeAttributes(event.attributes, to: &out)
                out.raw("}")
            }
            out.raw("]")
        }
        if !span.links.isEmpty {
            out.raw(#","links":["#)
            out.raw(span.links.map { #"{"traceId":""# + $0.traceIDHex + #"","spanId":""# + $0.spanIDHex + #""}"# }.joined(separator: ","))
            out.raw("]")
        }
        if let status = span.status {
            out.raw(#","status":{"code":\#(status.code == .ok ? 1 : 2)"#)
            if let message = status.message {
                out.raw(#","message":"#)
                out.string(message)
            }
            out.raw("}")
        }
        out.raw("}")
    }

    static func kindNumber(_ kind: SpanKind) -> Int {
        switch kind {
        case .internal: 1
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        }
    }

    static func writeAttributes(_ attributes: SpanAttributes, to out: inout OTLPJSONWriter) {
        out.raw("[")
        var first = true
        attributes.forEach { key, value in
            var rendered = OTLPJSONWriter(capacity: 32)
            guard writeAnyValue(value, to: &rendered) else { return }
            if !first { out.raw(",") }
            first = false
            out.raw(#"{"key":"#)
            out.string(key)
            out.raw(#","value":"#)
            out.raw(rendered.text)
            out.raw("}")
        }
        out.raw("]")
    }

    /// An `AnyValue`; `false` for a kind OTLP cannot carry.
    static func writeAnyValue(_ value: SpanAttribute, to out: inout OTLPJSONWriter) -> Bool {
        func array<T>(_ values: [T], _ each: (T, inout OTLPJSONWriter) -> Void) {
            out.raw(#"{"arrayValue":{"values":["#)
            for (index, value) in values.enumerated() {
                if index > 0 { out.raw(",") }
                each(value, &out)
            }
            out.raw("]}}")
        }
        func integer(_ number: some BinaryInteger, _ out: inout OTLPJSONWriter) { out.raw(#"{"intValue":"\#(number)"}"#) }
        func double(_ number: Double, _ out: inout OTLPJSONWriter) {
            if number.isFinite { out.raw(#"{"doubleValue":\#(number)}"#) } else { out.raw(#"{"stringValue":"\#(number)"}"#) }
        }
        func text(_ value: String, _ out: inout OTLPJSONWriter) {
            out.raw(#"{"stringValue":"#)
            out.string(value)
            out.raw("}")
        }
        func flag(_ value: Bool, _ out: inout OTLPJSONWriter) { out.raw(value ? #"{"boolValue":true}"# : #"{"boolValue":false}"#) }
        switch value {
        case .int32(let number): integer(number, &out)
        case .int64(let number): integer(number, &out)
        case .double(let number): double(number, &out)
        case .bool(let value): flag(value, &out)
        case .string(let value): text(value, &out)
        case .int32Array(let numbers): array(numbers) { integer($0, &$1) }
        case .int64Array(let numbers): array(numbers) { integer($0, &$1) }
        case .doubleArray(let numbers): array(numbers) { double($0, &$1) }
        case .boolArray(let values): array(values) { flag($0, &$1) }
        case .stringArray(let values): array(values) { text($0, &$1) }
        case .stringConvertible(let value): text(value.description, &out)
        case .stringConvertibleArray(let values): array(values) { text($0.description, &$1) }
        default: return false
        }
        return true
    }
}

/// Appends JSON text; strings are escaped as RFC 8259 asks (quote, backslash, control characters).
struct OTLPJSONWriter {
    private(set) var text: String

    init(capacity: Int) {
        text = ""
        text.reserveCapacity(capacity)
    }

    mutating func raw(_ fragment: String) {
        text += fragment
    }

    mutating func string(_ value: String) {
        text += "\""
        var plain = true
        for byte in value.utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            plain = false
            break
        }
        if plain {
            text += value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": text += "\\\""
                case "\\": text += "\\\\"
                case "\n": text += "\\n"
                case "\r": text += "\\r"
                case "\t": text += "\\t"
                case let control where control.value < 0x20:
                    let hex = String(control.value, radix: 16)
                    text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: text.unicodeScalars.append(scalar)
                }
            }
        }
        text += "\""
    }
}

/// Spans the collector took, and spans it did not.
final class ExportCounts: Sendable {
    private let counts = Mutex<(succeeded: Int, failed: Int)>((0, 0))
    func add(succeeded: Int = 0, failed: Int = 0) {
        counts.withLock {
            $0.succeeded += succeeded; $0.failed += failed
        }
    }
    var succeeded: Int { counts.withLock { $0.succeeded } }
    var failed: Int { counts.withLock { $0.failed } }
}
