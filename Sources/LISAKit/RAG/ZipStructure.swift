/// A ZIP archive's directory, read without trusting it: every record it states must lie
/// inside its bytes.
///
/// It reads the end-of-central-directory record (and the ZIP64 locator and record it may point
/// to), then every central directory entry: each offset and size an archive states, 32- or
/// 64-bit, must fall inside the archive, and the entries must fill the central directory they
/// claim. Linear in the archive's size; no arithmetic on stated values can overflow.
enum ZipStructure {
    static let maximumEntries = 65_536

    enum Problem: Error, Sendable, Hashable {
        /// No end-of-central-directory record.
        case notAnArchive
        /// A stated offset or size points outside the bytes, or a record is not where stated.
        case damaged
    }

    /// One file in the archive, where its data lies.
    struct Entry: Sendable, Hashable {
        /// The name's bytes, as stored.
        var name: [UInt8]
        /// 0: stored, 8: deflated; anything else LISA does not read.
        var method: UInt16
        var crc32: UInt32
        var compressedSize: Int
        var uncompressedSize: UInt64
        /// Where the entry's (compressed) data starts.
        var dataOffset: Int
    }

    /// Throws a ``Problem`` when the archive's records do not all lie inside `bytes`.
    static func check(_ bytes: [UInt8]) throws(Problem) {
        _ = try entries(bytes)
    }

    /// The archive's entries, each checked to lie inside `bytes`; throws a ``Problem`` otherwise.
    static func entries(_ bytes: [UInt8]) throws(Problem) -> [Entry] {
        var found: [Entry] = []
        let count = UInt64(bytes.count)
        guard let end = endRecord(in: bytes) else { throw .notAnArchive }
        var entries = UInt64(read16(bytes, end + 10))
        var directorySize = UInt64(read32(bytes, end + 12))
        var directoryOffset = UInt64(read32(bytes, end + 16))
        if entries == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the end record names the ZIP64 end record.
            guard end >= 20, read32(bytes, end - 20) == 0x0706_4b50 else { throw .damaged }
            let recordOffset = read64(bytes, end - 20 + 8)
            guard recordOffset <= count, count - recordOffset >= 56, read32(bytes, Int(recordOffset)) == 0x0606_4b50 else { throw .damaged }
            let record = Int(recordOffset)
            entries = read64(bytes, record + 32)
            directorySize = read64(bytes, record + 40)
            directoryOffset = read64(bytes, record + 48)
        }
        guard entries <= UInt64(maximumEntries), directoryOffset <= count, directorySize <= count - directoryOffset else { throw .damaged }
        var position = Int(directoryOffset)
        let directoryEnd = position + Int(directorySize)
        for _ in 0..<entries {
            guard directoryEnd - position >= 46, read32(bytes, position) == 0x0201_4b50 else { throw .damaged }
            let method = read16(bytes, position + 10)
            let crc = read32(bytes, position + 16)
            var compressed = UInt64(read32(bytes, position + 20))
            var uncompressed = UInt64(read32(bytes, position + 24))
            let nameLength = Int(read16(bytes, position + 28))
            let extraLength = Int(read16(bytes, position + 30))
            let commentLength = Int(read16(bytes, position + 32))
            var localOffset = UInt64(read32(bytes, position + 42))
            let variable = nameLength + extraLength + commentLength
            guard directoryEnd - position - 46 >= variable else { throw .damaged }
            // The ZIP64 extra field holds, in order, whichever of the three were 0xFFFFFFFF.
            var extra = position + 46 + nameLength
            let extraEnd = extra + extraLength
            while extraEnd - extra >= 4 {
                let id = read16(bytes, extra)
                let size = Int(read16(bytes, extra + 2))
                guard extraEnd - extra - 4 >= size else { throw .damaged }
                if id == 0x0001 {
                    var field = extra + 4
                    let fieldEnd = field + size
                    if uncompressed == 0xFFFF_FFFF {
                        guard fieldEnd - field >= 8 else { throw .damaged }
                        uncompressed = read64(bytes, field)
                        field += 8
                    }
                    if compressed == 0xFFFF_FFFF {
                        guard fieldEnd - field >= 8 else { throw .damaged }
                        compressed = read64(bytes, field)
                        field += 8
                    }
                    if localOffset == 0xFFFF_FFFF {
                        guard fieldEnd - field >= 8 else { throw .damaged }
                        localOffset = read64(bytes, field)
                    }
                }
                extra += 4 + size
            }
            // The local header (30 bytes and its name and extra field) and the data it is
            // followed by lie inside the archive.
            guard localOffset <= count, count - localOffset >= 30, read32(bytes, Int(localOffset)) == 0x0403_4b50 else { throw .damaged }
            let local = Int(localOffset)
            let localVariable = UInt64(read16(bytes, local + 26)) + UInt64(read16(bytes, local + 28))
            guard count - localOffset - 30 >= localVariable, compressed <= count - localOffset - 30 - localVariable else { throw .damaged }
            let name = Array(bytes[(position + 46)..<(position + 46 + nameLength)])
            found.append(
                Entry(
                    name: name, method: method, crc32: crc, compressedSize: Int(compressed), uncompressedSize: uncompressed,
                    dataOffset: local + 30 + Int(localVariable)
                )
            )
            position += 46 + variable
        }
        return found
    }

    /// The offset of the end-of-central-directory record: searched backwards over the last
    /// 22 + 65,535 bytes (its comment may be that long).
    private static func endRecord(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 22 else { return nil }
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        var position = bytes.count - 22
        while position >= lowest {
            // Its comment ends at the end of the bytes, or before trailing bytes some tools add.
            if read32(bytes, position) == 0x0605_4b50, position + 22 + Int(read16(bytes, position + 20)) <= bytes.count {
                return position
            }
            position -= 1
        }
        return nil
    }

    private static func read16(_ bytes: [UInt8], _ at: Int) -> UInt16 {
        UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    private static func read32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(read16(bytes, at)) | UInt32(read16(bytes, at + 2)) << 16
    }

    private static func read64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
        UInt64(read32(bytes, at)) | UInt64(read32(bytes, at + 4)) << 32
    }
}
