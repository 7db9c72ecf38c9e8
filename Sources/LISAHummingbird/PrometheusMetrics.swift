public import CoreMetrics
import LISAKit
public import NIOCore
public import Prometheus

/// LISA's metrics in Prometheus's text format: a swift-metrics backend over a
/// `PrometheusCollectorRegistry` that keeps LISA's help texts and histogram buckets, for
/// `GET /metrics`.
///
/// LISAServe bootstraps the process's `MetricsSystem` with one of these; an app with
/// another backend bootstraps its own instead, and LISA's metrics land there.
public final class PrometheusMetrics: MetricsFactory, Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = GatewayMetrics.timerBuckets
        self.factory = factory
    }

    /// The exposition of every metric, for a scrape.
    public func exposition() -> ByteBuffer {
        ByteBuffer(bytes: registry.emitToBuffer())
    }

    /// The metric's name as given, with LISA's help text for it.
    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: GatewayMetrics.descriptions[label] ?? "")
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        factory.makeFloatingPointCounter(label: label, dimensions: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !aggregate else { return factory.makeRecorder(label: label, dimensions: dimensions, aggregate: true) }
        return registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = GatewayMetrics.timerBuckets[label] ?? factory.defaultDurationHistogramBuckets
        return registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: buckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) { factory.destroyCounter(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { factory.destroyFloatingPointCounter(handler) }
    public func destroyRecorder(_ handler: any RecorderHandler) { factory.destroyRecorder(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { factory.destroyMeter(handler) }
    public func destroyTimer(_ handler: any TimerHandler) { factory.destroyTimer(handler) }
}
