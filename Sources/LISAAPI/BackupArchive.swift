public import Foundation

/// What a LISA backup archive holds: `manifest.json`, then the files it lists.
///
/// The archive is a POSIX ustar file (no compression: the SQLite pages compress poorly
/// and `gzip` on the command line does it when wanted). The server writes it
/// (`POST /admin/backup`); `lisactl admin restore` reads it with ``BackupArchiveReader``
/// and refuses anything but the regular files the manifest names, with their sizes and
/// SHA-256 digests.
public struct BackupManifest: Codable, Sendable, Equatable {
    /// One file of the data directory, its path relative to it.
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var size: Int64
        /// Lowercase hex.
        public var sha256: String

        public init(path: String, size: Int64, sha256: String) {
            self.path = path
            self.size = size
            self.sha256 = sha256
        }
    }

    /// Always `lisa-backup`.
    public var format: String
    /// The archive layout's version (1).
    public var formatVersion: Int
    /// The LISA that wrote it (``LISAVersion/string``).
    public var lisaVersion: String
    /// The state schema version of `lisa.sqlite` in it.
    public var schemaVersion: Int
    /// When the snapshot was taken (ISO 8601, UTC).
    public var createdAt: String
    public var files: [File]

    public static let formatName = "lisa-backup"
    /// The name of the manifest, the archive's first entry.
    public static let fileName = "manifest.json"

    public init(lisaVersion: String = LISAVersion.string, schemaVersion: Int, createdAt: Date = Date(), files: [File]) {
        self.format = Self.formatName
        self.formatVersion = 1
        self.lisaVersion = lisaVersion
        self.schemaVersion = schemaVersion
        self.createdAt = ISO8601DateFormatter().string(from: createdAt)
        self.files = files
    }

    /// The manifest as the archive stores it (sorted keys, so the same manifest is the same bytes).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Why an archive was refused; the message names the entry.
public struct BackupArchiveError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The ustar format, as far as LISA's backups use it: regular files with relative names.
public enum TarFormat {
    public static let blockSize = 512

    /// The 512-byte header of a regular file (mode 0600, owner 0).
    public static func header(name: String, size: Int64, modified: Date = Date()) throws -> [UInt8] {
        guard BackupPath.isSafe(name), name.utf8.count <= 100 else {
            throw BackupArchiveError("'\(name)' cannot be stored (an unsafe name, or longer than 100 bytes)")
        }
        var header = [UInt8](repeating: 0, count: blockSize)
        func put(_ text: String, at offset: Int) {
            for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte }
        }
        put(name, at: 0)
        put("0000600", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        if size < 0o77777777777 {
            put(String(repeating: "0", count: 11 - String(size, radix: 8).count) + String(size, radix: 8), at: 124)
        } else {
            // GNU base-256: the high bit of the first byte, then the size big-endian.
            header[124] = 0x80
            for index in 0..<8 { header[135 - index] = UInt8(truncatingIfNeeded: size >> (8 * index)) }
        }
        let seconds = max(0, Int64(modified.timeIntervalSince1970))
        put(String(repeating: "0", count: max(0, 11 - String(seconds, radix: 8).count)) + String(seconds, radix: 8), at: 136)
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257)
        put("00", at: 263)
        put("lisa", at: 265)
        put("lisa", at: 297)
        for index in 148..<156 { header[index] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        let digits = String(sum, radix: 8)
        put(String(repeating: "0", count: 6 - digits.count) + digits, at: 148)
        header[154] = 0
        header[155] = UInt8(ascii: " ")
        return header
    }

    /// The zero bytes that pad `size` bytes of content to a whole block.
    public static func padding(after size: Int64) -> Int {
        let rest = Int(size % Int64(blockSize))
        return rest == 0 ? 0 : blockSize - rest
    }

    /// The two zero blocks that end an archive.
    public static var end: [UInt8] { [UInt8](repeating: 0, count: 2 * blockSize) }
}

/// Which relative paths an archive may hold: components of letters, digits, `.`, `_`,
/// `-`, `:`, never empty, `.` or `..`; no leading `/`.
public enum BackupPath {
    public static func isSafe(_ path: String) -> Bool {
        guard !path.isEmpty, path.utf8.count <= 255, !path.hasPrefix("/") else { return false }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard components.count <= 8 else { return false }
        for component in components {
            guard !component.isEmpty, component != ".", component != ".." else { return false }
            for byte in component.utf8 {
                let allowed =
                    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":")
                guard allowed else { return false }
            }
        }
        return true
    }
}

/// Reads a LISA backup archive defensively: entries one by one from any byte source, each
/// header's checksum checked, only regular files with safe relative names (``BackupPath``),
/// no links, devices or extended headers, each entry and the whole within the limits.
public struct BackupArchiveReader {
    /// How much an archive may hold.
    public struct Limits: Sendable {
        /// The largest one file may be (default 1 TiB).
        public var maxFileSize: Int64 = 1 << 40
        /// The most all files together may hold (default 1 TiB).
        public var maxTotalSize: Int64 = 1 << 40
        /// The most entries (default 100 000).
        public var maxEntries = 100_000
        /// The largest manifest (default 16 MiB).
        public var maxManifestSize: Int64 = 16 << 20

