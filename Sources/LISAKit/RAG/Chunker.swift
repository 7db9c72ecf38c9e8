import Foundation

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
struct RecursiveSplitter {
    let size: Int
    let overlap: Int
    static let separators = ["\n\n", "\n", ". ", " ", ""]

    func split(_ text: String) -> [String] {
        let pieces = pieces(of: text, separators: Self.separators[...])
        return merge(pieces).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Cuts `text` into pieces of at most `size`, keeping each separator at the end of the
    /// piece before it, so joining the pieces gives `text` back.
    private func pieces(of text: String, separators: ArraySlice<String>) -> [String] {
        if text.count <= size { return [text] }
        guard let separator = separators.first else { return [text] }
        let parts: [String]
        if separator.isEmpty {
            parts = stride(from: 0, to: text.count, by: size).map { start in
                let from = text.index(text.startIndex, offsetBy: start)
                let to = text.index(from, offsetBy: min(size, text.distance(from: from, to: text.endIndex)))
                return String(text[from..<to])
            }
        } else {
            var result: [String] = []
            var rest = text[...]
            while let range = rest.range(of: separator) {
                result.append(String(rest[..<range.upperBound]))
                rest = rest[range.upperBound...]
            }
            if !rest.isEmpty { result.append(String(rest)) }
            parts = result
        }
        if parts.count == 1 && !separator.isEmpty {
            return pieces(of: text, separators: separators.dropFirst())
        }
        return parts.flatMap { $0.count > size ? pieces(of: $0, separators: separators.dropFirst()) : [$0] }
    }

    /// Joins consecutive pieces into chunks of at most `size`; each new chunk starts with
    /// the last `overlap` characters of the one before, from a word boundary.
    private func merge(_ pieces: [String]) -> [String] {
        var chunks: [String] = []
        var current = ""
        for piece in pieces {
            if current.count + piece.count > size && !current.isEmpty {
                chunks.append(current)
                let tail = overlapTail(of: current)
                current = tail.count + piece.count <= size ? tail : ""
            }
            current += piece
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }

    /// Up to `overlap` characters from the end of `chunk`, starting at a word.
    private func overlapTail(of chunk: String) -> String {
        guard overlap > 0 else { return "" }
        var start = chunk.index(chunk.endIndex, offsetBy: -min(overlap, chunk.count))
        if start != chunk.startIndex && !chunk[chunk.index(before: start)].isWhitespace {
            // Mid-word: move to the next word.
            guard let space = chunk[start...].firstIndex(where: \.isWhitespace) else { return "" }
            start = chunk.index(after: space)
        }
        return String(chunk[start...])
    }
}
