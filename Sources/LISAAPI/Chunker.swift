import Foundation
import LISAOpenAI

/// How documents are cut into chunks (LISA's `chunkingStrategy`).
public enum ChunkingStrategy: Sendable, Hashable {
    /// Recursive character splitting: the text is cut at the coarsest separator (blank
    /// line, line, sentence, word, character) that yields pieces of at most `size`
    /// characters, pieces are merged back up to `size`, and each chunk repeats the last
    /// `overlap` characters of the one before.
    case recursive(size: Int, overlap: Int)
    /// The whole document is one chunk.
    case none

    /// LISA's defaults: 512 characters, 51 of overlap.
    public static let `default` = ChunkingStrategy.recursive(size: 512, overlap: 51)

    /// Checks LISA's ranges: size 100–10000, overlap 0…size/2.
    public func validate() throws(LISAError) {
        guard case .recursive(let size, let overlap) = self else { return }
        guard (100...10_000).contains(size) else {
            throw .invalidRequest("chunkSize must be between 100 and 10000.", param: "chunkSize")
        }
        guard overlap >= 0, overlap <= size / 2 else {
            throw .invalidRequest("chunkOverlap must be between 0 and half the chunkSize (\(size / 2)).", param: "chunkOverlap")
        }
    }

    public func split(_ text: String) -> [String] {
        switch self {
        case .none:
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.isEmpty ? [] : [trimmed]
        case .recursive(let size, let overlap):
            return RecursiveSplitter(size: size, overlap: overlap).split(text)
        }
    }
}

/// The recursive character splitter. Sizes count `Character`s.
///
/// Works on one array of the text's characters and ranges into it, so every level of
/// separators costs one pass: linear in the text, however it is shaped (a megabyte without
/// whitespace included).
struct RecursiveSplitter {
    let size: Int
    let overlap: Int
    static let separators: [[Character]] = [["\n", "\n"], ["\n"], [".", " "], [" "], []]

    func split(_ text: String) -> [String] {
        let characters = Array(text)
        var pieces: [Range<Int>] = []
        collectPieces(of: 0..<characters.count, in: characters, separator: 0, into: &pieces)
        return merge(pieces, of: characters).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Whether `character` is `separator` (a CRLF counts as a line break).
    private static func matches(_ character: Character, _ separator: Character) -> Bool {
        character == separator || (separator == "\n" && character == "\r\n")
    }

    /// Cuts `range` into pieces of at most `size`, keeping each separator at the end of the
    /// piece before it, so the pieces joined give the text back.
    private func collectPieces(of range: Range<Int>, in text: [Character], separator level: Int, into pieces: inout [Range<Int>]) {
        if range.count <= size {
            pieces.append(range)
            return
        }
        guard level < Self.separators.count else {
            pieces.append(range)
            return
        }
        let separator = Self.separators[level]
        if separator.isEmpty {
            for start in stride(from: range.lowerBound, to: range.upperBound, by: size) {
                pieces.append(start..<min(start + size, range.upperBound))
            }
            return
        }
        var parts: [Range<Int>] = []
        var partStart = range.lowerBound
        var index = range.lowerBound
        let last = range.upperBound - separator.count
        while index <= last {
            var found = true
            for offset in 0..<separator.count where !Self.matches(text[index + offset], separator[offset]) {
                found = false
                break
            }
            if found {
                index += separator.count
                parts.append(partStart..<index)
                partStart = index
            } else {
                index += 1
            }
        }
        if partStart < range.upperBound { parts.append(partStart..<range.upperBound) }
        if parts.count == 1 {
            collectPieces(of: range, in: text, separator: level + 1, into: &pieces)
            return
        }
        for part in parts {
            if part.count > size {
                collectPieces(of: part, in: text, separator: level + 1, into: &pieces)
            } else {
                pieces.append(part)
            }
        }
    }

    /// Joins consecutive pieces into chunks of at most `size`; each new chunk starts with
    /// the last `overlap` characters of the one before, from a word boundary.
    private func merge(_ pieces: [Range<Int>], of text: [Character]) -> [String] {
        var chunks: [String] = []
        var current: [Character] = []
        for piece in pieces {
            if current.count + piece.count > size && !current.isEmpty {
                chunks.append(String(current))
                let tail = overlapTail(of: current)
                current = tail.count + piece.count <= size ? tail : []
            }
            current.append(contentsOf: text[piece])
        }
        if !current.isEmpty { chunks.append(String(current)) }
        return chunks
    }

    /// Up to `overlap` characters from the end of `chunk`, starting at a word.
    private func overlapTail(of chunk: [Character]) -> [Character] {
        guard overlap > 0 else { return [] }
        var start = chunk.count - min(overlap, chunk.count)
        if start != 0 && !chunk[start - 1].isWhitespace {
            // Mid-word: move to the next word.
            guard let space = chunk[start...].firstIndex(where: \.isWhitespace) else { return [] }
            start = space + 1
        }
        return Array(chunk[start...])
    }
}