        public init() {}
    }

    /// One regular file's header.
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var size: Int64
    }

    private let read: (Int) throws -> [UInt8]
    public let limits: Limits
    private var entries = 0
    private var total: Int64 = 0
    private var pending: Int64 = 0
    private var finished = false

    /// - Parameter read: Returns up to `count` bytes; fewer only at the end of the input.
    public init(limits: Limits = Limits(), read: @escaping (Int) throws -> [UInt8]) {
        self.limits = limits
        self.read = read
    }

    /// A reader of the file at `path`.
    public init(file handle: FileHandle, limits: Limits = Limits()) {
        self.init(limits: limits) { count in
            var bytes: [UInt8] = []
            while bytes.count < count {
                guard let data = try handle.read(upToCount: count - bytes.count), !data.isEmpty else { break }
                bytes += data
            }
            return bytes
        }
    }

    private func readExactly(_ count: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        let bytes = try read(count)
        guard bytes.count == count else { throw BackupArchiveError("the archive ends inside \(what()) (truncated)") }
        return bytes
    }

    /// The next file's header, or `nil` at the end of the archive. The previous entry's
    /// content must have been read with ``readContent(_:)``.
    public mutating func next() throws -> Entry? {
        guard !finished else { return nil }
        guard pending == 0 else { throw BackupArchiveError("the previous entry's content was not read") }
        let header = try readExactly(TarFormat.blockSize, "a header")
        if header.allSatisfy({ $0 == 0 }) {
            finished = true
            return nil
        }
        var sum = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 0x20 : Int(byte) }
        guard let stored = Self.octal(header[148..<156]), stored == sum else {
            throw BackupArchiveError("entry \(entries + 1): bad header checksum (not a tar archive, or corrupted)")
        }
        guard let name = Self.string(header[0..<100]) else { throw BackupArchiveError("entry \(entries + 1): the name is not UTF-8") }
        var path = name
        if header[257..<262].elementsEqual("ustar".utf8), let prefix = Self.string(header[345..<500]), !prefix.isEmpty {
            path = prefix + "/" + name
        }
        let type = header[156]
        guard type == UInt8(ascii: "0") || type == 0 else {
            let kind: String =
                switch type {
                case UInt8(ascii: "1"): "a hard link"
                case UInt8(ascii: "2"): "a symbolic link"
                case UInt8(ascii: "5"): "a directory"
                case UInt8(ascii: "x"), UInt8(ascii: "g"): "an extended header"
                default: "an entry of type '\(Character(UnicodeScalar(type)))'"
                }
            throw BackupArchiveError("'\(path)' is \(kind): a LISA backup holds regular files only")
        }
        guard BackupPath.isSafe(path) else {
            throw BackupArchiveError("'\(path)' is not a safe relative path (absolute, '..', or unexpected characters)")
        }
        guard let size = Self.size(header[124..<136]), size >= 0 else { throw BackupArchiveError("'\(path)': bad size field") }
        entries += 1
        guard entries <= limits.maxEntries else { throw BackupArchiveError("more than \(limits.maxEntries) entries") }
        guard size <= limits.maxFileSize else {
            throw BackupArchiveError("'\(path)' is \(size) bytes, over the limit of \(limits.maxFileSize)")
        }
        total += size
        guard total <= limits.maxTotalSize else {
            throw BackupArchiveError("the archive holds more than \(limits.maxTotalSize) bytes")
        }
        pending = size
        return Entry(path: path, size: size)
    }

    /// Hands the current entry's content to `body` in pieces of up to 1 MiB, then skips its padding.
    public mutating func readContent(_ body: ([UInt8]) throws -> Void) throws {
        let size = pending
        while pending > 0 {
            let piece = try readExactly(Int(min(pending, 1 << 20)), "a file's content")
            pending -= Int64(piece.count)
            try body(piece)
        }
        let padding = TarFormat.padding(after: size)
        if padding > 0 { _ = try readExactly(padding, "a file's padding") }
    }

    static func string(_ field: ArraySlice<UInt8>) -> String? {
        let bytes = field.prefix { $0 != 0 }
        return String(validating: bytes, as: UTF8.self)
    }

    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        let digits = field.drop { $0 == 0x20 }.prefix { $0 >= 0x30 && $0 <= 0x37 }
        guard !digits.isEmpty else { return nil }
        return digits.reduce(0) { $0 * 8 + Int($1 - 0x30) }
    }

    static func size(_ field: ArraySlice<UInt8>) -> Int64? {
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80, field.dropFirst().prefix(3).allSatisfy({ $0 == 0 }) else { return nil }
            return field.dropFirst().reduce(Int64(0)) { ($0 << 8) | Int64($1) }
        }
        return octal(field).map(Int64.init)
    }
}

