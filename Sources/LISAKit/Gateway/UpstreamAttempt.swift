import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Tracing

/// One attempt of a call on one endpoint: sends it, spans and times it, and turns what comes
/// back into the caller's answer (buffered, events or bytes) or error, and the endpoint's
/// outcome (what its circuit breaker and balancer learn).
///
/// Errors are marked retriable when nothing reached the client and another endpoint may do
/// better; the gateway's retry loop (``Gateway``) decides whether to try one.
struct UpstreamAttempt: Sendable {
    let gateway: Gateway
    let wire: UpstreamWire
    let model: RoutableModel
    /// The model the client asked for (a fallback's answer names it too).
    let requested: String
    let endpoint: Endpoint
    let body: ByteBuffer
    let stream: Bool
    /// When the call began (overhead and time to first token are measured from it).
    let start: ContinuousClock.Instant
    let ticket: UsageAccountant.Ticket?
    /// 1 for the first attempt of the call.
    let number: Int
    let logger: RequestLogger

    private var modelID: String { model.definition.modelId }

    func run() async throws(LISAError) -> GatewayResponse {
        var headers = wire.headers
        let span = AttemptSpan(
            gateway.attemptSpan(wire.operation, endpoint: endpoint, attempt: number, parent: ticket?.span?.context, headers: &headers)
        )
        let limits = UpstreamLimits(model: model.definition, provider: gateway.provider.timeouts, stream: stream)
        let sent = ContinuousClock.now
        endpoint.begin()
        let response: UpstreamResponse
        do {
            response = try await gateway.provider.send(
                UpstreamRequest(
                    operation: wire.operation, body: body, contentType: wire.contentType, headers: headers, endpoint: endpoint.definition,
                    stream: stream, deadline: .now() + .init(limits.total), firstByteTimeout: limits.firstByte
                ),
                logger: logger.logger
            )
        } catch {
            throw await failed(error, elapsed: (ContinuousClock.now - sent).seconds, span: span)
        }
        let firstByte = ContinuousClock.now - sent
        guard (200..<300).contains(response.status) else {
            throw await refused(response, firstByte: firstByte, span: span)
        }
        endpoint.record(.success(firstByte: firstByte.seconds))
        ticket?.delivered()
        let contentType = response.headers.first(name: "Content-Type") ?? "application/json"
        if wire.answer == .raw, !Gateway.readsUsage(of: wire.operation, contentType: contentType) {
            return try relayBytes(
                response, contentType: contentType, deadline: sent + limits.total, idle: limits.idle, firstByte: firstByte, span: span)
        }
        if stream && contentType.lowercased().hasPrefix("text/event-stream") {
            return relayEvents(response, deadline: sent + limits.total, idle: limits.idle, firstByte: firstByte, span: span)
        }
        return try await buffered(response, contentType: contentType, sent: sent, total: limits.total, span: span)
    }

    // MARK: - No answer

    /// The caller's error for a call that got no answer, the endpoint's outcome recorded.
    private func failed(_ error: UpstreamFailure, elapsed: Double, span: AttemptSpan) async -> LISAError {
        endpoint.end()
        span.end(status: nil, error: error.spanErrorType)
        if case .cancelled = error.reason {
            logger.debug("request cancelled: the client went away")
        } else {
            logger.warning("upstream request failed", metadata: ["lisa.reason": "\(error)"])
        }
        switch error.reason {
        case .connectFailed(let why):
            endpoint.record(.failure(elapsed: elapsed))
            return LISAError.badGateway("No endpoint of the model '\(modelID)' could be reached (\(why)).", reason: "upstream_unreachable")
                .markedRetriable
        case .tls(let detail):
            endpoint.record(.failure(elapsed: elapsed))
            let tls = (endpoint.definition.tls ?? UpstreamTLS()).over(gateway.provider.defaultTLS)
            let why = await TLSDiagnosis.explain(url: endpoint.definition.url, tls: tls, fallback: detail)
            logger.warning("upstream TLS failed", metadata: ["lisa.endpoint": "\(endpoint.label)", "lisa.reason": "\(why)"])
            return LISAError.badGateway("TLS with endpoint \(endpoint.label) of model '\(modelID)' failed: \(why).", reason: "upstream_tls_error")
                .markedRetriable
        case .connectionClosed:
            endpoint.record(.failure(elapsed: elapsed))
            return LISAError.badGateway("The upstream of model '\(modelID)' closed the connection before answering.", reason: "upstream_closed")
                .markedRetriable
        case .timedOut:
            endpoint.record(.failure(elapsed: elapsed))
            // Nothing reached the client: another endpoint may answer (the retry budget
            // bounds the extra load), and this one's circuit counts the stall.
            ticket?.delivered()
            return LISAError.gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.").markedRetriable
        case .cancelled:
            endpoint.record(.abandoned(elapsed: elapsed))
            ticket?.delivered()
            return .cancelled()
        case .other:
            endpoint.record(.failure(elapsed: elapsed))
            return .badGateway("The upstream of model '\(modelID)' failed before answering.")
        }
    }

