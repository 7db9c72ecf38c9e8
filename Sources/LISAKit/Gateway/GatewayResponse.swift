import AsyncHTTPClient
import Foundation
public import Logging
public import NIOCore
import Synchronization

/// What the gateway answers an inference request with, independent of any HTTP server:
/// a successful answer (failures are thrown as ``LISAError``s).
public struct GatewayResponse: Sendable {
    /// A complete body, or server-sent events relayed as they arrive.
    public enum Body: Sendable {
        case buffer(ByteBuffer)
        case eventStream(ServerSentEventRelay)
        /// Bytes relayed as the upstream sends them (speech audio, transcripts as text or
        /// events), of ``GatewayResponse/contentType``.
        case bytes(RelayedBody)
    }

    /// The body's media type: `application/json`, `text/event-stream`, or for
    /// ``Body/bytes(_:)`` the upstream's (audio, text, subtitles).
    public var contentType: String
    public var body: Body
    /// The memory a buffered answer holds on the gateway's ``AnswerMemoryBudget``, given
    /// back once the answer is dropped (after it has been written, or translated and written).
    var memoryCharge: AnswerMemoryCharge?

    public init(contentType: String, body: Body) {
        self.contentType = contentType
        self.body = body
    }
}

/// What a relayed stream amounted to, reported once when it ends (completely, with an
/// error, or because the client went away).
public struct StreamSummary: Sendable {
    /// When the first event was relayed.
    public var firstEvent: ContinuousClock.Instant?
    /// Token usage from the upstream's last chunk (`stream_options.include_usage`).
    public var usage: Usage?
    /// Whether the stream ended with an error event instead of `[DONE]`.
    public var failed = false
    /// Whether it ended because the upstream went quiet for longer than the idle timeout.
    public var stalled = false
    /// How many events were relayed (about one a token: the estimate of output tokens
    /// when the upstream reports no usage).
    public var events = 0
}

/// Relays an upstream's `text/event-stream` event by event.
///
/// Each element is one or more complete events, exactly as the upstream sent them, yielded
/// as soon as their terminating blank line arrives. The relay never invents a `[DONE]`: if
/// the upstream fails or ends the stream before `data: [DONE]`, the last element is an
/// `event: error` in OpenAI's error shape and the sequence ends. The same happens when the
/// stream outlives its deadline. Relay it once, with ``pump(into:)``.
public struct ServerSentEventRelay: Sendable {
    private let body: UpstreamBody
    /// The dialect of the relayed events: how the stream ends, where usage is, how an error
    /// event is written.
    private let framing: DialectName
    private let modelID: String
    private let logger: Logger
    private let deadline: ContinuousClock.Instant?
    private let idleTimeout: Duration?
    private let drain: DrainSignal?
    /// Reports the summary once: when the stream ends, or when the last copy of the relay is
    /// released without having been pumped (the client left before the answer started).
    private let tracker: Tracker
    /// An event to send just before the upstream's `data: [DONE]` (grounded chat's sources).
    private var injector: SourcesInjector?
    /// Rewrites what is relayed (another dialect's events), after the injector.
    private var transform: (@Sendable (ByteBuffer) async throws -> ByteBuffer)?
    /// The model name every event carries instead of the upstream's; `nil`: as sent.
    private var answerModel: AnswerModelName?

    /// - Parameters:
    ///   - deadline: when the whole stream must have ended (the model's total timeout).
    ///   - idleTimeout: the longest the upstream may send nothing, from the relay's creation
    ///     (the response head) on; past it the stream ends with an error event.
    ///   - drain: the process's shutdown signal: a stream still open at its deadline ends
    ///     with an error event saying LISA is shutting down.
    ///   - onFinish: called exactly once when the stream ends, however it ends (also when
    ///     the relay is cancelled because the client left).
    public init(
        body: UpstreamBody, modelID: String, logger: Logger, deadline: ContinuousClock.Instant? = nil, idleTimeout: Duration? = nil,
        drain: DrainSignal? = nil, framing: DialectName = .chatCompletions, onFinish: @escaping @Sendable (StreamSummary) -> Void = { _ in }
    ) {
        self.body = body
        self.drain = drain
        self.idleTimeout = idleTimeout
        self.framing = framing
        self.modelID = modelID
        self.logger = logger
        self.deadline = deadline
        self.tracker = Tracker(onFinish)
    }

