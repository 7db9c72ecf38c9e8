public import Logging
public import NIOCore
public import NIOHTTP1

/// Sends one operation to one endpoint: the seam between the gateway and the wire.
///
/// ``OpenAICompatibleProvider`` speaks HTTP to OpenAI-compatible servers; `InMemoryProvider`
/// (LISAKitTesting) answers in process, for fast deterministic tests. A new upstream dialect
/// or a leaner client is a new conformer; the gateway does not change.
public protocol InferenceProvider: Sendable {
    /// Timeouts of calls that set none of their own.
    var timeouts: UpstreamTimeouts { get }
    /// TLS for `https` endpoints without settings of their own (used to explain failures).
    var defaultTLS: UpstreamTLS? { get }

    /// Sends `body` as `operation` to `endpoint` and returns once the answer's head is in;
    /// the body streams after. Cancelling the calling task cancels the call.
    ///
    /// - Throws: ``UpstreamFailure`` when no answer began (connect failure, timeout, TLS),
    ///   saying whether a retry elsewhere is safe.
    func send(
        _ operation: UpstreamOperation, body: ByteBuffer, to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?,
        logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse

    /// Sends `body` of media type `contentType` (a multipart form for image edits and
    /// transcriptions) with `headers` the client's request carries on (only
    /// `anthropic-beta` today); plain JSON calls use ``send(_:body:to:stream:deadline:logger:)``.
    /// Conformers that only speak JSON need not implement it: the default refuses other
    /// types and drops the headers.
    func send(
        _ operation: UpstreamOperation, body: ByteBuffer, contentType: String, headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse

    /// ``send(_:body:contentType:headers:to:stream:deadline:logger:)`` failing with
    /// `.timedOut` when the answer's head has not come within `firstByteTimeout`. The gateway
    /// calls this one. The default runs the call beside a timer; a conformer whose client has
    /// its own read timeouts implements it without one.
    func send(
        _ operation: UpstreamOperation, body: ByteBuffer, contentType: String, headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?, firstByteTimeout: Duration?, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse

    /// Whether `deadline` bounds the whole answer, its body included. When it does not (the
    /// default), the gateway bounds reading a buffered body itself.
    var deadlineCoversBody: Bool { get }
}

extension InferenceProvider {
    public func send(
        _ operation: UpstreamOperation, body: ByteBuffer, contentType: String, headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        guard contentType == "application/json" else {
            throw UpstreamFailure(reason: .other("this provider sends JSON bodies only, not \(contentType)"))
        }
        return try await send(operation, body: body, to: endpoint, stream: stream, deadline: deadline, logger: logger)
    }

    public func send(
        _ operation: UpstreamOperation, body: ByteBuffer, contentType: String, headers: [(name: String, value: String)],
        to endpoint: EndpointDefinition, stream: Bool, deadline: NIODeadline?, firstByteTimeout: Duration?, logger: Logger
    ) async throws(UpstreamFailure) -> UpstreamResponse {
        try await Gateway.withFirstByteTimeout(firstByteTimeout?.seconds) { () async throws(UpstreamFailure) in
            try await self.send(
                operation, body: body, contentType: contentType, headers: headers, to: endpoint, stream: stream, deadline: deadline, logger: logger
            )
        }
    }

    public var deadlineCoversBody: Bool { false }
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