    /// The caller's error for an upstream's error status, the endpoint's outcome recorded.
    private func refused(_ response: UpstreamResponse, firstByte: Duration, span: AttemptSpan) async -> LISAError {
        let errorBody = try? await response.body.collect(upTo: 1024 * 1024)
        endpoint.end()
        span.end(status: response.status, error: String(response.status))
        let refusal = UpstreamRefusal(status: response.status, body: errorBody, headers: response.headers, modelID: modelID, firstByte: firstByte)
        logger.warning("upstream answered an error", metadata: ["lisa.status": "\(response.status)", "lisa.detail": "\(refusal.detail)"])
        endpoint.record(refusal.outcome)
        // An upstream's message names the model as it knows it: the client sees its own name.
        var error = refusal.error
        if !model.definition.passUpstreamModelName { error = error.naming(model.definition.modelName, as: requested) }
        return refusal.retriable ? error.markedRetriable : error
    }

    // MARK: - Answers

    /// Audio and subtitles: bytes of an allowed media type, relayed as they arrive.
    private func relayBytes(
        _ response: UpstreamResponse, contentType: String, deadline: ContinuousClock.Instant, idle: Duration?, firstByte: Duration, span: AttemptSpan
    ) throws(LISAError) -> GatewayResponse {
        guard let relayedType = Gateway.relayableMediaType(contentType) else {
            endpoint.end()
            span.end(status: response.status, error: "upstream_invalid_response")
            logger.warning("upstream answered a media type LISA does not relay", metadata: ["lisa.content_type": "\(contentType)"])
            throw .badGateway(
                "The upstream of model '\(modelID)' answered with a media type LISA does not relay.", reason: "upstream_invalid_response")
        }
        let (metrics, endpoint, ticket, requested, start) = (gateway.metrics, self.endpoint, self.ticket, self.requested, self.start)
        metrics.overhead(model: requested, (ContinuousClock.now - start) - firstByte)
        let served = model.definition
        let status = response.status
        let relayed = RelayedBody(body: response.body, deadline: deadline, idleTimeout: idle) { failed in
            endpoint.end()
            span.end(status: status, error: failed ? "stream_error" : nil)
            ticket?.finish(servedBy: served, endpoint: endpoint.label, usage: nil, outputEstimate: 0, firstToken: nil, failed: failed)
            if failed { metrics.streamError(model: requested) }
            metrics.request(
                model: requested, endpoint: endpoint.label, status: GatewayMetrics.statusLabel(for: nil), duration: ContinuousClock.now - start)
        }
        return GatewayResponse(contentType: relayedType, body: .bytes(relayed))
    }

    /// A stream, relayed event by event: translated to chat chunks where the upstream speaks
    /// another dialect, renamed to the model the client asked for.
    private func relayEvents(
        _ response: UpstreamResponse, deadline: ContinuousClock.Instant, idle: Duration?, firstByte: Duration, span: AttemptSpan
    ) -> GatewayResponse {
        let (metrics, endpoint, ticket, requested, start) = (gateway.metrics, self.endpoint, self.ticket, self.requested, self.start)
        metrics.overhead(model: requested, (ContinuousClock.now - start) - firstByte)
        let served = model.definition
        let status = response.status
        var relay = ServerSentEventRelay(
            body: wire.events(of: response.body), modelID: requested, logger: logger.withMetadata, deadline: deadline, idleTimeout: idle,
            drain: gateway.drain, framing: wire.framing
        ) { summary in
            endpoint.end()
            span.end(status: status, error: summary.stalled ? "stream_idle_timeout" : summary.failed ? "stream_error" : nil)
            // A stream that went quiet counts against its endpoint, as a stall before the head does.
            if summary.stalled { endpoint.record(.failure(elapsed: idle?.seconds ?? 0)) }
            if let firstEvent = summary.firstEvent { metrics.timeToFirstToken(model: requested, firstEvent - start) }
            if let usage = summary.usage { metrics.tokens(model: requested, usage: usage) }
            ticket?.finish(
                servedBy: served, endpoint: endpoint.label, usage: summary.usage, outputEstimate: summary.events, firstToken: summary.firstEvent,
                failed: summary.failed
            )
            if summary.failed { metrics.streamError(model: requested) }
            metrics.request(
                model: requested, endpoint: endpoint.label, status: GatewayMetrics.statusLabel(for: nil), duration: ContinuousClock.now - start)
        }
        // Every chunk names the model the client asked for, unless this model shows its upstream's.
        if !model.definition.passUpstreamModelName { relay = relay.answering(asModel: requested) }
        return GatewayResponse(contentType: "text/event-stream", body: .eventStream(relay))
    }