    /// This relay with `event` sent just before the upstream's `data: [DONE]`; a stream that
    /// ends with an error gets none (it would describe an answer that failed).
    public func injecting(beforeDone event: ByteBuffer) -> ServerSentEventRelay {
        var copy = self
        copy.injector = SourcesInjector(event: event)
        return copy
    }

    /// This relay with the model each event names (`model` of a chunk, `message.model` of
    /// `message_start`, `response.model` of the Responses events that carry the response)
    /// replaced by `model`, before the injector and any transform see the event.
    public func answering(asModel model: String) -> ServerSentEventRelay {
        var copy = self
        copy.answerModel = AnswerModelName(model)
        return copy
    }

    /// This relay with every relayed element rewritten by `transform` (complete events in,
    /// any bytes out; empty output sends nothing). Transforms compose in the order added.
    public func mapping(_ transform: @escaping @Sendable (ByteBuffer) async throws -> ByteBuffer) -> ServerSentEventRelay {
        var copy = self
        if let existing = copy.transform {
            copy.transform = { chunk in try await transform(try await existing(chunk)) }
        } else {
            copy.transform = transform
        }
        return copy
    }

    /// Relays every event to `sink` as it arrives, then returns. Cancelling the calling task
    /// cancels the upstream request.
    public func pump(into target: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws {
        let (body, modelID, logger, tracker, framing, answerModel) = (
            self.body, self.modelID, self.logger, self.tracker, self.framing, self.answerModel
        )
        let output: @Sendable (ByteBuffer) async throws -> Void =
            if let transform {
                { chunk in
                    let mapped = try await transform(chunk)
                    if mapped.readableBytes > 0 { try await target(mapped) }
                }
            } else {
                target
            }
        let sink: @Sendable (ByteBuffer) async throws -> Void =
            if let injector {
                { chunk in for piece in injector.process(chunk) { try await output(piece) } }
            } else {
                output
            }
        let (deadline, idleTimeout, drain) = (self.deadline, self.idleTimeout, self.drain)
        let ending = try await withThrowingTaskGroup(of: Ending.self) { group in
            group.addTask {
                var iterator = AsyncIterator(
                    upstream: body.makeAsyncIterator(), modelID: modelID, logger: logger, tracker: tracker, framing: framing,
                    answerModel: answerModel
                )
                while let events = try await iterator.next() {
                    // The client's turn: a slow reader is not an idle upstream.
                    tracker.lastActivity.store(.max, ordering: .relaxed)
                    try await sink(events)
                }
                return .completed
            }
            if deadline != nil || idleTimeout != nil {
                // One watchdog per stream: it sleeps until the total deadline or the idle
                // limit after the last upstream bytes, whichever is first, and re-checks.
                group.addTask {
                    let idle = idleTimeout.map { UInt64($0.seconds * 1e9) }
                    while true {
                        let now = DispatchTime.now().uptimeNanoseconds
                        var wait = deadline.map { max(($0 - ContinuousClock.now).seconds, 0) } ?? .infinity
                        if wait <= 0 { return .deadline }
                        if let idle {
                            let quietFor = now &- min(tracker.lastActivity.load(ordering: .relaxed), now)
                            if quietFor >= idle { return .idle }
                            wait = min(wait, Double(idle - quietFor) / 1e9)
                        }
                        try await EventLoopTimer.sleep(for: .nanoseconds(Int64(min(wait, 86_400) * 1e9)))
                    }
                }
            }
            if let drain {
                group.addTask {
                    guard let cut = await drain.waitForDeadline() else { return .completed }
                    try await EventLoopTimer.sleep(for: cut - ContinuousClock.now)
                    return .shutdown
                }
            }
            // The first task to end decides; a drain waiter cancelled early says `.completed`
            // only after the stream itself ended, since it is cancelled by `cancelAll` below.
            let ending = try await group.next() ?? .completed
            if ending != .completed {
                tracker.update {
                    $0.failed = true; $0.stalled = ending == .idle
                }
            }
            group.cancelAll()
            return ending
        }
        switch ending {
        case .completed:
            return
        case .deadline:
            logger.warning("upstream stream exceeded its total timeout")
            tracker.finish()
            try await sink(framing.errorEvent(LISAError.gatewayTimeout("The upstream of model '\(modelID)' timed out during the stream.")))
        case .shutdown:
            logger.warning("stream cut by shutdown")
            tracker.finish()
            try await sink(
                framing.errorEvent(
                    LISAError.serviceUnavailable("LISA is shutting down and ended the stream before the upstream finished; retry the request.")
                )
            )
        case .idle:
            let seconds = idleTimeout.map { String(format: "%g", $0.seconds) } ?? "?"
            logger.warning("upstream stream went quiet past its idle timeout", metadata: ["lisa.idle_seconds": "\(seconds)"])
            tracker.finish()
            try await sink(
                framing.errorEvent(LISAError.gatewayTimeout("The upstream of model '\(modelID)' sent nothing for \(seconds) s during the stream."))
            )
        }
    }

    /// How a relay ended: the upstream's stream ended (well or not), or a timeout cut it.
    enum Ending: Sendable { case completed, deadline, idle, shutdown }

    /// Collects the summary and reports it once: at the end, or when the iterator goes away.
    final class Tracker: Sendable {
        private let state: Mutex<(summary: StreamSummary, reported: Bool)>
        private let onFinish: @Sendable (StreamSummary) -> Void
        /// Since when the relay has waited on the upstream (uptime nanoseconds), for the idle
        /// watchdog; `UInt64.max` while the client is being written to.
        let lastActivity: Atomic<UInt64>

        init(_ onFinish: @escaping @Sendable (StreamSummary) -> Void) {
            self.onFinish = onFinish
            self.state = Mutex((StreamSummary(), false))
            self.lastActivity = Atomic(DispatchTime.now().uptimeNanoseconds)
        }

        func update(_ change: (inout StreamSummary) -> Void) {
            state.withLock { change(&$0.summary) }
        }

        func finish() {
            let summary: StreamSummary? = state.withLock { state in
                guard !state.reported else { return nil }
                state.reported = true
                return state.summary
            }
            if let summary { onFinish(summary) }
        }

        deinit { finish() }
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var upstream: UpstreamBody.AsyncIterator
        let modelID: String
        let logger: Logger
        let tracker: Tracker
        let framing: DialectName
        let answerModel: AnswerModelName?
        var parser = ServerSentEventParser()
        var finished = false
        var sawDone = false
        /// The upstream sent its own error event: the stream failed, and says so already.
        var upstreamFailed = false
        var sawFirst = false

        mutating func next() async throws -> ByteBuffer? {
            guard !finished else { return nil }
            while true {
                // The upstream's turn from now: the idle watchdog measures from here.
                tracker.lastActivity.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
                let chunk: ByteBuffer?
                do {
                    chunk = try await upstream.next()
                } catch {
                    finished = true
                    if Task.isCancelled || error is CancellationError {
                        tracker.finish()
                        throw CancellationError()
                    }
                    let failure = UpstreamFailure(classifying: error)
                    logger.warning("upstream stream failed", metadata: ["lisa.reason": "\(failure)"])
                    let lisaError: LISAError =
                        if case .timedOut = failure.reason {
                            .gatewayTimeout("The upstream of model '\(modelID)' timed out during the stream.")
                        } else {
                            .badGateway("The upstream of model '\(modelID)' failed during the stream.")
                        }
                    return fail(lisaError)
                }
                guard let chunk else {
                    finished = true
                    if sawDone {
                        tracker.finish()
                        return nil
                    }
                    if upstreamFailed {
                        tracker.update { $0.failed = true }
                        tracker.finish()
                        return nil
                    }
                    logger.warning("upstream stream ended before [DONE]")
                    return fail(.badGateway("The upstream of model '\(modelID)' ended the stream before it was complete."))
                }
                let events: [ServerSentEventParser.ParsedEvent]
                do {
                    events = try parser.feed(chunk)
                } catch {
                    finished = true
                    logger.warning("upstream stream refused", metadata: ["lisa.reason": "\(error)"])
                    return fail(.badGateway("The upstream of model '\(modelID)' sent an event larger than \(error.limit) bytes."))
                }
                guard !events.isEmpty else { continue }
                var output = ByteBuffer()
                for parsed in events {
                    switch framing {
                    case .chatCompletions:
                        if parsed.event.isDone {
                            sawDone = true
                        } else if parsed.event.event == "error" {
                            upstreamFailed = true
                        } else if parsed.event.data.containsUTF8("\"usage\""), let usage = Self.usage(in: parsed.event.data) {
                            tracker.update { $0.usage = usage }
                        }
                    case .responses:
                        let name = parsed.event.event ?? ""
                        if name == "response.completed" || name == "response.incomplete" || parsed.event.data.containsUTF8("\"response.completed\"")
                            || parsed.event.data.containsUTF8("\"response.incomplete\"")
                        {
                            if let data = DialectJSON.object(in: parsed.event.data), let type = data["type"]?.stringValue,
                                type == "response.completed" || type == "response.incomplete"
                            {
                                sawDone = true
                                if let usage = ResponsesUpstream.usage(data["response"]?["usage"]) { tracker.update { $0.usage = usage } }
                            }
                        } else if name == "error" || name == "response.failed" {
                            upstreamFailed = true
                        } else if name.isEmpty, parsed.event.data.containsUTF8("\"response.failed\"") || parsed.event.data.containsUTF8("\"error\""),
                            let type = DialectJSON.object(in: parsed.event.data)?["type"]?.stringValue, type == "response.failed" || type == "error"
                        {
                            upstreamFailed = true
                        }
                    case .messages:
                        switch parsed.event.event {
                        case "message_stop": sawDone = true
                        case "error": upstreamFailed = true
                        case "message_start", "message_delta":
                            if let usage = Self.anthropicUsage(in: parsed.event.data, start: parsed.event.event == "message_start") {
                                tracker.update { summary in
                                    let prompt = max(summary.usage?.promptTokens ?? 0, usage.promptTokens)
                                    let completion = max(summary.usage?.completionTokens ?? 0, usage.completionTokens ?? 0)
                                    summary.usage = Usage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
                                }
                            }
                        default: break
                        }
                    }
                    if let answerModel {
                        answerModel.write(event: parsed.raw, parsed.event, framing: framing, into: &output)
                    } else {
                        output.writeImmutableBuffer(parsed.raw)
                    }
                }
                let relayed = events.reduce(0) { $0 + ($1.event.isDone ? 0 : 1) }
                tracker.update { $0.events += relayed }
                if !sawFirst {
                    sawFirst = true
                    let now = ContinuousClock.now
                    tracker.update { $0.firstEvent = now }
                }
                return output
            }
        }

        private func fail(_ error: LISAError) -> ByteBuffer {
            tracker.update { $0.failed = true }
            tracker.finish()
            return framing.errorEvent(error)
        }

        private static func anthropicUsage(in data: String, start: Bool) -> Usage? {
            guard data.containsUTF8("\"usage\""), let event = DialectJSON.object(in: data) else { return nil }
            return AnthropicUpstream.usage(start ? event["message"]?["usage"] : event["usage"])
        }

        private struct UsageChunk: Decodable {
            var usage: Usage?
        }

        private static func usage(in data: String) -> Usage? {
            try? JSONDecoder().decode(UsageChunk.self, from: Data(data.utf8)).usage
        }
    }
}

extension DialectName {
    /// The error event of this dialect for `error`, as bytes.
    func errorEvent(_ error: LISAError) -> ByteBuffer {
        var buffer = ByteBuffer()
        dialect.errorEvent(for: error).write(to: &buffer)
        return buffer
    }
}

/// An upstream body relayed byte for byte as it arrives, within the model's total timeout;
/// `onFinish` is told once whether it failed (an upstream error or the deadline), also when
/// the client leaves first. A failure ends the body early: the client sees a short body and
/// a closed connection, as a byte stream has no error event.
///
/// Relay it with ``pump(into:)``, which also ends it when the upstream sends nothing for the
/// idle timeout; iterating it directly applies the total deadline only.
public struct RelayedBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let body: UpstreamBody
    private let deadline: ContinuousClock.Instant
    private let idleTimeout: Duration?
    private let tracker: Finisher