extension BackupArchiveReader {
    /// Reads a whole archive: the manifest first, then every file it lists, each written by
    /// `write` (nil: only checked) and compared with the manifest's size and SHA-256.
    /// Throws on anything the manifest does not list, a file listed twice or missing, or a
    /// digest that differs.
    public mutating func verify(
        writing write: ((_ path: String) throws -> (sink: ([UInt8]) throws -> Void, close: () throws -> Void))? = nil
    ) throws -> BackupManifest {
        guard let first = try next() else { throw BackupArchiveError("the archive is empty") }
        guard first.path == BackupManifest.fileName else {
            throw BackupArchiveError("the first entry is '\(first.path)', not \(BackupManifest.fileName): not a LISA backup")
        }
        guard first.size <= limits.maxManifestSize else { throw BackupArchiveError("the manifest is over \(limits.maxManifestSize) bytes") }
        var manifestBytes: [UInt8] = []
        try readContent { manifestBytes += $0 }
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(manifestBytes))
        } catch {
            throw BackupArchiveError("the manifest cannot be read: \(error)")
        }
        guard manifest.format == BackupManifest.formatName, manifest.formatVersion == 1 else {
            throw BackupArchiveError("not a LISA backup of a format this lisactl reads (\(manifest.format) \(manifest.formatVersion))")
        }
        var expected: [String: BackupManifest.File] = [:]
        for file in manifest.files {
            guard BackupPath.isSafe(file.path), file.path != BackupManifest.fileName, expected[file.path] == nil else {
                throw BackupArchiveError("the manifest lists '\(file.path)' twice, or an unsafe path")
            }
            expected[file.path] = file
        }
        var seen: Set<String> = []
        while let entry = try next() {
            guard let listed = expected[entry.path] else { throw BackupArchiveError("'\(entry.path)' is not in the manifest") }
            guard seen.insert(entry.path).inserted else { throw BackupArchiveError("'\(entry.path)' appears twice") }
            guard entry.size == listed.size else {
                throw BackupArchiveError("'\(entry.path)' is \(entry.size) bytes; the manifest says \(listed.size)")
            }
            let output = try write?(entry.path)
            var digest = SHA256Digest()
            try readContent { piece in
                digest.update(piece)
                try output?.sink(piece)
            }
            try output?.close()
            let hex = digest.finalize()
            guard hex == listed.sha256.lowercased() else {
                throw BackupArchiveError("'\(entry.path)' does not match its checksum (sha256 \(hex), the manifest says \(listed.sha256))")
            }
        }
        let missing = Set(expected.keys).subtracting(seen)
        guard missing.isEmpty else { throw BackupArchiveError("missing from the archive: \(missing.sorted().joined(separator: ", "))") }
        return manifest
    }
}

/// SHA-256 (FIPS 180-4), for checking a backup where swift-crypto is not linked (lisactl).
public struct SHA256Digest: Sendable {
    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        length &+= UInt64(bytes.count)
        var start = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, bytes.count)
            buffer += bytes[0..<take]
            start = take
            guard buffer.count == 64 else { return }
            let block = buffer
            buffer.removeAll(keepingCapacity: true)
            block.withUnsafeBufferPointer { compress($0, at: 0) }
        }
        bytes.withUnsafeBufferPointer { pointer in
            while start + 64 <= pointer.count {
                compress(pointer, at: start)
                start += 64
            }
        }
        if start < bytes.count { buffer += bytes[start...] }
    }

    /// The digest as lowercase hex.
    public mutating func finalize() -> String {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        tail += [UInt8](repeating: 0, count: (55 - Int(length % 64) + 64) % 64)
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        let saved = length
        update(tail)
        length = saved
        return state.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

    private mutating func compress(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) {
        var w = [UInt32](repeating: 0, count: 64)
        for index in 0..<16 {
            let base = offset + index * 4
            w[index] = UInt32(bytes[base]) << 24 | UInt32(bytes[base + 1]) << 16 | UInt32(bytes[base + 2]) << 8 | UInt32(bytes[base + 3])
        }
        for index in 16..<64 {
            let s0 = w[index - 15].rotatedRight(7) ^ w[index - 15].rotatedRight(18) ^ (w[index - 15] >> 3)
            let s1 = w[index - 2].rotatedRight(17) ^ w[index - 2].rotatedRight(19) ^ (w[index - 2] >> 10)
            w[index] = w[index - 16] &+ s0 &+ w[index - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for index in 0..<64 {
            let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
            let choice = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ choice &+ Self.k[index] &+ w[index]
            let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
            let majority = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ majority
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        state[0] &+= a
        state[1] &+= b
        state[2] &+= c
        state[3] &+= d
        state[4] &+= e
        state[5] &+= f
        state[6] &+= g
        state[7] &+= h
    }
}

extension UInt32 {
    fileprivate func rotatedRight(_ count: UInt32) -> UInt32 { (self >> count) | (self << (32 - count)) }
}
