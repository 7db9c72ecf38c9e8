public import Logging
public import NIOCore
public import NIOHTTP1

/// Sends one request to one endpoint: the seam between the gateway and the wire.
///
/// ``OpenAICompatibleProvider`` speaks HTTP/1.1 over LISA's lean client (``UpstreamHTTPClient``),
/// ``AsyncHTTPClientProvider`` over AsyncHTTPClient (HTTP/2 too); `InMemoryProvider`
/// (LISAKitTesting) answers in process, for fast deterministic tests. A new transport is a new
/// conformer; the gateway does not change.
public protocol InferenceProvider: Sendable {
    /// The timeouts the gateway gives a call whose model sets none of its own.
    var timeouts: UpstreamTimeouts { get }
    /// TLS for `https` endpoints without settings of their own (used to explain failures).
    var defaultTLS: UpstreamTLS? { get }

    /// Sends `request` and returns once the answer's head is in; the body streams after.
    /// The call fails with `.timedOut` past the request's ``UpstreamRequest/deadline``, or when
    /// the head has not come within its ``UpstreamRequest/firstByteTimeout``. Cancelling the
    /// calling task cancels the call.
    ///
    /// - Throws: ``UpstreamFailure`` when no answer began (connect failure, timeout, TLS),
    ///   saying whether a retry elsewhere is safe.
    func send(_ request: UpstreamRequest, logger: Logger) async throws(UpstreamFailure) -> UpstreamResponse

    /// Whether ``UpstreamRequest/deadline`` bounds the whole answer, its body included. When
    /// it does not (the default), the gateway bounds reading a buffered body itself.
    var deadlineCoversBody: Bool { get }
}

extension InferenceProvider {
    public var deadlineCoversBody: Bool { false }
}

/// One call to one endpoint, with everything the provider needs and nothing it must default.
public struct UpstreamRequest: Sendable {
    public var operation: UpstreamOperation
    public var body: ByteBuffer
    /// `application/json`, or a multipart form's type (image edits, transcriptions).
    public var contentType: String
    /// Client headers carried on (`anthropic-beta`, `traceparent`); the provider adds media
    /// types and the endpoint's credentials.
    public var headers: [(name: String, value: String)]
    public var endpoint: EndpointDefinition
    /// Whether the answer is asked for as an event stream.
    public var stream: Bool
    /// When the whole call must have ended.
    public var deadline: NIODeadline
    /// How long the answer's head may take; `nil`: only the deadline bounds it.
    public var firstByteTimeout: Duration?

    public init(
        operation: UpstreamOperation, body: ByteBuffer, contentType: String = "application/json", headers: [(name: String, value: String)] = [],
        endpoint: EndpointDefinition, stream: Bool = false, deadline: NIODeadline, firstByteTimeout: Duration? = nil
    ) {
        self.operation = operation
        self.body = body
        self.contentType = contentType
        self.headers = headers
        self.endpoint = endpoint
        self.stream = stream
        self.deadline = deadline
        self.firstByteTimeout = firstByteTimeout
    }

    /// The URL of the call: the operation at the endpoint's base URL.
    public var url: String { operation.url(base: endpoint.url) }

    /// The HTTP headers of the call: media types, the client's carried headers, the
    /// endpoint's credentials (`x-api-key` for Anthropic, a bearer token otherwise).
    public var httpHeaders: HTTPHeaders {
        var fields = HTTPHeaders()
        fields.reserveCapacity(4 + headers.count)
        fields.add(name: "Content-Type", value: contentType)
        fields.add(name: "Accept", value: stream ? "text/event-stream" : operation == .audioSpeech ? "*/*" : "application/json")
        for header in headers { fields.add(name: header.name, value: header.value) }
        if operation.isAnthropic {
            fields.add(name: "anthropic-version", value: AnthropicUpstream.apiVersion)
            if let apiKey = endpoint.apiKey, !apiKey.isEmpty { fields.add(name: "x-api-key", value: apiKey) }
        } else if let apiKey = endpoint.apiKey, !apiKey.isEmpty {
            fields.add(name: "Authorization", value: "Bearer \(apiKey)")
        }
        return fields
    }
}

