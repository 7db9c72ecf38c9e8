import CLISAZlib
import Foundation

/// Reads one entry of a ZIP archive held in memory, inflating it with a byte budget.
///
/// The archive's directory is read by ``ZipStructure``, which checks every offset and size it
/// states against the bytes. The entry is inflated here with zlib, from exactly its stated
/// compressed bytes: a stream that does not end within them is damaged (not a loop waiting
/// for more), output past the budget stops at once, and the calling task's cancellation is
/// checked between steps.
enum ZipReader {
    enum Failure: Error, CustomStringConvertible {
        case notAnArchive
        case missingEntry(String)
        case tooLarge
        case damaged

        var description: String {
            switch self {
            case .notAnArchive: "not a ZIP archive"
            case .missingEntry(let path): "no \(path) in the archive"
            case .tooLarge: "an entry expands past its budget"
            case .damaged: "the archive is damaged"
            }
        }
    }

    /// The bytes of the entry at `path`; throws ``Failure/tooLarge`` as soon as more than
    /// `maxBytes` have been inflated (before the rest is), whatever the entry claims.
    static func entry(_ path: String, of data: Data, maxBytes: Int) throws(Failure) -> Data {
        let bytes = Array(data)
        let entries: [ZipStructure.Entry]
        do {
            entries = try ZipStructure.entries(bytes)
        } catch .notAnArchive {
            throw .notAnArchive
        } catch {
            throw .damaged
        }
        guard let entry = entries.first(where: { $0.name == Array(path.utf8) }) else { throw .missingEntry(path) }
        let compressed = bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)]
        let output: [UInt8]
        switch entry.method {
        case 0:
            guard compressed.count <= maxBytes else { throw .tooLarge }
            output = Array(compressed)
        case 8:
            output = try inflate(compressed, maxBytes: maxBytes)
        default:
            throw .damaged
        }
        guard UInt64(output.count) == entry.uncompressedSize, checksum(output) == entry.crc32 else { throw .damaged }
        return Data(output)
    }

    /// Inflates a raw DEFLATE stream that must end within `input`.
    static func inflate(_ input: ArraySlice<UInt8>, maxBytes: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw .damaged }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let result: Result<Void, Failure> = input.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            while true {
                if Task.isCancelled { return .failure(.damaged) }
                let before = stream.avail_in
                let status = chunk.withUnsafeMutableBufferPointer { target -> Int32 in
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    return CLISAZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                guard output.count + produced <= maxBytes else { return .failure(.tooLarge) }
                output.append(contentsOf: chunk[..<produced])
                switch status {
                case Z_STREAM_END:
                    return .success(())
                case Z_OK, Z_BUF_ERROR:
                    // No input left, or none taken and nothing made: the stream ends outside its bytes.
                    if stream.avail_in == 0 && produced < chunk.count { return .failure(.damaged) }
                    if produced == 0 && stream.avail_in == before { return .failure(.damaged) }
                default:
                    return .failure(.damaged)
                }
            }
        }
        try result.get()
        return output
    }

    /// The CRC-32 of `bytes`, as ZIP records it.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            UInt32(truncatingIfNeeded: crc32(0, buffer.baseAddress, UInt32(buffer.count)))
        }
    }
}
