import NIOHTTP1

/// The limits on an answer's head: a header line or a whole head past them fails the call
/// (`502` for the client) instead of being buffered.
enum UpstreamHeadLimits {
    static let decoder: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 16 * 1024
        limits.maxHeaderListSize = 64 * 1024
        limits.maxHeaderFieldCount = 512
        return limits
    }()
}
