import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// What the gateway answers an inference request with, independent of any HTTP server.
public struct GatewayResponse: Sendable {
    /// A complete body, or server-sent events relayed as they arrive.
    public enum Body: Sendable {
        case buffer(ByteBuffer)
        case eventStream(ServerSentEventRelay)
    }

    public var status: Int
    public var contentType: String
    public var body: Body

    public init(status: Int, contentType: String, body: Body) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

/// Relays an upstream's `text/event-stream` event by event.
///
/// Each element is one or more complete events, exactly as the upstream sent them, yielded
/// as soon as their terminating blank line arrives. The relay never invents a `[DONE]`: if
/// the upstream fails or ends the stream before `data: [DONE]`, the last element is an
/// `event: error` in OpenAI's error shape and the sequence ends.
public struct ServerSentEventRelay: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let body: HTTPClientResponse.Body
    private let modelID: String
    private let logger: Logger

    public init(body: HTTPClientResponse.Body, modelID: String, logger: Logger) {
        self.body = body
        self.modelID = modelID
        self.logger = logger
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(upstream: body.makeAsyncIterator(), modelID: modelID, logger: logger)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var upstream: HTTPClientResponse.Body.AsyncIterator
        let modelID: String
        let logger: Logger
        var parser = ServerSentEventParser()
        var finished = false
        var sawDone = false

        public mutating func next() async throws -> ByteBuffer? {
            guard !finished else { return nil }
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await upstream.next()
                } catch {
                    finished = true
                    if Task.isCancelled || error is CancellationError { throw CancellationError() }
                    let failure = UpstreamFailure(classifying: error)
                    logger.warning(
                        "upstream stream failed", metadata: ["lisa.model": "\(modelID)", "lisa.reason": "\(failure)"]
                    )
                    let lisaError: LISAError =
                        if case .timedOut = failure.reason {
                            .gatewayTimeout("The upstream of model '\(modelID)' timed out during the stream.")
                        } else {
                            .badGateway("The upstream of model '\(modelID)' failed during the stream.")
                        }
                    return Self.encode(.error(lisaError.body))
                }
                guard let chunk else {
                    finished = true
                    if sawDone { return nil }
                    logger.warning("upstream stream ended before [DONE]", metadata: ["lisa.model": "\(modelID)"])
                    return Self.encode(
                        .error(LISAError.badGateway("The upstream of model '\(modelID)' ended the stream before it was complete.").body)
                    )
                }
                let events = parser.feed(chunk)
                guard !events.isEmpty else { continue }
                var output = ByteBuffer()
                for parsed in events {
                    if parsed.event.isDone { sawDone = true }
                    output.writeImmutableBuffer(parsed.raw)
                }
                return output
            }
        }

        private static func encode(_ event: ServerSentEvent) -> ByteBuffer {
            var buffer = ByteBuffer()
            event.write(to: &buffer)
            return buffer
        }
    }
}
