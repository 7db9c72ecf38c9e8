import Logging

/// What the front end knows of one inference request besides its body.
public struct InferenceContext: Sendable {
    /// The request id, also sent back as `X-Request-Id` and logged as `lisa.request_id`.
    public var requestID: String
    /// Request headers the gateway may use (session affinity), lower-cased names.
    public var headers: [String: String]
    public var logger: Logger

    public init(requestID: String, headers: [String: String] = [:], logger: Logger) {
        self.requestID = requestID
        self.headers = headers
        self.logger = logger
    }
}
