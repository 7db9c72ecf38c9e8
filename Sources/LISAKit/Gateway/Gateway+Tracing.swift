import Foundation
import Instrumentation
import NIOCore
import Tracing

extension Gateway {
    /// The GenAI span of one call (`chat my-model`), a child of the binding's request span or
    /// of the caller's `traceparent`; it ends when the call's ticket closes, with the usage.
    func callSpan(_ operation: UpstreamOperation, model: RoutableModel, stream: Bool, inbound: ByteBuffer?, context: InferenceContext) -> (any Span)?
    {
        guard let tracer else { return nil }
        let name = Traces.genAIOperation(operation, label: context.usageLabel ?? context.dialect.usageLabel)
        let span = tracer.startSpan("\(name) \(model.definition.modelId)", context: Traces.parent(tracer, headers: context.headers), ofKind: .client)
        guard span.isRecording else { return span }
        span.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = name
            attributes["gen_ai.request.model"] = model.definition.modelId
            attributes["gen_ai.provider.name"] = model.definition.upstreamAPI == .anthropic ? "anthropic" : "openai"
            attributes["lisa.operation"] = context.operationUsageLabel(operation)
            attributes["lisa.request_id"] = context.requestID
            attributes["user.id"] = context.billedUser ?? context.principal.username
            if let token = context.principal.tokenID { attributes["lisa.token_id"] = token }
            if stream { attributes["lisa.stream"] = true }
            guard let inbound, operation != .embeddings else { return }
            // The same reading budgets reserve by.
            if let limit = OutputLimit(operation, inbound: inbound), let most = limit.perAnswer {
                attributes["gen_ai.request.max_tokens"] = most
                if limit.answers > 1 { attributes["gen_ai.request.choice.count"] = limit.answers }
            }
            for (member, key) in [("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p")] {
                if let value = JSONMemberScanner.value(of: member, in: inbound), let number = Double(String(buffer: value)) {
                    attributes[key] = number
                }
            }
        }
        return span
    }

    /// A client span for one upstream attempt, its `traceparent` added to `headers` so the
    /// model server's own spans join the trace.
    func attemptSpan(
        _ operation: UpstreamOperation, endpoint: Endpoint, attempt: Int, parent: InstrumentationContext?,
        headers: inout [(name: String, value: String)]
    ) -> (any Span)? {
        guard let tracer else { return nil }
        let span = tracer.startSpan("POST", context: parent ?? InstrumentationContext.current ?? .topLevel, ofKind: .client)
        tracer.inject(span.context, into: &headers, using: HeaderListInjector())
        guard span.isRecording else { return span }
        let url = operation.url(base: endpoint.definition.url)
        span.updateAttributes { attributes in
            attributes["http.request.method"] = "POST"
            attributes["url.full"] = Traces.sanitized(url)
            if let components = URLComponents(string: url), let host = components.host {
                attributes["server.address"] = host
                attributes["server.port"] = components.port ?? (components.scheme == "https" ? 443 : 80)
            }
            attributes["lisa.endpoint"] = endpoint.label
            attributes["lisa.attempt"] = attempt
        }
        return span
    }
}

extension UpstreamFailure {
    /// `error.type` of an attempt that got no answer.
    var spanErrorType: String {
        switch reason {
        case .connectFailed: "upstream_unreachable"
        case .tls: "upstream_tls_error"
        case .connectionClosed: "upstream_closed"
        case .timedOut: "timeout"
        case .cancelled: "cancelled"
        case .other: "upstream_error"
        }
    }
}
