import Foundation
public import NIOCore
import NIOFoundationCompat

/// Reads request bodies the one way LISA reads them: one strict parse decides what a body is
/// (duplicate keys, a BOM, NaN, bad UTF-8 and deep nesting are refused before anything reads
/// it), and a typed decode names the failing member's path in its 400.
///
/// Bindings decode their routes' bodies with ``decode(_:from:)``.
public enum RequestJSON {
    /// Decodes a request body, reporting the failing JSON path in a 400.
    public static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(LISAError) -> T {
        try checkJSON(body)
        return try decodeChecked(type, from: body)
    }

    /// Refuses a body that is not exactly one unambiguous JSON value (400).
    public static func checkJSON(_ body: ByteBuffer) throws(LISAError) {
        guard body.readableBytes > 0 else {
            throw .invalidRequest("The request body is empty; send a JSON object.")
        }
        // One parse decides everything: a body that another parser could read differently
        // (duplicate keys, a BOM, NaN, bad UTF-8, deep nesting) is refused before it is read.
        do {
            try StrictJSON.validate(body)
        } catch let error where error.isWellFormed {
            throw .invalidRequest("Invalid request body: \(error.message).", param: error.path)
        } catch {
            throw .invalidRequest("The request body is not valid JSON: \(error.message) (byte \(error.offset)).")
        }
    }

    /// Decodes a body that passed ``checkJSON(_:)``, reporting the failing JSON path in a 400.
    static func decodeChecked<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(LISAError) -> T {
        // Any JSON is read with its members in the client's order (JSONDecoder loses it).
        if T.self == JSONValue.self, let value = try? JSONValue(parsing: body) as? T { return value }
        do {
            return try JSONDecoder().decode(type, from: body)
        } catch let error as DecodingError {
            throw .invalidRequest("Invalid request body: \(error.lisaDescription)", param: Self.param(of: error))
        } catch {
            throw .invalidRequest("The request body is not valid JSON.")
        }
    }

    static func encode<T: Encodable>(_ value: T) throws(LISAError) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        do {
            return try encoder.encodeAsByteBuffer(value, allocator: ByteBufferAllocator())
        } catch {
            throw .invalidRequest("The request could not be re-encoded: \(error)")
        }
    }

    private static func param(of error: DecodingError) -> String? {
        let path: [any CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): path = context.codingPath
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        @unknown default: return nil
        }
        return path.isEmpty ? nil : DecodingError.path(path)
    }
}
