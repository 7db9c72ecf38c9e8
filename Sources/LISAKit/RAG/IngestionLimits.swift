/// The budgets of RAG ingestion (`rag.ingestion` in the configuration file).
public struct IngestionLimits: Sendable, Hashable, Codable {
    /// Jobs ingested at once (shared fairly between users). Default 2.
    public var concurrency: Int = 2
    /// How long one job may take, parsing and embedding included, before it is stopped and
    /// FAILED. Default 600 s.
    public var timeoutSeconds: Double = 600
    /// How many times a job is started (restarts included) before it is FAILED. Default 3.
    public var maxAttempts: Int = 3
    /// What reading one document may cost.
    public var document = DocumentParser.Limits()
    /// How long a replica's claim on a running job lasts without renewal (renewed every
    /// third of it): a replica that dies mid-job leaves it to another after this. Default 30 s.
    public var leaseSeconds: Double = 30
    /// How often a replica sharing PostgreSQL state looks for jobs nobody holds (uploaded
    /// through a replica that died). Default 10 s.
    public var scanIntervalSeconds: Double = 10

    public init() {}

    enum CodingKeys: String, CodingKey {
        case concurrency, timeoutSeconds, maxAttempts, maxTextBytes, maxExpandedBytes, toolTimeoutSeconds, pdftotextPath, leaseSeconds
        case scanIntervalSeconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? 2
        timeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutSeconds) ?? 600
        maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? 3
        document.maxTextBytes = try c.decodeIfPresent(Int.self, forKey: .maxTextBytes) ?? document.maxTextBytes
        document.maxExpandedBytes = try c.decodeIfPresent(Int.self, forKey: .maxExpandedBytes) ?? document.maxExpandedBytes
        document.toolTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .toolTimeoutSeconds) ?? document.toolTimeoutSeconds
        document.pdftotextPath = try c.decodeIfPresent(String.self, forKey: .pdftotextPath) ?? document.pdftotextPath
        leaseSeconds = try c.decodeIfPresent(Double.self, forKey: .leaseSeconds) ?? 30
        scanIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .scanIntervalSeconds) ?? 10
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(concurrency, forKey: .concurrency)
        try c.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try c.encode(maxAttempts, forKey: .maxAttempts)
        try c.encode(document.maxTextBytes, forKey: .maxTextBytes)
        try c.encode(document.maxExpandedBytes, forKey: .maxExpandedBytes)
        try c.encode(document.toolTimeoutSeconds, forKey: .toolTimeoutSeconds)
        try c.encode(document.pdftotextPath, forKey: .pdftotextPath)
        try c.encode(leaseSeconds, forKey: .leaseSeconds)
        try c.encode(scanIntervalSeconds, forKey: .scanIntervalSeconds)
    }

    /// Checks every budget is positive.
    public func validate() throws(ConfigurationError) {
        guard concurrency >= 1, concurrency <= 64 else { throw ConfigurationError("rag.ingestion.concurrency must be 1-64") }
        guard timeoutSeconds > 0 else { throw ConfigurationError("rag.ingestion.timeoutSeconds must be positive") }
        guard maxAttempts >= 1 else { throw ConfigurationError("rag.ingestion.maxAttempts must be at least 1") }
        guard (3...3600).contains(leaseSeconds) else { throw ConfigurationError("rag.ingestion.leaseSeconds must be 3-3600") }
        guard (1...3600).contains(scanIntervalSeconds) else { throw ConfigurationError("rag.ingestion.scanIntervalSeconds must be 1-3600") }
        guard document.maxTextBytes > 0, document.maxExpandedBytes > 0, document.toolTimeoutSeconds > 0 else {
            throw ConfigurationError("rag.ingestion.maxTextBytes, maxExpandedBytes and toolTimeoutSeconds must be positive")
        }
        guard !document.pdftotextPath.isEmpty else { throw ConfigurationError("rag.ingestion.pdftotextPath must not be empty") }
    }
}
