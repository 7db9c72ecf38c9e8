import Foundation
import HTTPTypes
public import Hummingbird
import LISAKit

/// Gives every request an id: the client's `X-Request-Id` when it is a sane token (≤ 128
/// characters of letters, digits, `-`, `_`, `.`, `:`), otherwise a new one. The gateway logs it
/// as `lisa.request_id`; it is returned in the response's `X-Request-Id`, errors included.
public struct RequestIDMiddleware<Context: LISARoutesContext>: RouterMiddleware {
    static var headerName: HTTPField.Name { HTTPField.Name("X-Request-Id")! }

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = Self.acceptable(request.headers[Self.headerName]) ?? Self.generate()
        var context = context
        context.requestID = id
        var response = try await next(request, context)
        response.headers[Self.headerName] = id
        // No answer of LISA's is to be sniffed into something it was not labelled as.
        if response.headers[.xContentTypeOptions] == nil { response.headers[.xContentTypeOptions] = "nosniff" }
        return response
    }

    static func acceptable(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count),
            value.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A
            })
        else { return nil }
        return value
    }

    static func generate() -> String {
        let high = UniqueID.next64()
        let low = UInt32(truncatingIfNeeded: UniqueID.next64())
        // Fixed width: 16 + 8 hex digits, zero-padded, so ids sort and parse alike.
        let hex = String(high, radix: 16) + ""
        let tail = String(low, radix: 16)
        return "req-" + String(repeating: "0", count: 16 - hex.count) + hex + String(repeating: "0", count: 8 - tail.count) + tail
    }
}
