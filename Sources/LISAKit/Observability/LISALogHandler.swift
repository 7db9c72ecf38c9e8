import Foundation
public import Logging

/// A log handler that writes one line per message to standard error and renders metadata
/// only when it logs.
///
/// swift-log's `StreamLogHandler` re-renders its metadata each time a key is set, which web
/// frameworks do per request (request ids); this one keeps setting a key as cheap as a
/// dictionary write. Bootstrap it in an executable, never in a library:
/// `LoggingSystem.bootstrap { LISALogHandler(label: $0, level: .info) }`.
public struct LISALogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String

    public init(label: String, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        var line = "\(Date().formatted(.iso8601)) \(event.level) \(label):"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value)"
        }
        line += " [\(event.source)] \(event.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
