import Foundation

/// Distributed traces (`tracing:` in the configuration file). Off unless a collector is
/// named: nothing leaves the process without configuration.
///
/// ```yaml
/// tracing:
///   endpoint: http://otel-collector:4318     # OTLP/HTTP; spans go to <endpoint>/v1/traces
///   headers: {authorization: "Bearer …"}
///   sampleRatio: 0.1
/// ```
///
/// The standard variables work too: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the traces URL as
/// it is), `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL), `OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_SERVICE_NAME`, and `OTEL_SDK_DISABLED=true` to turn export off.
public struct TracingConfiguration: Sendable, Hashable, Codable {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`), or its traces URL (a path
    /// ending in `/v1/traces`). `nil`: no traces are made or exported.
    public var endpoint: String?
    /// Headers sent with every export (a collector's or vendor's credentials).
    public var headers: [String: String] = [:]
    /// `service.name` of the spans. Default `lisa`.
    public var serviceName = "lisa"
    /// The share of new traces recorded, 0–1 (a client's `traceparent` decides for its
    /// traces). Default 1.
    public var sampleRatio = 1.0
    /// How often ended spans are exported (sooner when a batch is full). Default 5 s.
    public var exportIntervalSeconds = 5.0
    /// The most spans one export carries. Default 512.
    public var maxBatchSpans = 512
    /// The most ended spans kept waiting for the collector; the oldest go first. Default 2048.
    public var maxQueuedSpans = 2048
    /// How long one export may take. Default 10 s.
    public var timeoutSeconds = 10.0

    public init(endpoint: String? = nil) {
        self.endpoint = endpoint
    }

    enum CodingKeys: String, CodingKey {
        case endpoint, headers, serviceName, sampleRatio, exportIntervalSeconds, maxBatchSpans, maxQueuedSpans, timeoutSeconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
        serviceName = try c.decodeIfPresent(String.self, forKey: .serviceName) ?? "lisa"
        sampleRatio = try c.decodeIfPresent(Double.self, forKey: .sampleRatio) ?? 1
        exportIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .exportIntervalSeconds) ?? 5
        maxBatchSpans = try c.decodeIfPresent(Int.self, forKey: .maxBatchSpans) ?? 512
        maxQueuedSpans = try c.decodeIfPresent(Int.self, forKey: .maxQueuedSpans) ?? 2048
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 10
    }

    /// Whether spans are made and exported.
    public var isEnabled: Bool { endpoint != nil }

    /// Where spans are posted: `endpoint`, with `/v1/traces` added unless it names it.
    public var tracesURL: String? {
        guard let endpoint else { return nil }
        if endpointIsTracesURL || endpoint.hasSuffix("/v1/traces") { return endpoint }
        return (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
    }

    /// Applies the standard OpenTelemetry variables over the file's settings.
    mutating func apply(environment: [String: String]) throws {
        func text(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let value = text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            endpoint = value
            endpointIsTracesURL = true
        } else if let value = text("OTEL_EXPORTER_OTLP_ENDPOINT") {
            endpoint = value
            endpointIsTracesURL = false
        }
        if let value = text("OTEL_EXPORTER_OTLP_HEADERS") {
            for pair in value.split(separator: ",") {
                guard let equals = pair.firstIndex(of: "=") else {
                    throw ConfigurationError("OTEL_EXPORTER_OTLP_HEADERS: '\(pair)' is not name=value")
                }
                let name = pair[..<equals].trimmingCharacters(in: .whitespaces)
                let raw = pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                headers[name] = raw.removingPercentEncoding ?? raw
            }
        }
        if let value = text("OTEL_SERVICE_NAME") { serviceName = value }
        if text("OTEL_SDK_DISABLED")?.lowercased() == "true" { endpoint = nil }
    }

    /// Set by `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, whose URL is used as it is.
    var endpointIsTracesURL = false

    func validate() throws {
        guard let endpoint else { return }
        let url = tracesURL ?? endpoint
        guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil,
            parsed.user == nil, parsed.password == nil
        else {
            throw ConfigurationError("tracing.endpoint '\(endpoint)' is not an http(s) URL without credentials (put them in tracing.headers)")
        }
        guard (0...1).contains(sampleRatio) else { throw ConfigurationError("tracing.sampleRatio must be between 0 and 1") }
        guard exportIntervalSeconds > 0 && exportIntervalSeconds <= 300 else {
            throw ConfigurationError("tracing.exportIntervalSeconds must be more than 0 and at most 300")
        }
        guard (1...10_000).contains(maxBatchSpans) else { throw ConfigurationError("tracing.maxBatchSpans must be 1-10000") }
        guard maxQueuedSpans >= maxBatchSpans && maxQueuedSpans <= 1_000_000 else {
            throw ConfigurationError("tracing.maxQueuedSpans must be at least maxBatchSpans and at most 1000000")
        }
        guard timeoutSeconds > 0 && timeoutSeconds <= 120 else {
            throw ConfigurationError("tracing.timeoutSeconds must be more than 0 and at most 120")
        }
    }
}
