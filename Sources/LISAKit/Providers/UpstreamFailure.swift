import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Why an upstream call produced no response.
public struct UpstreamFailure: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// The connection could not be made: nothing reached the upstream.
        case connectFailed(String)
        /// The upstream closed the connection before answering (a replica going away); it
        /// produced nothing, so another endpoint may take the request.
        case connectionClosed
        /// No answer in time.
        case timedOut
        /// The calling task was cancelled (the client went away).
        case cancelled
        /// The TLS handshake failed (certificate not trusted, expired, for another name…):
        /// nothing reached the upstream.
        case tls(String)
        /// Anything else; the request may have reached the upstream.
        case other(String)
    }

    public let reason: Reason

    public init(reason: Reason) {
        self.reason = reason
    }

    init(classifying error: any Error) {
        if let failure = error as? UpstreamFailure {
            reason = failure.reason
            return
        }
        if error is CancellationError {
            reason = .cancelled
            return
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout, .tlsHandshakeTimeout: reason = .connectFailed("connect timed out"); return
            case .deadlineExceeded, .readTimeout, .writeTimeout: reason = .timedOut; return
            case .cancelled: reason = .cancelled; return
            case .remoteConnectionClosed: reason = .connectionClosed; return
            default: break
            }
        }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            reason = .tls(String(describing: error))
            return
        }
        if let error = error as? ChannelError {
            switch error {
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .eof, .inputClosed:
                // A pooled connection the upstream closed (a replica going away) just as the
                // request was written: nothing was answered.
                reason = .connectionClosed
                return
            case .connectTimeout:
                reason = .connectFailed("connect timed out")
                return
            default: break
            }
        }
        let text = String(describing: error)
        if text.contains("refused") || text.contains("ECONNREFUSED") || error is NIOConnectionError {
            reason = .connectFailed("connection refused")
        } else if text.contains("reset by peer") || text.contains("ECONNRESET") || text.contains("Broken pipe") || text.contains("EPIPE") {
            reason = .connectionClosed
        } else if text.contains("unreachable") || text.contains("No route") {
            reason = .connectFailed("host unreachable")
        } else if text.lowercased().contains("resolve") || text.contains("getaddrinfo") {
            reason = .connectFailed("host name not resolved")
        } else {
            reason = .other(text)
        }
    }

    /// Whether a retry on another endpoint is safe: the upstream answered nothing.
    public var isSafeToRetry: Bool {
        switch reason {
        case .connectFailed, .connectionClosed, .tls: true
        default: false
        }
    }

    public var description: String {
        switch reason {
        case .connectFailed(let why): "connect failed: \(why)"
        case .connectionClosed: "connection closed by the upstream before it answered"
        case .tls(let why): "TLS handshake failed: \(why)"
        case .timedOut: "timed out"
        case .cancelled: "cancelled"
        case .other(let why): why
        }
    }
}
