public import CoreMetrics
import Foundation
import Synchronization

/// The gateway's metrics, recorded through swift-metrics: into whatever backend the
/// process (or the runtime's `metrics` factory) uses. LISAServe exports them at `/metrics`
/// in Prometheus's format, with ``descriptions`` as help texts and ``timerBuckets``.
///
/// Labels carry model ids, endpoint `host:port` and status codes — never keys or URLs with
/// credentials.
public final class GatewayMetrics: Sendable {
    private let factory: any MetricsFactory
    private let endpointGauges = Mutex<[String: Gauge]>([:])

    /// What each metric means, for backends that show help texts.
    public static let descriptions: [String: String] = [
        "lisa_requests_total": "Inference requests by model, endpoint and HTTP status returned to the client.",
        "lisa_request_duration_seconds": "Time from request to complete answer (streams: to their end).",
        "lisa_gateway_overhead_seconds": "Time LISA adds to a request: total until the answer (or stream) starts minus upstream time.",
        "lisa_time_to_first_token_seconds": "Time from request to the first streamed event (non-streaming: to the answer).",
        "lisa_tokens_total": "Tokens by model and direction, from upstream usage.",
        "lisa_retries_total": "Retries on another endpoint, by reason.",
        "lisa_fallbacks_total": "Requests sent to a fallback model.",
        "lisa_answer_memory_refused_total": "Buffered answers refused because answers in flight held the memory budget.",
        "lisa_stream_errors_total": "Streams that ended with an error event.",
        "lisa_endpoint_in_flight": "Requests in flight per endpoint.",
        "lisa_endpoint_healthy": "1 when active probes find the endpoint healthy.",
        "lisa_endpoint_circuit_state": "Circuit breaker: 0 closed, 1 half-open, 2 open.",
        "lisa_endpoint_latency_ewma_seconds": "Peak-EWMA of time to first byte.",
    ]

    /// The histogram buckets of each timer, for backends that take them.
    public static var timerBuckets: [String: [Duration]] {
        [
            "lisa_request_duration_seconds": durationBuckets, "lisa_time_to_first_token_seconds": durationBuckets,
            "lisa_gateway_overhead_seconds": overheadBuckets,
        ]
    }

    static let durationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
    ]
    static let overheadBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
    ]

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// - Parameter factory: the backend; the process's `MetricsSystem.factory` by default.
    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory ?? MetricsSystem.factory
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

    /// The metrics every request records.
    private enum HotMetric: String {
        case requests = "lisa_requests_total"
        case requestDuration = "lisa_request_duration_seconds"
        case overhead = "lisa_gateway_overhead_seconds"
        case timeToFirstToken = "lisa_time_to_first_token_seconds"
        case tokens = "lisa_tokens_total"
    }

    /// A metric of the hot path and its label values (names are fixed per label).
    private struct HandleKey: Hashable {
        var label: HotMetric
        var values: [String]
    }

    /// The per-request metrics' handles, made once per label set: a backend's registry
    /// validates names and labels on every make, which cost more than the request's routing.
    /// Bounded: past ``maxCachedHandles`` label sets the cache starts over.
    private let counters = Mutex<[HandleKey: Counter]>([:])
    private let timers = Mutex<[HandleKey: CoreMetrics.Timer]>([:])
    static let maxCachedHandles = 4096

    private func counter(_ label: HotMetric, _ names: [String], _ values: [String]) -> Counter {
        Self.cached(HandleKey(label: label, values: values), in: counters) {
            Counter(label: label.rawValue, dimensions: Array(zip(names, values)), factory: factory)
        }
    }

    private func timer(_ label: HotMetric, model: String) -> CoreMetrics.Timer {
        Self.cached(HandleKey(label: label, values: [model]), in: timers) {
            CoreMetrics.Timer(label: label.rawValue, dimensions: [("model", model)], factory: factory)
        }
    }

    private static func cached<Handle: Sendable>(
        _ key: HandleKey, in cache: borrowing Mutex<[HandleKey: Handle]>, make: () -> Handle
    ) -> Handle {
        if let handle = cache.withLock({ $0[key] }) { return handle }
        let handle = make()
        cache.withLock {
            if $0.count >= maxCachedHandles { $0.removeAll() }
            $0[key] = handle
        }
        return handle
    }

    func request(model: String, endpoint: String, status: Int, duration: Duration) {
        counter(.requests, ["model", "endpoint", "status"], [model, endpoint, String(status)]).increment()
        timer(.requestDuration, model: model).recordNanoseconds(Self.nanoseconds(duration))
    }

    /// Gateway time: the request's time in LISA minus the time spent waiting on the upstream.
    func overhead(model: String, _ duration: Duration) {
        timer(.overhead, model: model).recordNanoseconds(Self.nanoseconds(duration))
    }

    func timeToFirstToken(model: String, _ duration: Duration) {
        timer(.timeToFirstToken, model: model).recordNanoseconds(Self.nanoseconds(duration))
    }

    func tokens(model: String, usage: Usage) {
        // Counters only go up: a negative count (which Usage already refuses) would trap the Prometheus backend.
        counter(.tokens, ["model", "direction"], [model, "prompt"]).increment(by: max(usage.promptTokens, 0))
        if let completion = usage.completionTokens {
            counter(.tokens, ["model", "direction"], [model, "completion"]).increment(by: max(completion, 0))
        }
    }

    func retry(model: String, reason: String) {
        Counter(label: "lisa_retries_total", dimensions: [("model", model), ("reason", reason)], factory: factory).increment()
    }

    func fallback(model: String, to fallback: String) {
        Counter(label: "lisa_fallbacks_total", dimensions: [("model", model), ("fallback", fallback)], factory: factory).increment()
    }

    func answerMemoryRefused() {
        Counter(label: "lisa_answer_memory_refused_total", factory: factory).increment()
    }

    func streamError(model: String) {
        Counter(label: "lisa_stream_errors_total", dimensions: [("model", model)], factory: factory).increment()
    }

    /// Sets the per-endpoint gauges (in flight, health, circuit) from the models' current state.
    public func refresh(models: [RoutableModel]) {
        var seen: [String: Gauge] = [:]
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            let gauge = Gauge(label: name, dimensions: labels, factory: factory)
            gauge.record(value)
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
        for gauge in stale { gauge.destroy() }
    }
}
