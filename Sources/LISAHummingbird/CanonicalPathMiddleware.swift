import HTTPTypes
public import Hummingbird
import LISAKit

/// Gives every request one path form before anything looks at it, so routing, metering,
/// authorization and logs agree on what was asked for.
///
/// Hummingbird's router ignores empty segments, so `/v1//chat/completions/` reaches the
/// same route as `/v1/chat/completions`; this middleware rewrites such paths to that
/// canonical form (no empty segments, no trailing slash) first. Paths with `.` or `..`
/// segments, or a percent-encoded `/`, `\` or `.`, name nothing LISA serves and are 404s.
public struct CanonicalPathMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        switch Self.canonical(path) {
        case .some(let canonical) where canonical == path:
            return try await next(request, context)
        case .some(let canonical):
            var head = request.head
            let query = request.uri.query.map { "?\($0)" } ?? ""
            head.path = canonical + query
            return try await next(Request(head: head, body: request.body), context)
        case .none:
            throw LISAError.notFound("Unknown path \(request.method) \(path).", reason: "unknown_url")
        }
    }

    /// The canonical form of `path`, or `nil` for a path that cannot name a route.
    public static func canonical(_ path: String) -> String? {
        isPlainlyCanonical(path) ? path : fullyCanonical(path)
    }

    /// The canonical form by splitting into segments (see ``canonical(_:)``).
    static func fullyCanonical(_ path: String) -> String? {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." || segment == ".." { return nil }
            let lower = segment.lowercased()
            if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") || segment.contains("\\") { return nil }
            segments.append(segment)
        }
        return "/" + segments.joined(separator: "/")
    }

    /// Whether `path` is already canonical by a look at its bytes: it starts with `/`, has
    /// no empty segment or trailing slash, and no `%`, `\\` or segment starting with `.`
    /// (each of which sends it to the full check). Most requests take only this pass.
    static func isPlainlyCanonical(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.first == UInt8(ascii: "/") else { return false }
            guard bytes.count > 1 else { return true }
            var previous = UInt8(ascii: "/")
            for byte in bytes.dropFirst() {
                if byte == UInt8(ascii: "%") || byte == UInt8(ascii: "\\") { return false }
                if previous == UInt8(ascii: "/"), byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".") { return false }
                previous = byte
            }
            return previous != UInt8(ascii: "/")
        }
    }
}
