import Foundation
import Logging

/// A logger and the request's metadata, merged only when something is logged: changing a
/// `Logger`'s metadata re-renders it in some handlers, which is too costly per request.
struct RequestLogger: Sendable {
    let logger: Logger
    var metadata: Logger.Metadata

    func adding(_ key: String, _ value: String) -> RequestLogger {
        var copy = self
        copy.metadata[key] = .string(value)
        return copy
    }

    /// A `Logger` carrying the metadata, for code that logs rarely (stream failures).
    var withMetadata: Logger {
        var logger = logger
        for (key, value) in metadata { logger[metadataKey: key] = value }
        return logger
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.info(message(), metadata: metadata.merging(extra) { $1 })
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.debug(message(), metadata: metadata.merging(extra) { $1 })
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata extra: Logger.Metadata = [:]) {
        logger.warning(message(), metadata: metadata.merging(extra) { $1 })
    }
}

extension LISAError {
    /// The error with every mention of the upstream's model name `upstream` in the message a
    /// client sees (an upstream's own 4xx message) replaced by `requested`.
    func naming(_ upstream: String, as requested: String) -> LISAError {
        guard !upstream.isEmpty, upstream != requested, message.contains(upstream) else { return self }
        return LISAError(
            code, message.replacingOccurrences(of: upstream, with: requested), param: param, reason: reason, retryAfter: retryAfter,
            upstreamStatus: upstreamStatus, underlying: underlying
        )
    }
}
