import Foundation

/// What `GET /models/{id}/test` found: a minimal real request through the router.
public struct ModelTestResult: Sendable, Hashable, Codable {
    public var modelId: String
    public var ok: Bool
    /// The whole call, routing and retries included.
    public var latencyMilliseconds: Double
    /// The request sent: `chat` (one token of "ping") or `embeddings` ("ping").
    public var request: String
    /// What failed, as the caller would have seen it.
    public var error: String?
    public var code: String?

    public init(modelId: String, ok: Bool, latencyMilliseconds: Double, request: String, error: String? = nil, code: String? = nil) {
        self.modelId = modelId
        self.ok = ok
        self.latencyMilliseconds = latencyMilliseconds
        self.request = request
        self.error = error
        self.code = code
    }
}
