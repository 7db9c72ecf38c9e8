import Foundation
import Prometheus
import Synchronization

/// The gateway's Prometheus metrics, in a registry the server exposes at `/metrics`.
///
/// Labels carry model ids, endpoint `host:port` and status codes — never keys or URLs with
/// credentials.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let endpointGauges = Mutex<[String: Gauge]>([:])

    static let durationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
    ]
    static let overheadBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// One client request finished (or its stream started, for streaming requests).
    /// The `status` label of `lisa_requests_total`: the status LISAServe answers with, so
    /// dashboards read the same whichever binding serves the request.
    static func statusLabel(for error: LISAError?) -> Int {
        guard let error else { return 200 }
        switch error.code {
        case .invalidRequest: return 400
        case .unauthenticated: return 401
        case .permissionDenied: return 403
        case .notFound: return 404
        case .operationNotAllowed: return 405
        case .conflict: return 409
        case .tooLarge: return 413
        case .unsupportedContent: return 415
        case .rateLimited, .quotaExceeded: return 429
        case .upstreamRejected: return error.upstreamStatus.flatMap { (400..<500).contains($0) ? $0 : nil } ?? 502
        case .upstreamFailed, .cancelled: return 502
        case .upstreamUnavailable, .notReady: return 503
        case .upstreamTimeout: return 504
        default: return 500
        }
    }

    func request(model: String, endpoint: String, status: Int, duration: Duration) {
        registry.makeCounter(
            name: "lisa_requests_total", labels: [("model", model), ("endpoint", endpoint), ("status", String(status))],
            help: "Inference requests by model, endpoint and HTTP status returned to the client."
        ).increment()
        registry.makeDurationHistogram(
            name: "lisa_request_duration_seconds", labels: [("model", model)], buckets: Self.durationBuckets,
            help: "Time from request to complete answer (streams: to their end)."
        ).record(duration)
    }

    /// Gateway time: the request's time in LISA minus the time spent waiting on the upstream.
    func overhead(model: String, _ duration: Duration) {
        registry.makeDurationHistogram(
            name: "lisa_gateway_overhead_seconds", labels: [("model", model)], buckets: Self.overheadBuckets,
            help: "Time LISA adds to a request: total until the answer (or stream) starts minus upstream time."
        ).record(duration)
    }

    func timeToFirstToken(model: String, _ duration: Duration) {
        registry.makeDurationHistogram(
            name: "lisa_time_to_first_token_seconds", labels: [("model", model)], buckets: Self.durationBuckets,
            help: "Time from request to the first streamed event (non-streaming: to the answer)."
        ).record(duration)
    }

    func tokens(model: String, usage: Usage) {
        registry.makeCounter(
            name: "lisa_tokens_total", labels: [("model", model), ("direction", "prompt")], help: "Tokens by model and direction, from upstream usage."
        ).increment(by: Int64(usage.promptTokens))
        if let completion = usage.completionTokens {
            registry.makeCounter(
                name: "lisa_tokens_total", labels: [("model", model), ("direction", "completion")],
                help: "Tokens by model and direction, from upstream usage."
            ).increment(by: Int64(completion))
        }
    }

    func retry(model: String, reason: String) {
        registry.makeCounter(
            name: "lisa_retries_total", labels: [("model", model), ("reason", reason)], help: "Retries on another endpoint, by reason."
        ).increment()
    }

    func fallback(model: String, to fallback: String) {
        registry.makeCounter(
            name: "lisa_fallbacks_total", labels: [("model", model), ("fallback", fallback)], help: "Requests sent to a fallback model."
        ).increment()
    }

    func streamError(model: String) {
        registry.makeCounter(
            name: "lisa_stream_errors_total", labels: [("model", model)], help: "Streams that ended with an error event."
        ).increment()
    }

    /// Sets the per-endpoint gauges (in flight, health, circuit) from the models' current state.
    public func refresh(models: [RoutableModel]) {
        var seen: [String: Gauge] = [:]
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            let gauge = registry.makeGauge(name: name, labels: labels, help: help)
            gauge.set(value)
            seen[key] = gauge
        }
        for model in models {
            for endpoint in model.pool.endpoints {
                let status = endpoint.status
                let labels = [("model", model.definition.modelId), ("endpoint", "\(endpoint.index):\(endpoint.label)")]
                gauge("lisa_endpoint_in_flight", "Requests in flight per endpoint.", labels, Double(status.inFlight))
                gauge("lisa_endpoint_healthy", "1 when active probes find the endpoint healthy.", labels, status.healthy ? 1 : 0)
                gauge(
                    "lisa_endpoint_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", labels,
                    status.circuit == "closed" ? 0 : status.circuit == "half_open" ? 1 : 2
                )
                gauge("lisa_endpoint_latency_ewma_seconds", "Peak-EWMA of time to first byte.", labels, status.ewmaLatencyMilliseconds / 1000)
            }
        }
        let stale = endpointGauges.withLock { current in
            let stale = current.filter { seen[$0.key] == nil }.map(\.value)
            current = seen
            return stale
        }
        for gauge in stale { registry.unregisterGauge(gauge) }
    }
}
