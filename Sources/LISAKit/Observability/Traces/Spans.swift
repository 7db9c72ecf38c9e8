import Foundation
import Instrumentation
import Tracing

/// LISA's spans, made through whichever `Tracer` the runtime was given (none: no spans and
/// nothing spent on them). Names and attributes follow OpenTelemetry's semantic
/// conventions: GenAI (`gen_ai.*`) for inference calls, HTTP for upstream attempts.
enum Traces {
    /// A span under `parent` (by default the task's current context); `nil` without a tracer.
    static func start(_ tracer: (any Tracer)?, _ name: String, kind: SpanKind = .internal, parent: InstrumentationContext? = nil) -> (any Span)? {
        guard let tracer else { return nil }
        return tracer.startSpan(name, context: parent ?? InstrumentationContext.current ?? .topLevel, ofKind: kind)
    }

    /// Runs `operation` in a span that is the task's current context while it runs (spans
    /// started inside are its children); an error ends it with the error's reason.
    static func within<T, E: Error>(
        _ tracer: (any Tracer)?, _ name: String, kind: SpanKind = .internal, attributes: SpanAttributes = [:],
        _ operation: ((any Span)?) async throws(E) -> T
    ) async throws(E) -> T {
        guard let span = start(tracer, name, kind: kind) else { return try await operation(nil) }
        if !attributes.isEmpty { span.attributes.merge(attributes) }
        do {
            let result = try await InstrumentationContext.$current.withValue(span.context) { try await operation(span) }
            span.end()
            return result
        } catch {
            let typed = error as! E  // only `operation` throws
            fail(span, typed)
            span.end()
            throw typed
        }
    }

    /// Marks `span` failed: `error.type` (LISA's reason), an exception event, status error.
    static func fail(_ span: (any Span)?, _ error: any Error) {
        guard let span else { return }
        let reason = (error as? LISAError).map { $0.reason ?? "\($0.code)" } ?? (error is CancellationError ? "cancelled" : "error")
        span.attributes["error.type"] = reason
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: reason))
    }

    /// The parent of an inference call: the task's current context (the binding's server
    /// span), else a `traceparent` the caller handed over in ``InferenceContext/headers``.
    static func parent(_ tracer: any Tracer, headers: [String: String]) -> InstrumentationContext {
        if let current = InstrumentationContext.current { return current }
        var context = InstrumentationContext.topLevel
        if headers["traceparent"] != nil { tracer.extract(headers, into: &context, using: DictionaryExtractor()) }
        return context
    }

    /// `gen_ai.operation.name` for an inbound operation.
    static func genAIOperation(_ operation: UpstreamOperation, label: String?) -> String {
        switch label ?? operation.rawValue {
        case "chat/completions", "messages", "responses": "chat"
        case "completions": "text_completion"
        case "embeddings", "rag.retrieval", "rag.ingestion": "embeddings"
        default: operation.usageLabel
        }
    }

    /// An endpoint URL for `url.full`: no credentials, no query.
    static func sanitized(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.user = nil
        components.password = nil
        components.query = nil
        return components.string ?? url
    }
}

/// Reads a `[String: String]` of lower-case header names.
struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key.lowercased()] }
}

/// Writes headers into the list the provider sends upstream, replacing any of the same name.
struct HeaderListInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(name: String, value: String)]) {
        carrier.removeAll { $0.name.lowercased() == key.lowercased() }
        carrier.append((name: key, value: value))
    }
}