    /// A buffered answer: collected within the memory budget and the deadline, translated into
    /// the client's dialect, its usage read once.
    private func buffered(
        _ response: UpstreamResponse, contentType: String, sent: ContinuousClock.Instant, total: Duration, span: AttemptSpan
    ) async throws(LISAError) -> GatewayResponse {
        let metrics = gateway.metrics
        // What the answer costs until it is written: more when it is translated here, most
        // when the client's dialect translates it after (held as parsed JSON meanwhile).
        let factor =
            wire.translatedByDialect
            ? AnswerMemoryBudget.Factor.translatedForDialect
            : wire.answer == .asIs ? AnswerMemoryBudget.Factor.passedThrough : AnswerMemoryBudget.Factor.translatedFromUpstream
        let charge = gateway.answerMemory.charge(factor: factor)
        var buffer: ByteBuffer
        do {
            let collect = { @Sendable () async throws(UpstreamFailure) -> ByteBuffer in
                do {
                    return try await response.body.collect(upTo: Gateway.maxBufferedResponseSize, charging: charge)
                } catch {
                    throw UpstreamFailure(classifying: error)
                }
            }
            // The provider's deadline may stop at the head; the body then gets what is left of it here.
            buffer =
                gateway.provider.deadlineCoversBody
                ? try await collect() : try await FirstByteTimer.run(within: (sent + total) - ContinuousClock.now, collect)
            endpoint.end()
            span.end(status: response.status, error: nil)
        } catch {
            endpoint.end()
            span.end(status: response.status, error: error.spanErrorType)
            throw collectFailed(error, charge: charge)
        }
        let finished = ContinuousClock.now
        metrics.overhead(model: requested, (finished - start) - (finished - sent))
        metrics.timeToFirstToken(model: requested, finished - start)
        // A large answer is translated and renamed off the event loops: it would hold up every
        // other connection of this one meanwhile.
        let (wire, modelID, requested, body) = (self.wire, self.modelID, self.requested, self.body)
        let rename = !model.definition.passUpstreamModelName
        let collected = buffer
        buffer = try await Gateway.offEventLoops(ifLarge: collected.readableBytes) { () throws(LISAError) -> ByteBuffer in
            try wire.translatedAnswer(collected, modelID: modelID, requested: requested, request: body, rename: rename)
        }
        var (reported, usageEstimated) = (wire.usage(in: buffer), false)
        if let reported { metrics.tokens(model: requested, usage: reported) }
        // Images and transcripts report usage in their own shapes, or their length in seconds.
        if reported == nil, let media = Gateway.mediaUsage(wire.operation, answer: buffer) {
            if !media.estimated { metrics.tokens(model: requested, usage: media.usage) }
            (reported, usageEstimated) = (media.usage, media.estimated)
        }
        metrics.request(model: requested, endpoint: endpoint.label, status: GatewayMetrics.statusLabel(for: nil), duration: finished - start)
        // LISA answers these routes with JSON only: whatever the upstream labelled its body,
        // it is never relayed as HTML or script from LISA's origin.
        guard buffer.readableBytesView.first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }) == UInt8(ascii: "{") else {
            logger.warning("upstream answered a body that is not a JSON object", metadata: ["lisa.content_type": "\(contentType)"])
            throw .badGateway(
                "The upstream of model '\(modelID)' answered with something other than a JSON object.", reason: "upstream_invalid_response")
        }
        // Without the upstream's count, a text answer is about four bytes a token, less the JSON
        // around it; vectors, scores and images are no output tokens.
        let answersText = ([.chatCompletions, .completions, .messages, .responses] as [UpstreamOperation]).contains(wire.operation)
        ticket?.finish(
            servedBy: model.definition, endpoint: endpoint.label, usage: reported, usageEstimated: usageEstimated,
            outputEstimate: answersText ? max(buffer.readableBytes - 300, 0) / 4 : 0, firstToken: finished
        )
        var answer = GatewayResponse(contentType: "application/json", body: .buffer(buffer))
        answer.memoryCharge = charge
        return answer
    }

    /// The caller's error for a buffered answer that could not be read whole.
    private func collectFailed(_ error: UpstreamFailure, charge: AnswerMemoryCharge) -> LISAError {
        if Task.isCancelled { return .cancelled() }
        logger.warning("reading the upstream answer failed", metadata: ["lisa.reason": "\(error)"])
        if case .timedOut = error.reason {
            return .gatewayTimeout("The upstream of model '\(modelID)' did not answer in time.")
        }
        if let refusal = charge.refusal {
            charge.release()
            switch refusal {
            case .tooLargeForOneCall(let limit):
                return .badGateway(
                    "The upstream of model '\(modelID)' sent an answer larger than LISA holds for one call (\(limit) bytes for this answer).",
                    reason: "upstream_answer_too_large"
                )
            case .budgetSpent:
                gateway.metrics.answerMemoryRefused()
                return LISAError(
                    .upstreamUnavailable, "LISA holds as many buffered answers as its memory budget allows; retry shortly.",
                    reason: "answer_memory_budget", retryAfter: 1
                )
            }
        }
        return .badGateway("The upstream of model '\(modelID)' sent an incomplete or oversized answer.")
    }
}

