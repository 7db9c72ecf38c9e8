import Foundation
import ZIPFoundation

/// Reads one entry of a ZIP archive held in memory, inflating it with a byte budget.
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
        let archive: Archive
        do {
            archive = try Archive(data: data, accessMode: .read)
        } catch {
            throw .notAnArchive
        }
        guard let entry = archive[path] else { throw .missingEntry(path) }
        guard entry.type == .file else { throw .damaged }
        var output = Data()
        do {
            _ = try archive.extract(entry, bufferSize: 64 * 1024, skipCRC32: false) { chunk in
                guard output.count + chunk.count <= maxBytes else { throw Failure.tooLarge }
                try Task.checkCancellation()
                output.append(chunk)
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .damaged
        }
        return output
    }
}
