import Foundation

/// Where an OpenSearch cluster is and how to reach it.
public struct OpenSearchConfiguration: Sendable, Hashable, Codable {
    public var url: String
    public var username: String?
    /// Sent as HTTP basic auth; stored, never returned by the API or logged.
    public var password: String?
    /// PEM CA bundle for a cluster with a private CA.
    public var caFile: String?
    /// k-NN engine for new indexes: `lucene` (default), `faiss` or `nmslib`.
    public var engine: String?
    /// Index name prefix. Default `lisa-`.
    public var indexPrefix: String?

    public init(url: String, username: String? = nil, password: String? = nil, caFile: String? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.caFile = caFile
    }

    /// A copy without the password, for the API.
    public func redacted() -> OpenSearchConfiguration {
        var copy = self
        copy.password = copy.password == nil ? nil : "***"
        return copy
    }
}
