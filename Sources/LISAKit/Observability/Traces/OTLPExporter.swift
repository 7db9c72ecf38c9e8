import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import Tracing

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

    public let settings: TracingSettings
    private let url: String
    private let httpClient: HTTPClient
    private let logger: Logger
    let queue: BatchQueue<FinishedSpan>
    private let resource: JSONValue
    private let exported = ExportCounts()

    public init(settings: TracingSettings, httpClient: HTTPClient, logger: Logger) {
        self.settings = settings
        self.url = settings.tracesURL ?? ""
        self.httpClient = httpClient
        self.logger = logger
        self.queue = BatchQueue(capacity: settings.maxQueuedSpans, wakeAt: settings.maxBatchSpans)
        self.resource = .object([
            "attributes": .array([
                Self.attribute("service.name", .object(["stringValue": .string(settings.serviceName)])),
                Self.attribute("service.version", .object(["stringValue": .string(LISAVersion.string)])),
                Self.attribute("telemetry.sdk.name", .object(["stringValue": .string("lisa")])),
                Self.attribute("telemetry.sdk.language", .object(["stringValue": .string("swift")])),
            ])
        ])
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
        let interval = Duration.milliseconds(Int64(settings.exportIntervalSeconds * 1000))
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
        let body = DialectJSON.encode(document(batch))
        for attempt in 1...2 {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "LISA/\(LISAVersion.string)")
            for (name, value) in settings.headers { request.headers.replaceOrAdd(name: name, value: value) }
            request.body = .bytes(body)
            do {
                let response = try await httpClient.execute(request, deadline: .now() + .milliseconds(Int64(settings.timeoutSeconds * 1000)))
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
    /// times as decimal strings, enums as numbers.
    func document(_ batch: [FinishedSpan]) -> JSONValue {
        .object([
            "resourceSpans": .array([
                .object([
                    "resource": resource,
                    "scopeSpans": .array([
                        .object([
                            "scope": .object(["name": .string("LISAKit"), "version": .string(LISAVersion.string)]),
                            "spans": .array(batch.map(Self.span)),
                        ])
                    ]),
                ])
            ])
        ])
    }

    static func span(_ span: FinishedSpan) -> JSONValue {
        var members: [String: JSONValue] = [
            "traceId": .string(span.identity.traceIDHex),
            "spanId": .string(span.identity.spanIDHex),
            "name": .string(span.name),
            "kind": .integer(kindNumber(span.kind)),
            "startTimeUnixNano": .string(String(span.start)),
            "endTimeUnixNano": .string(String(max(span.end, span.start))),
            "attributes": .array(attributes(span.attributes)),
            "flags": .integer(0x100 | (span.identity.sampled ? 1 : 0)),
        ]
        if let parent = span.parentSpanID { members["parentSpanId"] = .string(TraceIdentity.hex(parent)) }
        if let state = span.identity.traceState { members["traceState"] = .string(state) }
        if !span.events.isEmpty {
            members["events"] = .array(
                span.events.map { event in
                    .object([
                        "timeUnixNano": .string(String(event.nanosecondsSinceEpoch)), "name": .string(event.name),
                        "attributes": .array(attributes(event.attributes)),
                    ])
                }
            )
        }
        if !span.links.isEmpty {
            members["links"] = .array(span.links.map { .object(["traceId": .string($0.traceIDHex), "spanId": .string($0.spanIDHex)]) })
        }
        if let status = span.status {
            var value: [String: JSONValue] = ["code": .integer(status.code == .ok ? 1 : 2)]
            if let message = status.message { value["message"] = .string(message) }
            members["status"] = .object(value)
        }
        return .object(members)
    }

    static func kindNumber(_ kind: SpanKind) -> Int64 {
        switch kind {
        case .internal: 1
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        }
    }

    static func attribute(_ key: String, _ value: JSONValue) -> JSONValue {
        .object(["key": .string(key), "value": value])
    }

    static func attributes(_ attributes: SpanAttributes) -> [JSONValue] {
        var result: [JSONValue] = []
        attributes.forEach { key, value in
            if let any = anyValue(value) { result.append(attribute(key, any)) }
        }
        return result.sorted { ($0.member("key")?.stringValue ?? "") < ($1.member("key")?.stringValue ?? "") }
    }

    /// An `AnyValue`.
    static func anyValue(_ value: SpanAttribute) -> JSONValue? {
        func array(_ values: [JSONValue]) -> JSONValue { .object(["arrayValue": .object(["values": .array(values)])]) }
        switch value {
        case .int32(let number): return .object(["intValue": .string(String(number))])
        case .int64(let number): return .object(["intValue": .string(String(number))])
        case .double(let number): return number.isFinite ? .object(["doubleValue": .number(number)]) : .object(["stringValue": .string("\(number)")])
        case .bool(let flag): return .object(["boolValue": .bool(flag)])
        case .string(let text): return .object(["stringValue": .string(text)])
        case .int32Array(let numbers): return array(numbers.map { .object(["intValue": .string(String($0))]) })
        case .int64Array(let numbers): return array(numbers.map { .object(["intValue": .string(String($0))]) })
        case .doubleArray(let numbers): return array(numbers.map { .object(["doubleValue": .number($0)]) })
        case .boolArray(let flags): return array(flags.map { .object(["boolValue": .bool($0)]) })
        case .stringArray(let texts): return array(texts.map { .object(["stringValue": .string($0)]) })
        case .stringConvertible(let value): return .object(["stringValue": .string(value.description)])
        case .stringConvertibleArray(let values): return array(values.map { .object(["stringValue": .string($0.description)]) })
        default: return nil
        }
    }
}

/// Spans the collector took, and spans it did not.
final class ExportCounts: Sendable {
    private let counts = Mutex<(succeeded: Int, failed: Int)>((0, 0))
    func add(succeeded: Int = 0, failed: Int = 0) {
        counts.withLock { $0.succeeded += succeeded; $0.failed += failed }
    }
    var succeeded: Int { counts.withLock { $0.succeeded } }
    var failed: Int { counts.withLock { $0.failed } }
}
