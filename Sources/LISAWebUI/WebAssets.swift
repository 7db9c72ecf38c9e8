import Foundation

/// One file of LISA Chat, ready to serve.
public struct WebAsset: Sendable {
    public var name: String
    public var contentType: String
    public var bytes: [UInt8]
    /// A strong validator: the content's hash.
    public var etag: String
}

/// LISA Chat's files: plain HTML, CSS and JavaScript modules compiled into the binary (the
/// `EmbedWebAssets` plugin embeds `Sources/LISAWebUI/Assets/` at build time), so a server
/// needs no files, no Node toolchain and no CDN.
///
/// `index.html` refers to the other files under `ui/{version}/`; ``version`` changes with
/// any file's content, so those paths can be cached forever while `index.html` is revalidated.
public struct WebAssets: Sendable {
    /// The placeholder in `index.html` replaced by ``version``.
    static let versionPlaceholder = "__LISA_ASSET_VERSION__"

    public let version: String
    private let assets: [String: WebAsset]

    /// The files built into this binary.
    public static let embedded: WebAssets = {
        let files = embeddedBase64.mapValues { Array(Data(base64Encoded: $0) ?? Data()) }
        return WebAssets(files: files, version: embeddedVersion)
    }()

    /// The files of `directory`, read now: for working on the UI without rebuilding
    /// (`LISA_UI_DIRECTORY`). The version is the files' hash, like the embedded one's.
    public static func directory(_ path: String) throws -> WebAssets {
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
        var files: [String: [UInt8]] = [:]
        var hash = FNV1a()
        for name in names {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path).appendingPathComponent(name)))
            hash.mix(Array(name.utf8) + [0])
            hash.mix(bytes)
            files[name] = bytes
        }
        return WebAssets(files: files, version: hash.hex)
    }

    init(files: [String: [UInt8]], version: String) {
        self.version = version
        var assets: [String: WebAsset] = [:]
        for (name, original) in files {
            var bytes = original
            if name == "index.html" {
                let text = String(decoding: original, as: UTF8.self)
                bytes = Array(text.replacingOccurrences(of: Self.versionPlaceholder, with: version).utf8)
            }
            var hash = FNV1a()
            hash.mix(bytes)
            assets[name] = WebAsset(name: name, contentType: Self.contentType(of: name), bytes: bytes, etag: "\"\(hash.hex)\"")
        }
        self.assets = assets
    }

    /// The file named `name` (no folders), or `nil`.
    public func asset(named name: String) -> WebAsset? {
        assets[name]
    }

    /// Every file's name.
    public var names: [String] { assets.keys.sorted() }

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last.map({ $0.lowercased() }) ?? "" {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "json": "application/json"
        case "webmanifest": "application/manifest+json"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "txt": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }
}

/// 64-bit FNV-1a: a content hash for cache validators (not for security).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func mix(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
    }

    var hex: String { String(value, radix: 16) }
}