    public init(
        body: UpstreamBody, deadline: ContinuousClock.Instant, idleTimeout: Duration? = nil, onFinish: @escaping @Sendable (_ failed: Bool) -> Void
    ) {
        self.body = body
        self.deadline = deadline
        self.idleTimeout = idleTimeout
        self.tracker = Finisher(onFinish)
    }

    /// Writes every chunk to `target` as it arrives; throws ``UpstreamFailure`` (timed out)
    /// when the upstream sends nothing for the idle timeout or the total deadline passes.
    public func pump(into target: @escaping @Sendable (ByteBuffer) async throws -> Void) async throws {
        let (tracker, idleTimeout, deadline) = (self.tracker, self.idleTimeout, self.deadline)
        tracker.waiting.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for try await chunk in self {
                    tracker.waiting.store(.max, ordering: .relaxed)
                    try await target(chunk)
                    tracker.waiting.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
                }
                return true
            }
            group.addTask {
                let idle = idleTimeout.map { UInt64($0.seconds * 1e9) }
                while true {
                    let now = DispatchTime.now().uptimeNanoseconds
                    var wait = Swift.max((deadline - ContinuousClock.now).seconds, 0)
                    if wait <= 0 { return false }
                    if let idle {
                        let quietFor = now &- Swift.min(tracker.waiting.load(ordering: .relaxed), now)
                        if quietFor >= idle { return false }
                        wait = Swift.min(wait, Double(idle - quietFor) / 1e9)
                    }
                    try await EventLoopTimer.sleep(for: .nanoseconds(Int64(Swift.min(wait, 86_400) * 1e9)))
                }
            }
            let completed = try await group.next() ?? true
            group.cancelAll()
            if !completed {
                tracker.finish(failed: true)
                throw UpstreamFailure(reason: .timedOut)
            }
        }
    }

    final class Finisher: Sendable {
        private let reported = Mutex(false)
        /// Since when the relay has waited on the upstream (uptime nanoseconds); `UInt64.max`
        /// while the client is being written to.
        let waiting = Atomic<UInt64>(0)
        private let onFinish: @Sendable (Bool) -> Void
        init(_ onFinish: @escaping @Sendable (Bool) -> Void) { self.onFinish = onFinish }
        func finish(failed: Bool) {
            guard
                !reported.withLock({
                    let was = $0; $0 = true; return was
                })
            else { return }
            onFinish(failed)
        }
        deinit { finish(failed: false) }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: UpstreamBody.AsyncIterator
        let deadline: ContinuousClock.Instant
        let tracker: Finisher

        public mutating func next() async throws -> ByteBuffer? {
            guard ContinuousClock.now < deadline else {
                tracker.finish(failed: true)
                throw UpstreamFailure(reason: .timedOut)
            }
            do {
                guard let chunk = try await base.next() else {
                    tracker.finish(failed: false)
                    return nil
                }
                return chunk
            } catch {
                tracker.finish(failed: !(error is CancellationError))
                throw error
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: body.makeAsyncIterator(), deadline: deadline, tracker: tracker)
    }
}