/// An upstream's error status, read once: the caller's error, whether another endpoint may do
/// better, and what the endpoint's circuit breaker and balancer learn.
struct UpstreamRefusal {
    var error: LISAError
    var retriable: Bool
    var outcome: Endpoint.Outcome
    /// The upstream's own message (or the start of its body), for the log.
    var detail: String

    init(status: Int, body: ByteBuffer?, headers: HTTPHeaders, modelID: String, firstByte: Duration) {
        // OpenAI's envelope, or the flat one vLLM and other FastAPI servers send ({"object":"error","message":…}).
        let upstream =
            body.flatMap { try? JSONDecoder().decode(ErrorResponse.self, from: $0) }?.error
            ?? body.flatMap { try? JSONDecoder().decode(ErrorResponse.Body.self, from: $0) }
        detail = upstream?.message ?? body.map { String(buffer: $0).prefix(300) }.map(String.init) ?? ""
        let suffix = detail.isEmpty ? "" : ": \(detail)"
        // The caller's fault, or the upstream's answer to the caller: the endpoint is healthy.
        (retriable, outcome) = (false, .success(firstByte: firstByte.seconds))
        switch status {
        case 400, 413, 422:
            let body = upstream ?? ErrorResponse.Body(message: detail, type: "invalid_request_error")
            error = .upstreamClientError(status: status == 422 ? 400 : status, body: body)
        case 401, 403:
            error = .badGateway("The upstream of model '\(modelID)' rejected LISA's credentials (HTTP \(status)).", reason: "upstream_auth_failed")
        case 404:
            error = .badGateway(
                "The upstream of model '\(modelID)' answered 404; check the model's modelName and URL\(suffix)", reason: "upstream_not_found")
        case 429:
            let retryAfter = headers.first(name: "Retry-After").flatMap { Int($0) }
            error = .rateLimited("The upstream of model '\(modelID)' is rate limiting requests\(suffix)", retryAfter: retryAfter)
            (retriable, outcome) = (true, .abandoned(elapsed: 0))
        case 503, 529:
            error = .serviceUnavailable("The upstream of model '\(modelID)' is unavailable\(suffix)")
            (retriable, outcome) = (true, .failure(elapsed: firstByte.seconds))
        case 504:
            error = .gatewayTimeout("The upstream of model '\(modelID)' timed out\(suffix)")
            (retriable, outcome) = (true, .failure(elapsed: firstByte.seconds))
        default:
            error = .badGateway("The upstream of model '\(modelID)' failed with HTTP \(status)\(suffix)")
            if status >= 500 { (retriable, outcome) = (status == 502, .failure(elapsed: firstByte.seconds)) }
        }
    }
}

/// An attempt's client span, ended once with the upstream's status and any error type.
struct AttemptSpan: Sendable {
    private let span: (any Span)?

    init(_ span: (any Span)?) {
        self.span = span
    }

    func end(status: Int?, error: String?) {
        guard let span else { return }
        if let status { span.attributes["http.response.status_code"] = status }
        if let error {
            span.attributes["error.type"] = error
            span.setStatus(SpanStatus(code: .error, message: error))
        }
        span.end()
    }
}
