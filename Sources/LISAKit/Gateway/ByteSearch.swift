#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

extension ByteBuffer {
    /// Where `needle` (a short marker) first occurs in the readable bytes, as an offset from
    /// the reader index.
    ///
    /// `memchr` to each candidate first byte, then `memcmp`: at most the buffer's length times
    /// the marker's, with none of the generic `Collection` machinery that makes
    /// `firstRange(of:)` on a `ByteBufferView` cost more than the rest of a small request.
    func firstOffset(of needle: [UInt8]) -> Int? {
        guard let first = needle.first else { return 0 }
        return withUnsafeReadableBytes { haystack -> Int? in
            needle.withUnsafeBytes { needle -> Int? in
                guard let base = haystack.baseAddress, haystack.count >= needle.count else { return nil }
                var offset = 0
                let last = haystack.count - needle.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, needle.baseAddress!, needle.count) == 0 { return at }
                    offset = at + 1
                }
                return nil
            }
        }
    }
}