/// The time limits of one attempt, decided in one place: the model's own, else the
/// provider's defaults.
struct UpstreamLimits: Sendable {
    /// The whole call, streaming included.
    var total: Duration
    /// The answer's head; `nil`: only `total` bounds it.
    var firstByte: Duration?
    /// The longest a stream may send nothing.
    var idle: Duration?

    init(model: ModelDefinition, provider defaults: UpstreamTimeouts, stream: Bool) {
        let own = model.timeouts
        total = own?.totalSeconds.map { Duration.seconds(clamping: $0) } ?? defaults.request
        // A stream's head comes at once from model servers; a buffered answer's comes with the
        // whole answer, so only the total bounds it unless the model sets a first-byte limit.
        firstByte = own?.firstByteSeconds.map { Duration.seconds(clamping: $0) } ?? (stream ? defaults.streamFirstByte : nil)
        idle = own?.streamIdleSeconds.map { Duration.seconds(clamping: $0) } ?? defaults.streamIdle
    }
}

/// The one timer for an answer's head (and a buffered body's rest) where the transport has
/// no read timeout of its own: AsyncHTTPClient's provider and in-process providers.
public enum FirstByteTimer {
    /// Runs `operation`, failing it with `.timedOut` if it has not returned within `limit`
    /// (`nil`: no limit).
    public static func run<T: Sendable>(
        within limit: Duration?, _ operation: @escaping @Sendable () async throws(UpstreamFailure) -> T
    ) async throws(UpstreamFailure) -> T {
        guard let limit else { return try await operation() }
        do {
            return try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await EventLoopTimer.sleep(for: max(limit, .zero))
                    throw UpstreamFailure(reason: .timedOut)
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch let failure as UpstreamFailure {
            throw failure
        } catch {
            throw UpstreamFailure(reason: Task.isCancelled ? .cancelled : .other("\(error)"))
        }
    }
}

/// An upstream's answer: status, headers, and a body that streams as it arrives.
public struct UpstreamResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: UpstreamBody

    public init(status: Int, headers: HTTPHeaders, body: UpstreamBody) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// An answer's body: any sequence of byte buffers, read once.
public struct UpstreamBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    private let base: any AsyncSequence<ByteBuffer, any Error> & Sendable

    public init(_ base: some AsyncSequence<ByteBuffer, any Error> & Sendable) {
        self.base = base
    }

    /// A body of buffers known up front.
    public init(_ buffers: [ByteBuffer]) {
        self.init(Buffers(buffers: buffers))
    }

    /// The body's bytes stop past `maxBytes`.
    public struct TooLarge: Error, Sendable {
        public var maxBytes: Int
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<ByteBuffer, any Error>

        public mutating func next() async throws -> ByteBuffer? {
            try await base.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator())
    }

    /// The whole body; throws ``TooLarge`` past `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        for try await var chunk in self {
            guard collected.readableBytes + chunk.readableBytes <= maxBytes else { throw TooLarge(maxBytes: maxBytes) }
            collected.writeBuffer(&chunk)
        }
        return collected
    }

    /// The whole body, each part charged to `charge` as it arrives; throws ``TooLarge`` past
    /// `maxBytes`, and the charge's refusal when the answer does not fit its memory budget.
    func collect(upTo maxBytes: Int, charging charge: AnswerMemoryCharge) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        for try await var chunk in self {
            guard collected.readableBytes + chunk.readableBytes <= maxBytes else { throw TooLarge(maxBytes: maxBytes) }
            try charge.add(chunk.readableBytes)
            collected.writeBuffer(&chunk)
        }
        return collected
    }

    private struct Buffers: AsyncSequence, Sendable {
        let buffers: [ByteBuffer]

        struct AsyncIterator: AsyncIteratorProtocol {
            var remaining: ArraySlice<ByteBuffer>
            mutating func next() async throws -> ByteBuffer? { remaining.popFirst() }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(remaining: buffers[...]) }
    }
}
