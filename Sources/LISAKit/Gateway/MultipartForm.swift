public import Foundation
public import NIOCore

/// A `multipart/form-data` body (RFC 7578): its parts with their names, file names and bytes.
///
/// LISA reads uploads and the OpenAI multipart routes (image edits, transcriptions) with it,
/// and forwards a form as ``encoded(boundary:)`` re-writes it: what the upstream parses is
/// what LISA parsed and authorized.
public struct MultipartForm: Sendable {
    public struct Part: Sendable {
        public var name: String
        public var filename: String?
        public var contentType: String?
        public var data: Data

        public init(name: String, filename: String? = nil, contentType: String? = nil, data: Data) {
            self.name = name
            self.filename = filename
            self.contentType = contentType
            self.data = data
        }
    }

    public var parts: [Part]

    public init(parts: [Part]) {
        self.parts = parts
    }

    /// The longest boundary RFC 2046 allows.
    static let maximumBoundaryLength = 70
    /// The most parts a form may have, and the most header bytes one part may have.
    static let maximumParts = 64
    static let maximumPartHeaderSize = 8 * 1024

    /// The boundary of a `multipart/form-data` content type, or `nil` (also for a boundary
    /// RFC 2046 does not allow: empty, longer than 70 characters, or with other characters).
    public static func boundary(of contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() where piece.lowercased().hasPrefix("boundary=") {
            var value = String(piece.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            let allowed = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ".utf8)
            guard (1...maximumBoundaryLength).contains(value.utf8.count), value.utf8.allSatisfy(allowed.contains), value.last != " " else {
                return nil
            }
            return value
        }
        return nil
    }

    /// Parses a body in one pass: each delimiter is found with a search that never looks at
    /// a byte twice for the same candidate (Knuth–Morris–Pratt), so the cost is linear in
    /// the body whatever the boundary.
    public init(body: ByteBuffer, boundary: String) throws {
        let bytes = Array(body.readableBytesView)
        let delimiter = Array("--\(boundary)".utf8)
        let partEnd = Array("\r\n".utf8) + delimiter
        let headerEnd = Array("\r\n\r\n".utf8)
        let delimiterSearch = Search(delimiter)
        let partEndSearch = Search(partEnd)
        let headerSearch = Search(headerEnd)
        var parts: [Part] = []
        guard var position = delimiterSearch.first(in: bytes, from: 0) else { throw MultipartError.malformed }
        while true {
            position += delimiter.count
            // "--" after a delimiter ends the body.
            if position + 1 < bytes.count, bytes[position] == UInt8(ascii: "-"), bytes[position + 1] == UInt8(ascii: "-") { break }
            // Skip the line break after the delimiter.
            if position + 1 < bytes.count, bytes[position] == 13, bytes[position + 1] == 10 { position += 2 }
            guard parts.count < Self.maximumParts else { throw MultipartError.malformed }
            guard let headersEnd = headerSearch.first(in: bytes, from: position, within: Self.maximumPartHeaderSize) else {
                throw MultipartError.malformed
            }
            let headers = String(decoding: bytes[position..<headersEnd], as: UTF8.self)
            let contentStart = headersEnd + 4
            guard let next = partEndSearch.first(in: bytes, from: contentStart) else { throw MultipartError.malformed }
            var part = Part(name: "", filename: nil, contentType: nil, data: Data(bytes[contentStart..<next]))
            for line in headers.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    part.name = Self.parameter("name", in: line) ?? ""
                    part.filename = Self.parameter("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    part.contentType = String(line.dropFirst("content-type:".count)).trimmingCharacters(in: .whitespaces)
                }
            }
            parts.append(part)
            position = next + 2
        }
        self.parts = parts
    }

    /// The first text field called `name`.
    public func field(_ name: String) -> String? {
        parts.first { $0.name == name && $0.filename == nil }.map { String(decoding: $0.data, as: UTF8.self) }
    }

    /// The form as a body with `boundary`: by default 128 random bits, which no client can
    /// know in advance and so cannot plant in a part.
    public func encoded(boundary: String = "lisa-" + (0..<2).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined())
        -> (body: ByteBuffer, contentType: String)
    {
        var body = ByteBuffer()
        for part in parts {
            body.writeString("--\(boundary)\r\n")
            var disposition = "Content-Disposition: form-data; name=\"\(Self.quoted(part.name))\""
            if let filename = part.filename { disposition += "; filename=\"\(Self.quoted(filename))\"" }
            body.writeString(disposition + "\r\n")
            if let contentType = part.contentType, !contentType.contains(where: { $0 == "\r" || $0 == "\n" }) {
                body.writeString("Content-Type: \(contentType)\r\n")
            }
            body.writeString("\r\n")
            body.writeBytes(part.data)
            body.writeString("\r\n")
        }
        body.writeString("--\(boundary)--\r\n")
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    /// A name for a quoted header parameter: quotes and line breaks percent-encoded, as
    /// browsers do.
    private static func quoted(_ value: String) -> String {
        value.replacingOccurrences(of: "\"", with: "%22").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }

    private static func parameter(_ name: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let trimmed = piece.trimmingCharacters(in: .whitespaces)
            guard trimmed.lowercased().hasPrefix("\(name)=") else { continue }
            var value = String(trimmed.dropFirst(name.count + 1))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return nil
    }

    /// A Knuth–Morris–Pratt search for one needle: linear in the haystack.
    struct Search {
        let needle: [UInt8]
        /// For each prefix length, the length of its longest proper prefix that is also a suffix.
        let failure: [Int]

        init(_ needle: [UInt8]) {
            self.needle = needle
            var failure = [Int](repeating: 0, count: needle.count)
            var length = 0
            var index = 1
            while index < needle.count {
                if needle[index] == needle[length] {
                    length += 1
                    failure[index] = length
                    index += 1
                } else if length > 0 {
                    length = failure[length - 1]
                } else {
                    index += 1
                }
            }
            self.failure = failure
        }

        /// The first index at or after `start` where the needle begins, looking at most
        /// `within` bytes past `start` (all of them by default).
        func first(in haystack: [UInt8], from start: Int, within: Int = .max) -> Int? {
            guard !needle.isEmpty else { return nil }
            let end = within == .max ? haystack.count : min(haystack.count, start + within)
            var matched = 0
            var index = start
            while index < end {
                if haystack[index] == needle[matched] {
                    matched += 1
                    index += 1
                    if matched == needle.count { return index - matched }
                } else if matched > 0 {
                    matched = failure[matched - 1]
                } else {
                    index += 1
                }
            }
            return nil
        }
    }

    public enum MultipartError: Error { case malformed }
}
