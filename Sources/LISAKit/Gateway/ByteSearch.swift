import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ByteBuffer {
    /// Where `needle` (a short marker) first occurs in the readable bytes, as an offset from
    /// the reader index.
    ///
    /// `memchr` to each candidate first byte, then `memcmp`: at most the buffer's length times
    /// the marker's, with none of the generic `Collection` machinery that makes
    /// `firstRange(of:)` on a `ByteBufferView` cost more than the rest of a small request.
    func firstOffset(of needle: [UInt8]) -> Int? {
        withUnsafeReadableBytes { haystack in
            needle.withUnsafeBytes { needle in ByteSearch.firstOffset(of: needle, in: haystack) }
        }
    }
}

extension StringProtocol {
    /// Whether the UTF-8 of `marker` occurs in this string: a byte search, where
    /// `contains(_:)` with Foundation imported goes through `NSString` (a tenth of a relayed
    /// stream's CPU when it ran on every event).
    func containsUTF8(_ marker: StaticString) -> Bool {
        let needle = UnsafeRawBufferPointer(start: marker.utf8Start, count: marker.utf8CodeUnitCount)
        if let found = utf8.withContiguousStorageIfAvailable({ ByteSearch.firstOffset(of: needle, in: UnsafeRawBufferPointer($0)) != nil }) {
            return found
        }
        var copy = String(self)
        return copy.withUTF8 { ByteSearch.firstOffset(of: needle, in: UnsafeRawBufferPointer($0)) != nil }
    }
}

enum ByteSearch {
    /// Where `needle` first occurs in `haystack`: `memchr` to each candidate first byte, then
    /// `memcmp`.
    static func firstOffset(of needle: UnsafeRawBufferPointer, in haystack: UnsafeRawBufferPointer) -> Int? {
        guard let first = needle.first else { return 0 }
        guard let base = haystack.baseAddress, let needleBase = needle.baseAddress, haystack.count >= needle.count else { return nil }
        var offset = 0
        let last = haystack.count - needle.count
        while offset <= last {
            guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(hit))
            if memcmp(base + at, needleBase, needle.count) == 0 { return at }
            offset = at + 1
        }
        return nil
    }
}
